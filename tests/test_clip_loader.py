"""A clip as pipeline work items (``video.loader.clip_loads``): real clips, the real ordered
pipeline with the colour bundle's ONNX graph, the real store, read back with the real reader."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from bundle_factory import COLOURS, make_bundle
from clip_factory import srt_text
from lit_edge.db.reader import read_detections
from lit_edge.db.writer import RunInfo, Store, StoreConfig
from lit_edge.device import backends
from lit_edge.device.config import BackendConfig, ClipConfig, EngineConfig, TagConfig
from lit_edge.device.pipeline import Engine, Pipeline
from lit_edge.device.plan import plan_tag
from lit_edge.device.video.loader import ClipTally, ClipWork, clip_loads, earlier_decisions

NAMES = list(COLOURS)


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Engine:
    bundle = make_bundle(tmp_path_factory.mktemp("bundle"))
    return Engine(EngineConfig(bundle=bundle, backend=BackendConfig("onnxruntime-cpu", threads=1)))


def _colour_clip(path: Path, name: str, frames: int = 60) -> Path:
    """``frames`` frames at 30 fps of one of the bundle's colours (a little noise, as a sensor has)."""
    rng = np.random.default_rng(0)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (96, 64))
    r, g, b = COLOURS[name]
    for _ in range(frames):
        img = np.empty((64, 96, 3), np.uint8)
        img[:] = (b, g, r)
        out.write(img ^ rng.integers(0, 12, img.shape, dtype=np.uint8))
    out.release()
    return path


def _plan(db: Path, workers: int = 2, batch: int = 3):
    return plan_tag(
        TagConfig(source="x", db=db, workers=workers, batch_size=batch), backends.get("onnxruntime-cpu")
    )


def _tag(engine: Engine, db: Path, works: list[ClipWork], cfg: ClipConfig, chunk: int = 3) -> ClipTally:
    tally = ClipTally()
    with Store(db, StoreConfig(batch=4)) as store:
        store.start_run(RunInfo("tag", "clips"))
        with Pipeline(engine, _plan(db), lambda s: store.put(s.record)) as pipe:
            for work in works:
                pipe.put(*clip_loads(work, engine, cfg, tally, chunk=chunk))
    return tally


def test_clips_become_frame_rows_then_their_clip_row(engine, tmp_path):
    red, blue = NAMES[0], NAMES[2]
    a = _colour_clip(tmp_path / "PICT0001.AVI", red)
    b = _colour_clip(tmp_path / "DJI_0002.AVI", blue)
    (tmp_path / "DJI_0002.srt").write_text(
        srt_text(3, "lon,lat", datetime(2024, 5, 17, 6, 42, 10)), encoding="utf-8"
    )
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 100)
    db = tmp_path / "clips.db"
    works = [ClipWork(p, str(p)) for p in (a, b, tmp_path / "broken.mp4")]
    # chunks of 3 frames: each clip of 4 sampled frames is two items, taking turns on one sampler
    tally = _tag(engine, db, works, ClipConfig(every_s=0.5), chunk=3)
    assert (tally.clips, tally.frames, tally.failed, tally.telemetry_warnings) == (3, 8, 1, 0)
    rows = read_detections(db).media
    assert [(Path(m.path).name, m.kind, m.frame_index) for m in rows] == (
        [("PICT0001.AVI", "frame", i) for i in (0, 15, 30, 45)]
        + [("PICT0001.AVI", "clip", -1)]
        + [("DJI_0002.AVI", "frame", i) for i in (0, 15, 30, 45)]
        + [("DJI_0002.AVI", "clip", -1), ("broken.mp4", "clip", -1)]
    )
    clip_a = rows[4]
    assert (clip_a.top_name, clip_a.status, clip_a.duration_s) == (red, "done", 2.0)
    assert all(m.top_name == red and m.offset_s == m.frame_index / 30 for m in rows[:4])
    drone = rows[5:10]
    assert (
        drone[-1].top_name == blue and drone[1].latitude is not None and drone[1].time_source == "telemetry"
    )
    assert drone[-1].latitude == drone[0].latitude  # the clip row is placed where its first frame was
    assert (rows[-1].status, rows[-1].error) == (
        "failed",
        "cannot open video: not a video, an unsupported codec, or a truncated file (no index)",
    )
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_resumed_clip_samples_only_its_missing_frames_and_votes_with_all(engine, tmp_path):
    green = NAMES[1]
    clip = _colour_clip(tmp_path / "PICT0003.AVI", green, frames=90)
    db = tmp_path / "resume.db"
    cfg = ClipConfig(every_s=0.5)
    # a first run got its first item (two frames) in before it was killed: frame rows, no clip row
    with Store(db, StoreConfig(batch=1)) as store:
        store.start_run(RunInfo("tag", "clips"))
        loads = clip_loads(ClipWork(clip, str(clip)), engine, cfg, ClipTally(), chunk=2)
        assert len(loads) == 3
        with Pipeline(engine, _plan(db, 1, 1), lambda s: store.put(s.record)) as pipe:
            pipe.put(loads[0])
        store.flush()  # the writer thread commits what the pipeline handed it
        done = store.frames_done(str(clip))
    assert done == {0, 15}
    earlier = earlier_decisions(db, [str(clip)])[str(clip)]
    assert len(earlier) == 2
    _tag(engine, db, [ClipWork(clip, str(clip), done, earlier)], cfg)
    rows = read_detections(db).media
    frames = sorted(m.frame_index for m in rows if m.kind == "frame")
    assert frames == [0, 15, 30, 45, 60, 75]  # each sampled frame exactly once
    (clip_row,) = [m for m in rows if m.kind == "clip"]
    assert clip_row.top_name == green and clip_row.status == "done"
