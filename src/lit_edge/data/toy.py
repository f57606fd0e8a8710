"""A tiny iNat-2021-format dataset written to disk: real JPEG files and real COCO-style JSON.

For smoke runs, tests and benchmarks on a machine without iNaturalist: each class is a colour and a
shape (so a model can learn it), drawn with noise with OpenCV; ``train.json`` / ``val.json`` carry
the iNat category fields (kingdom ... specific_epithet, common_name, image_dir_name), and
``train_mini.json`` repeats ``train.json`` (iNat-2021's smaller training split, which
``train/laptop.py`` reads). The default size fills one of ``laptop.py``'s global batches (128).

    python -m lit_edge.data.toy /tmp/toy-inat   # then: --set data.root=/tmp/toy-inat
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

#: (kingdom, phylum, class, order, family, genus, epithet, common name)
TOY_TAXA = [
    ("Animalia", "Chordata", "Mammalia", "Carnivora", "Canidae", "Vulpes", "vulpes", "Red Fox"),
    ("Animalia", "Chordata", "Mammalia", "Carnivora", "Canidae", "Vulpes", "lagopus", "Arctic Fox"),
    ("Animalia", "Chordata", "Mammalia", "Carnivora", "Felidae", "Felis", "catus", "Domestic Cat"),
    ("Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Corvus", "corax", "Common Raven"),
    ("Animalia", "Arthropoda", "Insecta", "Lepidoptera", "Nymphalidae", "Danaus", "plexippus", "Monarch"),
    ("Plantae", "Tracheophyta", "Magnoliopsida", "Asterales", "Asteraceae", "Bellis", "perennis", "Daisy"),
    ("Plantae", "Tracheophyta", "Magnoliopsida", "Rosales", "Rosaceae", "Rosa", "canina", "Dog Rose"),
    (
        "Fungi",
        "Basidiomycota",
        "Agaricomycetes",
        "Agaricales",
        "Amanitaceae",
        "Amanita",
        "muscaria",
        "Fly Agaric",
    ),
]
_RANK_KEYS = ("kingdom", "phylum", "class", "order", "family", "genus", "specific_epithet", "common_name")


def _image(cls: int, rng: np.random.Generator, size: int) -> np.ndarray:
    hue = int(180 * cls / len(TOY_TAXA))
    img = np.full((size, size, 3), (hue, 200, 200), np.uint8)
    img = cv2.cvtColor(img, cv2.COLOR_HSV2BGR)
    noise = rng.integers(-25, 25, img.shape)
    img = np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8)
    c = (int(rng.integers(size // 3, 2 * size // 3)), int(rng.integers(size // 3, 2 * size // 3)))
    if cls % 2:
        cv2.circle(img, c, size // 5, (255, 255, 255), -1)
    else:
        cv2.rectangle(
            img, (c[0] - size // 6, c[1] - size // 6), (c[0] + size // 6, c[1] + size // 6), (0, 0, 0), -1
        )
    return img


def write_toy_inat(
    root: str | Path,
    classes: int = 8,
    train_per_class: int = 20,
    val_per_class: int = 5,
    size: int = 48,
    seed: int = 0,
) -> Path:
    """Write ``train.json`` (and the same as ``train_mini.json``), ``val.json`` and JPEGs under
    ``root``; returns ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    categories = []
    for cid, row in enumerate(TOY_TAXA[:classes]):
        cat = dict(zip(_RANK_KEYS, row, strict=True))
        cat["id"] = cid
        cat["name"] = f"{cat['genus']} {cat['specific_epithet']}"
        cat["supercategory"] = cat["kingdom"]
        cat["image_dir_name"] = f"{cid:05d}_{'_'.join(row[:7])}"
        categories.append(cat)
    image_id = 0
    for split, per_class in (("train", train_per_class), ("val", val_per_class)):
        images, annotations = [], []
        for cat in categories:
            folder = root / split / cat["image_dir_name"]
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(per_class):
                name = f"{split}/{cat['image_dir_name']}/{k:04d}.jpg"
                cv2.imwrite(str(root / name), _image(cat["id"], rng, size))
                images.append({"id": image_id, "file_name": name, "width": size, "height": size})
                annotations.append({"id": image_id, "image_id": image_id, "category_id": cat["id"]})
                image_id += 1
        doc = {
            "info": {"description": "lit-edge toy iNat"},
            "images": images,
            "annotations": annotations,
            "categories": categories,
        }
        (root / f"{split}.json").write_text(json.dumps(doc), encoding="utf-8")
        if split == "train":
            (root / "train_mini.json").write_text(json.dumps(doc), encoding="utf-8")
    return root


if __name__ == "__main__":  # pragma: no cover
    print(write_toy_inat(sys.argv[1] if len(sys.argv) > 1 else "toy-inat"))
