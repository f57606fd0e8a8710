"""The outcomes of a decision that are not taxa, and what they become in the field-data standards.

One home for these names: the classifier decides them (``Decision.rank``), the database stores them
(``media.top_rank``), the summary counts them, and the exports map them to Camtrap DP's
``observationType``. Importing the constants from here (never spelling the strings) keeps the four
in step.

Decided levels (``media.top_rank``) besides the taxonomic ranks:

``blank``      no animal, person or vehicle (the bundle's background rows hold the evidence)
``human``      a person is in view (camera-trap projects rank people first: privacy)
``vehicle``    a vehicle and no person
``animal``     an animal that none of the kept rows explains ("animal, not in the list")
``uncertain``  the model could not decide with enough confidence

:func:`classify_media` turns a media row's stored decision into its observation under a
:class:`DecisionRule`; the database summary and every export call it, so they always agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

BLANK = "blank"
HUMAN = "human"
VEHICLE = "vehicle"
ANIMAL = "animal"
UNCERTAIN = "uncertain"

#: Decided levels that are not a taxon's rank.
NON_TAXON = (BLANK, HUMAN, VEHICLE, ANIMAL, UNCERTAIN)

# Camtrap DP 1.0 observationType values (the media-level observation of a photo or an event).
OBS_ANIMAL, OBS_HUMAN, OBS_VEHICLE, OBS_BLANK, OBS_UNKNOWN, OBS_UNCLASSIFIED = (
    "animal",
    "human",
    "vehicle",
    "blank",
    "unknown",
    "unclassified",
)


@dataclass(frozen=True)
class DecisionRule:
    """How a media row's decision becomes a Camtrap DP ``observationType``.

    The database holds the runtime's decision per photo (``top_name``/``top_rank``/``top_score``,
    after its roll-up). The rule, applied in this order:

    1. a photo that failed (unreadable, corrupt) is ``unclassified``;
    2. no decision (``top_rank`` ``uncertain``, or no name), or ``top_score`` below ``min_score``,
       is ``unknown``: the classifier saw something it could not name with confidence;
    3. a decision of rank ``blank`` (the runtime's verdict when the bundle's background rows win,
       see ``lit_edge.device.classify``), or whose name is one of ``blank_names`` (a species list
       may carry an explicit "empty" class), is ``blank``;
    4. a name in ``human_names`` is ``human``, in ``vehicle_names`` is ``vehicle``;
    5. anything else is ``animal`` with that ``scientificName`` and ``classificationProbability``.

    A whole-image classifier has no detector, so it never proves a photo empty on its own: only
    background rows or an explicit blank class (rule 3) make ``blank``; low confidence makes
    ``unknown``. A blank decision below ``min_score`` is ``unknown`` too.
    """

    min_score: float = 0.0
    blank_names: tuple[str, ...] = ("blank", "empty", "background", "no animal", "none")
    human_names: tuple[str, ...] = ("homo sapiens", "human", "person")
    vehicle_names: tuple[str, ...] = ("vehicle", "car")


@dataclass(frozen=True)
class Classification:
    """An observation's type and, for named types, the taxon and its probability."""

    observation_type: str
    scientific_name: str | None = None
    rank: str | None = None
    probability: float | None = None


class Decided(Protocol):
    """What :func:`classify_media` reads of a media row (``lit_edge.db.reader.MediaRow``)."""

    ok: bool
    top_name: str | None
    top_rank: str | None
    top_score: float | None


def classify_media(m: Decided, rule: DecisionRule) -> Classification:
    """Apply the documented :class:`DecisionRule` to one media row."""
    if not m.ok:
        return Classification(OBS_UNCLASSIFIED)
    name = (m.top_name or "").strip()
    rank = (m.top_rank or "").strip().lower()
    score = m.top_score
    if not name or rank == UNCERTAIN or name.lower() == UNCERTAIN:
        return Classification(OBS_UNKNOWN)
    if score is not None and score < rule.min_score:
        return Classification(OBS_UNKNOWN)
    lowered = name.lower()
    if rank == BLANK or lowered in rule.blank_names:
        return Classification(OBS_BLANK, probability=score)
    if lowered in rule.human_names:
        kind = OBS_HUMAN
    elif lowered in rule.vehicle_names:
        kind = OBS_VEHICLE
    else:
        kind = OBS_ANIMAL
    return Classification(kind, scientific_name=name, rank=rank or "species", probability=score)
