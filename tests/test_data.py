"""Dataset adapters on real files: iNat-2021 JSON, class folders (+ taxonomy.csv), CSV manifests."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

from lit_edge.data import DataConfig, load_dataset
from lit_edge.data.captions import CaptionSampler, to_taxon
from lit_edge.data.images import read_rgb
from lit_edge.data.toy import TOY_TAXA, write_toy_inat
from lit_edge.errors import UserError


def _jpeg(path, colour=(0, 128, 255)):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((12, 16, 3), colour, np.uint8))
    return path


def test_inat_layout_classes_follow_category_ids_and_share_them_across_splits(tmp_path):
    root = write_toy_inat(tmp_path, classes=3, train_per_class=2, val_per_class=1)
    train = load_dataset(DataConfig(format="inat", root=str(root), split="train"))
    val = load_dataset(DataConfig(format="inat", root=str(root), split="val"))
    assert len(train) == 6 and len(val) == 3
    assert train.taxa == val.taxa
    fox = train.taxa[0]
    assert fox["scientific_name"] == "Vulpes vulpes" and fox["common_name"] == "Red Fox"
    assert fox["class"] == "Mammalia" and fox["species"] == "vulpes" and fox["family"] == "Canidae"
    assert sorted(set(train.labels.tolist())) == [0, 1, 2]
    assert all(p.is_file() for p in train.paths)
    doc = json.loads((root / "train.json").read_text())
    first = next(a for a in doc["annotations"] if a["image_id"] == 0)
    assert train.labels[0] == first["category_id"]


def test_inat_category_ids_need_not_start_at_zero(tmp_path):
    _jpeg(tmp_path / "a.jpg")
    _jpeg(tmp_path / "b.jpg")
    cats = [
        {"id": 90, "name": "Corvus corax", "genus": "Corvus", "specific_epithet": "corax"},
        {"id": 7, "name": "Felis catus", "genus": "Felis", "specific_epithet": "catus", "common_name": "Cat"},
    ]
    doc = {
        "images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 90},
            {"id": 2, "image_id": 2, "category_id": 7},
        ],
        "categories": cats,
    }
    (tmp_path / "train_mini.json").write_text(json.dumps(doc))
    data = load_dataset(DataConfig(format="inat", root=str(tmp_path), split="train_mini"))
    assert [t["scientific_name"] for t in data.taxa] == ["Felis catus", "Corvus corax"]
    assert data.labels.tolist() == [1, 0]


def test_class_folders_with_taxonomy_csv(tmp_path):
    _jpeg(tmp_path / "Vulpes_vulpes" / "1.jpg")
    _jpeg(tmp_path / "Vulpes_vulpes" / "sub" / "2.png")
    _jpeg(tmp_path / "Felis catus" / "1.jpg")
    (tmp_path / "Felis catus" / "notes.txt").write_text("not an image")
    with open(tmp_path / "taxonomy.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["folder", "common_name", "family", "kingdom"])
        w.writerow(["Vulpes_vulpes", "Red fox", "Canidae", "Animalia"])
    data = load_dataset(DataConfig(format="folder", root=str(tmp_path)))
    assert [t["scientific_name"] for t in data.taxa] == ["Felis catus", "Vulpes vulpes"]
    assert data.taxa[1]["common_name"] == "Red fox" and data.taxa[1]["family"] == "Canidae"
    assert data.taxa[0]["genus"] == "Felis" and data.taxa[0]["species"] == "catus"
    assert data.labels.tolist() == [0, 1, 1]


def test_csv_manifest_relative_paths_and_capping(tmp_path):
    for i in range(3):
        _jpeg(tmp_path / "img" / f"{i}.jpg")
    with open(tmp_path / "m.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "scientific_name", "common_name", "genus"])
        w.writerow(["img/0.jpg", "Danaus plexippus", "Monarch", "Danaus"])
        w.writerow(["img/1.jpg", "Bellis perennis", "Daisy", "Bellis"])
        w.writerow(["img/2.jpg", "Danaus plexippus", "Monarch", "Danaus"])
        w.writerow(["", "Danaus plexippus", "", ""])
    data = load_dataset(DataConfig(format="csv", root=str(tmp_path / "m.csv")))
    assert [t["scientific_name"] for t in data.taxa] == ["Bellis perennis", "Danaus plexippus"]
    assert data.labels.tolist() == [1, 0, 1]
    assert data.paths[0] == tmp_path / "img" / "0.jpg"
    assert len(data.skipped) == 1
    capped = load_dataset(DataConfig(format="csv", root=str(tmp_path / "m.csv"), max_per_class=1))
    assert capped.labels.tolist() == [1, 0]


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        (DataConfig(format="inat", root="{tmp}", split="nope"), "nope.json"),
        (DataConfig(format="folder", root="{tmp}/missing"), "not a folder"),
        (DataConfig(format="csv", root="{tmp}/none.csv"), "not found"),
        (DataConfig(format="coco", root="{tmp}"), "unknown data.format"),
        (DataConfig(format="inat", root=""), "data.root is empty"),
    ],
)
def test_bad_dataset_config_is_one_clear_line(tmp_path, cfg, match):
    from dataclasses import replace

    cfg = replace(cfg, root=cfg.root.replace("{tmp}", str(tmp_path)))
    with pytest.raises(UserError, match=match) as exc:
        load_dataset(cfg)
    assert "\n" not in str(exc.value)


def test_read_rgb_reports_missing_and_corrupt_files(tmp_path):
    good = _jpeg(tmp_path / "good.jpg", colour=(255, 0, 0))  # BGR blue
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    rgb, why = read_rgb(good)
    assert rgb.shape == (12, 16, 3) and why == "" and rgb[0, 0, 2] > 200  # RGB order: blue last
    assert read_rgb(tmp_path / "bad.jpg")[0] is None
    assert read_rgb(tmp_path / "nope.jpg") == (None, "missing file")


TAXA = [
    {
        "scientific_name": f"{row[5]} {row[6]}",
        "common_name": row[7],
        "genus": row[5],
        "species": row[6],
        "family": row[4],
        "kingdom": row[0],
    }
    for row in TOY_TAXA[:4]
]


def test_captions_are_seeded_reproducible_and_follow_the_mix():
    labels = np.arange(400) % 4
    mix = {"scientific": 3.0, "common": 1.0}
    a = CaptionSampler(TAXA, mix, seed=1).draw(labels, epoch=0, step=5)
    b = CaptionSampler(TAXA, mix, seed=1).draw(labels, epoch=0, step=5)
    c = CaptionSampler(TAXA, mix, seed=1).draw(labels, epoch=0, step=6)
    assert a == b and a != c
    sci = sum(t == f"a photo of {TAXA[y]['scientific_name']}." for t, y in zip(a, labels, strict=True))
    com = sum(t == f"a photo of {TAXA[y]['common_name']}." for t, y in zip(a, labels, strict=True))
    assert sci + com == len(labels)
    assert 0.65 < sci / len(labels) < 0.85  # 3:1 mix


def test_captions_from_class_texts_replace_the_taxonomy():
    texts = {0: ["alpha", "beta"], 1: ["gamma"], 2: ["delta"], 3: ["epsilon"]}
    out = CaptionSampler(TAXA, {"scientific": 1.0}, seed=0, class_texts=texts).draw(
        np.array([0] * 50 + [1]), 0, 0
    )
    assert set(out[:50]) == {"alpha", "beta"} and out[50] == "gamma"


def test_unknown_text_type_is_a_user_error():
    with pytest.raises(UserError, match="unknown text types"):
        CaptionSampler(TAXA, {"latin": 1.0})


def test_to_taxon_builds_the_taxonomy_record():
    t = to_taxon(
        {"scientific_name": "Danaus plexippus", "genus": "Danaus", "kingdom": "Animalia", "class": "Insecta"}
    )
    assert t.scientific_name == "Danaus plexippus" and t.species == "plexippus" and t.class_ == "Insecta"
