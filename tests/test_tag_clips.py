"""`lit-edge tag` on video clips, for real: the CLI, real clips (the fieldset's and generated ones),
DJI SRT telemetry, a real SQLite database, a truncated clip, and a SIGKILL mid-clip then resume."""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bundle_factory import COLOURS, make_bundle, solid, write_jpeg
from clip_factory import srt_text, track, write_clip
from lit_edge.cli.app import app
from lit_edge.db.reader import Reader
from lit_edge.device.sources import list_files, parse_address
from lit_edge.device.video import ClipSampler, SampleConfig, is_clip, probe
from test_tag import _rows

runner = CliRunner()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle"))


def _tag(bundle: Path, *args: str):
    r = runner.invoke(app, ["tag", *args, "--bundle", str(bundle), "--no-progress"])
    assert "Traceback" not in r.output, r.output
    return r


def test_fieldset_clips_through_the_cli_each_clip_once_with_its_frames(fieldset, tmp_path, bundle):
    videos = fieldset / "videos"
    clips = [p for p in list_files(parse_address(str(videos)), clips=True) if is_clip(p)]
    assert len(clips) == 19
    assert any(" " in str(p) for p in clips) and any(not str(p).isascii() for p in clips)
    db = tmp_path / "clips.db"
    r = _tag(bundle, str(videos), "--db", str(db))
    assert r.exit_code == 0, r.output
    assert "tagged 0 photo(s) and 19 clip(s)" in r.output
    rows = _rows(db, "SELECT path, status, error, duration_s, captured_at FROM media WHERE kind = 'clip'")
    assert sorted(p for p, *_ in rows) == sorted(str(p.resolve()) for p in clips)  # the odd names too
    assert all(status == "done" and error is None and dur > 0 for _, status, error, dur, _ in rows)
    frames = _rows(db, "SELECT COUNT(*) FROM media WHERE kind = 'frame'")[0][0]
    assert f"database holds 19 done, 0 failed (19 clip(s) of {frames} frame(s))" in r.output
    for clip in clips:  # one frame a second, as the sampler reads the clip on its own
        key = str(clip.resolve())
        got = _rows(db, "SELECT frame_index, offset_s FROM media WHERE path = ? AND kind='frame'", [key])
        want = [
            (f.index, round(f.offset_s, 3)) for f in ClipSampler(clip, SampleConfig(every_s=1.0)).frames()
        ]
        assert sorted(got) == want, clip
        info = probe(clip)
        assert len(got) == pytest.approx(info.duration_s, abs=1.5)
    # each frame's time is its clip's start plus its offset
    for start, offset, when in _rows(
        db,
        "SELECT c.captured_at, f.offset_s, f.captured_at FROM media f JOIN media c "
        "ON c.path = f.path AND c.kind = 'clip' WHERE f.kind = 'frame'",
    ):
        gap = datetime.fromisoformat(when) - datetime.fromisoformat(start)
        assert gap.total_seconds() == pytest.approx(offset, abs=0.002)
    again = _tag(bundle, str(videos), "--db", str(db))
    assert again.exit_code == 0 and "19 already done" in again.output
    assert _rows(db, "SELECT COUNT(*) FROM media WHERE kind = 'frame'")[0][0] == frames


@pytest.mark.parametrize("order", ["lon,lat", "lat,lon"])
def test_a_drone_clip_gets_its_telemetry_on_every_frame(tmp_path, bundle, order):
    flight = tmp_path / "flight"
    flight.mkdir()
    clip = write_clip(flight / "DJI_0042.MP4", frames=150, fps=30.0, size=(1280, 720))  # 720p, 5 s
    start = datetime(2024, 5, 17, 6, 42, 10)
    (flight / "DJI_0042.srt").write_text(srt_text(5, order, start), encoding="utf-8")  # any case
    db = tmp_path / "drone.db"
    r = _tag(bundle, str(flight), "--db", str(db), "--utc-offset", "+02:00")
    assert r.exit_code == 0, r.output
    frames = _rows(
        db,
        "SELECT offset_s, latitude, longitude, altitude, relative_altitude, captured_at, time_source, "
        "width, height FROM media WHERE kind = 'frame' ORDER BY frame_index",
    )
    sampled = [round(f.offset_s, 3) for f in ClipSampler(clip, SampleConfig(every_s=1.0)).frames()]
    assert [f[0] for f in frames] == sampled and len(sampled) == 5
    for offset, lat, lon, alt, rel, when, source, w, h in frames:
        i = int(offset)  # the SRT entry that covers the frame: one a second
        want_lat, want_lon, height = track(i)
        assert (lat, lon, rel) == pytest.approx((want_lat, want_lon, height), abs=1e-6)
        # Matrice 300 (lat,lon) writes the altitude above sea level; Mavic Pro (lon,lat) does not
        assert alt == (pytest.approx(height + 120) if order == "lat,lon" else None)
        want = (start + timedelta(seconds=offset)).replace(tzinfo=timezone(timedelta(hours=2)))
        assert abs(datetime.fromisoformat(when) - want) < timedelta(milliseconds=2)
        assert (source, w, h) == ("telemetry", 1280, 720)
    (row,) = _rows(db, "SELECT latitude, longitude, duration_s, status FROM media WHERE kind = 'clip'")
    assert row == pytest.approx((track(0)[0], track(0)[1], 5.0, "done"))
    assert clip.exists()


def test_telemetry_option_broken_srt_and_video_frames(tmp_path, bundle, fieldset):
    clip = write_clip(tmp_path / "MAVIC.mov", frames=90, fps=30.0, size=(320, 240))
    srt = tmp_path / "elsewhere.txt"
    srt.write_text(srt_text(3, "lat,lon", datetime(2024, 5, 17, 6, 42, 10)), encoding="utf-8")
    db = tmp_path / "one.db"
    r = _tag(bundle, str(clip), "--db", str(db), "--telemetry", str(srt), "--video-frames", "2")
    assert r.exit_code == 0, r.output
    rows = _rows(db, "SELECT frame_index, latitude FROM media WHERE kind = 'frame' ORDER BY frame_index")
    assert [i for i, _ in rows] == [f.index for f in ClipSampler(clip, SampleConfig(n_frames=2)).frames()]
    assert len(rows) == 2 and 10 <= rows[0][0] < 45 <= rows[1][0] < 90  # one in each half
    assert all(lat is not None for _, lat in rows)

    # --telemetry is one clip's: a folder of two clips is refused in one line, before any work
    write_clip(tmp_path / "other.avi", frames=30, fps=30.0, size=(320, 240), fourcc="MJPG")
    r = _tag(bundle, str(tmp_path), "--db", str(tmp_path / "two.db"), "--telemetry", str(srt))
    assert r.exit_code != 0 and "is one clip's telemetry, but the source holds 2 clips" in r.output
    r = _tag(bundle, str(clip), "--db", str(tmp_path / "x.db"), "--utc-offset", "tomorrow")
    assert r.exit_code != 0 and "--utc-offset: UTC offset 'tomorrow'" in r.output

    # a broken SRT beside a clip: a warning, and the clip is still tagged (without positions)
    broken = tmp_path / "broken"
    broken.mkdir()
    write_clip(broken / "DJI_0001.MP4", frames=60, fps=30.0, size=(320, 240))
    shutil.copy(fieldset / "drone-srt" / "broken_empty.SRT", broken / "DJI_0001.SRT")
    r = _tag(bundle, str(broken), "--db", str(tmp_path / "broken.db"))
    assert r.exit_code == 0, r.output
    assert "1 clip(s) with broken or empty telemetry" in r.output
    rows = _rows(tmp_path / "broken.db", "SELECT kind, status, latitude FROM media ORDER BY frame_index")
    assert rows == [("clip", "done", None), ("frame", "done", None), ("frame", "done", None)]


def test_a_truncated_clip_is_a_failed_row_with_its_frames_kept_and_the_run_goes_on(
    fieldset, tmp_path, bundle
):
    real = next(p for p in (fieldset / "videos").rglob("07120049.AVI"))
    card = tmp_path / "card"
    card.mkdir()
    data = real.read_bytes()
    (card / "07120049.AVI").write_bytes(data[: len(data) // 2])  # the first half of a real clip
    (card / "EMPTY.MP4").write_bytes(b"")
    shutil.copy(real, card / "whole.AVI")
    write_jpeg(card / "photo.jpg", solid(COLOURS["Caerulea mare"]))
    db = tmp_path / "t.db"
    r = _tag(bundle, str(card), "--db", str(db))
    assert r.exit_code == 0, r.output
    assert "tagged 1 photo(s) and 3 clip(s)" in r.output and "2 failed" in r.output

    def clip_row(name):
        return _rows(db, "SELECT status, error FROM media WHERE kind='clip' AND path LIKE ?", [f"%{name}"])[0]

    def frames(name):
        return _rows(
            db,
            "SELECT COUNT(*) FROM media WHERE kind='frame' AND status='done' AND path LIKE ?",
            [f"%{name}"],
        )[0][0]

    status, error = clip_row("07120049.AVI")
    assert status == "failed" and error.startswith("video ends at") and "truncated or corrupt" in error
    assert 5 <= frames("07120049.AVI") < frames("whole.AVI") - 10  # the frames read are kept
    assert clip_row("EMPTY.MP4") == ("failed", "empty file (0 bytes)") and frames("EMPTY.MP4") == 0
    assert clip_row("whole.AVI") == ("done", None)
    assert _rows(db, "SELECT status FROM media WHERE kind='photo'") == [("done",)]
    assert "07120049.AVI: video ends at" in r.output  # the summary's failures name it
    # a rerun leaves the failed clip alone; --retry-failed tries it again and adds no frame twice
    before = frames("07120049.AVI")
    r = _tag(bundle, str(card), "--db", str(db), "--retry-failed")
    assert r.exit_code == 0 and frames("07120049.AVI") == before
    assert clip_row("07120049.AVI")[0] == "failed"


@pytest.mark.slow
def test_sigkill_mid_clip_then_resume_gives_every_sampled_frame_once(tmp_path, bundle):
    card = tmp_path / "card"
    card.mkdir()
    clip = write_clip(card / "LONG.MP4", frames=1800, fps=30.0, size=(320, 240))  # 60 s
    db = tmp_path / "kill.db"
    cmd = [sys.executable, "-m", "lit_edge.cli.app", "tag", str(card), "--db", str(db)]
    cmd += ["--bundle", str(bundle), "--no-progress", "--video-every", "0.5", "--workers", "1"]

    def count(kind: str) -> int:
        try:
            return _rows(db, "SELECT COUNT(*) FROM media WHERE kind = ?", [kind])[0][0]
        except sqlite3.Error:
            return 0

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and count("frame") < 40:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = count("frame")
    assert 40 <= killed_at < 120 and count("clip") == 0  # killed in the middle of the clip
    assert _rows(db, "PRAGMA integrity_check") == [("ok",)]
    final = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr[-2000:]
    assert _rows(db, "PRAGMA integrity_check") == [("ok",)]
    got = [r[0] for r in _rows(db, "SELECT frame_index FROM media WHERE kind='frame' ORDER BY frame_index")]
    whole = [f.index for f in ClipSampler(clip, SampleConfig(every_s=0.5)).frames()]
    assert got == whole and len(whole) == 120  # every sampled frame exactly once
    assert _rows(db, "SELECT COUNT(*), status FROM media WHERE kind='clip'") == [(1, "done")]
    assert "tagged 0 photo(s) and 1 clip(s)" in final.stdout
    # the clip's top-k are its frames' scores averaged over ALL its frames, the killed run's too
    with Reader(db) as reader:
        rows = list(reader.iter_media())
    frames = [r for r in rows if r.kind == "frame"]
    (clip_row,) = [r for r in rows if r.kind == "clip"]
    assert len({r.run_id for r in frames}) == 2
    mean: dict[int, float] = {}
    for r in frames:
        for p in r.predictions:
            mean[p.label_id] = mean.get(p.label_id, 0.0) + p.score / len(frames)
    assert clip_row.predictions and all(
        p.score == pytest.approx(mean[p.label_id], rel=1e-5) for p in clip_row.predictions
    )
