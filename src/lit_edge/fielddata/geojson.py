"""GeoJSON (RFC 7946) of a detection database: detections as points, drone flights as lines.

For GIS (QGIS, ArcGIS, geojson.io) and anyone mapping where animals were seen:

- one ``Point`` per named detection that has a position (a photo with EXIF GPS, or a sampled clip
  frame placed by its drone telemetry; a clip's own row adds none, its frames are the detail), with ``scientificName``, ``commonName``, ``rank``,
  ``observationType``, ``score``, ``time``, ``altitude`` (above sea level) and the file;
- one ``LineString`` per drone track: a clip whose sampled frames carry positions, in frame order,
  with the clip's ``path``, ``start``/``end`` and its ``frames``.

RFC 7946 positions are ``[longitude, latitude]`` (then altitude, when known) in WGS 84; GPS
receivers, EXIF and DJI telemetry all give WGS 84. Decisions follow the same rule as every other
export (:class:`~lit_edge.fielddata.config.DecisionRule`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from lit_edge.db import schema
from lit_edge.db.reader import Detections, MediaRow
from lit_edge.fielddata.config import FieldDataConfig
from lit_edge.fielddata.tracks import flight_tracks, has_position, is_clip_frame
from lit_edge.outcomes import classify_media

log = logging.getLogger(__name__)


def _position(m: MediaRow) -> list[float]:
    """``[lon, lat]`` or ``[lon, lat, altitude]``: RFC 7946 order, longitude first."""
    pos = [round(float(m.longitude), 7), round(float(m.latitude), 7)]
    if m.altitude is not None:
        pos.append(round(float(m.altitude), 2))
    return pos


def detection_features(det: Detections, cfg: FieldDataConfig) -> list[dict]:
    """A ``Point`` feature per named, positioned detection, oldest row first."""
    out = []
    for m in det.media:
        if not has_position(m) or m.kind == schema.CLIP:
            continue  # a clip's detections are its frames
        c = classify_media(m, cfg.rule)
        if not c.scientific_name:
            continue
        common = next((p.common_name for p in m.predictions if p.scientific_name == c.scientific_name), "")
        props = {
            "scientificName": c.scientific_name,
            "commonName": common or None,
            "rank": c.rank,
            "observationType": c.observation_type,
            "score": round(c.probability, 4) if c.probability is not None else None,
            "time": m.captured_at,
            "altitude": m.altitude,
            "relativeAltitude": m.relative_altitude,
            "file": m.path,
            "frameIndex": m.frame_index if is_clip_frame(m) else None,
            "mediaID": f"m{m.id}",
        }
        out.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": _position(m)},
                "properties": props,
            }
        )
    return out


def track_features(det: Detections) -> list[dict]:
    """A ``LineString`` per drone track (see :func:`~lit_edge.fielddata.tracks.flight_tracks`)."""
    out = []
    for t in flight_tracks(det):
        props = {
            "path": t.path,
            "start": t.frames[0].captured_at,
            "end": t.frames[-1].captured_at,
            "frames": len(t.frames),
        }
        line = [_position(m) for m in t.frames]
        out.append(
            {"type": "Feature", "geometry": {"type": "LineString", "coordinates": line}, "properties": props}
        )
    return out


def write_geojson(det: Detections, out: Path, cfg: FieldDataConfig) -> Path:
    """Write the FeatureCollection to ``out`` (a file; a folder gets ``detections.geojson``)."""
    out = Path(out)
    if out.is_dir():
        out = out / "detections.geojson"
    points, tracks = detection_features(det, cfg), track_features(det)
    collection = {"type": "FeatureCollection", "features": tracks + points}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(collection, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    unplaced = sum(
        1
        for m in det.media
        if m.kind != schema.CLIP and not has_position(m) and classify_media(m, cfg.rule).scientific_name
    )
    if unplaced:
        log.warning("%d named detection(s) have no position and are not on the map", unplaced)
    log.info("wrote GeoJSON: %d detections, %d tracks -> %s", len(points), len(tracks), out)
    return out
