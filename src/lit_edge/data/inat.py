"""The iNaturalist-2021 layout: COCO-style ``train.json`` / ``train_mini.json`` / ``val.json``.

``root/<split>.json`` has ``images`` (``id``, ``file_name`` relative to ``root``), ``annotations``
(``image_id``, ``category_id``) and ``categories`` (``id``, ``name``, ``common_name``, ``kingdom`` ...
``genus``, ``specific_epithet``, ``image_dir_name``). Class indices follow the sorted category ids,
which every split of the release shares, so train and val agree on what class ``i`` is.
"""

from __future__ import annotations

import json
from pathlib import Path

from lit_edge.data.records import LabelledImages, taxon_record
from lit_edge.errors import UserError


def load_inat(root: str | Path, split: str = "train") -> LabelledImages:
    root = Path(root)
    path = root / f"{split}.json"
    if not path.is_file():
        raise UserError(
            f"iNat dataset: {path} not found; set data.root to the folder holding {split}.json "
            "(splits: train, train_mini, val)"
        )
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        categories = sorted(doc["categories"], key=lambda c: c["id"])
        images = {im["id"]: im["file_name"] for im in doc["images"]}
        annotations = doc["annotations"]
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(
            f"iNat dataset: {path} is not a COCO-style iNat JSON ({exc!r}); check the file"
        ) from None
    index = {c["id"]: i for i, c in enumerate(categories)}
    taxa = [
        taxon_record(
            scientific_name=c.get("name"),
            common_name=c.get("common_name"),
            kingdom=c.get("kingdom"),
            phylum=c.get("phylum"),
            **{"class": c.get("class")},
            order=c.get("order"),
            family=c.get("family"),
            genus=c.get("genus"),
            species=c.get("specific_epithet"),
        )
        for c in categories
    ]
    paths, labels, skipped = [], [], []
    for ann in sorted(annotations, key=lambda a: a["image_id"]):
        name = images.get(ann["image_id"])
        cls = index.get(ann["category_id"])
        if name is None or cls is None:
            skipped.append((f"{path}: annotation {ann.get('id')}", "unknown image or category id"))
            continue
        paths.append(root / name)
        labels.append(cls)
    return LabelledImages(paths, labels, taxa, source=str(path), skipped=skipped)
