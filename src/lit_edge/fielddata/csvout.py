"""Write one CSV row per media: path, time, decision, score, the top-k ranks, GPS, event.

For spreadsheets and R (``read.csv``): plain columns, the top-k predictions flattened into
``pred1_name``, ``pred1_score``, ... so that no cell holds a list.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from lit_edge.db.reader import Detections
from lit_edge.errors import UserError
from lit_edge.fielddata.camtrapdp import common_root
from lit_edge.fielddata.config import FieldDataConfig
from lit_edge.fielddata.events import sequence
from lit_edge.outcomes import classify_media

log = logging.getLogger(__name__)

BASE_COLUMNS = (
    "path",
    "file",
    "frame_index",
    "captured_at",
    "time_source",
    "status",
    "error",
    "observation_type",
    "top_name",
    "top_rank",
    "top_score",
    "latitude",
    "longitude",
    "altitude",
    "deployment_id",
    "event_id",
)


def write_csv(det: Detections, out: Path, cfg: FieldDataConfig) -> Path:
    """Write the CSV to ``out`` (a file; a folder gets ``detections.csv`` inside)."""
    out = Path(out)
    if out.is_dir():
        out = out / "detections.csv"
    photos = list(det.photos)
    root = common_root([m.path for m in photos])
    try:
        seq = sequence(photos, cfg)
        event_of = seq.event_of
    except UserError as exc:  # events are a bonus here; the rows are still worth writing
        log.warning("CSV without events: %s", exc)
        event_of = {}
    k = max((len(m.predictions) for m in det.media), default=0)
    columns = list(BASE_COLUMNS)
    for i in range(1, k + 1):
        columns += [f"pred{i}_name", f"pred{i}_common_name", f"pred{i}_score"]
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        for m in det.media:
            event = event_of.get(m.id)
            row = {
                "path": m.path,
                "file": Path(m.path).relative_to(root).as_posix() if m.is_photo else m.name,
                "frame_index": m.frame_index,
                "captured_at": m.captured_at or "",
                "time_source": m.time_source or "",
                "status": m.status,
                "error": m.error or "",
                "observation_type": classify_media(m, cfg.rule).observation_type,
                "top_name": m.top_name or "",
                "top_rank": m.top_rank or "",
                "top_score": "" if m.top_score is None else f"{m.top_score:.4f}",
                "latitude": "" if m.latitude is None else m.latitude,
                "longitude": "" if m.longitude is None else m.longitude,
                "altitude": "" if m.altitude is None else m.altitude,
                "deployment_id": event.deployment_id if event else "",
                "event_id": event.id if event else "",
            }
            for i, p in enumerate(m.predictions[:k], start=1):
                row[f"pred{i}_name"] = p.scientific_name
                row[f"pred{i}_common_name"] = p.common_name
                row[f"pred{i}_score"] = f"{p.score:.4f}"
            w.writerow(row)
    return out
