"""``learn``: verified photos + a bundle's rows -> new rows, a new logit scale, and where they came from.

The steps, each scored by cross-validation on the verified photos only:

1. every verified label finds its home (:func:`targets`): a species row of the bundle, a species
   the bundle lacks (added from its name, its common name and its photos), or an outcome whose
   rows it strengthens (``blank``; ``human`` and ``vehicle`` go to the rows :data:`OUTCOME_ROWS`
   names); ``unknown`` teaches nothing and is counted;
2. species rows (:mod:`lit_edge.learn.rows`): text rows blended with image prototypes, or a probe;
3. background rows (:mod:`lit_edge.learn.background`) from the verified no-animal photos;
4. the logit scale (:mod:`lit_edge.learn.calibrate`) on the held-out cosines of step 2.

Held-out photos are scored as the bundle's runtime scores them (``manifest.scoring``): by cosine
for ``softmax``; for ``class_mass`` by the runtime's class cover of each fold's rows,
and there is no logit scale to recalibrate (a class-mass score is the head's probability mass,
calibrated by the head), so step 4 keeps the scale.

Numpy only: it runs where the photos were tagged, on the device, in seconds.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from lit_edge import outcomes
from lit_edge.bundle import RANKS, Bundle, Label
from lit_edge.device.classify import (
    ClassifyConfig,
    background_basis,
    class_cover,
    head_distribution,
    row_cover,
)
from lit_edge.errors import UserError
from lit_edge.learn import background, calibrate, rows
from lit_edge.learn import folds as folds_mod
from lit_edge.taxonomy import Taxon

log = logging.getLogger(__name__)

#: Which rows a verified outcome strengthens in this runtime. The runtime decides ``blank`` from
#: the background rows, and people and vehicles are "no animal" to it unless the bundle has rows
#: of their own (named ``human``/``vehicle``): then those photos are counted and left out
#: (relearning those rows is not done yet; strengthening the background with them would be wrong).
OUTCOME_ROWS = {
    outcomes.BLANK: outcomes.BLANK,
    outcomes.HUMAN: outcomes.BLANK,
    outcomes.VEHICLE: outcomes.BLANK,
}
#: Camera-trap projects write people as the species; it means the ``human`` outcome unless the
#: bundle holds it as a species row.
HUMAN_SPECIES = "homo sapiens"
UNKNOWN = "unknown"
METHODS = ("prototype", "probe", "auto")


@dataclass(frozen=True)
class Verified:
    """What people verified, as arrays: one stored embedding and one label per photo."""

    embeddings: np.ndarray  # [n, D] float32, L2-normalised image tower output
    labels: tuple[str, ...]  # scientific name, or an outcome: blank / human / vehicle / unknown
    common_names: tuple[str, ...] = ()  # the reviewer's common name per photo ('' where none)
    sources: tuple[dict, ...] = ()  # provenance of the photos (database path, counts)

    def __post_init__(self):
        if self.embeddings.ndim != 2 or len(self.embeddings) != len(self.labels):
            raise ValueError(f"{self.embeddings.shape} embeddings for {len(self.labels)} labels")


@dataclass(frozen=True)
class LearnConfig:
    """How learn fits. Every numeric choice inside is made by cross-validation, not here."""

    method: str = "prototype"  # prototype | probe | auto (see lit_edge.learn.rows)
    background: bool = True  # verified blanks add background rows
    calibrate: bool = True  # refit the logit scale on held-out verified photos
    blank_threshold: float = ClassifyConfig.blank_threshold  # the runtime's, for the background CV
    seed: int = 0  # of the fold assignment

    def __post_init__(self):
        if self.method not in METHODS:
            raise UserError(f"unknown learn method {self.method!r}; use one of {', '.join(METHODS)}")


@dataclass
class Learned:
    """The new species list and matrix, the logit scale, and the provenance for the manifest."""

    labels: list[Label]
    matrix: np.ndarray  # [C', D] float32, unit rows
    logit_scale: float
    provenance: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Targets:
    """Where each verified photo goes (-1 where it goes nowhere)."""

    species: np.ndarray  # [n] row in the species list (bundle species, then added ones), or -1
    outcome: np.ndarray  # [n] bool: a no-animal photo (strengthens the background)
    added: tuple[Label, ...]  # species the bundle lacks, in order of their rows after the bundle's
    counts: dict[str, int]
    skipped: dict[str, int]
    mapped: dict[str, str]  # outcome -> the rows it strengthened


def _ranks_for(name: str, labels: list[Label]) -> tuple[tuple[str, str], ...]:
    """A new species' ranks: genus and epithet from its name, the rest from a bundle species of the
    same genus when there is one (so the runtime can still roll it up)."""
    t = Taxon.from_name(name)
    ranks = dict.fromkeys(RANKS, "")
    same = next((lab for lab in labels if lab.rank("genus") and lab.rank("genus") == t.genus), None)
    if same is not None:
        ranks.update({r: same.rank(r) for r in RANKS[:-2]})
    ranks.update(genus=t.genus, species=t.species)
    return tuple(ranks.items())


def outcome_of(label: str, species: set[str] | frozenset[str] = frozenset()) -> str | None:
    """The outcome a verified label names (``blank``, ``human``, ``vehicle``), or None for a taxon
    (or ``unknown``). ``species``: the bundle's species names, casefolded."""
    key = " ".join(str(label).split()).casefold()
    if key == HUMAN_SPECIES and key not in species:
        return outcomes.HUMAN
    return key if key in OUTCOME_ROWS else None


def decided_as(outcome: str, labels: list[Label]) -> str:
    """What the runtime decides for a photo of ``outcome`` with these rows: the outcome itself where
    the bundle has rows of its own for it, else the one its photos strengthen (:data:`OUTCOME_ROWS`)."""
    return outcome if any(lab.outcome == outcome for lab in labels) else OUTCOME_ROWS[outcome]


def targets(labels: list[Label], verified: Verified) -> Targets:
    """Map every verified label to its home in ``labels`` (the bundle's species list)."""
    species = [lab for lab in labels if not lab.outcome]
    own_rows = {lab.outcome for lab in labels} - {None, outcomes.BLANK}
    index = {lab.scientific_name.casefold(): i for i, lab in enumerate(species)}
    common = dict(zip(verified.labels, verified.common_names or [""] * len(verified.labels), strict=True))
    next_id = max((lab.id for lab in labels), default=-1) + 1
    added: list[Label] = []
    y = np.full(len(verified.labels), -1, dtype=np.int64)
    outcome = np.zeros(len(verified.labels), dtype=bool)
    counts: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    mapped: dict[str, str] = {}
    names = [lab.scientific_name for lab in species]
    known = frozenset(index)
    for i, raw in enumerate(verified.labels):
        name = " ".join(str(raw).split())
        key = name.casefold()
        o = outcome_of(name, known)
        if o in own_rows:
            skipped[f"{o} (the bundle's own {o} rows are not relearned)"] += 1
            continue
        if o is not None:
            outcome[i] = True
            mapped[o] = OUTCOME_ROWS[o]
            counts[o] += 1
            continue
        if not name or key == UNKNOWN:
            skipped[UNKNOWN] += 1
            continue
        if key not in index:
            index[key] = len(names)
            names.append(name)
            added.append(Label(next_id + len(added), name, common.get(raw, ""), _ranks_for(name, species)))
        y[i] = index[key]
        counts[names[y[i]]] += 1
    return Targets(y, outcome, tuple(added), dict(counts), dict(skipped), mapped)


def runtime_scorer(bundle: Bundle) -> rows.RowScorer | None:
    """The runtime's ranking of candidate species rows, where it is not by cosine; None for
    ``softmax``. ``class_mass``: each row's score is the head's mass on the classes it covers,
    shared with every other row that covers them, the bundle's outcome rows included (their cover
    is summed once here: the CV scores hundreds of candidate row sets)."""
    if bundle.manifest.scoring.kind == "softmax":
        return None
    fixed = [i for i, lab in enumerate(bundle.labels) if lab.outcome]
    others = row_cover(bundle.text_embeddings[fixed]).sum(axis=0)

    def score(species_rows: np.ndarray, emb: np.ndarray) -> np.ndarray:
        return head_distribution(emb) @ class_cover(species_rows, others).T

    return score


def learn(bundle: Bundle, verified: Verified, config: LearnConfig = LearnConfig()) -> Learned:
    """New rows for ``bundle`` from ``verified``; see the module docstring for the steps."""
    t0 = time.perf_counter()
    m = bundle.manifest
    dim = bundle.text_embeddings.shape[1]
    if verified.embeddings.shape[1] != dim:
        raise UserError(
            f"the verified embeddings are {verified.embeddings.shape[1]}-d but {bundle.root} is {dim}-d: "
            "they come from another model; learn with the bundle that tagged the photos"
        )
    emb = np.ascontiguousarray(verified.embeddings, dtype=np.float32)
    labels = bundle.labels
    tg = targets(labels, verified)
    if not tg.counts:
        raise UserError(
            "no verified photos to learn from (only 'unknown' or none); verify some in review first"
        )
    species_idx = [i for i, lab in enumerate(labels) if not lab.outcome]
    blank_idx = [i for i, lab in enumerate(labels) if lab.outcome == outcomes.BLANK]
    text = bundle.text_embeddings[species_idx]
    text = np.concatenate([text, np.zeros((len(tg.added), dim), np.float32)])
    fold_of = folds_mod.assign(np.where(tg.outcome, -2, tg.species), seed=config.seed)

    sp = tg.species >= 0
    scene = background_basis(bundle.text_embeddings[blank_idx]) if blank_idx else None
    share = rows.scene_share(emb, scene) if scene is not None else None
    fit = rows.fit(
        emb[sp],
        tg.species[sp],
        text,
        method=config.method,
        scale=m.model.logit_scale,
        fold_of=fold_of[sp],
        scene=scene,
        share=None if share is None else share[sp],
        score=runtime_scorer(bundle),
    )
    calib = calibrate.Calibration(m.model.logit_scale, 0.0, 0.0, int(sp.sum()), False)
    if config.calibrate and m.scoring.kind == "softmax":
        calib = calibrate.fit(fit.heldout, tg.species[sp], m.model.logit_scale, m.model.logit_bias)

    bg_rows = np.zeros((0, dim), np.float32)
    bg_info: dict = {"rows_added": 0, "mapped": tg.mapped}
    if config.background and tg.outcome.any():
        has = tg.outcome | sp
        bg = background.fit(
            emb[has],
            tg.outcome[has],
            bundle.text_embeddings[blank_idx],
            config.blank_threshold,
            fold_of=fold_of[has],
            share=None if share is None else share[has],
        )
        bg_rows = bg.rows
        bg_info.update(
            rows_added=len(bg.rows),
            cv_balanced_accuracy={str(r): round(v, 4) for r, v in bg.cv.items()},
            before=round(bg.before, 4),
            after=round(bg.after, 4),
        )

    matrix = bundle.text_embeddings.copy()
    matrix[species_idx] = fit.rows[: len(species_idx)]
    next_id = max([lab.id for lab in labels] + [lab.id for lab in tg.added], default=-1) + 1
    empty = tuple((r, "") for r in RANKS)
    new_blank = [
        Label(next_id + k, outcomes.BLANK, f"no animal: learned {k + 1}", empty) for k in range(len(bg_rows))
    ]
    matrix = np.concatenate([matrix, fit.rows[len(species_idx) :], bg_rows]).astype(np.float32)
    provenance = {
        "sources": list(verified.sources),
        "method": fit.chosen.method,
        "param": fit.chosen.as_dict()["param"],
        "without_scene": fit.chosen.without_scene,
        "counts": dict(sorted(tg.counts.items())),
        "skipped": tg.skipped,
        "added_species": [lab.scientific_name for lab in tg.added],
        "cv": {
            "folds": folds_mod.count(fold_of[sp]) if sp.any() else 0,
            "species_photos": int(sp.sum()),
            "text_rows": fit.text.as_dict(),
            "chosen": fit.chosen.as_dict(),
            "candidates": [c.as_dict() for c in fit.candidates],
        },
        "background": bg_info,
        "calibration": calib.as_dict(),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    log.info(
        "learn: %d species photos, %s (%s); held-out top-1 %d -> %d of %d; %d background rows added",
        int(sp.sum()),
        fit.chosen.method,
        provenance["param"],
        fit.text.right,
        fit.chosen.right,
        int(sp.sum()),
        len(bg_rows),
    )
    if not math.isfinite(calib.logit_scale) or not np.isfinite(matrix).all():
        raise RuntimeError("learn produced non-finite rows or scale")  # a bug, not a user error
    return Learned([*labels, *tg.added, *new_blank], matrix, calib.logit_scale, provenance)
