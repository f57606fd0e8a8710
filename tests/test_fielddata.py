"""Field-data exporters on a database filled per the schema, read back by independent readers.

These tests control each photo's decision exactly (bursts, a failure, an uncertain photo, two
folders), which a real model cannot promise; ``test_fielddata_e2e.py`` runs the same exporters on a
database made by a real ``lit-edge tag`` run. Every format is read back by a reader that is not
ours: frictionless (Camtrap DP), ``json``, ``csv``, ``xml.etree`` (XMP).
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from fielddata_fixtures import FOX, _decided, cli, fill_db, make_field, write_photo
from lit_edge.fielddata.config import DecisionRule
from lit_edge.fielddata.events import Classification, classify_event

RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
DC = "{http://purl.org/dc/elements/1.1/}"
LR = "{http://ns.adobe.com/lightroom/1.0/}"
DK = "{http://www.digikam.org/ns/1.0/}"


@pytest.fixture
def field(tmp_path):
    """Two camera folders of real JPEGs and a database of their decisions (see fielddata_fixtures)."""
    return make_field(tmp_path)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def validate(folder: Path) -> list[str]:
    """frictionless, via our offline URL resolution; returns the error lines ([] when valid)."""
    from lit_edge.fielddata.validate import validate_package

    result = validate_package(folder / "datapackage.json")
    assert result.valid == (not result.errors)
    return list(result.errors)


# --- Camtrap DP ---------------------------------------------------------------------------------


def test_camtrap_dp_validates_and_has_media_and_event_observations(field):
    out = field["tmp"] / "dp"
    r = cli("db", "export", field["db"], "--format", "camtrap-dp", "-o", out, "--bundle", field["bundle"])
    assert r.exit_code == 0, r.output
    assert validate(out) == []

    deps = read_csv(out / "deployments.csv")
    assert sorted(d["deploymentID"] for d in deps) == ["siteA", "siteB"]
    site_a = next(d for d in deps if d["deploymentID"] == "siteA")
    assert float(site_a["latitude"]) == pytest.approx(51.1801, abs=1e-4)
    assert site_a["deploymentStart"] == "2024-05-01T06:30:00+00:00"
    assert site_a["deploymentEnd"] == "2024-05-01T06:40:50+00:00"

    media = read_csv(out / "media.csv")
    assert len(media) == 6
    assert {m["filePath"] for m in media} >= {"siteA/IMG_0001.JPG", "siteB/IMG_0102.JPG"}

    obs = read_csv(out / "observations.csv")
    by_level = {lvl: [o for o in obs if o["observationLevel"] == lvl] for lvl in ("media", "event")}
    assert len(by_level["media"]) == 6
    types = sorted(o["observationType"] for o in by_level["media"])
    assert types == ["animal", "animal", "animal", "animal", "unclassified", "unknown"]
    assert all(o["classificationMethod"] == "machine" for o in obs if o["observationType"] != "unclassified")
    assert {o["classifiedBy"] for o in obs if o["classifiedBy"]} == {"test-lit 0.1"}

    # site A: burst (fox, fox, badger) -> one fox event; the lone uncertain photo -> its own event
    events = sorted(by_level["event"], key=lambda o: o["eventStart"])
    assert [e["deploymentID"] for e in events] == ["siteA", "siteA", "siteB"]
    burst = events[0]
    assert burst["observationType"] == "animal" and burst["scientificName"] == "Vulpes vulpes"
    assert float(burst["classificationProbability"]) == pytest.approx((0.9 + 0.7) / 3, abs=1e-3)
    assert (burst["eventStart"], burst["eventEnd"]) == (
        "2024-05-01T06:30:00+00:00",
        "2024-05-01T06:30:50+00:00",
    )
    assert events[1]["observationType"] == "unknown" and events[1]["scientificName"] == ""
    # site B: the deer and the failed photo 30 s later are one event, a deer one
    assert events[2]["scientificName"] == "Capreolus capreolus"
    members = [o for o in by_level["media"] if o["eventID"] == burst["eventID"]]
    assert len(members) == 3

    package = json.loads((out / "datapackage.json").read_text())
    taxa = {t["scientificName"]: t for t in package["taxonomic"]}
    assert set(taxa) == {"Vulpes vulpes", "Meles meles", "Capreolus capreolus"}
    assert taxa["Meles meles"]["family"] == "Mustelidae"
    assert taxa["Vulpes vulpes"]["vernacularNames"] == {"eng": "red fox"}
    assert package["temporal"] == {"start": "2024-05-01", "end": "2024-05-02"}


def test_event_gap_splits_bursts(field):
    out = field["tmp"] / "dp"
    r = cli("db", "export", field["db"], "-f", "camtrap-dp", "-o", out, "--event-gap", "25")
    assert r.exit_code == 0, r.output
    events = [o for o in read_csv(out / "observations.csv") if o["observationLevel"] == "event"]
    # 0 s, 20 s | 50 s | 10 min later  on site A; deer | failed photo (30 s) on site B
    assert len(events) == 5
    assert validate(out) == []


def test_broken_package_fails_validation(field):
    out = field["tmp"] / "dp"
    assert cli("db", "export", field["db"], "-f", "camtrap-dp", "-o", out).exit_code == 0
    obs = (out / "observations.csv").read_text()
    (out / "observations.csv").write_text(obs.replace(",animal,", ",dinosaur,", 1))
    errors = validate(out)
    assert any("observationType" in e and "dinosaur" in e for e in errors)

    r = cli("db", "validate", out)
    assert r.exit_code == 2 and "Camtrap DP error" in r.output

    (out / "observations.csv").write_text(obs)
    assert cli("db", "validate", out).exit_code == 0
    package = json.loads((out / "datapackage.json").read_text())
    del package["project"]
    (out / "datapackage.json").write_text(json.dumps(package))
    assert any("'project' is a required property" in e for e in validate(out))


def test_deployment_file_assigns_photos_and_offsets(field):
    deps = field["tmp"] / "deployments.csv"
    deps.write_text(
        "deploymentID,latitude,longitude,start,end,camera,folder,utc_offset\n"
        "A-2024,51.18,5.65,2024-04-30T12:00:00,2024-05-10T12:00:00,RCNX-1,card/siteA,+02:00\n"
        "B-2024,51.20,5.70,2024-04-30T12:00:00,2024-05-10T12:00:00,RCNX-2,card/siteB,+02:00\n"
        "C-2024,51.30,5.80,2024-04-30T12:00:00,2024-05-10T12:00:00,RCNX-3,card/siteC,+02:00\n"
    )
    out = field["tmp"] / "dp"
    r = cli("db", "export", field["db"], "-f", "camtrap-dp", "-o", out, "--deployments", deps)
    assert r.exit_code == 0, r.output
    assert validate(out) == []
    media = {m["fileName"]: m for m in read_csv(out / "media.csv")}
    assert media["IMG_0001.JPG"]["deploymentID"] == "A-2024"
    assert media["IMG_0001.JPG"]["timestamp"] == "2024-05-01T06:30:00+02:00"
    assert media["IMG_0101.JPG"]["deploymentID"] == "B-2024"
    d = {d["deploymentID"]: d for d in read_csv(out / "deployments.csv")}
    assert d["A-2024"]["cameraID"] == "RCNX-1"
    assert d["A-2024"]["deploymentStart"] == "2024-04-30T12:00:00+02:00"
    # a camera that took no photo is still effort: it stays, with the dates the file gives
    assert d["C-2024"]["deploymentEnd"] == "2024-05-10T12:00:00+02:00"
    assert not any(m["deploymentID"] == "C-2024" for m in media.values())


def test_photo_outside_every_deployment_is_one_clear_error(field):
    deps = field["tmp"] / "deployments.json"
    deps.write_text(
        json.dumps(
            [
                {
                    "id": "A",
                    "lat": 51.18,
                    "lon": 5.65,
                    "start": "2024-05-01T00:00:00",
                    "end": "2024-05-01T23:59:59",
                }
            ]
        )
    )
    r = cli("db", "export", field["db"], "-f", "camtrap-dp", "-o", field["tmp"] / "dp", "--deployments", deps)
    assert r.exit_code == 2
    assert r.output.startswith("error: 2 photo(s) fall in no deployment")
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1


def test_folder_without_gps_asks_for_a_deployment_file(tmp_path):
    p = write_photo(tmp_path / "noGPS" / "a.jpg", "2024:05:01 06:30:00", None)
    fill_db(tmp_path / "d.db", [{"path": str(p), "captured_at": "2024-05-01T06:30:00", **_decided(FOX, 0.9)}])
    r = cli("db", "export", tmp_path / "d.db", "-f", "camtrap-dp", "-o", tmp_path / "dp")
    assert r.exit_code == 2 and "--deployments" in r.output and "no photo there has GPS" in r.output


# --- MegaDetector JSON, CSV ---------------------------------------------------------------------


def test_megadetector_json_for_timelapse(field):
    out = field["tmp"] / "md.json"
    assert cli("db", "export", field["db"], "-f", "megadetector", "-o", out).exit_code == 0
    md = json.loads(out.read_text())
    assert md["info"]["format_version"] == "1.4"
    assert md["info"]["classifier"] == "test-lit 0.1"
    assert md["detection_categories"]["1"] == "animal"
    assert md["classification_categories"] == {
        "0": "Vulpes vulpes",
        "1": "Meles meles",
        "2": "Capreolus capreolus",
    }
    images = {i["file"]: i for i in md["images"]}
    assert set(images) == {f"siteA/IMG_000{i}.JPG" for i in range(1, 5)} | {
        "siteB/IMG_0101.JPG",
        "siteB/IMG_0102.JPG",
    }
    fox = images["siteA/IMG_0001.JPG"]["detections"]
    assert fox == [
        {
            "category": "1",
            "conf": 0.9,
            "bbox": [0.0, 0.0, 1.0, 1.0],
            "classifications": [["0", 0.9], ["1", 0.1]],
        }
    ]
    assert "cannot decode" in images["siteB/IMG_0102.JPG"]["failure"]
    assert images["siteB/IMG_0102.JPG"]["detections"] is None
    # every file is found relative to the folder Timelapse opens
    root = Path(md["info"]["classifier_metadata"]["image_root"])
    assert all((root / f).is_file() for f in images)


def test_blank_class_gives_no_detection(tmp_path):
    p = write_photo(tmp_path / "s" / "a.jpg", "2024:05:01 06:30:00", (1.0, 2.0))
    fill_db(
        tmp_path / "d.db",
        [
            {
                "path": str(p),
                "captured_at": "2024-05-01T06:30:00",
                "latitude": 1.0,
                "longitude": 2.0,
                **_decided((9, "empty", ""), 0.95),
            }
        ],
    )
    assert (
        cli("db", "export", tmp_path / "d.db", "-f", "megadetector", "-o", tmp_path / "md.json").exit_code
        == 0
    )
    assert json.loads((tmp_path / "md.json").read_text())["images"][0]["detections"] == []
    assert cli("db", "export", tmp_path / "d.db", "-f", "camtrap-dp", "-o", tmp_path / "dp").exit_code == 0
    assert {o["observationType"] for o in read_csv(tmp_path / "dp" / "observations.csv")} == {"blank"}


def test_csv_one_row_per_media(field):
    out = field["tmp"] / "det.csv"
    assert cli("db", "export", field["db"], "-f", "csv", "-o", out).exit_code == 0
    rows = {Path(r["path"]).name: r for r in read_csv(out)}
    assert len(rows) == 6
    fox = rows["IMG_0001.JPG"]
    assert (fox["top_name"], fox["top_score"], fox["pred2_name"], fox["pred2_score"]) == (
        "Vulpes vulpes",
        "0.9000",
        "Meles meles",
        "0.1000",
    )
    assert float(fox["latitude"]) == pytest.approx(51.1801) and fox["captured_at"] == "2024-05-01T06:30:00"
    assert fox["event_id"] == rows["IMG_0003.JPG"]["event_id"] != rows["IMG_0004.JPG"]["event_id"]
    assert (
        rows["IMG_0102.JPG"]["status"] == "failed" and rows["IMG_0004.JPG"]["observation_type"] == "unknown"
    )


# --- XMP ----------------------------------------------------------------------------------------


def _bag(desc, prop):
    return [li.text for li in desc.iter(f"{RDF}li") if li in list(desc.find(prop).iter(f"{RDF}li"))]


def _keywords(path: Path) -> dict[str, list[str]]:
    root = ET.parse(path).getroot()
    desc = root.find(f"{RDF}RDF/{RDF}Description")
    return {
        "subject": [li.text for li in desc.find(f"{DC}subject").iter(f"{RDF}li")],
        "hier": [li.text for li in desc.find(f"{LR}hierarchicalSubject").iter(f"{RDF}li")],
        "digikam": [li.text for li in desc.find(f"{DK}TagsList").iter(f"{RDF}li")],
    }


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*.JPG"))}


def test_xmp_sidecars_hierarchical_and_photos_untouched(field):
    before = _digest(field["photos"])
    r = cli("db", "export", field["db"], "-f", "xmp", "--bundle", field["bundle"])
    assert r.exit_code == 0, r.output and "wrote 4 XMP sidecar(s)" in r.output
    assert _digest(field["photos"]) == before
    kw = _keywords(field["a"] / "IMG_0001.JPG.xmp")
    assert kw["hier"] == ["Animalia|Chordata|Mammalia|Carnivora|Canidae|Vulpes|Vulpes vulpes"]
    assert kw["digikam"] == ["Animalia/Chordata/Mammalia/Carnivora/Canidae/Vulpes/Vulpes vulpes"]
    assert kw["subject"] == ["Vulpes vulpes", "red fox"]
    assert not (field["a"] / "IMG_0004.JPG.xmp").exists()  # uncertain: no species tag
    assert not (field["b"] / "IMG_0102.JPG.xmp").exists()  # failed


def test_xmp_merges_existing_sidecar_and_is_idempotent(field):
    existing = field["a"] / "IMG_0001.xmp"
    existing.write_text(
        '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/" '
        'xmp:Rating="4" crs:Exposure2012="+0.35">'
        "<dc:subject><rdf:Bag><rdf:li>holiday</rdf:li></rdf:Bag></dc:subject>"
        '</rdf:Description></rdf:RDF></x:xmpmeta>\n<?xpacket end="w"?>\n'
    )
    for _ in range(2):
        r = cli(
            "db", "export", field["db"], "-f", "xmp", "--xmp-style", "lightroom", "--bundle", field["bundle"]
        )
        assert r.exit_code == 0, r.output
    kw = _keywords(existing)
    assert kw["subject"] == ["holiday", "Vulpes vulpes", "red fox"]
    assert kw["hier"] == ["Animalia|Chordata|Mammalia|Carnivora|Canidae|Vulpes|Vulpes vulpes"]
    desc = ET.parse(existing).getroot().find(f"{RDF}RDF/{RDF}Description")
    assert desc.get("{http://ns.adobe.com/xap/1.0/}Rating") == "4"
    assert desc.get("{http://ns.adobe.com/camera-raw-settings/1.0/}Exposure2012") == "+0.35"
    assert not (field["a"] / "IMG_0001.JPG.xmp").exists()


def test_xmp_to_another_folder_and_broken_sidecar(field):
    out = field["tmp"] / "sidecars"
    assert cli("db", "export", field["db"], "-f", "xmp", "-o", out).exit_code == 0
    # without a bundle the keyword is the name alone
    assert _keywords(out / "siteB" / "IMG_0101.JPG.xmp")["hier"] == ["Capreolus capreolus"]
    assert not list(field["photos"].rglob("*.xmp"))
    (field["a"] / "IMG_0001.JPG.xmp").write_text("<x:xmpmeta")
    r = cli("db", "export", field["db"], "-f", "xmp")
    assert r.exit_code == 2 and "not valid XML" in r.output and "Traceback" not in r.output


# --- summary, bad input, rules ------------------------------------------------------------------


def test_summary_counts(field):
    r = cli("db", "summary", field["db"])
    assert r.exit_code == 0, r.output
    from lit_edge.db.summary import summarise

    s = summarise(field["db"])
    assert [(sc.name, sc.count) for sc in s.species] == [
        ("Vulpes vulpes", 2),
        ("Capreolus capreolus", 1),
        ("Meles meles", 1),
    ]
    assert s.per_day == {
        "2024-05-01": {"media": 4, "named": 3, "blank": 0},
        "2024-05-02": {"media": 2, "named": 1, "blank": 0},
    }
    assert s.failures == {"cannot decode image": 1}
    for text in (
        "Vulpes vulpes",
        "2024-05-02",
        "cannot decode image",
        "6 media, 5 classified (0 blank), 1 failed",
    ):
        assert text in r.output


@pytest.mark.parametrize("kind", ["missing", "not-sqlite", "foreign"])
def test_bad_database_is_one_line(tmp_path, kind):
    db = tmp_path / "x.db"
    if kind == "not-sqlite":
        db.write_text("hello")
    elif kind == "foreign":
        import sqlite3

        sqlite3.connect(db).execute("CREATE TABLE t (a)").connection.commit()
    for args in (
        ("db", "summary", db),
        ("db", "export", db, "-f", "csv", "-o", tmp_path / "o.csv"),
        ("report", db),
    ):
        r = cli(*args)
        assert r.exit_code == 2, r.output
        assert r.output.startswith("error: ") and len(r.output.strip().splitlines()) == 1
    assert kind != "missing" or not db.exists()  # reading never creates a database


def test_event_vote_rule():
    fox, badger = ("Vulpes vulpes", "species"), ("Meles meles", "species")
    c = classify_event(
        [
            Classification("animal", *fox, 0.6),
            Classification("animal", *badger, 0.9),
            Classification("animal", *fox, 0.5),
            Classification("blank", probability=0.9),
        ]
    )
    assert (c.scientific_name, round(c.probability, 3)) == ("Vulpes vulpes", round(1.1 / 3, 3))
    assert classify_event([Classification("unknown"), Classification("blank")]).observation_type == "unknown"
    assert (
        classify_event([Classification("blank"), Classification("unclassified")]).observation_type == "blank"
    )
    assert classify_event([Classification("unclassified")]).observation_type == "unclassified"
    assert DecisionRule().min_score == 0.0


def test_min_score_turns_weak_decisions_unknown(field):
    out = field["tmp"] / "det.csv"
    assert cli("db", "export", field["db"], "-f", "csv", "-o", out, "--min-score", "0.75").exit_code == 0
    types = {Path(r["path"]).name: r["observation_type"] for r in read_csv(out)}
    assert types["IMG_0001.JPG"] == "animal" and types["IMG_0002.JPG"] == "unknown"


def test_validation_is_offline_and_refuses_unshipped_urls(field):
    out = field["tmp"] / "dp"
    assert cli("db", "export", field["db"], "-f", "camtrap-dp", "-o", out).exit_code == 0
    package = json.loads((out / "datapackage.json").read_text())
    package["profile"] = "https://raw.githubusercontent.com/tdwg/camtrap-dp/9.9/camtrap-dp-profile.json"
    (out / "datapackage.json").write_text(json.dumps(package))
    errors = validate(out)
    assert any("no shipped copy" in e and "9.9" in e for e in errors)


def test_exporters_import_no_torch(tmp_path):
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from lit_edge.cli.app import app\n"
        "import lit_edge.fielddata.camtrapdp, lit_edge.fielddata.megadetector, lit_edge.fielddata.csvout\n"
        "import lit_edge.fielddata.xmp, lit_edge.fielddata.report, lit_edge.db.summary\n"
        "for args in (['db', 'export', '--help'], ['db', 'summary', '--help'], ['report', '--help']):\n"
        "    assert CliRunner().invoke(app, args).exit_code == 0\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_empty_database(tmp_path):
    fill_db(tmp_path / "d.db", [])
    r = cli("db", "export", tmp_path / "d.db", "-f", "camtrap-dp", "-o", tmp_path / "dp")
    assert r.exit_code == 2 and "no photo with a timestamp" in r.output
    assert (
        cli("db", "export", tmp_path / "d.db", "-f", "megadetector", "-o", tmp_path / "md.json").exit_code
        == 0
    )
    assert json.loads((tmp_path / "md.json").read_text())["images"] == []
    assert cli("db", "summary", tmp_path / "d.db").exit_code == 0
    assert cli("report", tmp_path / "d.db", "-o", tmp_path / "r.html").exit_code == 0


def test_validation_never_reads_files_outside_the_package(field, tmp_path):
    out = field["tmp"] / "dp"
    assert cli("db", "export", field["db"], "-f", "camtrap-dp", "-o", out).exit_code == 0
    secret = tmp_path / "elsewhere" / "media.csv"
    secret.parent.mkdir()
    secret.write_text((out / "media.csv").read_text())
    package = json.loads((out / "datapackage.json").read_text())
    package["resources"][1]["path"] = str(secret)
    (out / "datapackage.json").write_text(json.dumps(package))
    assert any("not safe" in e for e in validate(out))


def test_xmp_merges_into_the_description_that_holds_the_keywords(field):
    """ExifTool-style packets have one rdf:Description per namespace: no property is written twice."""
    sidecar = field["b"] / "IMG_0101.JPG.xmp"
    sidecar.write_text(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/"><xmp:Rating>2</xmp:Rating>'
        "</rdf:Description>"
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        "<dc:subject><rdf:Bag><rdf:li>night</rdf:li></rdf:Bag></dc:subject></rdf:Description>"
        "</rdf:RDF></x:xmpmeta>"
    )
    assert cli("db", "export", field["db"], "-f", "xmp").exit_code == 0
    rdf = ET.parse(sidecar).getroot().find(f"{RDF}RDF")
    subjects = rdf.findall(f"{RDF}Description/{DC}subject")
    assert len(subjects) == 1
    assert [li.text for li in subjects[0].iter(f"{RDF}li")] == ["night", "Capreolus capreolus", "roe deer"]
    assert rdf.find(f"{RDF}Description/{{http://ns.adobe.com/xap/1.0/}}Rating").text == "2"


def test_taxonomy_from_a_tar_bundle(field, tmp_path):
    from bundle_factory import make_bundle
    from lit_edge.bundle import MANIFEST, Manifest, pack, write_manifest

    folder = make_bundle(tmp_path / "real-bundle")  # a real bundle, with this test's species list
    shutil.copy(field["bundle"] / "labels.csv", folder / "labels.csv")
    manifest = Manifest.from_dict(json.loads((folder / MANIFEST).read_text()), folder / MANIFEST)
    write_manifest(folder, manifest)
    tar = pack(folder, tmp_path / "bundle.tar")
    assert cli("db", "export", field["db"], "-f", "xmp", "-o", tmp_path / "x", "--bundle", tar).exit_code == 0
    hier = _keywords(tmp_path / "x" / "siteA" / "IMG_0003.JPG.xmp")["hier"]
    assert hier == ["Animalia|Chordata|Mammalia|Carnivora|Mustelidae|Meles|Meles meles"]
