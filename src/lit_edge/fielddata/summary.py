"""Counts of a detection database: per species, blanks, per day, and failures by reason.

Shared by ``lit-edge db summary`` (printed as tables) and the HTML report, so both always agree.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from lit_edge.fielddata.config import DecisionRule
from lit_edge.fielddata.events import BLANK, classify_media
from lit_edge.fielddata.records import Detections, MediaRecord


@dataclass(frozen=True)
class SpeciesCount:
    name: str
    rank: str
    common_name: str
    count: int
    mean_score: float
    max_score: float


@dataclass(frozen=True)
class Summary:
    """What ``db summary`` prints; ``per_day`` maps ``YYYY-MM-DD`` (or ``unknown``) -> counts."""

    total: int
    done: int
    failed: int
    by_type: dict[str, int]
    species: tuple[SpeciesCount, ...]
    per_day: dict[str, dict[str, int]]  # day -> {"media": n, "named": n, "blank": n}
    failures: dict[str, int]  # reason -> count

    @property
    def blank(self) -> int:
        """Photos decided empty (no animal): camera traps' most common answer, counted apart."""
        return self.by_type.get(BLANK, 0)


def failure_reason(m: MediaRecord) -> str:
    """The error without the photo's own path or name, so that like failures group together."""
    text = (m.error or "").replace(m.path, "").replace(m.name, "").strip(" :-")
    return text or "unknown error"


def _day(captured_at: str | None) -> str:
    return captured_at[:10] if captured_at and len(captured_at) >= 10 else "unknown"


def summarise(det: Detections, rule: DecisionRule | None = None) -> Summary:
    rule = rule or DecisionRule()
    by_type: Counter[str] = Counter()
    scores: dict[tuple[str, str], list[float]] = {}
    common: dict[str, str] = {}
    per_day: dict[str, dict[str, int]] = {}
    failures: Counter[str] = Counter()
    for m in det.media:
        c = classify_media(m, rule)
        by_type[c.observation_type] += 1
        day = per_day.setdefault(_day(m.captured_at), {"media": 0, "named": 0, "blank": 0})
        day["media"] += 1
        day["blank"] += c.observation_type == BLANK
        if not m.ok:
            failures[failure_reason(m)] += 1
        if c.scientific_name:
            day["named"] += 1
            scores.setdefault((c.scientific_name, c.rank or ""), []).append(c.probability or 0.0)
            for p in m.predictions:
                if p.scientific_name == c.scientific_name and p.common_name:
                    common.setdefault(p.scientific_name, p.common_name)
    species = tuple(
        sorted(
            (
                SpeciesCount(name, rank, common.get(name, ""), len(s), sum(s) / len(s), max(s))
                for (name, rank), s in scores.items()
            ),
            key=lambda sc: (-sc.count, sc.name),
        )
    )
    done = sum(1 for m in det.media if m.ok)
    return Summary(
        total=len(det.media),
        done=done,
        failed=len(det.media) - done,
        by_type=dict(by_type),
        species=species,
        per_day=dict(sorted(per_day.items())),
        failures=dict(failures.most_common()),
    )
