"""The people's word in every export: a real ``lit-edge tag`` run, verified through the same
annotation writes the review page makes, then exported and read back by independent readers.

Camtrap DP keeps the machine's observation and adds the people's (``classificationMethod`` human,
``classifiedBy`` the reviewer; checked by frictionless); CSV, XMP and MegaDetector JSON use the
verified label; ``db summary`` and the report count verified against machine, with the confusion
table.
"""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bundle_factory import COLOURS, make_bundle
from fielddata_fixtures import cli, write_photo
from lit_edge.db import annotations as ann
from lit_edge.db import schema
from test_report import parse

LR = "{http://ns.adobe.com/lightroom/1.0/}"
PHOTOS = {  # a burst of three at site A, a lone photo later; two at site B
    "siteA/IMG_0001.JPG": ("2024:05:01 06:30:00", COLOURS["Rubra rosea"]),
    "siteA/IMG_0002.JPG": ("2024:05:01 06:30:20", COLOURS["Rubra rosea"]),
    "siteA/IMG_0003.JPG": ("2024:05:01 06:30:40", COLOURS["Rubra rosea"]),
    "siteA/IMG_0004.JPG": ("2024:05:01 06:50:00", COLOURS["Viridis silva"]),
    "siteB/IMG_0101.JPG": ("2024:05:02 21:15:00", COLOURS["Caerulea mare"]),
    "siteB/IMG_0102.JPG": ("2024:05:02 21:30:00", COLOURS["Caerulea mare"]),
}
#: what people said, by whom; IMG_0002 agrees with the machine, the others correct it
WORD = {
    "siteA/IMG_0001.JPG": ("Viridis silva", "", "ann"),
    "siteA/IMG_0002.JPG": ("Rubra rosea", "", "ann"),
    "siteA/IMG_0004.JPG": ("blank", "", "bob"),
    "siteB/IMG_0101.JPG": ("Lynx pardinus", "Iberian lynx", "bob"),
    "siteB/IMG_0102.JPG": ("human", "", "bob"),
}


@pytest.fixture(scope="module")
def verified(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("verified")
    card = tmp / "card"
    for rel, (when, rgb) in PHOTOS.items():
        write_photo(card / rel, when, (51.18, 5.65), rgb, stripes=False)
    bundle = make_bundle(tmp / "bundle")
    db = tmp / "card.db"
    r = cli(
        "tag", card, "--db", db, "--bundle", bundle, "--backend", "onnxruntime-cpu", "--precision", "fp32"
    )
    assert r.exit_code == 0, r.output
    conn = schema.connect(db)
    ids = {Path(p).relative_to(card).as_posix(): i for i, p in conn.execute("SELECT id, path FROM media")}
    for rel, (label, common, who) in WORD.items():
        ann.annotate(conn, [(ids[rel], ann.Verdict.of(label, common))], who)
    # a correction that was undone leaves the machine's word alone
    (w,) = ann.annotate(conn, [(ids["siteA/IMG_0003.JPG"], ann.Verdict.of("human"))], "ann")
    ann.undo(conn, [w.current.id], "ann")
    machine = {
        Path(p).relative_to(card).as_posix(): name
        for p, name in conn.execute("SELECT path, top_name FROM media")
    }
    conn.close()
    assert machine == {
        rel: next(n for n, c in COLOURS.items() if c == rgb) for rel, (_, rgb) in PHOTOS.items()
    }
    return {"tmp": tmp, "card": card, "db": db, "ids": ids}


def _csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_camtrap_dp_keeps_the_machine_and_adds_the_people(verified):
    from lit_edge.fielddata.validate import validate_package

    out = verified["tmp"] / "camtrap"
    r = cli("db", "export", verified["db"], "-f", "camtrap-dp", "-o", out)
    assert r.exit_code == 0, r.output
    result = validate_package(out / "datapackage.json")
    assert result.valid, result.errors
    media = {m["mediaID"]: m["filePath"] for m in _csv(out / "media.csv")}
    obs = _csv(out / "observations.csv")
    per_photo = [o for o in obs if o["observationLevel"] == "media"]
    machine = {media[o["mediaID"]]: o for o in per_photo if o["classificationMethod"] == "machine"}
    human = {media[o["mediaID"]]: o for o in per_photo if o["classificationMethod"] == "human"}
    assert set(machine) == set(PHOTOS) and set(human) == set(WORD)  # every machine row kept
    for rel, (label, _, who) in WORD.items():
        o = human[rel]
        assert o["classifiedBy"] == who and o["classificationTimestamp"].endswith("+00:00")
        assert o["classificationProbability"] == ""
        kind = label if label in ("blank", "human") else "animal"
        assert (o["observationType"], o["scientificName"]) == (kind, label if kind == "animal" else "")
    assert machine["siteA/IMG_0001.JPG"]["scientificName"] == "Rubra rosea"  # the machine's word stays
    events = [o for o in obs if o["observationLevel"] == "event" and o["classificationMethod"] == "human"]
    # the burst's verified photos (Viridis silva and Rubra rosea, one each) and each verified lone photo
    assert sorted((o["deploymentID"], o["observationType"], o["classifiedBy"]) for o in events) == [
        ("siteA", "animal", "ann"),
        ("siteA", "blank", "bob"),
        ("siteB", "animal", "bob"),
        ("siteB", "human", "bob"),
    ]
    taxa = {t["scientificName"]: t for t in json.loads((out / "datapackage.json").read_text())["taxonomic"]}
    assert taxa["Lynx pardinus"]["taxonRank"] == "species"  # a species people added by name


def test_csv_xmp_and_megadetector_use_the_verified_label(verified):
    tmp, db = verified["tmp"], verified["db"]
    assert cli("db", "export", db, "-f", "csv", "-o", tmp / "d.csv").exit_code == 0
    rows = {Path(r["path"]).relative_to(verified["card"]).as_posix(): r for r in _csv(tmp / "d.csv")}
    for rel in PHOTOS:
        label, _, who = WORD.get(rel, (None, None, ""))
        r = rows[rel]
        assert r["label_source"] == ("human" if label else "machine") and r["verified_by"] == who
        assert r["label"] == (label or r["top_name"])
    assert rows["siteA/IMG_0004.JPG"]["observation_type"] == "blank"
    assert rows["siteA/IMG_0004.JPG"]["top_name"] == "Viridis silva"  # the machine's columns stay

    assert cli("db", "export", db, "-f", "megadetector", "-o", tmp / "md.json").exit_code == 0
    md = json.loads((tmp / "md.json").read_text())
    images = {i["file"]: i for i in md["images"]}
    cats = md["classification_categories"]

    def said(rel):
        (d,) = images[rel]["detections"]
        return d["category"], [(cats[c], p) for c, p in d.get("classifications", [])]

    assert said("siteA/IMG_0001.JPG") == ("1", [("Viridis silva", 1.0)])
    assert said("siteB/IMG_0101.JPG") == ("1", [("Lynx pardinus", 1.0)])  # a new class id
    assert said("siteB/IMG_0102.JPG") == ("2", [])  # a person
    assert images["siteA/IMG_0004.JPG"]["detections"] == []  # blank
    assert said("siteA/IMG_0003.JPG")[1][0][0] == "Rubra rosea"  # unverified: the machine's top-k

    r = cli("db", "export", db, "-f", "xmp", "-o", tmp / "xmp")
    assert r.exit_code == 0, r.output

    def keywords(rel):
        tree = ET.parse(tmp / "xmp" / (rel + ".xmp"))
        return {li.text for li in tree.iter("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}li")}

    assert "Viridis silva" in keywords("siteA/IMG_0001.JPG")
    assert "Rubra rosea" not in keywords("siteA/IMG_0001.JPG")
    assert {"Lynx pardinus", "Iberian lynx"} <= keywords("siteB/IMG_0101.JPG")
    assert keywords("siteA/IMG_0004.JPG") == {"blank"}


def test_summary_and_report_show_verified_against_machine(verified):
    r = cli("db", "summary", verified["db"])
    assert r.exit_code == 0, r.output
    assert "verified by people: 5, of which 1 agree with the machine" in r.output
    assert "People vs machine" in r.output
    out = verified["tmp"] / "report.html"
    assert cli("report", verified["db"], "-o", out).exit_code == 0
    page = parse(out.read_text())
    text = " ".join(page.text)
    assert "5 of 6 classified photos verified by people; they agreed with the machine on 1." in text
    # the confusion rows: Rubra rosea verified twice (agreed once, Viridis silva once), and so on
    assert "Rubra rosea 2 1 50% Viridis silva (1)" in " ".join(text.split())
    assert "Caerulea mare 2 0 0% Lynx pardinus (1), human (1)" in " ".join(text.split())
