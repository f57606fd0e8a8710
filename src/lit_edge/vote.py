"""How several decisions about one visit become one: an event's photos, or a clip's frames.

One rule for both, so that a burst of photos and a clip of the same animal end the same way:
named decisions (a person, then an animal, then a vehicle: a visit with a person in any of its
photos or frames is a human visit, since camera-trap projects must find people first, for privacy) vote for their taxon with their probability; the taxon with the most weight wins, and its
probability is that weight over the number of named votes of its kind (a visit that agrees keeps
its confidence, a split one loses it). With no named vote: ``unknown`` if any was unknown, else
``blank`` if any was blank, else ``unclassified`` (everything failed).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lit_edge.outcomes import OBS_ANIMAL, OBS_BLANK, OBS_HUMAN, OBS_UNCLASSIFIED, OBS_UNKNOWN, OBS_VEHICLE

NAMED = (OBS_HUMAN, OBS_ANIMAL, OBS_VEHICLE)


@dataclass(frozen=True)
class Ballot:
    """One decision's vote: its observation type, its taxon (name, rank) if named, its probability."""

    kind: str
    name: str | None = None
    rank: str | None = None
    probability: float | None = None  # None counts as 1 (a decision without a score)


def tally(ballots: Iterable[Ballot]) -> Ballot:
    """The visit's decision (see the module docstring); ``probability`` is the winner's share."""
    ballots = list(ballots)
    for kind in NAMED:
        named = [b for b in ballots if b.kind == kind]
        if not named:
            continue
        votes: dict[tuple[str | None, str | None], float] = {}
        for b in named:
            key = (b.name, b.rank)
            votes[key] = votes.get(key, 0.0) + (b.probability if b.probability is not None else 1.0)
        (name, rank), weight = max(votes.items(), key=lambda kv: (kv[1], kv[0][0] or ""))
        return Ballot(kind, name, rank, min(1.0, weight / len(named)))
    for kind in (OBS_UNKNOWN, OBS_BLANK):
        if any(b.kind == kind for b in ballots):
            return Ballot(kind)
    return Ballot(OBS_UNCLASSIFIED)
