"""Every format from a database made by a real ``lit-edge tag`` run, read back by independent readers.

Real JPEGs (PIL, with EXIF DateTimeOriginal and GPS) in two camera folders, plus one corrupt file,
are tagged by the real CLI with a tiny torch-free ONNX bundle (``bundle_factory``: a solid colour
is classified as its colour's species, a colour between two species rolls up). The database that
run writes is then exported to Camtrap DP (checked by frictionless), MegaDetector JSON (``json``),
CSV (``csv``), XMP (``xml.etree``) and the HTML report (Chromium).
"""

from __future__ import annotations

import csv
import hashlib
import json
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bundle_factory import COLOURS, make_bundle
from fielddata_fixtures import cli, write_photo
from lit_edge.bundle import read_labels
from test_report import CHROMIUM, parse, render

RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
LR = "{http://ns.adobe.com/lightroom/1.0/}"

#: file -> (EXIF time, GPS, colour); site A: a burst of three, then a lone photo 10 min later
PHOTOS = {
    "siteA/IMG_0001.JPG": ("2024:05:01 06:30:00", (51.18, 5.65), COLOURS["Rubra rosea"]),
    "siteA/IMG_0002.JPG": ("2024:05:01 06:30:20", (51.18, 5.65), COLOURS["Rubra rosea"]),
    "siteA/IMG_0003.JPG": ("2024:05:01 06:30:50", (51.18, 5.65), (255, 0, 128)),  # between two Rubra
    "siteA/IMG_0004.JPG": ("2024:05:01 06:40:50", (51.18, 5.65), COLOURS["Viridis silva"]),
    "siteB/IMG_0101.JPG": ("2024:05:02 21:15:00", (51.2, 5.7), COLOURS["Caerulea mare"]),
    "siteB/IMG_0102.JPG": ("2024:05:02 21:15:10", (51.2, 5.7), COLOURS["Caerulea mare"]),
}
PURE = {f: name for f, (_, _, rgb) in PHOTOS.items() for name, c in COLOURS.items() if c == rgb}


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    """Photos, a bundle, and the database a real ``lit-edge tag`` run wrote."""
    tmp = tmp_path_factory.mktemp("e2e")
    card = tmp / "card"
    for rel, (when, gps, rgb) in PHOTOS.items():
        write_photo(card / rel, when, gps, rgb, stripes=False)
    (card / "siteB" / "IMG_0103.JPG").write_bytes(b"\xff\xd8\xff not really a jpeg")
    bundle = make_bundle(tmp / "bundle")
    db = tmp / "detections.db"
    args = (
        "tag",
        card,
        "--db",
        db,
        "--bundle",
        bundle,
        "--backend",
        "onnxruntime-cpu",
        "--precision",
        "fp32",
    )
    r = cli(*args, "--threads", "1")
    assert r.exit_code == 0, r.output
    with sqlite3.connect(db) as conn:
        decided = {
            Path(p).relative_to(card).as_posix(): (name, rank, status)
            for p, name, rank, status in conn.execute("SELECT path, top_name, top_rank, status FROM media")
        }
    # the run is what the test says it is: pure colours named, the blend rolled up, one failure
    assert {f: decided[f][0] for f in PURE} == PURE
    assert decided["siteA/IMG_0003.JPG"][1] != "species"
    assert decided["siteB/IMG_0103.JPG"][2] == "failed"
    return {"tmp": tmp, "card": card, "bundle": bundle, "db": db, "decided": decided}


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_camtrap_dp_from_a_real_run(tagged):
    from lit_edge.fielddata.validate import validate_package

    out = tagged["tmp"] / "camtrap"
    r = cli("db", "export", tagged["db"], "-f", "camtrap-dp", "-o", out)
    assert r.exit_code == 0, r.output
    result = validate_package(out / "datapackage.json")
    assert result.valid, result.errors

    media = {m["mediaID"]: m for m in read_csv(out / "media.csv")}
    assert {m["filePath"] for m in media.values()} == set(PHOTOS)  # the undated corrupt file is left out
    obs = read_csv(out / "observations.csv")
    named = {
        media[o["mediaID"]]["filePath"]: o["scientificName"] for o in obs if o["observationLevel"] == "media"
    }
    assert named == {f: tagged["decided"][f][0] for f in PHOTOS}
    events = [o for o in obs if o["observationLevel"] == "event"]
    assert sorted((e["deploymentID"], e["scientificName"]) for e in events) == [
        ("siteA", "Rubra rosea"),  # the burst: two Rubra rosea outvote the rolled-up blend
        ("siteA", "Viridis silva"),
        ("siteB", "Caerulea mare"),
    ]
    assert {o["classifiedBy"] for o in obs} == {"colour-test test"}

    package = json.loads((out / "datapackage.json").read_text())
    taxa = {t["scientificName"]: t for t in package["taxonomic"]}
    # lineage comes from the bundle the run recorded (no --bundle given)
    assert taxa["Caerulea mare"]["kingdom"] == "Plantae" and taxa["Rubra rosea"]["family"] == "Chromidae"


def test_megadetector_json_from_a_real_run(tagged):
    out = tagged["tmp"] / "md.json"
    assert cli("db", "export", tagged["db"], "-f", "megadetector", "-o", out).exit_code == 0
    md = json.loads(out.read_text())
    labels = {str(lab.id): lab.scientific_name for lab in read_labels(tagged["bundle"] / "labels.csv")}
    assert md["classification_categories"].items() <= labels.items()
    images = {i["file"]: i for i in md["images"]}
    assert set(images) == set(PHOTOS) | {"siteB/IMG_0103.JPG"}
    assert "corrupt" in images["siteB/IMG_0103.JPG"]["failure"]
    for f, name in PURE.items():
        (d,) = images[f]["detections"]
        best_id, best_conf = d["classifications"][0]
        assert md["classification_categories"][best_id] == name and best_conf > 0.5
        assert d["bbox"] == [0.0, 0.0, 1.0, 1.0]
    root = Path(md["info"]["classifier_metadata"]["image_root"])
    assert all((root / f).is_file() for f in images)


def test_csv_from_a_real_run(tagged):
    out = tagged["tmp"] / "detections.csv"
    assert cli("db", "export", tagged["db"], "-f", "csv", "-o", out).exit_code == 0
    rows = {r["file"]: r for r in read_csv(out)}
    assert set(rows) == set(PHOTOS) | {"siteB/IMG_0103.JPG"}
    for f, name in PURE.items():
        assert rows[f]["top_name"] == rows[f]["pred1_name"] == name
        assert float(rows[f]["latitude"]) == pytest.approx(PHOTOS[f][1][0], abs=1e-4)
    assert rows["siteB/IMG_0103.JPG"]["status"] == "failed"
    assert rows["siteA/IMG_0001.JPG"]["event_id"] == rows["siteA/IMG_0003.JPG"]["event_id"]


def test_xmp_from_a_real_run(tagged):
    card = tagged["card"]
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in card.rglob("*.JPG")}
    r = cli("db", "export", tagged["db"], "-f", "xmp")
    assert r.exit_code == 0, r.output
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in card.rglob("*.JPG")} == before
    sidecars = sorted(p.relative_to(card).as_posix() for p in card.rglob("*.xmp"))
    assert sidecars == sorted(f + ".xmp" for f in PHOTOS)
    desc = ET.parse(card / "siteB" / "IMG_0101.JPG.xmp").getroot().find(f"{RDF}RDF/{RDF}Description")
    hier = [li.text for li in desc.find(f"{LR}hierarchicalSubject").iter(f"{RDF}li")]
    assert hier == ["Plantae|Azuridae|Caerulea|Caerulea mare"]


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (Debian: apt-get install chromium)")
def test_report_from_a_real_run(tagged):
    out = tagged["tmp"] / "report.html"
    assert cli("report", tagged["db"], "-o", out).exit_code == 0
    dom, console = render(out, tagged["tmp"] / "profile")
    page = parse(dom)
    assert console == [] and page.errors.strip() == "" and page.body.get("data-rendered") == "ok"
    assert len(page.imgs) == len(PHOTOS)
    text = " ".join(page.text)
    assert "corrupt JPEG" in text and "colour-test" in text and str(tagged["bundle"]) in text
