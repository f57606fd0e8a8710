"""Hostile names in every export: photos named ``=HYPERLINK(...)``, ``<script>``, quotes and ``&``,
and a species whose common name is markup, tagged and exported through the real CLI.

Spreadsheet-bound cells (the CSV export, Camtrap DP's CSVs) must never start with a formula
character (OWASP's CSV injection advice); the HTML report must show the names as text (Chromium
runs it: no script of theirs runs, nothing errors); XMP sidecars must be well-formed XML that
reads back the exact names.
"""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from bundle_factory import COLOURS, make_bundle, solid, write_jpeg
from fielddata_fixtures import CHROMIUM, cli, parse, render
from lit_edge.bundle import MANIFEST, Manifest, read_labels, write_labels, write_manifest
from lit_edge.fielddata.cells import TRIGGERS, safe_cell

# a file name cannot hold '/': the issue's =HYPERLINK("http://x","y").jpg is, on disk, the file
# x","y").jpg in the folder =HYPERLINK("http: -- and the CSV's relative 'file' is that formula
HYPERLINK = '=HYPERLINK("http:/x","y").jpg'
SCRIPT = "<script>alert(1)<script> & \"q\" 'a'.jpg"  # no '/': a file name cannot hold one
NAMES = {
    HYPERLINK: "Rubra rosea",
    "=cmd|' C calc'!A0.jpg": "Caerulea mare",
    "+cmd.jpg": "Viridis silva",
    "-2+3.jpg": "Caerulea mare",
    "@SUM(A1).jpg": "Rubra rosea",
    "\tTAB.jpg": "Viridis silva",
    SCRIPT: "Rubra rosea",
    "plain.jpg": "Caerulea mare",
}
COMMON = '<script>alert("x")</script> & \'red\' "rose-bird"'  # Rubra rosea's common name


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+44 20 7946 0000", "'+44 20 7946 0000"),
        ("-cmd|' /C calc'!A0", "'-cmd|' /C calc'!A0"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-3.7", "-3.7"),  # a longitude is data
        ("+1e-5", "+1e-5"),
        (-3.7, -3.7),
        (-1, -1),
        ("a=b", "a=b"),
        ("", ""),
        (None, None),
    ],
)
def test_safe_cell(value, expected):
    assert safe_cell(value) == expected


def _bundle_with_a_markup_name(folder: Path) -> Path:
    make_bundle(folder)
    labels = read_labels(folder / "labels.csv")
    labels[0] = type(labels[0])(labels[0].id, labels[0].scientific_name, COMMON, labels[0].ranks)
    write_labels(folder / "labels.csv", labels)
    write_manifest(folder, Manifest.from_dict(json.loads((folder / MANIFEST).read_text()), folder / MANIFEST))
    return folder


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    bundle = _bundle_with_a_markup_name(root / "bundle")
    photos = root / "photos"
    photos.mkdir()
    (photos / '=HYPERLINK("http:').mkdir()
    for name, species in NAMES.items():
        write_jpeg(photos / name, solid(COLOURS[species]))
    db = root / "tagged.db"
    r = cli("tag", photos, "--db", db, "--bundle", bundle, "--no-progress", "--workers", "1")
    assert r.exit_code == 0, r.output
    return {"root": root, "photos": photos, "db": db, "bundle": bundle}


def _assert_no_formula_cells(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for col, cell in row.items():
            assert not (cell.startswith(TRIGGERS) and safe_cell(cell) != cell), f"{path.name} {col}: {cell!r}"
    return rows


def test_csv_export_neutralises_formula_names(tagged):
    out = tagged["root"] / "detections.csv"
    r = cli("db", "export", tagged["db"], "-f", "csv", "-o", out)
    assert r.exit_code == 0, r.output
    rows = _assert_no_formula_cells(out)
    files = {row["file"] for row in rows}
    assert (
        "'" + HYPERLINK in files
        and "'=cmd|' C calc'!A0.jpg" in files
        and "'@SUM(A1).jpg" in files
        and "'\tTAB.jpg" in files
    )
    assert "'-2+3.jpg" in files and "'+cmd.jpg" in files and SCRIPT in files and "plain.jpg" in files
    assert len(rows) == len(NAMES)
    by_file = {row["file"].lstrip("'"): row for row in rows}
    assert by_file[HYPERLINK]["top_name"] == "Rubra rosea"  # the rows are the photos' own


def test_camtrap_dp_csvs_neutralise_formula_names_and_still_validate(tagged):
    out = tagged["root"] / "camtrap"
    deployments = tagged["root"] / "deployments.csv"  # hostile ids too; negative coordinates are data
    deployments.write_text(
        "deploymentID,latitude,longitude,start,end,camera,folder\n"
        "-cam A,-33.9,-70.6,2000-01-01T00:00:00Z,2100-01-01T00:00:00Z,@RCNX,photos\n"
    )
    r = cli("db", "export", tagged["db"], "-f", "camtrap-dp", "-o", out, "--bundle", tagged["bundle"],
            "--deployments", deployments)  # fmt: skip
    assert r.exit_code == 0, r.output
    for table in ("deployments.csv", "media.csv", "observations.csv"):
        _assert_no_formula_cells(out / table)
    (dep,) = _assert_no_formula_cells(out / "deployments.csv")
    assert (
        dep["deploymentID"] == "'-cam A" and float(dep["latitude"]) == -33.9 and dep["cameraID"] == "'@RCNX"
    )
    names = {row["fileName"] for row in _assert_no_formula_cells(out / "media.csv")}
    assert '\'x","y").jpg' not in names and SCRIPT in names and "'@SUM(A1).jpg" in names
    paths = {row["filePath"] for row in _assert_no_formula_cells(out / "media.csv")}
    assert "'" + HYPERLINK in paths
    pytest.importorskip("frictionless")
    r = cli("db", "validate", out)
    assert r.exit_code == 0, r.output


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.text, self.scripts, self.alts = [], 0, []

    def handle_starttag(self, tag, attrs):
        self.scripts += tag == "script"
        if tag == "img":
            self.alts.append(dict(attrs).get("alt"))

    def handle_data(self, data):
        self.text.append(data)


def test_report_shows_hostile_names_as_text(tagged):
    out = tagged["root"] / "report.html"
    r = cli("report", tagged["db"], "-o", out)
    assert r.exit_code == 0, r.output
    html = out.read_text(encoding="utf-8")
    assert "<script>alert" not in html and "alert(1)<script>" not in html
    page = _Text()
    page.feed(html)
    text = "".join(page.text)
    assert SCRIPT in text and 'x","y").jpg' in text  # the names, unescaped back, as text
    assert SCRIPT in page.alts  # and in attributes, quotes and all
    assert page.scripts == html.count("<script")  # only the report's own scripts
    if CHROMIUM is None:
        pytest.skip("no Chromium here to run the report (Debian: apt-get install chromium)")
    dom, console = render(out, tagged["root"] / "profile")
    rendered = parse(dom)
    assert console == [] and rendered.errors.strip() == ""
    assert rendered.body.get("data-rendered") == "ok"
    assert SCRIPT in " ".join(rendered.text)


def test_xmp_sidecars_of_hostile_names_are_well_formed_and_exact(tagged):
    r = cli("db", "export", tagged["db"], "-f", "xmp", "--bundle", tagged["bundle"])
    assert r.exit_code == 0, r.output
    for name, species in NAMES.items():
        sidecar = tagged["photos"] / (name + ".xmp")
        assert sidecar.is_file(), sidecar
        tree = ET.parse(sidecar)  # well-formed, whatever the name
        words = {el.text for el in tree.iter() if el.tag.endswith("}li")}
        assert species in words
        if species == "Rubra rosea":
            assert COMMON in words  # the markup name reads back exactly
    raw = (tagged["photos"] / (HYPERLINK + ".xmp")).read_text(encoding="utf-8")
    assert "<script>" not in raw and "&lt;script&gt;" in raw
