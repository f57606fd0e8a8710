"""Write MegaDetector batch-output JSON (format 1.4), the file Timelapse opens for review.

lit-edge classifies whole photos and has no detector, so each classified photo gets one detection
covering the whole frame (``bbox`` [0, 0, 1, 1], category ``1`` animal) whose ``conf`` is the
decision's score, with the top-k classes as its ``classifications`` ([class id, probability]).
A photo decided ``blank`` has no detections; a failed one has ``failure`` and ``detections`` null,
as MegaDetector writes them. A photo people verified (``lit-edge review``) carries their word
instead: no detection for blank, a whole-frame person (``2``) or vehicle (``3``), or an animal
whose one classification is the verified species at 1.0 (an ``unknown`` verdict keeps the
machine's). ``file`` is relative to the photos' common folder, which is where
Timelapse expects the JSON to be opened from.
"""

from __future__ import annotations

import json
from pathlib import Path

from lit_edge.db.reader import Annotation, Detections
from lit_edge.fielddata.camtrapdp import common_root
from lit_edge.fielddata.config import FieldDataConfig
from lit_edge.outcomes import OBS_ANIMAL, OBS_BLANK, OBS_HUMAN, OBS_UNKNOWN, OBS_VEHICLE, classify_media
from lit_edge.outcomes import OBS_BLANK as BLANK
from lit_edge.outcomes import OBS_UNCLASSIFIED as UNCLASSIFIED

FORMAT_VERSION = "1.4"
ANIMAL_CATEGORY, PERSON_CATEGORY, VEHICLE_CATEGORY = "1", "2", "3"
#: MegaDetector's detection categories, by Camtrap DP observation type.
CATEGORY = {OBS_ANIMAL: ANIMAL_CATEGORY, OBS_HUMAN: PERSON_CATEGORY, OBS_VEHICLE: VEHICLE_CATEGORY}


def megadetector_dict(det: Detections, cfg: FieldDataConfig) -> dict:
    photos = list(det.photos)
    root = common_root([m.path for m in photos])
    categories: dict[str, str] = {}
    for m in photos:
        for p in m.predictions:
            categories.setdefault(str(p.label_id), p.scientific_name)
    by_name = {name: cat for cat, name in categories.items()}
    images = []
    for m in photos:
        entry: dict = {"file": Path(m.path).relative_to(root).as_posix()}
        a = det.annotations.get(m.id)
        if a is not None and a.observation_type != OBS_UNKNOWN:
            entry["detections"] = _verified(a, categories, by_name)
            images.append(entry)
            continue
        c = classify_media(m, cfg.rule)
        if c.observation_type == UNCLASSIFIED:
            entry["failure"] = m.error or "failed"
            entry["detections"] = None
        elif c.observation_type == BLANK:
            entry["detections"] = []
        else:
            classes = [[str(p.label_id), round(p.score, 4)] for p in m.predictions]
            conf = (
                m.top_score if m.top_score is not None else (m.predictions[0].score if m.predictions else 0.0)
            )
            entry["detections"] = [
                {
                    "category": CATEGORY.get(c.observation_type, ANIMAL_CATEGORY),
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
        "detection_categories": {
            ANIMAL_CATEGORY: "animal",
            PERSON_CATEGORY: "person",
            VEHICLE_CATEGORY: "vehicle",
        },
        "classification_categories": dict(sorted(categories.items(), key=lambda kv: int(kv[0]))),
        "images": images,
    }


def _verified(a: Annotation, categories: dict[str, str], by_name: dict[str, str]) -> list[dict]:
    """A person's word as MegaDetector detections: none for blank; a whole-frame person or vehicle;
    or an animal whose one classification is the verified species at probability 1 (a species the
    model never predicted gets a new class id)."""
    if a.observation_type == OBS_BLANK:
        return []
    category = {OBS_HUMAN: PERSON_CATEGORY, OBS_VEHICLE: VEHICLE_CATEGORY}.get(
        a.observation_type, ANIMAL_CATEGORY
    )
    det: dict = {"category": category, "conf": 1.0, "bbox": [0.0, 0.0, 1.0, 1.0]}
    if category == ANIMAL_CATEGORY:
        cat = by_name.get(a.label)
        if cat is None:
            cat = str(max((int(c) for c in categories if c.lstrip("-").isdigit()), default=-1) + 1)
            categories[cat], by_name[a.label] = a.label, cat
        det["classifications"] = [[cat, 1.0]]
    return [det]


def write_megadetector(det: Detections, out: Path, cfg: FieldDataConfig) -> Path:
    """Write the JSON to ``out`` (a file; a folder gets ``megadetector.json`` inside)."""
    out = Path(out)
    if out.is_dir():
        out = out / "megadetector.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    # no indent: json's C encoder only runs without one (~10x faster on a season of photos)
    out.write_text(json.dumps(megadetector_dict(det, cfg), ensure_ascii=False) + "\n", encoding="utf-8")
    return out
