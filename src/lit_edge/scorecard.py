"""Judge decisions against a person's answers: verdicts, counts, risk-coverage and calibration.

A folder of photos with a ``labels.csv`` (``path,expected``; ``expected`` a scientific name,
``blank``, ``Homo sapiens`` or ``vehicle``) is the only honest check of a bundle's decisions. This
module turns (expected, decision) pairs into the figures a camera-trap user cares about:

- how many photos got the right species, a right but coarser taxon (a genus, family ... of the
  expected species), ``animal`` without a name (true, and coarser still), the right
  blank/human/vehicle outcome, ``uncertain``, or a wrong one (a wrong taxon named, or a wrong
  outcome: an animal called blank, a person called an animal);
- risk-coverage: keeping only decisions at a score >= t, what share is kept and how many of those
  are right (users triage exactly so: AddaxAI at 0.65, Wildlife Insights at 0.95 for blanks);
- the expected calibration error of the scores (does 0.8 mean right 8 times in 10?);
- the wrong decisions at a score >= 0.9, the ones a user would accept unseen.

It reads only the decisions and the bundle's labels (for a name's lineage), so ``bench/
bench_fieldset.py`` and the slow fieldset test share it.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lit_edge.bundle import RANKS, Label, NameIndex
from lit_edge.outcomes import ANIMAL, BLANK, HUMAN, UNCERTAIN, VEHICLE

#: ``expected`` values that are outcomes, not taxa (Homo sapiens: camera-trap projects rank people first).
EXPECTED_OUTCOMES = {"blank": BLANK, "homo sapiens": HUMAN, "human": HUMAN, "vehicle": VEHICLE}

RIGHT, COARSER, UNNAMED, OUTCOME, NONE, WRONG_TAXON, WRONG_OUTCOME, FAILED = (
    "right species",
    "right, coarser",
    "animal, no name",
    "blank/human/vehicle right",
    "uncertain",
    "wrong taxon",
    "wrong outcome",
    "failed to read",
)
VERDICTS = (RIGHT, COARSER, UNNAMED, OUTCOME, NONE, WRONG_TAXON, WRONG_OUTCOME, FAILED)
#: Verdicts whose decision is a true statement (``animal`` on an animal photo is true, if coarse).
CORRECT = (RIGHT, COARSER, UNNAMED, OUTCOME)


@dataclass(frozen=True)
class Judged:
    """One photo: what a person said, what the model decided, and the verdict."""

    path: str
    expected: str
    name: str  # decided name ('' when the photo could not be read)
    rank: str
    score: float
    verdict: str

    @property
    def kept_at(self) -> float:
        """The score a triage line must not exceed to keep this decision (uncertain is never kept)."""
        return -1.0 if self.rank in (UNCERTAIN, "") else self.score


def read_expected(folder: Path) -> list[tuple[str, str]]:
    """``(path, expected)`` rows of ``folder/labels.csv``."""
    with open(folder / "labels.csv", encoding="utf-8", newline="") as fh:
        return [(r["path"], r["expected"].strip()) for r in csv.DictReader(fh)]


class Judge:
    """Verdicts for decisions, knowing names and lineages from ``labels`` (a bundle's, plus any
    checklist): a synonym is the same taxon; a decided genus or family is right but coarser when
    the expected species' lineage holds it."""

    def __init__(self, labels: list[Label]):
        self.labels = [lab for lab in labels if not lab.outcome]
        self.index = NameIndex(self.labels)

    def lineage(self, name: str) -> set[str]:
        """The names of ``name``'s taxa above species (casefolded); its genus at least."""
        hit = self.index.get(name)
        out = {name.split(" ")[0].casefold()} if " " in name else set()
        if hit is not None:
            lab = self.labels[hit]
            out |= {lab.rank(r).casefold() for r in RANKS[:-1] if lab.rank(r)}
        genus = next(iter(out), "")
        kin = next((lab for lab in self.labels if lab.rank("genus").casefold() == genus), None)
        if hit is None and kin is not None:  # a species not in the list: its genus's relatives place it
            out |= {kin.rank(r).casefold() for r in RANKS[:-2] if kin.rank(r)}
        return out

    def verdict(self, expected: str, name: str, rank: str) -> str:
        if not rank:
            return FAILED
        outcome = EXPECTED_OUTCOMES.get(expected.casefold())
        if outcome is not None:
            return OUTCOME if rank == outcome else (NONE if rank == UNCERTAIN else WRONG_OUTCOME)
        if rank == UNCERTAIN:
            return NONE
        if rank in (BLANK, HUMAN, VEHICLE):
            return WRONG_OUTCOME
        if rank == ANIMAL:
            return UNNAMED
        if rank == "species":
            same = self.index.get(name)
            ok = name.casefold() == expected.casefold() or (
                same is not None and same == self.index.get(expected)
            )
            return RIGHT if ok else WRONG_TAXON
        return COARSER if name.casefold() in self.lineage(expected) else WRONG_TAXON

    def judge(self, path: str, expected: str, name: str, rank: str, score: float) -> Judged:
        return Judged(path, expected, name, rank, score, self.verdict(expected, name, rank))


def counts(rows: list[Judged]) -> Counter:
    return Counter(r.verdict for r in rows)


def risk_coverage(
    rows: list[Judged], lines: tuple[float, ...] = (0.5, 0.7, 0.9)
) -> list[tuple[float, int, int]]:
    """Per triage line t: (t, decisions kept at score >= t, of them right)."""
    out = []
    for t in lines:
        kept = [r for r in rows if r.kept_at >= t]
        out.append((t, len(kept), sum(r.verdict in CORRECT for r in kept)))
    return out


def calibration_error(scores, right, bins: int = 10) -> float:
    """ECE: the mean |accuracy - mean score| over equal-width score bins, weighted by the bins'
    sizes (a score of 1.0 falls in the last bin). ``scores`` in [0, 1], ``right`` booleans; the
    one definition the fieldset scorecard and ``bundle calibrate`` both report."""
    conf = np.asarray(scores, dtype=np.float64)
    hit = np.asarray(right, dtype=np.float64)
    if not len(conf):
        return 0.0
    which = np.clip((conf * bins).astype(int), 0, bins - 1)
    gap = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            gap += m.sum() * abs(conf[m].mean() - hit[m].mean())
    return float(gap / len(conf))


def expected_calibration_error(rows: list[Judged], bins: int = 10) -> float:
    """ECE (:func:`calibration_error`) over the decisions that were kept at any line (not
    uncertain, not failed), a decision counting as right when its verdict is in ``CORRECT``."""
    decided = [r for r in rows if r.kept_at >= 0.0]
    return calibration_error([r.score for r in decided], [r.verdict in CORRECT for r in decided], bins)


def confident_wrong(rows: list[Judged], line: float = 0.9) -> list[Judged]:
    return [r for r in rows if r.kept_at >= line and r.verdict in (WRONG_TAXON, WRONG_OUTCOME)]
