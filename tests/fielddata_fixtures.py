"""Test helpers for the field-data tests: real JPEGs with EXIF, and a database filled per the schema.

``write_photo`` makes a small real JPEG with PIL, with EXIF DateTimeOriginal and GPS, the way a
camera trap writes them. ``fill_db`` writes rows into a database that ``lit_edge.db.schema``
created, for the unit tests that need precise control over the decisions (the end-to-end tests use
a real ``lit-edge tag`` run instead).
"""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from html.parser import HTMLParser
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from lit_edge.bundle import Label, write_labels
from lit_edge.cli.app import app
from lit_edge.db import schema


def _dms(value: float) -> tuple[Fraction, Fraction, Fraction]:
    value = abs(value)
    d = int(value)
    m = int((value - d) * 60)
    s = round(((value - d) * 60 - m) * 60 * 1000)
    return (Fraction(d, 1), Fraction(m, 1), Fraction(s, 1000))


def write_photo(
    path: Path,
    when: str | None,
    gps: tuple[float, float] | None = None,
    colour: tuple[int, int, int] = (120, 90, 60),
    size: tuple[int, int] = (96, 64),
    stripes: bool = True,
) -> Path:
    """A real JPEG; ``when`` like ``2024:05:01 06:30:00`` (EXIF's own format); ``stripes=False``: one colour."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", size, colour)
    # a little structure so thumbnails are not flat
    for x in range(0, size[0], 8) if stripes else ():
        for y in range(size[1] // 3, size[1] // 3 * 2):
            img.putpixel((x, y), (255 - colour[0], 255 - colour[1], 255 - colour[2]))
    exif = Image.Exif()
    if when:
        exif[0x0132] = when
        exif.get_ifd(0x8769)[0x9003] = when
    if gps:
        g = exif.get_ifd(0x8825)
        g[1] = "N" if gps[0] >= 0 else "S"
        g[2] = _dms(gps[0])
        g[3] = "E" if gps[1] >= 0 else "W"
        g[4] = _dms(gps[1])
    img.save(path, "JPEG", exif=exif.tobytes(), quality=90)
    return path


def _insert(conn, table: str, row: dict) -> int:
    cols = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    return conn.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", list(row.values())).lastrowid


def fill_db(db_path: Path, media: list[dict], run: dict | None = None) -> Path:
    """Write ``runs``/``media``/``predictions`` rows; ``media[i]['predictions']`` a list."""
    conn = schema.connect(db_path)
    run_row = {
        "command": "tag",
        "source": "photos",
        "bundle": "",
        "model_name": "test-lit",
        "model_version": "0.1",
        "backend": "onnxruntime-cpu",
        "flavour": "fp32",
        "settings": '{"top_k": 3, "threshold": 0.5}',
        "host": "test",
        "lit_edge_version": "0.1.0",
        "started_at": "2024-06-01T10:00:00Z",
        "finished_at": "2024-06-01T10:01:00Z",
        "status": "finished",
    }
    run_row.update(run or {})
    conn.execute("BEGIN")
    run_id = _insert(conn, "runs", run_row)
    for m in media:
        m = dict(m)
        preds = m.pop("predictions", [])
        row = {"run_id": run_id, "frame_index": -1, "status": "done", **m}
        media_id = _insert(conn, "media", row)
        for position, (label_id, name, common, score) in enumerate(preds, start=1):
            _insert(
                conn,
                "predictions",
                {
                    "media_id": media_id,
                    "position": position,
                    "label_id": label_id,
                    "scientific_name": name,
                    "common_name": common,
                    "score": score,
                },
            )
    conn.execute("COMMIT")
    conn.close()
    return db_path


FOX = (0, "Vulpes vulpes", "red fox")
BADGER = (1, "Meles meles", "European badger")
DEER = (2, "Capreolus capreolus", "roe deer")
RANKS = {
    "Vulpes vulpes": ("Animalia", "Chordata", "Mammalia", "Carnivora", "Canidae", "Vulpes"),
    "Meles meles": ("Animalia", "Chordata", "Mammalia", "Carnivora", "Mustelidae", "Meles"),
    "Capreolus capreolus": ("Animalia", "Chordata", "Mammalia", "Artiodactyla", "Cervidae", "Capreolus"),
}


def _decided(top, score, second=BADGER):
    return {
        "top_label_id": top[0],
        "top_name": top[1],
        "top_rank": "species",
        "top_score": score,
        "predictions": [(*top, score), (*second, round(1 - score, 3))],
    }


def make_field(tmp_path: Path) -> dict:
    """Two camera folders of real JPEGs and a database of their (controlled) decisions."""
    photos = tmp_path / "card"
    a, b = photos / "siteA", photos / "siteB"
    rows = []

    def add(folder, name, when, gps, status="done", **decision):
        p = write_photo(folder / name, when.replace("-", ":").replace("T", " "), gps)
        iso = when if when else None
        row = {
            "path": str(p.resolve()),
            "captured_at": iso,
            "time_source": "exif",
            "latitude": gps[0] if gps else None,
            "longitude": gps[1] if gps else None,
            "width": 96,
            "height": 64,
            "file_size": p.stat().st_size,
            "status": status,
            "processed_at": "2024-06-01T10:00:30Z",
        }
        row.update(decision)
        rows.append(row)
        return p

    # site A: a burst of three (0 s, 20 s, 50 s) then a lone photo ten minutes later
    add(a, "IMG_0001.JPG", "2024-05-01T06:30:00", (51.1801, 5.6501), **_decided(FOX, 0.9))
    add(a, "IMG_0002.JPG", "2024-05-01T06:30:20", (51.1801, 5.6501), **_decided(FOX, 0.7))
    add(a, "IMG_0003.JPG", "2024-05-01T06:30:50", (51.1801, 5.6501), **_decided(BADGER, 0.6, FOX))
    add(
        a,
        "IMG_0004.JPG",
        "2024-05-01T06:40:50",
        (51.1801, 5.6501),
        top_name="uncertain",
        top_rank="uncertain",
        top_score=0.3,
        predictions=[(*DEER, 0.3), (*FOX, 0.25)],
    )
    # site B: a deer the next day, and a photo the runtime could not decode
    add(b, "IMG_0101.JPG", "2024-05-02T21:15:00", (51.2, 5.7), **_decided(DEER, 0.8))
    broken = b / "IMG_0102.JPG"
    broken.write_bytes(b"not a jpeg")
    rows.append(
        {
            "path": str(broken.resolve()),
            "captured_at": "2024-05-02T21:15:30",
            "time_source": "mtime",
            "status": "failed",
            "error": f"{broken.resolve()}: cannot decode image",
        }
    )
    db = tmp_path / "detections.db"
    fill_db(db, rows)
    labels = tmp_path / "bundle"
    labels.mkdir()
    write_labels(
        labels / "labels.csv",
        [
            Label(
                id=i,
                scientific_name=n,
                common_name=c,
                ranks=tuple(
                    zip(
                        ("kingdom", "phylum", "class", "order", "family", "genus", "species"),
                        (*RANKS[n], n),
                        strict=True,
                    )
                ),
            )
            for i, n, c in (FOX, BADGER, DEER)
        ],
    )
    return {"db": db, "photos": photos, "a": a, "b": b, "bundle": labels, "tmp": tmp_path}


runner = CliRunner()


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


# --- headless Chromium (the report tests) ---

CHROMIUM = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None
)


def render(html: Path, profile: Path) -> tuple[str, list[str]]:
    """Dump the DOM after scripts ran; return it and Chromium's console lines."""
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            html.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return proc.stdout, console


class _Collect(HTMLParser):
    """Gathers what the test checks from the rendered DOM (an independent HTML reader)."""

    def __init__(self):
        super().__init__()
        self.body: dict = {}
        self.imgs: list[str] = []
        self.rects = 0
        self.text: list[str] = []
        self.errors = ""
        self._in_errors = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body = a
        elif tag == "img":
            self.imgs.append(a.get("src", ""))
        elif tag == "rect" and "class" in a:
            self.rects += 1
        elif tag == "pre" and a.get("id") == "js-errors":
            self._in_errors = True

    def handle_endtag(self, tag):
        if tag == "pre":
            self._in_errors = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_errors:
            self.errors += data


def parse(dom: str) -> _Collect:
    c = _Collect()
    c.feed(dom)
    return c
