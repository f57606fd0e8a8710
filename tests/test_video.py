"""Clips: discovery, container times, and the frame sampler, on real fieldset clips and made ones.

The made clips carry each frame's index as a visible code (``clip_factory``), so every test checks
that a frame reported as index N really is frame N, whichever reader produced it.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone

import pytest

from clip_factory import read_index, set_avi_idit, set_mp4_creation_time, write_clip
from lit_edge.device.sources import list_files, parse_address
from lit_edge.device.video import ClipSampler, SampleConfig, is_clip, plan, probe, remaining
from lit_edge.device.video.containers import container_time
from lit_edge.device.video.sampler import spacing_s, tolerance_s


@pytest.fixture(scope="module")
def clip720(tmp_path_factory):
    """5 s of 720p at 30 fps (OpenCV's MPEG-4 writer: a keyframe every 12 frames)."""
    return write_clip(tmp_path_factory.mktemp("clips") / "trap 01.mp4", frames=150)


def _real_clips(fieldset):
    return [p for p in list_files(parse_address(str(fieldset / "videos")), clips=True) if is_clip(p)]


def test_fieldset_clips_are_found_and_every_one_samples(fieldset):
    clips = _real_clips(fieldset)
    assert len(clips) == 19
    assert {p.suffix.lower() for p in clips} == {".avi", ".mp4", ".asf"}
    # the awkward paths are among them: a space in a folder name, non-ASCII letters
    assert any(" " in str(p) for p in clips) and any("Taï" in str(p) for p in clips)
    for path in clips:
        info = probe(path)
        sampler = ClipSampler(path, SampleConfig(every_s=1.0, min_side=32), info=info)
        frames = list(sampler.frames())
        assert sampler.failure is None, (path, sampler.failure)
        # these clips are 1 fps: one frame a second is every frame (containers may count one more)
        assert info.frame_count - 1 <= len(frames) <= info.frame_count, path
        indices = [f.index for f in frames]
        assert indices == sorted(set(indices)) and indices[0] == 0
        for f in frames:
            assert f.offset_s == pytest.approx(f.index / info.fps, abs=1e-3)
            assert min(f.rgb.shape[:2]) == 32 and f.rgb.dtype.name == "uint8"
        # re-encoded by the data set's makers: no recording time left in them, so the file time
        assert info.time_source == "mtime" and info.start.tzinfo is timezone.utc


def test_listing_takes_clips_only_when_asked(tmp_path):
    (tmp_path / "card 1.2").mkdir()  # a folder whose name looks like a file
    (tmp_path / "card 1.2" / "PICT0001.ASF").write_bytes(b"x")
    (tmp_path / "IMG_0001.JPG").write_bytes(b"x")
    (tmp_path / "MOV_0002.Mp4").write_bytes(b"x")
    (tmp_path / "._MOV_0002.Mp4").write_bytes(b"x")
    spec = parse_address(str(tmp_path))
    assert [p.name for p in list_files(spec)] == ["IMG_0001.JPG"]
    both = list_files(spec, clips=True)
    assert sorted(p.name for p in both) == ["IMG_0001.JPG", "MOV_0002.Mp4", "PICT0001.ASF"]
    assert [p.name for p in both if is_clip(p)] == ["MOV_0002.Mp4", "PICT0001.ASF"]
    single = parse_address(str(tmp_path / "MOV_0002.Mp4"))
    assert single.kind == "video" and list_files(single, clips=True) == [tmp_path / "MOV_0002.Mp4"]


@pytest.mark.parametrize(
    "cfg",
    [
        SampleConfig(),
        SampleConfig(keyframes=False),
        SampleConfig(every_s=0.5, min_side=224),
        SampleConfig(n_frames=7),
        SampleConfig(every_s=2.0, tolerance_s=0.0),
    ],
    ids=["every-1s", "decode-only", "every-0.5s-224px", "7-frames", "exact"],
)
def test_sampled_frames_are_the_frames_they_say(clip720, cfg):
    info = probe(clip720)
    assert (info.width, info.height, info.frame_count) == (1280, 720, 150) and info.fps == 30
    sampler = ClipSampler(clip720, cfg)
    frames = list(sampler.frames())
    assert sampler.failure is None
    targets = plan(info, cfg)
    assert len(frames) == len(targets)
    tol = tolerance_s(info, cfg)  # half the spacing, at most 1 s, unless set
    assert tol == (cfg.tolerance_s if cfg.tolerance_s is not None else min(0.5 * spacing_s(info, cfg), 1.0))
    for f, t in zip(frames, targets, strict=True):
        assert read_index(f.rgb) == f.index  # the pixels are that frame's
        assert abs(f.offset_s - t.offset_s) <= tol + 1e-6
    if cfg.min_side:
        assert frames[0].rgb.shape == (224, 398, 3)
    if cfg.tolerance_s == 0.0:
        assert [f.index for f in frames] == [0, 60, 120]
    if not cfg.keyframes:
        assert not any(f.keyframe for f in frames) and [f.index for f in frames] == [0, 30, 60, 90, 120]


def test_far_targets_between_keyframes_are_reached_by_verified_seeks(tmp_path):
    clip = write_clip(tmp_path / "long.avi", frames=630, size=(320, 240), fourcc="XVID")
    sampler = ClipSampler(clip, SampleConfig(n_frames=3, tolerance_s=0.0))
    frames = list(sampler.frames())
    assert [f.index for f in frames] == [105, 315, 525]
    assert [read_index(f.rgb) for f in frames] == [105, 315, 525]
    # the writer puts a keyframe every 12 frames (and sometimes one more at a change of picture):
    # each target no keyframe sits on is reached by one seek and one decoded frame, not by reading on
    decoded = sum(not f.keyframe for f in frames)
    assert decoded >= 2 and sampler.stats["seeks"] == decoded == sampler.stats["decode_grabs"]


def test_keyframe_reader_keeps_other_ffmpeg_options(clip720, monkeypatch):
    """``detect`` sets OPENCV_FFMPEG_CAPTURE_OPTIONS for RTSP; the keyframe reader adds to it."""
    monkeypatch.setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
    sampler = ClipSampler(clip720, SampleConfig(every_s=1.0))
    frames = list(sampler.frames())
    assert [read_index(f.rgb) for f in frames] == [f.index for f in frames] and all(
        f.keyframe for f in frames
    )
    # a keyframe every 12 frames: 150 frames hold 13, and only those were decoded
    assert sampler.stats["keyframe_grabs"] <= 13
    assert os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] == "rtsp_transport;tcp"


def test_resume_samples_only_what_is_missing(clip720):
    cfg = SampleConfig(every_s=0.5)
    first = ClipSampler(clip720, cfg)
    gen = first.frames()
    got = [next(gen).index for _ in range(4)]  # killed after four frames
    gen.close()
    rest = [f.index for f in ClipSampler(clip720, cfg).frames(done=got)]
    whole = [f.index for f in ClipSampler(clip720, cfg).frames()]
    assert sorted(got + rest) == whole and not set(got) & set(rest)


def test_remaining_matches_done_frames_within_tolerance():
    from lit_edge.device.video import Target

    targets = [Target(i * 30, float(i)) for i in range(5)]
    # frame 24 served target 30 (a keyframe 0.2 s early): that target is done
    assert [t.index for t in remaining(targets, {0, 24}, tolerance_frames=15)] == [60, 90, 120]
    assert remaining(targets, (), 15) == targets


def test_truncated_clip_yields_its_first_frames_then_a_reason(fieldset, tmp_path):
    real = next(p for p in _real_clips(fieldset) if p.name == "07120049.AVI")
    data = real.read_bytes()
    half = tmp_path / "07120049.AVI"
    half.write_bytes(data[: len(data) // 2])
    sampler = ClipSampler(half, SampleConfig(every_s=1.0))
    frames = list(sampler.frames())
    whole = list(ClipSampler(real, SampleConfig(every_s=1.0)).frames())
    assert 5 <= len(frames) < len(whole) - 10
    assert [f.index for f in frames] == [f.index for f in whole[: len(frames)]]
    assert sampler.failure.startswith("video ends at ") and "truncated or corrupt" in sampler.failure


@pytest.mark.parametrize(
    "content,reason",
    [
        (b"", "empty file (0 bytes)"),
        (b"RIFF\x00\x00junk" * 50, "cannot open video"),
        (None, "file not found"),
    ],
)
def test_unreadable_clips_give_a_reason_not_an_exception(tmp_path, content, reason):
    path = tmp_path / "PICT0001.AVI"
    if content is not None:
        path.write_bytes(content)
    sampler = ClipSampler(path)
    assert list(sampler.frames()) == []
    assert sampler.failure.startswith(reason)


def test_half_an_mp4_without_its_index_cannot_be_opened(clip720, tmp_path):
    data = clip720.read_bytes()  # OpenCV writes the moov index at the end: half a file has none
    half = tmp_path / "half.mp4"
    half.write_bytes(data[: len(data) // 2])
    sampler = ClipSampler(half)
    assert list(sampler.frames()) == [] and "cannot open video" in sampler.failure


def test_recording_time_from_the_container(clip720, fieldset, tmp_path):
    mp4 = tmp_path / "DJI_0001.MP4"
    shutil.copy(clip720, mp4)
    assert container_time(mp4) is None  # OpenCV writes 0: no time
    when = datetime(2024, 5, 17, 6, 42, 10)
    set_mp4_creation_time(mp4, int((when - datetime(1904, 1, 1)).total_seconds()))
    info = probe(mp4)
    assert (info.start, info.time_source) == (when, "container")  # naive: the camera's clock
    assert len(list(ClipSampler(mp4).frames())) == 5  # still a good clip

    avi = tmp_path / "EK000019.AVI"
    shutil.copy(next(p for p in _real_clips(fieldset) if p.name == "EK000019.AVI"), avi)
    set_avi_idit(avi, "MON NOV 20 07:15:02 2014")
    info = probe(avi)
    assert (info.start, info.time_source) == (datetime(2014, 11, 20, 7, 15, 2), "container")
    assert len(list(ClipSampler(avi, SampleConfig(n_frames=3)).frames())) == 3

    assert container_time(tmp_path / "missing.mp4") is None
    (tmp_path / "x.mp4").write_bytes(b"\x00\x00\x00\x08ftyp" + b"\xff" * 8)  # a box bigger than the file
    assert container_time(tmp_path / "x.mp4") is None


_SAMPLE_INTO_DB = """
import sqlite3, sys
from lit_edge.device.video import ClipSampler, SampleConfig
clip, db = sys.argv[1], sys.argv[2]
conn = sqlite3.connect(db)
conn.execute("CREATE TABLE IF NOT EXISTS media (path TEXT, frame_index INT, offset_s REAL, UNIQUE (path, frame_index))")
done = [r[0] for r in conn.execute("SELECT frame_index FROM media WHERE path = ?", (clip,))]
for f in ClipSampler(clip, SampleConfig(every_s=0.5)).frames(done=done):
    conn.execute("INSERT INTO media VALUES (?, ?, ?)", (clip, f.index, f.offset_s))
    conn.commit()
    print(f.index, flush=True)
"""


@pytest.mark.slow
def test_sigkill_mid_clip_then_resume_samples_every_frame_once(clip720, tmp_path):
    """A real process sampling into real SQLite, killed mid-clip, then run again with what it had."""
    import os
    import signal
    import sqlite3
    import subprocess
    import sys

    db = tmp_path / "frames.db"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-c", _SAMPLE_INTO_DB, str(clip720), str(db)]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    first = [int(child.stdout.readline()) for _ in range(4)]
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    with sqlite3.connect(db) as conn:
        killed_at = conn.execute("SELECT count(*) FROM media").fetchone()[0]
    assert 4 <= killed_at < 10  # killed in the middle of the clip (10 frames at 0.5 s)
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = [r[0] for r in conn.execute("SELECT frame_index FROM media ORDER BY frame_index")]
    whole = [f.index for f in ClipSampler(clip720, SampleConfig(every_s=0.5)).frames()]
    assert rows == whole and set(first) <= set(rows)  # every sampled frame exactly once


def test_clip_and_telemetry_code_imports_no_torch():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import lit_edge.device.video, lit_edge.device.video.decision, lit_edge.device.video.stamps\n"
        "import lit_edge.device.video.loader\n"
        "import lit_edge.device.telemetry, lit_edge.vote, lit_edge.timezones\n"
        "import lit_edge.fielddata.geojson, lit_edge.fielddata.tracks\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "NO-TORCH", out.stderr[-2000:]
