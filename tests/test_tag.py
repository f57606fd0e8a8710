"""`lit-edge tag` for real: CLI, real files, a real SQLite database, kills and resumes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from bundle_factory import COLOURS, giant_grey_jpeg, jpeg_with_exif, make_bundle, solid, write_jpeg
from lit_edge.cli.app import app

runner = CliRunner()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle"))


def _rows(db: Path, sql: str, args=()):
    con = sqlite3.connect(db)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def _media(db: Path) -> dict[str, tuple]:
    rows = _rows(
        db,
        "SELECT path, status, error, top_name, top_rank, width, height, captured_at, time_source FROM media",
    )
    return {Path(r[0]).name: r[1:] for r in rows}


def test_tag_folder_classifies_every_photo_and_prints_a_summary(tmp_path, bundle):
    photos = tmp_path / "card"
    (photos / "deep" / "er").mkdir(parents=True)
    for name, rgb in COLOURS.items():
        write_jpeg(photos / f"{name}.jpg", solid(rgb))
    write_jpeg(photos / "deep" / "er" / "again.JPG", solid(COLOURS["Viridis silva"]))
    (photos / "notes.txt").write_text("field notes, not a photo")
    result = runner.invoke(app, ["tag", str(photos), "--bundle", str(bundle), "--no-progress"])
    assert result.exit_code == 0, result.output
    db = photos / "lit-edge.db"  # the documented default
    media = _media(db)
    assert set(media) == {*(f"{n}.jpg" for n in COLOURS), "again.JPG"}
    for name in COLOURS:
        assert media[f"{name}.jpg"][:4] == ("done", None, name, "species")
    assert "2  Viridis silva (species)" in result.output
    assert "database holds 5 done, 0 failed" in result.output
    preds = _rows(
        db, "SELECT media_id, COUNT(*), MIN(position), MAX(position) FROM predictions GROUP BY media_id"
    )
    assert len(preds) == 5 and all(p[1:] == (4, 1, 4) for p in preds)  # top-5 of 4 classes
    (run,) = _rows(db, "SELECT command, status, backend, flavour, model_name FROM runs")
    # auto: the first installed backend (OpenVINO on x86 where installed, else ONNX Runtime) and its
    # default tower, or fp32 where this bundle lacks it
    from lit_edge.bundle import load
    from lit_edge.device import backends

    auto = backends.get(
        next(n for n in backends.available() if backends.get(n).device is backends.Device.CPU)
    )
    flavour = backends.flavour_for(load(bundle), auto, None)
    assert run == ("tag", "finished", auto.name, flavour, "colour-test")
    assert _rows(db, "PRAGMA journal_mode") == [("wal",)]


def _bad_folder(root: Path) -> dict[str, str | None]:
    """Every awkward input the issue lists; value = expected error fragment, None = must succeed."""
    root.mkdir()
    noise = np.random.default_rng(1).integers(0, 255, (300, 300, 3), dtype=np.uint8)
    full = cv2.imencode(".jpg", noise)[1].tobytes()
    (root / "truncated.jpg").write_bytes(full[: len(full) // 2])
    (root / "zero.jpg").write_bytes(b"")
    (root / "text.jpg").write_text("this is not a JPEG")
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 1], rgba[..., 3] = 255, 255  # opaque green
    cv2.imwrite(str(root / "alpha.png"), rgba)
    sixteen = np.zeros((40, 40, 3), np.uint16)
    sixteen[..., 0] = 65535  # blue in BGR
    cv2.imwrite(str(root / "sixteen.png"), sixteen)
    jpeg_with_exif(root / "cmyk.jpg", solid(COLOURS["Caerulea mare"]), mode="CMYK")
    jpeg_with_exif(
        root / "rotated.jpg",
        solid(COLOURS["Rubra rosea"], (40, 60)),
        orientation=6,
        when="2023:01:02 03:04:05",
        gps=(51.5, -0.12, 30.0),
    )
    giant_grey_jpeg(root / "giant.jpg")
    write_jpeg(root / "ünïcödé name with spaces.jpg", solid(COLOURS["Rubra purpurea"]))
    (root / "dangling.jpg").symlink_to(root / "nowhere.jpg")
    os.mkfifo(root / "fifo.jpg")
    return {
        "truncated.jpg": "truncated JPEG",
        "zero.jpg": "empty file",
        "text.jpg": "not an image",
        "alpha.png": None,
        "sixteen.png": None,
        "cmyk.jpg": None,
        "rotated.jpg": None,
        "giant.jpg": None,
        "ünïcödé name with spaces.jpg": None,
        "dangling.jpg": "broken symlink",
        "fifo.jpg": "not a regular file",
    }


def test_bad_inputs_are_rows_with_reasons_and_the_run_goes_on(tmp_path, bundle):
    expected = _bad_folder(tmp_path / "bad")
    db = tmp_path / "tags.db"
    result = runner.invoke(
        app, ["tag", str(tmp_path / "bad"), "--db", str(db), "--bundle", str(bundle), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    media = _media(db)
    assert set(media) == set(expected)  # one row per file, nothing else
    for name, reason in expected.items():
        status, error = media[name][:2]
        if reason is None:
            assert (status, error) == ("done", None), name
        else:
            assert status == "failed" and reason in error, (name, error)
    assert media["alpha.png"][2] == "Viridis silva"
    assert media["sixteen.png"][2] == "Caerulea mare"
    assert media["cmyk.jpg"][2] == "Caerulea mare"
    assert media["ünïcödé name with spaces.jpg"][2] == "Rubra purpurea"
    assert media["rotated.jpg"][2:] == ("Rubra rosea", "species", 40, 60, "2023-01-02T03:04:05", "exif")
    assert media["giant.jpg"][4:6] == (20000, 20000)
    (gps,) = _rows(db, "SELECT latitude, longitude, altitude FROM media WHERE path LIKE '%rotated.jpg'")
    assert gps == pytest.approx((51.5, -0.12, 30.0), abs=1e-4)
    assert "database holds 6 done, 5 failed" in result.output
    assert "dangling.jpg: broken symlink" in result.output


def test_rerun_skips_done_and_retries_failed_only_when_asked(tmp_path, bundle):
    photos = tmp_path / "p"
    photos.mkdir()
    write_jpeg(photos / "red.jpg", solid(COLOURS["Rubra rosea"]))
    (photos / "later.jpg").write_text("still copying")
    args = ["tag", str(photos), "--bundle", str(bundle), "--no-progress"]
    assert runner.invoke(app, args).exit_code == 0
    db = photos / "lit-edge.db"
    assert _media(db)["later.jpg"][0] == "failed"

    write_jpeg(photos / "later.jpg", solid(COLOURS["Viridis silva"]))  # the copy finished
    write_jpeg(photos / "new.jpg", solid(COLOURS["Caerulea mare"]))
    r = runner.invoke(app, args)
    assert "tagged 1 photo(s)" in r.output and "2 already done" in r.output
    assert _media(db)["later.jpg"][0] == "failed"  # not retried without the flag

    r = runner.invoke(app, [*args, "--retry-failed"])
    assert r.exit_code == 0 and "tagged 1 photo(s)" in r.output
    media = _media(db)
    assert media["later.jpg"][:3] == ("done", None, "Viridis silva")
    assert _rows(db, "SELECT COUNT(*), COUNT(DISTINCT path) FROM media") == [(3, 3)]
    assert _rows(db, "SELECT COUNT(*) FROM runs") == [(3,)]


def test_species_restriction_through_the_cli(tmp_path, bundle):
    photos = tmp_path / "p"
    photos.mkdir()
    write_jpeg(photos / "purple.jpg", solid(COLOURS["Rubra purpurea"]))
    keep = tmp_path / "keep.txt"
    keep.write_text("Rubra rosea\nCaerulea mare\n")
    r = runner.invoke(
        app, ["tag", str(photos), "--bundle", str(bundle), "--species", str(keep), "--no-progress"]
    )
    assert r.exit_code == 0, r.output
    names = {n for (n,) in _rows(photos / "lit-edge.db", "SELECT scientific_name FROM predictions")}
    assert names == {"Rubra rosea", "Caerulea mare"}
    keep.write_text("Rubra rosea\nDodo ineptus\n")
    r = runner.invoke(
        app,
        ["tag", str(photos), "--bundle", str(bundle), "--species", str(keep), "--db", str(tmp_path / "x.db")],
    )
    assert r.exit_code == 2 and "error:" in r.output and "Dodo ineptus" in r.output
    assert "Traceback" not in r.output


def test_glob_and_single_file_sources(tmp_path, bundle):
    for name, rgb in COLOURS.items():
        write_jpeg(tmp_path / f"{name.replace(' ', '_')}.jpg", solid(rgb))
    db = tmp_path / "g.db"
    r = runner.invoke(
        app, ["tag", str(tmp_path / "Rubra_*.jpg"), "--db", str(db), "--bundle", str(bundle), "--no-progress"]
    )
    assert r.exit_code == 0, r.output
    assert {row[0] for row in _rows(db, "SELECT top_name FROM media")} == {"Rubra rosea", "Rubra purpurea"}
    one = tmp_path / "Viridis_silva.jpg"
    r = runner.invoke(app, ["tag", str(one), "--db", str(db), "--bundle", str(bundle), "--no-progress"])
    assert r.exit_code == 0 and _rows(db, "SELECT COUNT(*) FROM media") == [(3,)]


def test_missing_bundle_and_missing_folder_are_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("LIT_EDGE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LIT_EDGE_BUNDLE", raising=False)
    (tmp_path / "p").mkdir()
    write_jpeg(tmp_path / "p" / "a.jpg", solid((1, 2, 3)))
    r = runner.invoke(app, ["tag", str(tmp_path / "p")])
    assert r.exit_code == 2
    assert r.output.count("\n") == 1 and "lit-edge export starter" in r.output
    r = runner.invoke(app, ["tag", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "source not found" in r.output and "Traceback" not in r.output


def test_sigkill_at_several_points_then_resume_gives_every_file_exactly_once(tmp_path, bundle):
    photos = tmp_path / "many"
    photos.mkdir()
    rng = np.random.default_rng(0)
    names = list(COLOURS)
    n = 300
    for i in range(n):
        write_jpeg(
            photos / f"{i:04d}.jpg",
            solid(COLOURS[names[i % 4]]) ^ rng.integers(0, 8, (48, 64, 3), dtype=np.uint8),
        )
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    db = tmp_path / "kill.db"
    cmd = [
        sys.executable,
        "-m",
        "lit_edge.cli.app",
        "tag",
        str(photos),
        "--db",
        str(db),
        "--bundle",
        str(bundle),
        "--no-progress",
        "--batch-size",
        "4",
        "--workers",
        "2",  # two batches in flight at any kill: still every file exactly once
        "--threads",
        "1",
    ]

    def count() -> int:
        try:
            return _rows(db, "SELECT COUNT(*) FROM media")[0][0]
        except sqlite3.Error:
            return 0

    kills = 0
    for target in (0, 40, 150):  # before anything is written, early, mid-way
        before = count()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None and count() < before + target:
            time.sleep(0.01)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        assert _rows(db, "PRAGMA integrity_check") == [("ok",)] if db.exists() else True
    assert kills >= 2  # the run really was interrupted (it is far longer than the polling step)
    final = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr[-2000:]
    assert _rows(db, "PRAGMA integrity_check") == [("ok",)]
    assert _rows(db, "SELECT COUNT(*), COUNT(DISTINCT path) FROM media") == [(n + 1, n + 1)]
    assert _rows(db, "SELECT status, COUNT(*) FROM media GROUP BY status ORDER BY status") == [
        ("done", n),
        ("failed", 1),
    ]
    # every done photo has its full top-k; no prediction without its media row
    assert _rows(
        db,
        "SELECT COUNT(*) FROM media m WHERE status='done' AND (SELECT COUNT(*) FROM predictions p WHERE p.media_id = m.id) != 4",
    ) == [(0,)]
    assert _rows(db, "SELECT COUNT(*) FROM predictions WHERE media_id NOT IN (SELECT id FROM media)") == [
        (0,)
    ]
    runs = _rows(db, "SELECT status FROM runs ORDER BY id")
    # a kill before the run row exists leaves no row; the others stay 'running' (killed, not finished)
    assert runs[-1] == ("finished",) and 1 <= runs.count(("running",)) <= kills
    rows = _rows(db, "SELECT path, top_name FROM media WHERE status='done'")
    assert all(top == names[int(Path(p).stem) % 4] for p, top in rows)


def test_sigint_finishes_cleanly_and_a_rerun_completes(tmp_path, bundle):
    photos = tmp_path / "p"
    photos.mkdir()
    for i in range(400):
        write_jpeg(photos / f"{i:04d}.jpg", solid(COLOURS["Caerulea mare"]))
    (photos / "IMG_0001.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")
    db = tmp_path / "int.db"
    cmd = [sys.executable, "-m", "lit_edge.cli.app", "tag", str(photos), "--db", str(db), "--bundle", str(bundle),
           "--no-progress", "--batch-size", "4", "--workers", "1", "--threads", "1"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if _rows(db, "SELECT COUNT(*) FROM media")[0][0] >= 20:
                break
        except sqlite3.Error:
            pass
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted: run the same command again to resume" in out and "Traceback" not in err
    done_first = _rows(db, "SELECT COUNT(*) FROM media")[0][0]
    assert 20 <= done_first < 401
    assert _rows(db, "SELECT status FROM runs") == [("interrupted",)]
    final = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0 and f"{done_first} already done" in final.stdout
    assert _rows(db, "SELECT COUNT(*), COUNT(DISTINCT path) FROM media") == [(401, 401)]
    (heic,) = _rows(db, "SELECT status, error FROM media WHERE path LIKE '%.HEIC'")
    assert heic[0] == "failed" and "unsupported format (.heic)" in heic[1]


def test_each_photo_keeps_its_image_embedding_unless_asked_not_to(tmp_path, bundle):
    """float16, little-endian, L2-normalised as the tower gave it; failures have none."""
    from lit_edge.device.config import BackendConfig, EngineConfig
    from lit_edge.device.pipeline import Engine

    photos = tmp_path / "p"
    photos.mkdir()
    for name in COLOURS:
        write_jpeg(photos / f"{name}.jpg", solid(COLOURS[name]))
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 nope")
    db = tmp_path / "e.db"
    r = runner.invoke(app, ["tag", str(photos), "--db", str(db), "--bundle", str(bundle), "--no-progress"])
    assert r.exit_code == 0, r.output
    rows = _rows(
        db,
        "SELECT m.path, e.dim, e.vector, e.run_id = m.run_id FROM media m JOIN embeddings e ON e.media_id = m.id",
    )
    assert len(rows) == len(COLOURS) == _rows(db, "SELECT COUNT(*) FROM media WHERE status = 'done'")[0][0]
    engine = Engine(EngineConfig(bundle=bundle, backend=BackendConfig("onnxruntime-cpu")))
    for path, dim, blob, same_run in rows:
        vec = np.frombuffer(blob, dtype="<f2")
        assert dim == 16 and vec.shape == (16,) and same_run
        rgb = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
        want = engine.embed(np.stack([engine.prepare(rgb)]))[0]
        np.testing.assert_allclose(vec.astype(np.float32), want, atol=2e-3)
    without = tmp_path / "n.db"
    r = runner.invoke(
        app,
        [
            "tag",
            str(photos),
            "--db",
            str(without),
            "--bundle",
            str(bundle),
            "--no-progress",
            "--no-embeddings",
        ],
    )
    assert r.exit_code == 0, r.output
    assert _rows(without, "SELECT COUNT(*) FROM embeddings") == [(0,)]
    assert _rows(without, "SELECT COUNT(*) FROM media WHERE status = 'done'") == [(len(COLOURS),)]


def test_a_photo_cut_short_late_is_classified_from_its_top_and_says_so(tmp_path, bundle):
    photos = tmp_path / "card"
    photos.mkdir()
    whole = cv2.imencode(".jpg", cv2.cvtColor(solid(COLOURS["Viridis silva"], (300, 400)), cv2.COLOR_RGB2BGR))
    data = whole[1].tobytes()
    (photos / "pulled_early.jpg").write_bytes(data[: int(len(data) * 0.9)])
    db = tmp_path / "t.db"
    result = runner.invoke(
        app, ["tag", str(photos), "--db", str(db), "--bundle", str(bundle), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    status, error, name = _media(db)["pulled_early.jpg"][:3]
    assert status == "done" and name == "Viridis silva"
    assert error.startswith("truncated JPEG: classified the top")
