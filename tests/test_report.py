"""The HTML report, rendered by a real headless Chromium: it must render with no console errors.

Chromium loads the file with networking off; the report's own script writes page errors into
``#js-errors`` and marks ``<body data-rendered="ok">``, and Chromium's console log goes to stderr.
A negative control (the same report with a script error and a remote image injected) proves the
harness catches both kinds of failure. Skipped, visibly, where no Chromium is installed.
"""

from __future__ import annotations

import re

import pytest

from fielddata_fixtures import CHROMIUM, cli, fill_db, make_field, parse, render, write_photo

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium here (Debian: apt-get install chromium)"
)


@pytest.fixture
def field(tmp_path):
    """Two camera folders of real JPEGs and a database of their decisions (see fielddata_fixtures)."""
    return make_field(tmp_path)


@needs_chromium
def test_report_renders_cleanly_in_chromium(field, tmp_path):
    out = tmp_path / "report.html"
    r = cli("report", field["db"], "-o", out)
    assert r.exit_code == 0, r.output
    html = out.read_text()
    # self-contained: every image is inline, nothing names a remote resource
    assert not re.search(r"""(src|href)=["'](?!data:)""", html)

    dom, console = render(out, tmp_path / "profile")
    page = parse(dom)
    assert console == []
    assert page.errors.strip() == ""
    assert page.body.get("data-rendered") == "ok"
    # one thumbnail per named photo (fox x2, badger, deer), each a decodable inline JPEG
    assert len(page.imgs) == 4 == int(page.body["data-images"])
    assert all(src.startswith("data:image/jpeg;base64,/9j/") for src in page.imgs)
    text = " ".join(page.text)
    for expected in (
        "Vulpes vulpes",
        "Meles meles",
        "Capreolus capreolus",
        "IMG_0102.JPG",
        "cannot decode image",
    ):
        assert expected in text
    assert "test-lit 0.1" in text and '"top_k": 3' in text  # run settings and model
    # bars: 3 species + 2 days x (photos, named)
    assert page.rects == 3 + 4


@needs_chromium
def test_harness_catches_script_errors_and_remote_loads(field, tmp_path):
    out = tmp_path / "report.html"
    assert cli("report", field["db"], "-o", out).exit_code == 0
    bad = tmp_path / "bad.html"
    bad.write_text(
        out.read_text().replace(
            "<h2>Species</h2>",
            '<h2>Species</h2><img src="https://example.org/x.png"><script>nosuch();</script>',
        )
    )
    dom, console = render(bad, tmp_path / "profile")
    page = parse(dom)
    assert "nosuch is not defined" in page.errors and "https://example.org/x.png" in page.errors
    assert any("nosuch" in line for line in console)
    assert any("Content Security Policy" in line for line in console)


def test_report_lists_unreadable_photos_without_thumbnails(tmp_path):
    gone = tmp_path / "cam" / "gone.jpg"
    kept = write_photo(tmp_path / "cam" / "kept.jpg", "2024:05:01 06:30:00", (1.0, 2.0))
    rows = [
        {
            "path": str(p),
            "captured_at": "2024-05-01T06:30:00",
            "top_name": "Vulpes vulpes",
            "top_rank": "species",
            "top_score": 0.8,
            "predictions": [(0, "Vulpes vulpes", "red fox", 0.8)],
        }
        for p in (gone, kept)
    ]
    fill_db(tmp_path / "d.db", rows)
    r = cli("report", tmp_path / "d.db", "-o", tmp_path / "r.html")
    assert r.exit_code == 0, r.output
    page = parse((tmp_path / "r.html").read_text())
    assert len(page.imgs) == 1 and "not found" in " ".join(page.text)
    assert "No failures." in " ".join(page.text)
