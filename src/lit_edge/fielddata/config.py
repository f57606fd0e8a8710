"""Typed settings for the field-data writers (one object instead of a bag of keyword arguments)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lit_edge.outcomes import DecisionRule


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
