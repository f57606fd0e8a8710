"""When and where a sampled frame was taken: the clip's start plus the offset, or the telemetry.

This is what a frame's database row needs besides its decision (``captured_at``, ``time_source``,
``latitude``, ``longitude``, ``altitude`` above sea level and ``relative_altitude`` above the
take-off point). Telemetry, where a clip has it, wins: a drone's clock and GPS say more than the
file's time. Times stay naive (the camera's or drone's clock) unless a UTC offset is given, as
photos' EXIF times do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from lit_edge.device.telemetry import Telemetry
from lit_edge.device.video.clips import ClipInfo


@dataclass(frozen=True)
class FrameStamp:
    """A frame's time and place, as its media row stores them."""

    captured_at: str | None
    time_source: str | None  # telemetry | container | mtime
    latitude: float | None = None
    longitude: float | None = None
    altitude: float | None = None  # above sea level
    relative_altitude: float | None = None  # above the take-off point


def iso(when: datetime | None) -> str | None:
    """ISO 8601 with milliseconds (frames are fractions of a second apart), offset if aware."""
    return when.isoformat(timespec="milliseconds") if when is not None else None


def stamp(
    info: ClipInfo, offset_s: float, telemetry: Telemetry | None = None, tz: timezone | None = None
) -> FrameStamp:
    """The time and place of the frame ``offset_s`` seconds into the clip ``info``."""
    entry = telemetry.lookup(offset_s) if telemetry is not None else None
    when = telemetry.time_at(offset_s, tz) if telemetry is not None else None
    source = "telemetry"
    if when is None and info.start is not None:
        when, source = info.start + timedelta(seconds=offset_s), info.time_source
    if when is None:
        source = None
    if entry is None:
        return FrameStamp(iso(when), source)
    return FrameStamp(
        iso(when),
        source,
        latitude=entry.latitude,
        longitude=entry.longitude,
        altitude=entry.absolute_altitude,
        relative_altitude=entry.relative_altitude,
    )
