"""Test helpers for the field-data tests: real JPEGs with EXIF, and a database filled per the schema.

``write_photo`` makes a small real JPEG with PIL, with EXIF DateTimeOriginal and GPS, the way a
camera trap writes them. ``fill_db`` writes a detection database through sqlite-utils with exactly
the columns of ``lit_edge.device.schema``, for the unit tests that need precise control over the
decisions (the end-to-end tests use a real ``lit-edge tag`` run instead).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import sqlite_utils
from PIL import Image

from lit_edge.device import schema


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
) -> Path:
    """A real JPEG; ``when`` like ``2024:05:01 06:30:00`` (EXIF's own format)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", size, colour)
    # a little structure so thumbnails are not flat
    for x in range(0, size[0], 8):
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


def fill_db(db_path: Path, media: list[dict], run: dict | None = None) -> sqlite_utils.Database:
    """Write ``runs``/``media``/``predictions`` per the schema; ``media[i]['predictions']`` a list."""
    db = sqlite_utils.Database(db_path)
    db["runs"].create(schema.RUNS, pk="id", if_not_exists=True)
    db["media"].create(schema.MEDIA, pk="id", if_not_exists=True)
    db["predictions"].create(schema.PREDICTIONS, pk="id", if_not_exists=True)
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
    run_id = db["runs"].insert(run_row).last_pk
    for m in media:
        m = dict(m)
        preds = m.pop("predictions", [])
        row = {"run_id": run_id, "frame_index": -1, "status": "done", **m}
        media_id = db["media"].insert(row).last_pk
        for rank, (label_id, name, common, score) in enumerate(preds, start=1):
            db["predictions"].insert(
                {
                    "media_id": media_id,
                    "rank": rank,
                    "label_id": label_id,
                    "scientific_name": name,
                    "common_name": common,
                    "score": score,
                }
            )
    return db
