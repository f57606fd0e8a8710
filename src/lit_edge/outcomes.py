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
:class:`DecisionRule`; :func:`classify_annotation` does the same for a person's word (an
``annotations`` row). The database summary and every export call them, so they always agree.
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
    4. a decision of rank ``human`` or ``vehicle`` (the bundle's human/vehicle rows), or a name in
       ``human_names`` / ``vehicle_names``, is ``human`` / ``vehicle`` (no ``scientificName``,
       except a listed name such as *Homo sapiens*);
    5. a decision of rank ``animal`` ("animal, not in the list") is ``animal`` without a
       ``scientificName``;
    6. anything else is ``animal`` with that ``scientificName`` and ``classificationProbability``.

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

    @property
    def taxon(self) -> str | None:
        """The scientific name an export writes: None for ``animal`` ("not in the list") and the
        other outcomes, whose ``scientific_name`` is only the outcome's own word (or nothing)."""
        return None if (self.rank or "") in NON_TAXON else self.scientific_name


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
    if rank in (HUMAN, VEHICLE, ANIMAL):  # outcome rows, or an animal no kept row explains:
        # counted under the outcome's own word (summary, report), exported without a taxon (.taxon)
        kind = {HUMAN: OBS_HUMAN, VEHICLE: OBS_VEHICLE, ANIMAL: OBS_ANIMAL}[rank]
        return Classification(kind, scientific_name=rank, rank=rank, probability=score)
    if lowered in rule.human_names:
        kind = OBS_HUMAN
    elif lowered in rule.vehicle_names:
        kind = OBS_VEHICLE
    else:
        kind = OBS_ANIMAL
    return Classification(kind, scientific_name=name, rank=rank or "species", probability=score)


class Verified(Protocol):
    """What :func:`classify_annotation` reads of a person's word (``lit_edge.db.reader.Annotation``)."""

    label: str
    observation_type: str


def label_rank(label: str) -> str:
    """The rank a person's label names, from its shape: ``Animalia`` (an animal, which one not
    known) is the kingdom, one word a genus, two or more words a species."""
    if label.strip().casefold() == "animalia":
        return "kingdom"
    return "genus" if len(label.split()) == 1 else "species"


def classify_annotation(a: Verified) -> Classification:
    """A person's word as an observation: named (with its rank) when it is an animal's name, else
    its type (blank, human, vehicle, unknown); no probability, because a person said so."""
    if a.observation_type == OBS_ANIMAL and a.label:
        return Classification(OBS_ANIMAL, scientific_name=a.label, rank=label_rank(a.label))
    return Classification(a.observation_type or OBS_UNKNOWN)


def observed(c: Classification) -> str:
    """One word for an observation, to compare the machine's with a person's: its taxon's name when
    it names one, else its type."""
    return c.scientific_name or c.observation_type


def classify_word(m: Decided, a: Verified | None, rule: DecisionRule) -> Classification:
    """The people's word where there is one, else the machine's: what CSV, XMP and MegaDetector
    JSON write (Camtrap DP writes both)."""
    return classify_annotation(a) if a is not None else classify_media(m, rule)
