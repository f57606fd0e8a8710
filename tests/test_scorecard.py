"""The one ECE definition that the fieldset scorecard and ``bundle calibrate`` both report."""

from __future__ import annotations

import numpy as np
import pytest

from lit_edge import scorecard
from lit_edge.learn.calibrate_bundle import expected_calibration_error


def test_calibration_error_is_the_size_weighted_gap_per_score_bin():
    # bin 0.9: two decisions, one right (gap |0.5 - 0.9|); bin 0.2: one, wrong (gap 0.2)
    assert scorecard.calibration_error([0.9, 0.9, 0.2], [True, False, False]) == pytest.approx(
        (2 * 0.4 + 0.2) / 3
    )
    # a score of exactly 1.0 is in the last bin, not past it; perfectly sure and right costs nothing
    assert scorecard.calibration_error([1.0, 1.0], [True, True]) == 0.0
    assert scorecard.calibration_error([], []) == 0.0


def test_bundle_calibrate_reports_the_same_ece_from_probabilities():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(5) * 0.3, size=200)
    rows = rng.integers(0, 5, 200)
    top = probs.max(axis=1)
    right = probs.argmax(axis=1) == rows
    assert expected_calibration_error(probs, rows) == pytest.approx(scorecard.calibration_error(top, right))
    # over-confident by construction: sure scores, chance-level accuracy
    assert expected_calibration_error(probs, rows) > 0.3
