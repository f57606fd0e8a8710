"""The one summary of a detection database: what ``tag``, ``detect``, ``db summary`` and the report print.

Counting lives here only, so the four can never disagree. What is counted is a *unit* of
observation: a photo, a whole clip (its aggregated decision; its sampled frames are counted apart
in ``by_kind`` and nowhere else) or a live frame. Each unit's outcome follows
:func:`lit_edge.outcomes.classify_media` under a :class:`~lit_edge.outcomes.DecisionRule`: a named
taxon (``species``; an animal that no kept row explains is the taxon ``animal`` of rank ``animal``),
or one of Camtrap DP's observation types (``by_type``: blank, human, vehicle, unknown for uncertain,
unclassified for failed). Where people verified units (``annotations``), their current word is
counted beside the machine's (``verified``), never instead of it.

SQLite does the counting (:meth:`~lit_edge.db.reader.Reader.decision_groups`: rows grouped by
kind, status, decision and day), and Python classifies each group once, so a summary of a million
rows costs a few hundred classifications and flat memory; only failed rows are read one by one
(their reasons are grouped without each file's own path).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from lit_edge.db import schema
from lit_edge.db.reader import MediaRow, Reader
from lit_edge.outcomes import (
    ANIMAL,
    OBS_ANIMAL,
    OBS_BLANK,
    OBS_HUMAN,
    OBS_UNKNOWN,
    OBS_VEHICLE,
    DecisionRule,
    classify_media,
)

UNIT_KINDS = (schema.PHOTO, schema.CLIP, schema.LIVE)  # what is counted; a clip's frames are not
_NAMED = (OBS_ANIMAL, OBS_HUMAN, OBS_VEHICLE)


@dataclass(frozen=True)
class TaxonCount:
    """A decided taxon: how many units the machine gave it, and how many people verified as it."""

    name: str
    rank: str
    common_name: str
    count: int  # units the machine decided as this taxon
    mean_score: float
    max_score: float
    verified: int = 0  # units whose current annotation names this taxon


@dataclass(frozen=True)
class Summary:
    """Counts of units (photos, clips, live frames); ``per_day`` maps ``YYYY-MM-DD``/``unknown``."""

    total: int
    done: int
    failed: int
    by_kind: dict[str, int]  # media rows per kind (photo, clip, frame, live), frames included
    by_type: dict[str, int]  # observation type -> units, by the machine's decision
    species: tuple[TaxonCount, ...]  # most frequent first
    per_day: dict[str, dict[str, int]]  # day -> {"media": n, "named": n, "blank": n}
    failures: dict[str, int]  # reason -> units, most frequent first
    first_failures: tuple[tuple[str, str], ...] = ()  # (path, error) of the first failed units
    verified: int = 0  # units with a current annotation
    verified_by_type: dict[str, int] = field(default_factory=dict)  # by the people's word

    @property
    def blank(self) -> int:
        """Units decided empty (no animal): camera traps' most common answer, counted apart."""
        return self.by_type.get(OBS_BLANK, 0)

    @property
    def uncertain(self) -> int:
        return self.by_type.get(OBS_UNKNOWN, 0)

    @property
    def not_in_list(self) -> int:
        """Units decided "an animal, but none of the list's taxa"."""
        return sum(sc.count for sc in self.species if sc.rank == ANIMAL)


def failure_reason(m: MediaRow) -> str:
    """The error without the file's own path or name, so that like failures group together."""
    text = (m.error or "").replace(m.path, "").replace(m.name, "").strip(" :-")
    return text or "unknown error"


def summarise(
    db: Path | str | Reader,
    *,
    run_id: int | None = None,
    rule: DecisionRule | None = None,
    max_failures: int = 20,
) -> Summary:
    """Count a whole database (or one run of it) under ``rule`` (default: every decision as stored)."""
    if isinstance(db, Reader):
        return _count(db, run_id, rule or DecisionRule(), max_failures)
    with Reader(db) as reader:
        return _count(reader, run_id, rule or DecisionRule(), max_failures)


def _count(reader: Reader, run_id: int | None, rule: DecisionRule, max_failures: int) -> Summary:
    by_kind: Counter[str] = Counter()
    by_type: Counter[str] = Counter()
    scores: dict[tuple[str, str], list[float]] = {}  # (name, rank) -> [count, score sum, best]
    per_day: dict[str, dict[str, int]] = {}
    total = done = 0
    for g in reader.decision_groups(run_id=run_id, min_score=rule.min_score):
        by_kind[g.kind] += g.count
        if g.kind not in UNIT_KINDS:
            continue
        total += g.count
        done += g.count if g.ok else 0
        c = classify_media(g, rule)
        by_type[c.observation_type] += g.count
        day = per_day.setdefault(g.day, {"media": 0, "named": 0, "blank": 0})
        day["media"] += g.count
        day["blank"] += g.count if c.observation_type == OBS_BLANK else 0
        if c.scientific_name:
            day["named"] += g.count
            s = scores.setdefault((c.scientific_name, c.rank or ""), [0, 0.0, 0.0])
            s[0], s[1], s[2] = s[0] + g.count, s[1] + g.score_sum, max(s[2], g.score_max)
    failures: Counter[str] = Counter()
    first_failures: list[tuple[str, str]] = []
    for m in reader.iter_media(run_id=run_id, kinds=UNIT_KINDS, ok=False, predictions=False):
        failures[failure_reason(m)] += 1
        if len(first_failures) < max_failures:
            first_failures.append((m.path, m.error or ""))
    common = reader.common_names((name for name, _ in scores), run_id=run_id)
    verified_by_type: Counter[str] = Counter()
    verified_taxa: Counter[str] = Counter()
    verified_common: dict[str, str] = {}
    for a in reader.current_annotations(run_id=run_id, kinds=UNIT_KINDS).values():
        verified_by_type[a.observation_type] += 1
        if a.observation_type in _NAMED:
            verified_taxa[a.label] += 1
            if a.common_name:
                verified_common.setdefault(a.label, a.common_name)
    taxa = [
        TaxonCount(
            name=name,
            rank=rank,
            common_name=common.get(name) or verified_common.get(name, ""),
            count=int(n),
            mean_score=total_score / n,
            max_score=best,
            verified=verified_taxa.pop(name, 0),  # a name decided at two ranks: verified once
        )
        for (name, rank), (n, total_score, best) in scores.items()
    ]
    # taxa people named that the machine never decided (its rank is the bundle's business)
    taxa += [
        TaxonCount(name, "", verified_common.get(name, ""), 0, 0.0, 0.0, verified=n)
        for name, n in verified_taxa.items()
    ]
    species = tuple(sorted(taxa, key=lambda sc: (-sc.count, -sc.verified, sc.name)))
    return Summary(
        total=total,
        done=done,
        failed=total - done,
        by_kind=dict(by_kind),
        by_type=dict(by_type),
        species=species,
        per_day=dict(sorted(per_day.items())),
        failures=dict(failures.most_common()),
        first_failures=tuple(first_failures),
        verified=sum(verified_by_type.values()),
        verified_by_type=dict(verified_by_type),
    )


def summary_lines(s: Summary) -> list[str]:
    """The summary as the plain lines ``tag`` and ``detect`` print at the end of a run."""
    lines = [f"database holds {s.done} done, {s.failed} failed" + _kinds(s)]
    for sc in s.species:
        if sc.count:
            lines.append(f"  {sc.count:6d}  {sc.name} ({sc.rank})")
    for kind, word in ((OBS_BLANK, "blank"), (OBS_UNKNOWN, "uncertain")):
        if s.by_type.get(kind):
            lines.append(f"  {s.by_type[kind]:6d}  {word}")
    if s.verified:
        lines.append(f"verified by people: {s.verified}")
    if s.first_failures:
        lines.append("failures:")
        lines.extend(f"  {path}: {error}" for path, error in s.first_failures)
        if s.failed > len(s.first_failures):
            lines.append(
                f"  ... and {s.failed - len(s.first_failures)} more (rerun with --retry-failed to redo them)"
            )
    return lines


def _kinds(s: Summary) -> str:
    """``(12 photos, 2 clips of 40 frames, 300 live frames)`` when there is more than photos."""
    if set(s.by_kind) <= {schema.PHOTO}:
        return ""
    parts = []
    for kind, word in ((schema.PHOTO, "photo(s)"), (schema.CLIP, "clip(s)"), (schema.LIVE, "live frame(s)")):
        if s.by_kind.get(kind):
            text = f"{s.by_kind[kind]} {word}"
            if kind == schema.CLIP and s.by_kind.get(schema.FRAME):
                text += f" of {s.by_kind[schema.FRAME]} frame(s)"
            parts.append(text)
    return f" ({', '.join(parts)})" if parts else ""
