"""Events (sequences) and the observation each photo and each event gets.

Camera traps fire in bursts: one animal passing makes several photos seconds apart. Photos from one
deployment whose timestamps are at most ``gap`` seconds from the previous photo form one event
(the gap is measured photo to photo, so a long visit stays one event). An event's observation
aggregates its photos' observations (see :func:`classify_event`); a photo's observation follows
:class:`~lit_edge.outcomes.DecisionRule`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lit_edge.db.reader import MediaRow
from lit_edge.fielddata.config import FieldDataConfig
from lit_edge.fielddata.deployments import Deployment, Placed, assign, load_deployments, per_folder
from lit_edge.outcomes import OBS_ANIMAL as ANIMAL
from lit_edge.outcomes import OBS_BLANK as BLANK
from lit_edge.outcomes import OBS_HUMAN as HUMAN
from lit_edge.outcomes import OBS_UNCLASSIFIED as UNCLASSIFIED
from lit_edge.outcomes import OBS_UNKNOWN as UNKNOWN
from lit_edge.outcomes import OBS_VEHICLE as VEHICLE
from lit_edge.outcomes import Classification


def classify_event(items: list[Classification]) -> Classification:
    """Aggregate an event's photo observations into one event observation.

    Named photos (animal, then human, then vehicle) vote for their taxon with their probability;
    the event takes the taxon with the most weight, and its probability is that weight divided by
    the number of named photos (so a burst that agrees keeps its confidence, a split one loses it).
    With no named photo: ``unknown`` if any photo was unknown, else ``blank`` if any was blank,
    else ``unclassified`` (every photo failed).
    """
    for kind in (ANIMAL, HUMAN, VEHICLE):
        named = [c for c in items if c.observation_type == kind]
        if not named:
            continue
        votes: dict[tuple[str | None, str | None], float] = {}
        for c in named:
            key = (c.scientific_name, c.rank)
            votes[key] = votes.get(key, 0.0) + (c.probability if c.probability is not None else 1.0)
        (name, rank), weight = max(votes.items(), key=lambda kv: (kv[1], kv[0][0] or ""))
        return Classification(
            kind, scientific_name=name, rank=rank, probability=min(1.0, weight / len(named))
        )
    for kind in (UNKNOWN, BLANK):
        if any(c.observation_type == kind for c in items):
            return Classification(kind)
    return Classification(UNCLASSIFIED)


@dataclass(frozen=True)
class Event:
    """A burst of photos from one deployment."""

    id: str
    deployment_id: str
    members: tuple[Placed, ...]

    @property
    def start(self) -> datetime | None:
        return self.members[0].when

    @property
    def end(self) -> datetime | None:
        return self.members[-1].when


def group_events(placed: list[Placed], gap_s: float = 60.0) -> list[Event]:
    """Split each deployment's photos (by time) into events at gaps longer than ``gap_s``.

    Photos without a timestamp cannot be sequenced: each becomes an event of its own.
    """
    if gap_s < 0:
        raise ValueError("event gap must be >= 0 seconds")
    by_dep: dict[str, list[Placed]] = {}
    for p in placed:
        by_dep.setdefault(p.deployment.id, []).append(p)
    events: list[Event] = []
    for dep_id in sorted(by_dep):
        timed = sorted((p for p in by_dep[dep_id] if p.when is not None), key=lambda p: (p.when, p.media.id))
        untimed = [p for p in by_dep[dep_id] if p.when is None]
        runs: list[list[Placed]] = []
        for p in timed:
            if runs and (p.when - runs[-1][-1].when).total_seconds() <= gap_s:
                runs[-1].append(p)
            else:
                runs.append([p])
        runs.extend([p] for p in untimed)
        for i, members in enumerate(runs, start=1):
            events.append(Event(id=f"{dep_id}-e{i:04d}", deployment_id=dep_id, members=tuple(members)))
    return events


@dataclass(frozen=True)
class Sequenced:
    """Photos placed in deployments and grouped into events: what Camtrap DP and CSV write from."""

    deployments: tuple[Deployment, ...]
    events: tuple[Event, ...]

    @property
    def event_of(self) -> dict[int, Event]:
        """media id -> its event."""
        return {p.media.id: e for e in self.events for p in e.members}


def sequence(photos: list[MediaRow], cfg: FieldDataConfig) -> Sequenced:
    """Deployments from ``cfg.deployments`` (or one per folder), then events ``cfg.event_gap_s`` apart."""
    if cfg.deployments is not None:
        deps = load_deployments(cfg.deployments, cfg.utc_offset)
        source = str(cfg.deployments)
    else:
        deps = per_folder(photos, cfg.utc_offset)
        source = "the per-folder deployments"
    placed = assign(photos, deps, source)
    return Sequenced(deployments=tuple(deps), events=tuple(group_events(placed, cfg.event_gap_s)))
