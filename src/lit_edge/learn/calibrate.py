"""Recalibrate the scores on the verified labels: the logit scale (a temperature) that makes the new
rows' probabilities honest on held-out verified photos.

A separate step with one hook, :func:`fit`, because what a score means is the runtime's contract
(``lit_edge.device.classify``: a softmax of ``logit_scale * cosine``, whose threshold and margin
decide roll-ups): when that contract changes, this module changes, and nothing else in ``learn``.

The fit minimises the negative log-likelihood of the *held-out* cosines from cross-validation (a
photo's own row was fitted without it), never the in-sample ones, which would make every score
over-confident. The scale stays within a factor :data:`SPAN` of the bundle's (a few photos cannot
justify more), and fewer than :data:`MIN_PHOTOS` photos or a single species leave it as it was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SPAN = 4.0
MIN_PHOTOS = 10


@dataclass(frozen=True)
class Calibration:
    logit_scale: float
    before: float  # held-out mean NLL at the bundle's scale
    after: float  # held-out mean NLL at the fitted scale
    photos: int
    fitted: bool

    def as_dict(self) -> dict:
        return {
            "logit_scale": self.logit_scale,
            "nll_before": round(self.before, 5),
            "nll_after": round(self.after, 5),
            "photos": self.photos,
            "fitted": self.fitted,
        }


def nll(cos: np.ndarray, y: np.ndarray, scale: float, bias: float = 0.0) -> float:
    logits = scale * cos.astype(np.float64) + bias
    logits -= logits.max(axis=1, keepdims=True)
    lse = np.log(np.exp(logits).sum(axis=1))
    return float(np.mean(lse - logits[np.arange(len(y)), y])) if len(y) else 0.0


def fit(
    cos: np.ndarray, y: np.ndarray, scale: float, bias: float | None = None, span: float = SPAN
) -> Calibration:
    """The logit scale minimising held-out NLL of ``cos`` ([n, C] held-out cosines, ``y`` the true
    rows), searched on a log scale within ``[scale / span, scale * span]`` (golden section)."""
    b = 0.0 if bias is None else float(bias)
    before = nll(cos, y, scale, b)
    if len(y) < MIN_PHOTOS or len(np.unique(y)) < 2:
        return Calibration(scale, before, before, len(y), False)
    lo, hi = math.log(scale / span), math.log(scale * span)
    g = (math.sqrt(5) - 1) / 2
    a, c = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fc = nll(cos, y, math.exp(a), b), nll(cos, y, math.exp(c), b)
    for _ in range(40):
        if fa < fc:
            hi, c, fc = c, a, fa
            a = hi - g * (hi - lo)
            fa = nll(cos, y, math.exp(a), b)
        else:
            lo, a, fa = a, c, fc
            c = lo + g * (hi - lo)
            fc = nll(cos, y, math.exp(c), b)
    best = math.exp((lo + hi) / 2)
    after = nll(cos, y, best, b)
    if after >= before:
        return Calibration(scale, before, before, len(y), False)
    return Calibration(best, before, after, len(y), True)
