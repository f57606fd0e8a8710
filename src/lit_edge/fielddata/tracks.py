"""Drone tracks in a detection database: a clip's sampled frames that carry positions, in order.

One home for "which rows make a flight", used by the GeoJSON export (a ``LineString`` per track)
and the HTML report (an SVG map per flight).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from lit_edge.db import schema
from lit_edge.db.reader import Detections, MediaRow


def has_position(m: MediaRow) -> bool:
    return m.latitude is not None and m.longitude is not None


def is_clip_frame(m: MediaRow) -> bool:
    """A sampled frame of a clip (``kind='frame'``; live frames are ``live``)."""
    return m.kind == schema.FRAME


@dataclass(frozen=True)
class Track:
    """A clip's positioned frames, in frame order (at least two distinct positions)."""

    path: str
    frames: tuple[MediaRow, ...]

    @property
    def points(self) -> list[tuple[float, float]]:
        """``(longitude, latitude)`` of each frame."""
        return [(float(m.longitude), float(m.latitude)) for m in self.frames]


def flight_tracks(det: Detections) -> list[Track]:
    """Every clip whose frames moved: a drone flight (a hovering drone or fixed camera is no track)."""
    by_clip: dict[str, list[MediaRow]] = defaultdict(list)
    for m in det.media:
        if is_clip_frame(m) and has_position(m):
            by_clip[m.path].append(m)
    out = []
    for path in sorted(by_clip):
        rows = tuple(sorted(by_clip[path], key=lambda m: m.frame_index))
        if len({(m.longitude, m.latitude) for m in rows}) >= 2:
            out.append(Track(path, rows))
    return out
