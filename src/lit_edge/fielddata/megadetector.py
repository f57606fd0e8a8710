"""Write MegaDetector batch-output JSON (format 1.4), the file Timelapse opens for review.

lit-edge classifies whole photos and has no detector, so each classified photo gets one detection
covering the whole frame (``bbox`` [0, 0, 1, 1], category ``1`` animal) whose ``conf`` is the
decision's score, with the top-k classes as its ``classifications`` ([class id, probability]).
A photo decided ``blank`` has no detections; a failed one has ``failure`` and ``detections`` null,
as MegaDetector writes them. ``file`` is relative to the photos' common folder, which is where
Timelapse expects the JSON to be opened from.
"""

from __future__ import annotations

import json
from pathlib import Path

from lit_edge.db.reader import Detections
from lit_edge.fielddata.camtrapdp import common_root
from lit_edge.fielddata.config import FieldDataConfig
from lit_edge.fielddata.events import BLANK, UNCLASSIFIED
from lit_edge.outcomes import classify_media

FORMAT_VERSION = "1.4"
ANIMAL_CATEGORY = "1"


def megadetector_dict(det: Detections, cfg: FieldDataConfig) -> dict:
    photos = list(det.photos)
    root = common_root([m.path for m in photos])
    categories: dict[str, str] = {}
    images = []
    for m in photos:
        entry: dict = {"file": Path(m.path).relative_to(root).as_posix()}
        c = classify_media(m, cfg.rule)
        if c.observation_type == UNCLASSIFIED:
            entry["failure"] = m.error or "failed"
            entry["detections"] = None
        elif c.observation_type == BLANK:
            entry["detections"] = []
        else:
            classes = []
            for p in m.predictions:
                categories.setdefault(str(p.label_id), p.scientific_name)
                classes.append([str(p.label_id), round(p.score, 4)])
            conf = (
                m.top_score if m.top_score is not None else (m.predictions[0].score if m.predictions else 0.0)
            )
            entry["detections"] = [
                {
                    "category": ANIMAL_CATEGORY,
                    "conf": round(float(conf), 4),
                    "bbox": [0.0, 0.0, 1.0, 1.0],
                    "classifications": classes,
                }
            ]
        images.append(entry)
    run = det.latest_run
    return {
        "info": {
            "format_version": FORMAT_VERSION,
            "detector": "none (lit-edge whole-image classification)",
            "detection_completion_time": run.finished_at if run else "",
            "classifier": run.classifier if run else "lit-edge",
            "classification_completion_time": run.finished_at if run else "",
            "classifier_metadata": {
                "lit_edge_version": run.lit_edge_version if run else "",
                "bundle": run.bundle if run else "",
                "bundle_sha256": run.bundle_sha256 if run else "",
                "image_root": str(root),
            },
            "detector_metadata": {
                "megadetector_version": "none",
                "typical_detection_threshold": 0.2,
                "conservative_detection_threshold": 0.1,
            },
        },
        "detection_categories": {ANIMAL_CATEGORY: "animal", "2": "person", "3": "vehicle"},
        "classification_categories": dict(sorted(categories.items(), key=lambda kv: int(kv[0]))),
        "images": images,
    }


def write_megadetector(det: Detections, out: Path, cfg: FieldDataConfig) -> Path:
    """Write the JSON to ``out`` (a file; a folder gets ``megadetector.json`` inside)."""
    out = Path(out)
    if out.is_dir():
        out = out / "megadetector.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    # no indent: json's C encoder only runs without one (~10x faster on a season of photos)
    out.write_text(json.dumps(megadetector_dict(det, cfg), ensure_ascii=False) + "\n", encoding="utf-8")
    return out
