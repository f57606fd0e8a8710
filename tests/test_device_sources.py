"""Sources by address: parsing, pipeline strings, file listing, queues, motion gate, real video and HTTP."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from bundle_factory import COLOURS, solid, write_jpeg
from lit_edge.device import sources
from lit_edge.device.config import CaptureConfig
from lit_edge.device.sources import FrameQueue, LiveSource, MotionGate, parse_address
from lit_edge.errors import UserError
from mjpeg_server import MjpegServer


def test_parse_addresses(tmp_path):
    (tmp_path / "photos").mkdir()
    write_jpeg(tmp_path / "a.jpg", solid((1, 2, 3)))
    (tmp_path / "clip.mp4").write_bytes(b"\x00")
    cases = {
        "csi://0": ("csi", "0"),
        "csi://1": ("csi", "1"),
        "v4l2:///dev/video2": ("v4l2", "/dev/video2"),
        "/dev/video0": ("v4l2", "/dev/video0"),
        "0": ("index", "0"),
        "rtsp://user:pw@10.0.0.5:554/stream1": ("stream", "rtsp://user:pw@10.0.0.5:554/stream1"),
        "http://cam.local/mjpg": ("stream", "http://cam.local/mjpg"),
        str(tmp_path / "photos"): ("folder", str(tmp_path / "photos")),
        str(tmp_path / "a.jpg"): ("image", str(tmp_path / "a.jpg")),
        str(tmp_path / "clip.mp4"): ("video", str(tmp_path / "clip.mp4")),
        str(tmp_path / "*.jpg"): ("glob", str(tmp_path / "*.jpg")),
    }
    for address, (kind, target) in cases.items():
        spec = parse_address(address)
        assert (spec.kind, spec.target) == (kind, target), address
        assert spec.live == (kind in ("csi", "v4l2", "index", "stream"))
    for bad in ("csi://front", "v4l2://video0", str(tmp_path / "missing.jpg"), ""):
        with pytest.raises(UserError):
            parse_address(bad)


def test_csi_pipeline_and_capture_arguments(monkeypatch):
    cfg = CaptureConfig(width=1920, height=1080, capture_fps=30, flip=2)
    pipe = sources.csi_pipeline(1, cfg)
    assert pipe.startswith("nvarguscamerasrc sensor-id=1 ! video/x-raw(memory:NVMM)")
    assert "width=(int)1920, height=(int)1080" in pipe and "framerate=(fraction)30/1" in pipe
    assert "nvvidconv flip-method=2" in pipe and pipe.endswith("appsink drop=true max-buffers=1 sync=false")
    csi = parse_address("csi://1")
    if sources._has_gstreamer():
        assert sources.capture_args(csi, cfg)[1] == cv2.CAP_GSTREAMER
    else:  # this OpenCV has no GStreamer: say so, do not try and hang
        with pytest.raises(UserError, match="GStreamer"):
            sources.capture_args(csi, cfg)
    monkeypatch.setattr(sources, "_has_gstreamer", lambda: True)
    what, api, _ = sources.capture_args(csi, cfg)
    assert (what, api) == (pipe, cv2.CAP_GSTREAMER)
    what, api, params = sources.capture_args(parse_address("v4l2:///dev/video3"), cfg)
    assert (what, api) == ("/dev/video3", cv2.CAP_V4L2) and params[1::2] == [1920, 1080]
    monkeypatch.delenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", raising=False)
    what, api, params = sources.capture_args(parse_address("rtsp://10.0.0.5/s"), cfg)
    assert api == cv2.CAP_FFMPEG and cv2.CAP_PROP_READ_TIMEOUT_MSEC in params
    import os

    assert os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] == "rtsp_transport;tcp"


def test_missing_v4l2_device_retries_with_backoff_then_gives_up():
    src = LiveSource(
        parse_address("v4l2:///dev/video97"), CaptureConfig(backoff_s=0.05, max_reconnects=2)
    ).start()
    assert src.ended.wait(10)
    assert src.reconnects == 2 and "not reconnected" in src.error and src.get(0.01) is None


def test_list_files_recursive_and_glob(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    for p in ("x.jpg", "a/y.PNG", "a/b/z.jpeg", ".hidden/h.jpg", "a/readme.md", "a/b/._x.jpg"):
        (tmp_path / p).write_bytes(b"1")
    found = sources.list_files(parse_address(str(tmp_path)))
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a/b/z.jpeg", "a/y.PNG", "x.jpg"]
    globbed = sources.list_files(parse_address(str(tmp_path / "**" / "*.jp*g")))
    assert {p.name for p in globbed} == {"x.jpg", "z.jpeg"}
    with pytest.raises(UserError, match="use 'lit-edge detect'"):
        sources.list_files(parse_address("rtsp://x/y"))


def test_frame_queue_drops_oldest_for_live_and_waits_for_video():
    stop = threading.Event()
    live = FrameQueue(3, drop_oldest=True)
    for i in range(10):
        live.put(i, stop)
    assert [live.get(0) for _ in range(3)] == [7, 8, 9] and live.dropped == 7
    video = FrameQueue(2, drop_oldest=False)
    video.put(0, stop)
    video.put(1, stop)
    t = threading.Thread(target=video.put, args=(2, stop))
    t.start()
    time.sleep(0.2)
    assert t.is_alive()  # blocked: a video frame is never thrown away
    assert video.get(0) == 0
    t.join(2)
    assert [video.get(0), video.get(0)] == [1, 2] and video.dropped == 0


def test_motion_gate_passes_changes_only():
    gate = MotionGate(0.05)
    still = np.full((120, 160, 3), 90, np.uint8)
    assert gate(still)  # the first frame always passes
    noisy = still.copy()
    noisy[0, 0] = 255  # one pixel: not motion
    assert not gate(noisy)
    moved = still.copy()
    moved[30:90, 40:120] = 250  # something walked in
    assert gate(moved) and not gate(moved)


def _video(path, colours, n_each=10, fps=10, size=(64, 48)):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert w.isOpened()
    for rgb in colours:
        for _ in range(n_each):
            w.write(cv2.cvtColor(solid(rgb, (size[1], size[0])), cv2.COLOR_RGB2BGR))
    w.release()
    return path


def _drain(src: LiveSource, limit_s=20):
    out, end = [], time.monotonic() + limit_s
    while not src.exhausted and time.monotonic() < end:
        f = src.get(0.2)
        if f is not None:
            out.append(f)
    return out


def test_video_file_every_frame_then_ends(tmp_path):
    v = _video(tmp_path / "v.avi", [COLOURS["Rubra rosea"], COLOURS["Caerulea mare"]])
    frames = _drain(LiveSource(parse_address(str(v)), CaptureConfig(queue_size=2)).start())
    assert [f.index for f in frames] == list(range(20))
    assert frames[0].rgb[0, 0, 0] > 200 and frames[-1].rgb[0, 0, 2] > 200
    assert frames[0].time_source == "video" and frames[5].captured_at == "PT0.500S"


def test_video_every_and_fps_use_the_video_clock(tmp_path):
    v = _video(tmp_path / "v.avi", [(0, 0, 0)], n_each=30, fps=10)
    every = _drain(LiveSource(parse_address(str(v)), CaptureConfig(every=4)).start())
    assert [f.index for f in every] == list(range(0, 30, 4))
    limited = _drain(LiveSource(parse_address(str(v)), CaptureConfig(fps=2.5)).start())
    assert [f.index for f in limited] == list(range(0, 30, 4))  # 10 fps video, 2.5 fps wanted


def test_http_stream_reconnects_after_drops_and_ends_when_gone():
    with MjpegServer(solid(COLOURS["Viridis silva"]), frames_per_connection=8, max_connections=3) as cam:
        src = LiveSource(
            parse_address(cam.url), CaptureConfig(backoff_s=0.05, max_reconnects=5, queue_size=64)
        ).start()
        frames = _drain(src)
    assert src.ended.is_set() and src.error
    assert src.reconnects >= 3 and cam.connections >= 4  # three drops reconnected, then refused
    assert len(frames) + src.queue.dropped == cam.frames_sent == 24
    assert [f.index for f in frames] == sorted(f.index for f in frames)
    assert all(f.time_source == "clock" for f in frames)
