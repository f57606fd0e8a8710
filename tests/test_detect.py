"""`lit-edge detect` for real: video files, a local HTTP MJPEG camera, signals, config, saved frames."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
from typer.testing import CliRunner

from bundle_factory import COLOURS, make_bundle, solid
from lit_edge.cli.app import app
from lit_edge.device.config import BackendConfig, CaptureConfig, DetectConfig, EngineConfig
from lit_edge.device.live import run_detect
from mjpeg_server import MjpegServer

runner = CliRunner()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle"))


def _rows(db, sql, args=()):
    con = sqlite3.connect(db)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def _video(path: Path, names: list[str], n_each: int = 10, fps: int = 10) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    for name in names:
        for _ in range(n_each):
            w.write(cv2.cvtColor(solid(COLOURS[name]), cv2.COLOR_RGB2BGR))
    w.release()
    return path


def test_detect_video_file_logs_every_frame_and_ends(tmp_path, bundle):
    video = _video(tmp_path / "trail cam.avi", ["Rubra rosea", "Viridis silva", "Caerulea mare"])
    db = tmp_path / "d.db"
    r = runner.invoke(
        app, ["detect", str(video), "--bundle", str(bundle), "--db", str(db), "--status-every", "0"]
    )
    assert r.exit_code == 0, r.output
    rows = _rows(
        db,
        "SELECT frame_index, top_name, top_rank, time_source, path, source FROM media ORDER BY frame_index",
    )
    assert [row[0] for row in rows] == list(range(30))
    assert [row[1] for row in rows] == ["Rubra rosea"] * 10 + ["Viridis silva"] * 10 + ["Caerulea mare"] * 10
    assert {row[3] for row in rows} == {"video"} and rows[0][4] == str(video.resolve())
    assert "frame 12  species Viridis silva" in r.output
    assert "detect: 30 frame(s)" in r.output
    assert _rows(db, "SELECT command, status FROM runs") == [("detect", "finished")]
    # a re-run of the same video replaces its frames rather than duplicating them
    r = runner.invoke(
        app, ["detect", str(video), "--bundle", str(bundle), "--db", str(db), "--every", "2", "-q"]
    )
    assert r.exit_code == 0 and "species" not in r.output.split("detect:")[0]
    assert _rows(db, "SELECT COUNT(*), MAX(run_id) FROM media WHERE frame_index % 2 = 0") == [(15, 2)]
    assert _rows(db, "SELECT COUNT(*) FROM media") == [(30,)]


def test_stream_that_drops_is_reconnected_and_everything_seen_is_saved(tmp_path, bundle):
    db = tmp_path / "s.db"
    with MjpegServer(solid(COLOURS["Caerulea mare"]), frames_per_connection=10, max_connections=3) as cam:
        cfg = DetectConfig(
            source=cam.url,
            db=db,
            engine=EngineConfig(bundle=bundle),
            capture=CaptureConfig(backoff_s=0.05, max_reconnects=4, queue_size=64),
            status_every_s=0,
        )
        lines: list[str] = []
        result = run_detect(cfg, echo=lines.append)
    assert result.reconnects >= 3 and result.source_error
    assert result.frames + result.dropped == cam.frames_sent == 30
    assert _rows(db, "SELECT COUNT(*), COUNT(DISTINCT frame_index) FROM media") == [(result.frames,) * 2]
    assert _rows(db, "SELECT DISTINCT top_name, path, time_source FROM media") == [
        ("Caerulea mare", cam.url, "clock")
    ]
    assert _rows(db, "SELECT status FROM runs") == [("finished",)]


def test_second_run_on_the_same_camera_continues_frame_numbers(tmp_path, bundle):
    db = tmp_path / "two.db"
    with MjpegServer(solid(COLOURS["Rubra rosea"]), frames_per_connection=5, max_connections=2) as cam:
        for _ in range(2):
            cfg = DetectConfig(
                source=cam.url,
                db=db,
                engine=EngineConfig(bundle=bundle),
                capture=CaptureConfig(max_reconnects=0, queue_size=64),
                status_every_s=0,
            )
            assert run_detect(cfg, echo=lambda s: None).frames == 5
    rows = _rows(db, "SELECT run_id, frame_index FROM media ORDER BY frame_index")
    assert rows == [(1, i) for i in range(5)] + [(2, i) for i in range(5, 10)]


def test_lost_stream_exits_nonzero_through_the_cli(tmp_path, bundle):
    db = tmp_path / "lost.db"
    with MjpegServer(solid(COLOURS["Rubra rosea"]), frames_per_connection=5, max_connections=1) as cam:
        r = runner.invoke(
            app, ["detect", cam.url, "--bundle", str(bundle), "--db", str(db), "--max-reconnects", "1", "-q"]
        )
    assert r.exit_code == 2 and "not reconnected" in r.output and f"detections so far are in {db}" in r.output
    assert _rows(db, "SELECT COUNT(*) FROM media")[0][0] >= 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_finishes_the_batch_flushes_and_exits_zero(tmp_path, bundle, sig):
    db = tmp_path / "sig.db"
    with MjpegServer(solid(COLOURS["Viridis silva"]), fps=30) as cam:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lit_edge.cli.app", "detect", cam.url, "--bundle", str(bundle), "--db", str(db),
             "--status-every", "0.5", "--threads", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if _rows(db, "SELECT COUNT(*) FROM media")[0][0] >= 30:
                    break
            except sqlite3.Error:
                pass
            time.sleep(0.05)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    printed = int(out.split("detect: ")[1].split(" frame")[0])
    assert printed >= 30 and _rows(db, "SELECT COUNT(*) FROM media") == [(printed,)]
    assert out.count("species Viridis silva") == printed
    assert "status:" in out and "fps" in out and "source queue" in out
    assert _rows(db, "SELECT status FROM runs") == [("interrupted",)]
    assert _rows(db, "PRAGMA integrity_check") == [("ok",)]


def test_duration_and_config_file(tmp_path, bundle):
    db = tmp_path / "cfg.db"
    with MjpegServer(solid(COLOURS["Rubra purpurea"]), fps=40) as cam:
        cfg = tmp_path / "device.toml"
        cfg.write_text(
            f'[detect]\nsource = "{cam.url}"\nbundle = "{bundle}"\ndb = "{tmp_path / "ignored.db"}"\n'
            "duration = 1.0\nevery = 4\nstatus-every = 0\nquiet = true\n",
            encoding="utf-8",
        )
        t0 = time.monotonic()
        r = runner.invoke(app, ["detect", "--config", str(cfg), "--db", str(db)])  # CLI --db wins
        took = time.monotonic() - t0
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "ignored.db").exists() and db.exists()
    assert took < 15
    idx = [i for (i,) in _rows(db, "SELECT frame_index FROM media ORDER BY frame_index")]
    assert idx and all(i % 4 == 0 for i in idx)
    assert _rows(db, "SELECT status FROM runs") == [("finished",)]
    bad = tmp_path / "bad.toml"
    bad.write_text("fpss = 3\n")
    r = runner.invoke(app, ["detect", "x.avi", "--config", str(bad)])
    assert r.exit_code == 2 and "unknown option(s) fpss" in r.output


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("motion = 2\n", "motion = 2: Invalid value for '--motion'"),  # the option's own range
        ('every = "often"\n', "every = 'often': Invalid value for '--every'"),
        ("[detect]\nbatch-size = 0\n", "batch-size = 0: Invalid value for '--batch-size'"),
        ('backend = "gpu"\n', "backend = 'gpu': Invalid value: unknown backend 'gpu'; choose one of auto, "),
        ('quiet = "maybe"\n', "quiet = 'maybe': Invalid value for '--quiet'"),
        ("fps = [\n", "not valid TOML"),
    ],
)
def test_config_file_values_are_checked_like_the_options_they_set(tmp_path, body, says):
    cfg = tmp_path / "device.toml"
    cfg.write_text(body, encoding="utf-8")
    video = _video(tmp_path / "v.avi", ["Rubra rosea"], n_each=2)
    r = runner.invoke(app, ["detect", str(video), "--config", str(cfg), "--db", str(tmp_path / "d.db")])
    assert r.exit_code == 2, r.output
    assert r.output.startswith(f"error: {cfg}: ") and r.output.count("\n") == 1, r.output
    assert says in r.output and "Traceback" not in r.output
    assert not (tmp_path / "d.db").exists()  # refused before anything was opened


def test_config_file_gives_defaults_the_command_line_overrides(tmp_path, bundle):
    """A JSON config too; values reach the run (recorded settings), and an option given wins."""
    import json

    video = _video(tmp_path / "v.avi", ["Viridis silva"], n_each=6)
    cfg = tmp_path / "device.json"
    cfg.write_text(
        json.dumps({"bundle": str(bundle), "every": 3, "top-k": 2, "quiet": True, "batch_size": 1})
    )
    db = tmp_path / "d.db"
    r = runner.invoke(app, ["detect", str(video), "--config", str(cfg), "--db", str(db), "--top-k", "3"])
    assert r.exit_code == 0, r.output
    assert [i for (i,) in _rows(db, "SELECT frame_index FROM media ORDER BY frame_index")] == [0, 3]
    settings = json.loads(_rows(db, "SELECT settings FROM runs")[0][0])
    assert settings["engine"]["classify"]["top_k"] == 3 and settings["batch_size"] == 1
    assert _rows(db, "SELECT COUNT(*) FROM predictions") == [(2 * 3,)]
    assert "species Viridis silva" not in r.output  # quiet, from the file


def test_config_file_reads_on_python_3_10_without_tomllib(tmp_path):
    """JetPack 6 runs Python 3.10, which has no tomllib: the same parser comes from tomli."""
    import subprocess
    import sys

    cfg = tmp_path / "device.toml"
    cfg.write_text('[detect]\nsource = "rtsp://cam/1"\nmotion = 0.25\n', encoding="utf-8")
    code = (
        "import sys, builtins\n"
        "real = builtins.__import__\n"
        "def no_tomllib(name, *a, **k):\n"
        "    if name == 'tomllib':\n"
        "        raise ModuleNotFoundError(\"No module named 'tomllib'\")\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = no_tomllib\n"
        "from pathlib import Path\n"
        "from lit_edge.cli.detect_cmd import read_config_file\n"
        f"print(read_config_file(Path({str(cfg)!r})))\n"
        "print('tomli' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    if "No module named 'tomli'" in out.stderr:
        pytest.skip("tomli is not installed here (it is a dependency only on Python < 3.11)")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[:2] == ["{'source': 'rtsp://cam/1', 'motion': 0.25}", "True"]


def test_confident_frames_are_saved_within_the_quota(tmp_path, bundle):
    video = _video(tmp_path / "v.avi", ["Rubra rosea"], n_each=40)
    frames_dir = tmp_path / "frames"
    one = len(
        cv2.imencode(
            ".jpg",
            cv2.cvtColor(solid(COLOURS["Rubra rosea"]), cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_JPEG_QUALITY, 90],
        )[1]
    )
    quota_mb = (one * 5.5) / (1024 * 1024)  # room for five frames
    r = runner.invoke(
        app,
        ["detect", str(video), "--bundle", str(bundle), "--db", str(tmp_path / "f.db"), "-q",
         "--save-frames", str(frames_dir), "--save-quota-mb", str(quota_mb)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    saved = [
        Path(p)
        for (p,) in _rows(tmp_path / "f.db", "SELECT saved_frame FROM media WHERE saved_frame IS NOT NULL")
    ]
    assert len(saved) == 5 and all(p.is_file() for p in saved)
    assert sum(p.stat().st_size for p in frames_dir.iterdir()) <= quota_mb * 1024 * 1024
    img = cv2.imread(str(saved[0]))
    assert img.shape == (48, 64, 3) and img[0, 0, 2] > 200  # red, as BGR on disk


def test_photos_are_not_a_live_source(tmp_path, bundle):
    r = runner.invoke(app, ["detect", str(tmp_path), "--bundle", str(bundle)])
    assert r.exit_code == 2 and "use 'lit-edge tag" in r.output


def test_the_shipped_example_config_is_valid(tmp_path, bundle):
    example = Path(__file__).parents[1] / "device" / "example.toml"
    video = _video(tmp_path / "v.avi", ["Viridis silva"], n_each=4)
    db = tmp_path / "e.db"
    r = runner.invoke(
        app,
        ["detect", str(video), "--config", str(example), "--bundle", str(bundle), "--db", str(db),
         "--save-frames", str(tmp_path / "frames"), "--fps", "0", "--motion", "0"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert _rows(db, "SELECT COUNT(*) FROM media") == [(4,)]
    assert "status-every" not in r.output and len(list((tmp_path / "frames").iterdir())) == 4


def test_csi_without_gstreamer_is_one_clear_line(tmp_path, bundle):
    from lit_edge.device.sources import _has_gstreamer

    if _has_gstreamer():
        pytest.skip("this OpenCV has GStreamer; the CSI pipeline would really be opened")
    r = runner.invoke(app, ["detect", "csi://0", "--bundle", str(bundle), "--db", str(tmp_path / "c.db")])
    assert r.exit_code == 2 and r.output.startswith(
        "error: csi://0: CSI cameras need OpenCV built with GStreamer"
    )
    assert not (tmp_path / "c.db").exists()


def test_display_on_headless_opencv_is_one_clear_line(tmp_path, bundle):
    import cv2

    try:
        cv2.namedWindow("probe")
        cv2.destroyWindow("probe")
        pytest.skip("this OpenCV has a GUI")
    except cv2.error:
        pass
    video = _video(tmp_path / "v.avi", ["Rubra rosea"], n_each=2)
    r = runner.invoke(
        app, ["detect", str(video), "--bundle", str(bundle), "--db", str(tmp_path / "d.db"), "--display"]
    )
    assert r.exit_code == 2 and "--display needs OpenCV with GUI support" in r.output
    assert r.output.count("\n") == 1


def test_video_that_breaks_midway_ends_cleanly_with_what_was_read(tmp_path, bundle):
    whole = _video(tmp_path / "whole.avi", ["Viridis silva"], n_each=40)
    data = whole.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: int(len(data) * 0.6)])  # the card was pulled while recording
    db = tmp_path / "cut.db"
    r = runner.invoke(app, ["detect", str(cut), "--bundle", str(bundle), "--db", str(db), "-q"])
    assert r.exit_code == 0, r.output
    n = int(r.output.split("detect: ")[1].split(" frame")[0])
    assert 0 < n < 40
    assert _rows(db, "SELECT COUNT(*), MIN(frame_index), MAX(frame_index) FROM media") == [(n, 0, n - 1)]
    assert _rows(db, "SELECT DISTINCT top_name FROM media") == [("Viridis silva",)]


def test_video_with_several_workers_logs_the_same_frames_in_order(tmp_path, bundle):
    """A video file may use several inference workers: same rows and scores, lines in frame order."""
    import json

    import numpy as np

    path = tmp_path / "noisy.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    rng = np.random.default_rng(5)
    names = list(COLOURS)
    for i in range(40):
        frame = solid(COLOURS[names[(i // 5) % 4]]) ^ rng.integers(0, 40, (48, 64, 3), dtype=np.uint8)
        w.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    w.release()
    tables, plans = [], []
    for workers in ("1", "3"):
        db = tmp_path / f"w{workers}.db"
        r = runner.invoke(
            app,
            [
                "detect",
                str(path),
                "--bundle",
                str(bundle),
                "--db",
                str(db),
                "--status-every",
                "0",
                "--workers",
                workers,
                "--threads",
                "1",
            ],  # fmt: skip
        )
        assert r.exit_code == 0, r.output
        printed = [
            int(line.split("frame ")[1].split()[0]) for line in r.output.splitlines() if " frame " in line
        ]
        assert printed == sorted(printed) and len(printed) > 20  # logged in frame order
        tables.append(
            _rows(
                db,
                "SELECT m.frame_index, m.top_name, p.position, p.label_id, p.score FROM media m "
                "JOIN predictions p ON p.media_id = m.id ORDER BY m.frame_index, p.position",
            )
        )
        plans.append(json.loads(_rows(db, "SELECT settings FROM runs")[0][0])["plan"])
    one, three = tables
    assert len(one) == 40 * 4 and [r[:4] for r in one] == [r[:4] for r in three]
    # frames are batched as they arrive, so batch makeup (and the last float bits) may differ
    np.testing.assert_allclose([r[4] for r in one], [r[4] for r in three], rtol=1e-4, atol=1e-7)
    assert len({row[4] for row in one if row[2] == 2}) > 20  # runner-up scores differ: a real check
    assert [p["workers"] for p in plans] == [1, 3]


def test_detect_shares_the_cores_out_among_its_workers():
    from lit_edge.device import backends
    from lit_edge.device.plan import plan_detect

    cpu = backends.get("onnxruntime-cpu")

    def plan(cfg, cores):
        p = plan_detect(cfg, cpu, cores=cores)
        return p.workers, p.threads

    assert plan(DetectConfig(source="x"), cores=2) == (1, 2)  # default: one call on every core
    assert plan(DetectConfig(source="x", workers=2), cores=2) == (2, 1)
    assert plan(DetectConfig(source="x", workers=3), cores=16) == (3, 5)
    threads = EngineConfig(backend=BackendConfig(threads=3))
    assert plan(DetectConfig(source="x", workers=2, engine=threads), cores=2) == (2, 3)
    p = plan_detect(DetectConfig(source="x"), cpu, cores=2)
    assert (p.queued, p.fill_batches) == (0, False)  # latency: never a batch waiting for a worker


def test_each_frame_keeps_its_embedding_unless_asked_not_to(tmp_path, bundle):
    video = _video(tmp_path / "v.avi", ["Caerulea mare"], n_each=6)
    for extra, expect in (([], 6), (["--no-embeddings"], 0)):
        db = tmp_path / f"e{len(extra)}.db"
        r = runner.invoke(app, ["detect", str(video), "--bundle", str(bundle), "--db", str(db), "-q", *extra])
        assert r.exit_code == 0, r.output
        assert _rows(db, "SELECT COUNT(*) FROM media") == [(6,)]
        assert _rows(db, "SELECT COUNT(*), COUNT(DISTINCT media_id) FROM embeddings WHERE dim = 16") == [
            (expect, expect)
        ]
