"""DJI flight telemetry from the ``.SRT`` subtitle file a drone writes beside each clip.

Every DJI model writes its own dialect, and the parser reads them all by looking for the fields
rather than the layout:

- timing: the SubRip ``00:00:01,000 --> 00:00:02,000`` line, or (Mavic 2 style files have none)
  the entry's own date-time relative to the first entry's;
- local date-time: ``2021-12-25 12:27:52.373``, ``2018-02-19 08:04:51,265,847`` (ms, µs),
  ``2017.8.5 14:11:51``;
- position, keyed: ``[latitude: 3.41531] [longitude: -3.37440]`` (also the ``longtitude`` typo);
- position, as a tuple: ``GPS(149.0251,-20.2533,16)`` and ``GPS (lon, lat, 16)`` are longitude
  first, with a satellite count third (Mavic Pro, Phantom 4 RTK/Pro, Mavic Mini); the Matrice 300
  writes ``GPS(36.6146,-6.1120,0.0M)``: latitude first, an altitude in metres third. The ``M`` tells
  the dialects apart, and a value beyond ±90 can only be a longitude (checked in the tests against
  each file's own ``HOME`` point and ``D`` distance to it);
- altitude: ``rel_alt``/``abs_alt`` (Mavic 3), ``altitude`` (Air 2: absolute), ``BAROMETER``,
  ``Hb``, ``H 85.80m`` (height above the take-off point: relative).

Telemetry times are the drone's local clock; :meth:`Telemetry.time_at` applies ``--utc-offset``.
A broken or empty file is never an exception: it yields the entries it has (maybe none) and a
``warning`` line for the caller to log and report, and the clip is tagged without positions.
"""

from __future__ import annotations

import bisect
import logging
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path

log = logging.getLogger(__name__)

_TIMECODE = re.compile(r"(\d+):(\d{2}):(\d{2})[,.](\d{1,3})\s*-->\s*(\d+):(\d{2}):(\d{2})[,.](\d{1,3})")
_DATETIME = re.compile(
    r"(\d{4})[-./](\d{1,2})[-./](\d{1,2})[ T](\d{1,2}):(\d{2}):(\d{2})(?:[.,](\d+))?(?:,(\d{3}))?"
)
_NUM = r"([-+]?\d+(?:\.\d+)?)"
_KEYED = re.compile(r"\b(latitude|longitude|longtitude|altitude|rel_alt|abs_alt)\s*:\s*" + _NUM, re.I)
_TUPLE = re.compile(r"\b(GPS|HOME)\s*\(([^)]*)\)")
_BARO = re.compile(r"\b(?:BAROMETER|Hb)\s*:\s*" + _NUM)
_HEIGHT = re.compile(r"\bH\s+" + _NUM + r"\s*m\b")
_TAGS = re.compile(r"<[^>]*>")


@dataclass(frozen=True)
class TelemetryEntry:
    """One subtitle entry: the part of the clip it covers, and where the drone was."""

    start_s: float  # from the clip's start
    end_s: float
    local_time: datetime | None  # the drone's clock (naive)
    latitude: float | None
    longitude: float | None
    relative_altitude: float | None  # above the take-off point (barometric), metres
    absolute_altitude: float | None  # above sea level, metres

    @property
    def has_position(self) -> bool:
        return self.latitude is not None and self.longitude is not None


@dataclass(frozen=True)
class Telemetry:
    """A clip's telemetry: its entries in time order, and a warning when the file was not whole."""

    path: Path | None
    entries: tuple[TelemetryEntry, ...]
    warning: str | None = None
    coordinate_order: str = "none"  # keyed | lon,lat | lat,lon | keyed+lon,lat (a mixed file) | none

    @property
    def has_positions(self) -> bool:
        return any(e.has_position for e in self.entries)

    def lookup(self, offset_s: float, max_gap_s: float = 1.0) -> TelemetryEntry | None:
        """The entry covering ``offset_s`` seconds into the clip, or the nearest within ``max_gap_s``."""
        if not self.entries:
            return None
        starts = [e.start_s for e in self.entries]
        i = bisect.bisect_right(starts, offset_s) - 1
        if i < 0:
            first = self.entries[0]
            return first if first.start_s - offset_s <= max_gap_s else None
        e = self.entries[i]
        return e if offset_s < e.end_s or offset_s - e.end_s <= max_gap_s else None

    def time_at(self, offset_s: float, tz: timezone | None = None) -> datetime | None:
        """The drone's clock at ``offset_s`` (entry time + the time since the entry began), in ``tz``."""
        e = self.lookup(offset_s)
        if e is None or e.local_time is None:
            return None
        when = e.local_time + timedelta(seconds=max(0.0, offset_s - e.start_s))
        return when.replace(tzinfo=tz) if tz is not None else when


def find_telemetry(clip: Path | str) -> Path | None:
    """``clip.SRT`` beside ``clip.MP4``: same stem, ``.srt`` in any case (same-case stem first)."""
    clip = Path(clip)
    try:
        names = os.listdir(clip.parent)
    except OSError:
        return None
    candidates = [
        n for n in names if n.lower().endswith(".srt") and Path(n).stem.lower() == clip.stem.lower()
    ]
    candidates.sort(key=lambda n: (Path(n).stem != clip.stem, n))
    return clip.parent / candidates[0] if candidates else None


def load_telemetry(path: Path | str) -> Telemetry:
    """Read and parse an SRT file; never raises (an unreadable file is a warning and no entries)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return _warn(Telemetry(path, (), f"{path.name}: cannot read telemetry ({exc.strerror or exc})"))
    return parse_srt(raw.decode("utf-8", errors="replace"), path)


def parse_srt(text: str, path: Path | None = None) -> Telemetry:
    """Parse DJI SRT text (every dialect in the module docstring) into a :class:`Telemetry`."""
    name = path.name if path else "telemetry"
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    blocks = []
    for block in re.split(r"\n\s*\n", text):
        lines = [ln.strip() for ln in block.split("\n") if ln.strip()]
        if lines and lines[0].isdigit():
            lines = lines[1:]
        if not lines:
            continue
        timing = _TIMECODE.search(lines[0])
        body = _TAGS.sub(" ", " ".join(lines[1:] if timing else lines))
        blocks.append((_span(timing) if timing else None, body))
    order = _tuple_order([b for _, b in blocks])
    raw = [
        (span, _datetime(body), *_position(body, order), *_altitudes(body, order)) for span, body in blocks
    ]
    raw = [r for r in raw if r[0] is not None or r[1] is not None]
    entries = _timed(raw)
    warning = None
    if not entries:
        warning = f"{name}: no telemetry entries (empty, cut off, or not a DJI SRT file); clip tagged without positions"
    else:
        missing = sum(not e.has_position for e in entries)
        if missing == len(entries):
            warning = f"{name}: {len(entries)} telemetry entries but no GPS position in any; clip tagged without positions"
        elif missing:
            warning = (
                f"{name}: {missing} of {len(entries)} telemetry entries have no position (a cut-off file?)"
            )
    keyed = sum(bool(re.search(r"\blatitude\s*:", b, re.I)) for _, b in blocks)
    used = ["keyed"] * (keyed > 0) + [order] * (order != "none" and keyed < len(blocks))
    return _warn(Telemetry(path, tuple(entries), warning, "+".join(used) if entries and used else "none"))


def _warn(t: Telemetry) -> Telemetry:
    if t.warning:
        log.warning("%s", t.warning)
    return t


def _span(m: re.Match) -> tuple[float, float]:
    g = [int(x) for x in m.groups()]
    start = g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000
    end = g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000
    return start, max(end, start)


def _datetime(body: str) -> datetime | None:
    m = _DATETIME.search(body)
    if not m:
        return None
    y, mo, d, h, mi, s = (int(x) for x in m.groups()[:6])
    frac, micro_part = m.group(7), m.group(8)
    if frac and micro_part and len(frac) == 3:  # 08:04:51,265,847: milliseconds, then microseconds
        micro = int(frac) * 1000 + int(micro_part)
    else:
        micro = int((frac or "0").ljust(6, "0")[:6])
    try:
        return datetime(y, mo, d, h, mi, s, micro)
    except ValueError:
        return None


def _number(token: str) -> tuple[float | None, str]:
    """``-6.1120`` -> (-6.112, ''); ``0.0M`` -> (0.0, 'M'); ``n/a`` -> (None, '')."""
    m = re.fullmatch(r"\s*([-+]?\d+(?:\.\d+)?)\s*([A-Za-z°]*)\s*", token)
    return (float(m.group(1)), m.group(2)) if m else (None, "")


def _tuple_order(bodies: list[str]) -> str:
    """How this file writes ``GPS(...)`` tuples: ``lon,lat`` or ``lat,lon`` (see the module doc)."""
    tuples = [m.group(2).split(",") for b in bodies for m in _TUPLE.finditer(b) if m.group(1) == "GPS"]
    tuples = [t for t in tuples if len(t) >= 2]
    if not tuples:
        return "none"
    firsts = [_number(t[0])[0] for t in tuples]
    seconds = [_number(t[1])[0] for t in tuples]
    if any(v is not None and abs(v) > 90 for v in firsts):
        return "lon,lat"
    if any(v is not None and abs(v) > 90 for v in seconds):
        return "lat,lon"
    if any(len(t) >= 3 and _number(t[2])[1].upper() == "M" for t in tuples):
        return "lat,lon"  # Matrice 300: GPS(lat,lon,altM)
    return "lon,lat"  # DJI's older tuple order


def _keyed(body: str) -> dict[str, float]:
    """The ``[key: value]`` fields of an entry, lower-cased (``longtitude`` read as ``longitude``)."""
    out = {}
    for key, value in _KEYED.findall(body):
        key = key.lower()
        out["longitude" if key == "longtitude" else key] = float(value)
    return out


def _gps(body: str) -> list[str]:
    """The comma-separated parts of the entry's ``GPS(...)`` tuple ([] when it has none)."""
    for kind, inner in _TUPLE.findall(body):
        if kind == "GPS":
            return inner.split(",")
    return []


def _position(body: str, order: str) -> tuple[float | None, float | None]:
    keyed = _keyed(body)
    lat, lon = keyed.get("latitude"), keyed.get("longitude")
    parts = _gps(body)
    if lat is None and lon is None and order in ("lon,lat", "lat,lon") and len(parts) >= 2:
        a, b = _number(parts[0])[0], _number(parts[1])[0]
        lon, lat = (a, b) if order == "lon,lat" else (b, a)
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        return None, None  # no fix (DJI writes 0,0 or n/a before the GPS locks)
    return lat, lon


def _altitudes(body: str, order: str) -> tuple[float | None, float | None]:
    keyed = _keyed(body)
    rel = keyed.get("rel_alt")
    absolute = keyed.get("abs_alt", keyed.get("altitude"))
    if rel is None:
        m = _BARO.search(body) or _HEIGHT.search(body)
        rel = float(m.group(1)) if m else None
    parts = _gps(body)
    if absolute is None and order == "lat,lon" and len(parts) >= 3:  # Matrice 300: GPS(lat,lon,altM)
        value, unit = _number(parts[2])
        absolute = value if unit.upper() == "M" else None
    return rel, absolute


def _timed(raw: list[tuple]) -> list[TelemetryEntry]:
    """Entries with a span each: the timecode's, or (no timecodes) the date-time's since the first."""
    if not raw:
        return []
    if all(r[0] is None for r in raw):  # Mavic 2 style: time from the drone's clock alone
        first = next(r[1] for r in raw if r[1] is not None)
        starts = [(r[1] - first).total_seconds() if r[1] else None for r in raw]
        known = [s for s in starts if s is not None]
        steps = sorted(b - a for a, b in pairwise(known) if b > a) or [1.0]
        step = steps[len(steps) // 2]
        spans = []
        for i, s in enumerate(starts):
            if s is None:
                continue
            nxt = next((t for t in starts[i + 1 :] if t is not None and t > s), s + step)
            spans.append((i, (s, nxt)))
        raw = [(span, *raw[i][1:]) for i, span in spans]
    out = [TelemetryEntry(span[0], span[1], *rest) for span, *rest in raw if span is not None]
    out.sort(key=lambda e: e.start_s)
    return out
