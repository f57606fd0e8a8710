"""Deployments: which camera, where and when, and which photos it took.

Camtrap DP needs every photo tied to a deployment with coordinates and a start/end. Either the user
gives a small deployment file (CSV or JSON list) with one row per camera placement::

    deploymentID,latitude,longitude,start,end,camera,folder,utc_offset
    cam-A,51.18,5.65,2024-05-01T08:00:00,2024-05-20T18:00:00,RCNX-1,cardA,+02:00

(``folder`` and ``utc_offset`` optional; ``folder`` relative to the file), or there is one
deployment per photo folder, placed at the median of its photos' EXIF GPS and spanning their
timestamps. A photo falls in the deployment whose folder holds it and whose time window holds its
timestamp; a photo that fits none is an error the user must fix, not a silent guess.
"""

from __future__ import annotations

import csv
import json
import os
import re
import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from lit_edge.db.reader import MediaRow, parse_time
from lit_edge.errors import UserError

_ALIASES = {
    "id": ("deploymentid", "deployment_id", "id", "deployment"),
    "latitude": ("latitude", "lat"),
    "longitude": ("longitude", "lon", "lng", "long"),
    "start": ("start", "deploymentstart", "deployment_start"),
    "end": ("end", "deploymentend", "deployment_end"),
    "camera": ("camera", "cameraid", "camera_id"),
    "camera_model": ("cameramodel", "camera_model", "model"),
    "folder": ("folder", "path", "directory"),
    "utc_offset": ("utc_offset", "utcoffset", "timezone", "tz"),
    "location": ("locationname", "location", "location_name"),
}
_OFFSET = re.compile(r"^(Z|[+-]\d{2}:?\d{2})$")


@dataclass(frozen=True)
class Deployment:
    """One camera placement."""

    id: str
    latitude: float
    longitude: float
    start: datetime | None = None
    end: datetime | None = None
    camera_id: str = ""
    camera_model: str = ""
    folder: Path | None = None
    utc_offset: str | None = None
    location_name: str = ""

    def in_window(self, when: datetime | None) -> bool:
        """Whether ``when`` is within start..end (an undated photo or open end always is)."""
        if when is None:
            return True
        if self.start is not None and when < self.start:
            return False
        return not (self.end is not None and when > self.end)


def parse_offset(text: str, where: str) -> timezone:
    """``+02:00`` / ``-0500`` / ``Z`` -> a fixed timezone."""
    text = text.strip()
    if not _OFFSET.match(text):
        raise UserError(f"{where}: UTC offset {text!r} is not like +02:00 or Z; fix it")
    if text == "Z":
        return timezone.utc
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))


def localise(when: datetime | None, tz: timezone) -> datetime | None:
    """Give a naive (camera-clock) time the deployment's offset; keep an aware one as it is."""
    if when is None or when.tzinfo is not None:
        return when
    return when.replace(tzinfo=tz)


def _pick(row: dict, key: str) -> str:
    lowered = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
    for alias in _ALIASES[key]:
        v = lowered.get(alias)
        if v not in (None, ""):
            return str(v).strip()
    return ""


def load_deployments(path: Path, default_offset: str = "+00:00") -> list[Deployment]:
    """Read a deployment file (``.csv`` or ``.json``: a list of objects, or {"deployments": [...]})."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"deployment file not found: {path}; pass a CSV or JSON with one row per camera")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            rows = data.get("deployments", []) if isinstance(data, dict) else data
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise UserError(f"{path}: expected a JSON list of deployment objects")
        else:
            with open(path, newline="", encoding="utf-8-sig") as f:
                rows = list(csv.DictReader(f))
    except (json.JSONDecodeError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path}: not a readable deployment file ({exc}); use CSV or JSON") from exc
    if not rows:
        raise UserError(f"{path}: no deployments in the file; add one row per camera placement")
    out, seen = [], set()
    for i, row in enumerate(rows, start=1):
        where = f"{path} row {i}"
        dep_id = _pick(row, "id")
        if not dep_id:
            raise UserError(f"{where}: no deploymentID; every row needs one")
        if dep_id in seen:
            raise UserError(f"{where}: deploymentID {dep_id!r} appears twice; IDs must be unique")
        seen.add(dep_id)
        try:
            lat, lon = float(_pick(row, "latitude")), float(_pick(row, "longitude"))
        except ValueError:
            raise UserError(f"{where}: latitude/longitude missing or not numbers; fix {dep_id!r}") from None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise UserError(f"{where}: coordinates ({lat}, {lon}) are outside the globe; fix {dep_id!r}")
        offset_text = _pick(row, "utc_offset") or default_offset
        tz = parse_offset(offset_text, where)
        times = {}
        for key in ("start", "end"):
            text = _pick(row, key)
            when = parse_time(text)
            if text and when is None:
                raise UserError(f"{where}: {key} {text!r} is not an ISO 8601 time (2024-05-01T08:00:00)")
            times[key] = localise(when, tz)
        folder = _pick(row, "folder")
        out.append(
            Deployment(
                id=dep_id,
                latitude=lat,
                longitude=lon,
                start=times["start"],
                end=times["end"],
                camera_id=_pick(row, "camera"),
                camera_model=_pick(row, "camera_model"),
                folder=(path.parent / folder).resolve() if folder else None,
                utc_offset=offset_text,
                location_name=_pick(row, "location"),
            )
        )
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "deployment"


def per_folder(media: list[MediaRow], default_offset: str = "+00:00") -> list[Deployment]:
    """One deployment per photo folder, located at the median EXIF GPS of its photos."""
    tz = parse_offset(default_offset, "--utc-offset")
    groups: dict[Path, list[MediaRow]] = {}
    for m in media:
        groups.setdefault(Path(m.path).parent, []).append(m)
    used: set[str] = set()
    out = []
    for folder, items in sorted(groups.items()):
        dep_id = _slug(folder.name)
        n = 2
        while dep_id in used:
            dep_id, n = f"{_slug(folder.name)}-{n}", n + 1
        used.add(dep_id)
        gps = [(m.latitude, m.longitude) for m in items if m.latitude is not None and m.longitude is not None]
        if not gps:
            raise UserError(
                f"deployment for folder {folder}: no photo there has GPS in its EXIF, so it has no "
                "coordinates; give --deployments FILE (deploymentID, latitude, longitude, start, end, camera)"
            )
        times = [t for t in (localise(m.timestamp, tz) for m in items) if t is not None]
        out.append(
            Deployment(
                id=dep_id,
                latitude=statistics.median(g[0] for g in gps),
                longitude=statistics.median(g[1] for g in gps),
                start=min(times) if times else None,
                end=max(times) if times else None,
                folder=folder,
                utc_offset=default_offset,
                location_name=folder.name,
            )
        )
    return out


@dataclass(frozen=True)
class Placed:
    """A photo with its deployment and its timestamp in the deployment's offset."""

    media: MediaRow
    deployment: Deployment
    when: datetime | None


def _ancestors(path: str) -> set[str]:
    """Every folder above ``path`` as a string (cheap to test, unlike ``Path.parents``)."""
    out, cur = set(), os.path.dirname(path)
    while cur and cur not in out:
        out.add(cur)
        cur = os.path.dirname(cur)
    return out


def assign(media: list[MediaRow], deployments: list[Deployment], source: str) -> list[Placed]:
    """Place every photo in a deployment; raise naming the first photo that fits none.

    The deepest matching folder wins, so a deployment file may name a card and, separately,
    one sub-folder of it that was a different placement.
    """
    tzs = {d.id: parse_offset(d.utc_offset or "+00:00", source) for d in deployments}
    ordered = sorted(deployments, key=lambda d: -len(d.folder.parts) if d.folder else 0)
    folders = {d.id: str(d.folder) if d.folder is not None else None for d in deployments}
    placed, orphans = [], []
    for m in media:
        ancestors = _ancestors(m.path)
        stamp = m.timestamp
        hit = None
        for d in ordered:
            folder = folders[d.id]
            if folder is not None and folder not in ancestors:
                continue
            when = localise(stamp, tzs[d.id])
            if d.in_window(when):
                hit = Placed(m, d, when)
                break
        if hit is None:
            orphans.append(m)
        else:
            placed.append(hit)
    if orphans:
        first = orphans[0]
        raise UserError(
            f"{len(orphans)} photo(s) fall in no deployment of {source} (first: {first.path} at "
            f"{first.captured_at}); add a deployment (or widen start/end, or fix its folder)"
        )
    return placed
