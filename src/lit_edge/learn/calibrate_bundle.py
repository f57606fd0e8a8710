"""Make a trained bundle's scores honest probabilities: fit its logit scale (a temperature) on a
labelled split that the model did not train on (the trainer's ``val`` split, or any labelled
folder or CSV), and write it into the bundle.

Why a separate step: a LiT model's logit scale is what made the *contrastive* task easy (a batch of
thousands of captions), not what makes "0.9" mean "right 9 times in 10" over the species of a
bundle. Trained models come out over-confident; a user who accepts everything at 0.9 then accepts
mistakes. One scalar, fitted by negative log-likelihood on photos with known answers, fixes most of
it (temperature scaling) without changing which species wins. The fit uses the bundle's own image
tower through the runtime (the INT8 tower the device runs, by default), so the scores it
calibrates are the ones the device will write.

What is fitted on is recorded in the manifest (``extra.score_calibration``): the data, the number
of photos and species, the scale before and after, and the held-out NLL and ECE before and after
(2-fold: each half scored with the scale fitted on the other), so ``lit-edge bundle info`` can say
how much better the scores became. ``class_mass`` bundles (the starter) are refused: their score is
the locked head's own probability, with no temperature to fit.

Numpy, OpenCV and ONNX Runtime only (no torch): it runs on the device too.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from lit_edge import bundle as bf
from lit_edge.data import DataConfig, load_dataset
from lit_edge.device.config import BackendConfig, EngineConfig
from lit_edge.device.decode import DecodeError, decode_file
from lit_edge.errors import UserError
from lit_edge.learn import calibrate

log = logging.getLogger(__name__)

#: A trained model's scale may be far from honest; the search spans this factor either way.
SPAN = 20.0


@dataclass(frozen=True)
class BundleCalibrationConfig:
    """Which bundle, which labelled photos, which tower."""

    bundle: Path
    data: DataConfig = field(default_factory=lambda: DataConfig(split="val"))
    backend: BackendConfig = field(default_factory=BackendConfig)
    batch_size: int = 16
    span: float = SPAN


@dataclass(frozen=True)
class Scored:
    """Every usable photo's cosines to the bundle's softmax rows and its true row."""

    cosines: np.ndarray  # [N, R] (species, then human/vehicle rows, as the runtime's softmax)
    rows: np.ndarray  # [N] the true row of each photo
    unreadable: int
    not_in_bundle: list[str]  # the dataset's classes the bundle has no row for (their photos skipped)


@dataclass(frozen=True)
class Report:
    """What calibration did: written into the manifest as ``extra.score_calibration``."""

    before: float  # logit scale before
    after: float  # logit scale after
    photos: int
    species: int
    heldout_nll: tuple[float, float]  # 2-fold held-out mean NLL: (at the old scale, at the fitted one)
    heldout_ece: tuple[float, float]  # 2-fold held-out ECE of the top-1 score: (old, fitted)
    unreadable: int
    not_in_bundle: int

    def as_dict(self, source: str, split: str, flavour: str) -> dict:
        return {
            "source": source,
            "split": split,
            "tower": flavour,
            "photos": self.photos,
            "species": self.species,
            "unreadable": self.unreadable,
            "classes_not_in_bundle": self.not_in_bundle,
            "logit_scale_before": round(self.before, 5),
            "logit_scale": round(self.after, 5),
            "heldout_nll": [round(x, 5) for x in self.heldout_nll],
            "heldout_ece": [round(x, 5) for x in self.heldout_ece],
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }


def softmax(cos: np.ndarray, scale: float, bias: float) -> np.ndarray:
    logits = scale * cos.astype(np.float64) + bias
    logits -= logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    return logits / logits.sum(axis=1, keepdims=True)


def expected_calibration_error(probs: np.ndarray, rows: np.ndarray, bins: int = 10) -> float:
    """ECE of the top-1 score (:func:`lit_edge.scorecard.calibration_error`, the one definition)."""
    from lit_edge.scorecard import calibration_error

    return calibration_error(probs.max(axis=1), probs.argmax(axis=1) == rows, bins) if len(rows) else 0.0


def score_photos(engine, data, batch_size: int) -> Scored:
    """Decode, embed (the bundle's tower, through the runtime) and compare every photo whose class
    the bundle has; unreadable photos and classes the bundle lacks are counted, not fatal."""
    from rich.progress import track

    index = bf.NameIndex(engine.classifier.labels)
    column = {}
    missing = []
    for cls, taxon in enumerate(data.taxa):
        j = index.get(taxon.get("scientific_name", ""))
        if j is None:
            missing.append(taxon.get("scientific_name", "") or f"class {cls}")
        else:
            column[cls] = j
    matrix_t = engine.classifier.matrix_t
    cos, rows, batch, batch_rows = [], [], [], []
    unreadable = 0

    def flush() -> None:
        if batch:
            cos.append(engine.embed(batch) @ matrix_t)
            rows.extend(batch_rows)
            batch.clear()
            batch_rows.clear()

    todo = [(p, int(y)) for p, y in zip(data.paths, data.labels.tolist(), strict=True) if int(y) in column]
    for path, y in track(todo, description="scoring photos", transient=True):
        try:
            rgb = decode_file(Path(path), engine.min_side).rgb
        except DecodeError as exc:
            log.warning("skipped %s: %s", path, exc)
            unreadable += 1
            continue
        batch.append(engine.prepare(rgb))
        batch_rows.append(column[y])
        if len(batch) >= batch_size:
            flush()
    flush()
    width = matrix_t.shape[1]
    return Scored(
        np.concatenate(cos) if cos else np.zeros((0, width), np.float32),
        np.asarray(rows, dtype=np.int64),
        unreadable,
        missing,
    )


def _two_fold(cos: np.ndarray, rows: np.ndarray, scale: float, bias: float, span: float):
    """Held-out NLL and ECE at the old scale and at a scale fitted on the other half."""
    rng = np.random.default_rng(0)
    fold = rng.permutation(len(rows)) % 2
    probs_old = np.zeros((len(rows), cos.shape[1]))
    probs_new = np.zeros_like(probs_old)
    for k in (0, 1):
        test, train = fold == k, fold != k
        fitted = calibrate.fit(cos[train], rows[train], scale, bias, span=span).logit_scale
        probs_old[test] = softmax(cos[test], scale, bias)
        probs_new[test] = softmax(cos[test], fitted, bias)
    picked = np.arange(len(rows))

    def nll(p: np.ndarray) -> float:
        return float(-np.log(np.maximum(p[picked, rows], 1e-12)).mean())

    return (
        (nll(probs_old), nll(probs_new)),
        (expected_calibration_error(probs_old, rows), expected_calibration_error(probs_new, rows)),
    )


def calibrate_bundle(cfg: BundleCalibrationConfig) -> Report:
    """Fit the logit scale of ``cfg.bundle`` on ``cfg.data`` and write it through ``bundle.edit``."""
    from lit_edge.device.pipeline import Engine

    engine = Engine(EngineConfig(bundle=cfg.bundle, backend=cfg.backend))
    m = engine.bundle.manifest
    if m.scoring.kind != "softmax":
        raise UserError(
            f"{engine.bundle.root}: a {m.scoring.kind} bundle's score is its locked head's own probability "
            "and has no temperature to fit; calibrate bundles of trained LiT models"
        )
    data = load_dataset(cfg.data)
    scored = score_photos(engine, data, cfg.batch_size)
    n, species = len(scored.rows), len(np.unique(scored.rows))
    if n < calibrate.MIN_PHOTOS or species < 2:
        shown = ", ".join(scored.not_in_bundle[:5])
        raise UserError(
            f"{cfg.data.root} ({cfg.data.split}): {n} usable photo(s) of {species} bundle species; "
            f"calibration needs at least {calibrate.MIN_PHOTOS} photos of 2 species"
            + (f" (classes not in the bundle: {shown})" if shown else "")
            + "; point --data at the labelled split of the bundle's species"
        )
    scale, bias = m.model.logit_scale, m.model.logit_bias or 0.0
    fitted = calibrate.fit(scored.cosines, scored.rows, scale, bias, span=cfg.span)
    nlls, eces = _two_fold(scored.cosines, scored.rows, scale, bias, cfg.span)
    report = Report(
        scale,
        fitted.logit_scale,
        n,
        species,
        nlls,
        eces,
        scored.unreadable,
        len(scored.not_in_bundle),
    )
    flavour = engine.backend.flavour
    root = engine.bundle.root
    del engine  # the edit swaps the bundle folder: no session may hold its files open
    with bf.edit(root) as staged:
        staged.manifest = replace(
            staged.manifest, model=replace(staged.manifest.model, logit_scale=float(fitted.logit_scale))
        )
        staged.manifest.extra["score_calibration"] = report.as_dict(
            str(cfg.data.root), cfg.data.split, flavour
        )
    return report
