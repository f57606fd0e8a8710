"""Typed settings for the field-data writers (one object instead of a bag of keyword arguments)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


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
    4. a decision of rank ``human`` or ``vehicle`` (the bundle's human/vehicle rows, see
       ``lit_edge.outcomes``), or a name in ``human_names`` / ``vehicle_names``, is ``human`` /
       ``vehicle`` (no ``scientificName``, except a listed name such as *Homo sapiens*);
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
class FieldDataConfig:
    """Settings shared by the writers.

    ``utc_offset`` is applied to timestamps that carry none (EXIF times are the camera's local
    clock) unless a deployment names its own; Camtrap DP requires an offset on every timestamp.
    """

    event_gap_s: float = 60.0
    deployments: Path | None = None
    utc_offset: str = "+00:00"
    rule: DecisionRule = field(default_factory=DecisionRule)
    bundle: Path | None = None  # where to read labels.csv (taxonomy) from; default: the run's bundle
    contributor: str = "lit-edge user"
    title: str = "Camera trap observations classified by lit-edge"
    xmp_style: str = "digikam"  # digikam: photo.jpg.xmp | lightroom: photo.xmp
