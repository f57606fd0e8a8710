"""One decision per clip, from its sampled frames' decisions: what the clip's own media row holds.

The frames vote by :func:`lit_edge.vote.tally`, the same rule that makes one observation of a burst
of photos, so a clip and a burst of the same animal end the same way. The clip's top-k are the
frames' scores averaged per class (a class missing from a frame's top-k counts 0 there).
"""

from __future__ import annotations

from collections.abc import Sequence

from lit_edge.db.reader import MediaRow
from lit_edge.device.classify import Decision, Prediction
from lit_edge.outcomes import (
    ANIMAL,
    BLANK,
    HUMAN,
    OBS_ANIMAL,
    OBS_BLANK,
    OBS_HUMAN,
    OBS_UNKNOWN,
    OBS_VEHICLE,
    UNCERTAIN,
    VEHICLE,
)
from lit_edge.vote import Ballot, tally

_KIND = {BLANK: OBS_BLANK, UNCERTAIN: OBS_UNKNOWN, HUMAN: OBS_HUMAN, VEHICLE: OBS_VEHICLE}


def _ballot(d: Decision) -> Ballot:
    kind = _KIND.get(d.rank, OBS_ANIMAL)  # a taxon rank, or 'animal' (not in the list)
    named = kind in (OBS_ANIMAL, OBS_HUMAN, OBS_VEHICLE)
    return Ballot(kind, d.name if named else None, d.rank if named else None, d.score)


def clip_decision(frames: Sequence[Decision]) -> Decision | None:
    """The clip's decision from its frames' (None when no frame was classified)."""
    if not frames:
        return None
    won = tally(_ballot(d) for d in frames)
    sums: dict[int, list] = {}
    for d in frames:
        for p in d.top:
            entry = sums.setdefault(p.label_id, [p, 0.0])
            entry[1] += p.score
    k = max(len(d.top) for d in frames)
    top = tuple(
        Prediction(p.label_id, p.scientific_name, p.common_name, total / len(frames))
        for p, total in sorted(sums.values(), key=lambda e: (-e[1], e[0].label_id))[:k]
    )
    if won.kind == OBS_BLANK:
        blanks = [d.score for d in frames if d.rank == BLANK]
        return Decision(top, None, BLANK, BLANK, sum(blanks) / len(blanks))
    if won.name is None:  # nothing named, not all blank: undecided
        return Decision(top, None, UNCERTAIN, UNCERTAIN, 0.0)
    label = next((d.label_id for d in frames if d.name == won.name and d.rank == won.rank), None)
    return Decision(top, label, won.name, won.rank or ANIMAL, won.probability or 0.0)


def decision_of(row: MediaRow) -> Decision | None:
    """A stored frame's decision, as the classifier gave it (for a clip resumed across runs)."""
    if not row.ok or not row.top_name:
        return None
    top = tuple(Prediction(p.label_id, p.scientific_name, p.common_name, p.score) for p in row.predictions)
    return Decision(top, row.top_label_id, row.top_name, row.top_rank or ANIMAL, row.top_score or 0.0)
