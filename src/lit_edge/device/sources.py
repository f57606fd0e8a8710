"""Where frames come from, by address, as Jetson users expect to type them.

``csi://0``                 a MIPI CSI camera through GStreamer ``nvarguscamerasrc`` (JetPack's OpenCV)
``v4l2:///dev/video0``      a V4L2 device (also plain ``/dev/video0``), or a camera index ``0``
``rtsp://…`` ``http://…``   a network stream (RTSP, HTTP MJPEG) through FFmpeg
a video file, an image file, a folder (recursive) or a quoted glob

Photos (image, folder, glob) are listed by :func:`list_files` for ``tag``. Everything else is read
by :class:`LiveSource` on its own thread into a bounded :class:`FrameQueue`: a live camera drops the
oldest frame rather than fall behind, a video file waits (every frame counts), a dropped stream is
reopened with exponential backoff, and a video that ends ends the source cleanly.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path

import numpy as np

from lit_edge.device.config import CaptureConfig
from lit_edge.device.decode import IMAGE_SUFFIXES
from lit_edge.errors import UserError

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset(
    {".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mjpeg", ".mjpg", ".ts", ".h264", ".h265"}
)
_STREAM = re.compile(r"^(rtsp|rtsps|rtmp|http|https|udp|tcp)://", re.IGNORECASE)


class SourceKind(str, Enum):
    """What an address points at. Live kinds are read by :class:`LiveSource` as they come, a video
    file by it too (every frame), and photo kinds are listed by :func:`list_files` for ``tag``."""

    CSI = "csi"
    V4L2 = "v4l2"
    INDEX = "index"  # a camera index, as OpenCV numbers them
    STREAM = "stream"
    VIDEO = "video"
    IMAGE = "image"
    FOLDER = "folder"
    GLOB = "glob"

    def __str__(self) -> str:  # in messages and logs: 'video', not 'SourceKind.VIDEO'
        return self.value

    @property
    def live(self) -> bool:
        """A camera or stream: frames come at their own pace, and the oldest is dropped, not waited for."""
        return self in (SourceKind.CSI, SourceKind.V4L2, SourceKind.INDEX, SourceKind.STREAM)

    @property
    def photos(self) -> bool:
        """Photos for ``tag`` (an image, a folder, a glob), not frames for ``detect``."""
        return self in (SourceKind.IMAGE, SourceKind.FOLDER, SourceKind.GLOB)


@dataclass(frozen=True)
class SourceSpec:
    """A parsed address: what kind of source, and what to hand OpenCV (or the file lister)."""

    kind: SourceKind
    target: str  # device path, URL, file/folder path, glob pattern, or sensor id / camera index
    address: str  # as the user typed it

    @property
    def live(self) -> bool:
        return self.kind.live


def parse_address(address: str) -> SourceSpec:
    """Classify an address; a path that does not exist is a one-line :class:`UserError`."""
    a = address.strip()
    if not a:
        raise UserError("empty source address; give a folder, file, glob, camera or stream address")
    low = a.lower()
    if low.startswith("csi://"):
        sensor = a[6:] or "0"
        if not sensor.isdigit():
            raise UserError(f"bad CSI address {address!r}; use csi://0 (the sensor id)")
        return SourceSpec(SourceKind.CSI, sensor, address)
    if low.startswith("v4l2://"):
        dev = a[7:]
        if dev.isdigit():
            dev = f"/dev/video{dev}"
        if not dev.startswith("/"):
            raise UserError(f"bad V4L2 address {address!r}; use v4l2:///dev/video0")
        return SourceSpec(SourceKind.V4L2, dev, address)
    if re.fullmatch(r"/dev/video\d+", a):
        return SourceSpec(SourceKind.V4L2, a, address)
    if a.isdigit():
        return SourceSpec(SourceKind.INDEX, a, address)
    if _STREAM.match(a):
        return SourceSpec(SourceKind.STREAM, a, address)
    if low.startswith("file://"):
        a = a[7:]
    p = Path(a).expanduser()
    if p.is_dir():
        return SourceSpec(SourceKind.FOLDER, str(p), address)
    if p.exists() or p.is_symlink():
        suffix = p.suffix.lower()
        if suffix in VIDEO_SUFFIXES:
            return SourceSpec(SourceKind.VIDEO, str(p), address)
        return SourceSpec(SourceKind.IMAGE, str(p), address)
    if glob.has_magic(a):
        return SourceSpec(SourceKind.GLOB, str(Path(a).expanduser()), address)
    raise UserError(
        f"source not found: {address}; give an existing folder, file, quoted glob or a stream address"
    )


def list_files(spec: SourceSpec) -> list[Path]:
    """The photos of an image/folder/glob source, sorted; broken symlinks included (they are rows too)."""
    if spec.kind is SourceKind.IMAGE:
        return [Path(spec.target)]
    if spec.kind is SourceKind.FOLDER:
        out = []
        for root, dirs, files in os.walk(spec.target):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            out += [
                Path(root, f)
                for f in files
                if Path(f).suffix.lower() in IMAGE_SUFFIXES and not f.startswith("._")
            ]
        return sorted(out)
    if spec.kind is SourceKind.GLOB:
        hits = glob.glob(spec.target, recursive=True)
        return sorted(
            Path(h) for h in hits if Path(h).suffix.lower() in IMAGE_SUFFIXES and not os.path.isdir(h)
        )
    raise UserError(f"{spec.address} is a {spec.kind} source, not photos; use 'lit-edge detect' for it")


# -- live sources -----------------------------------------------------------------------------------


def csi_pipeline(sensor_id: int, cfg: CaptureConfig) -> str:
    """The GStreamer pipeline for a Jetson CSI camera (nvarguscamerasrc -> BGR appsink)."""
    return (
        f"nvarguscamerasrc sensor-id={sensor_id} ! "
        f"video/x-raw(memory:NVMM), width=(int){cfg.width}, height=(int){cfg.height}, "
        f"format=(string)NV12, framerate=(fraction){cfg.capture_fps}/1 ! "
        f"nvvidconv flip-method={cfg.flip} ! "
        f"video/x-raw, width=(int){cfg.width}, height=(int){cfg.height}, format=(string)BGRx ! "
        "videoconvert ! video/x-raw, format=(string)BGR ! appsink drop=true max-buffers=1 sync=false"
    )


def _has_gstreamer() -> bool:
    import cv2

    return any("GStreamer" in ln and "YES" in ln for ln in cv2.getBuildInformation().splitlines())


def capture_args(spec: SourceSpec, cfg: CaptureConfig) -> tuple[object, int, list[int]]:
    """(what, api preference, open params) for ``cv2.VideoCapture``; no device is touched here."""
    import cv2

    if spec.kind is SourceKind.CSI:
        if not _has_gstreamer():
            raise UserError(
                f"{spec.address}: CSI cameras need OpenCV built with GStreamer (JetPack's OpenCV); "
                "this OpenCV has none: use the Jetson image (Dockerfile.jetson) or a v4l2:// address"
            )
        return csi_pipeline(int(spec.target), cfg), cv2.CAP_GSTREAMER, []
    size = [cv2.CAP_PROP_FRAME_WIDTH, cfg.width, cv2.CAP_PROP_FRAME_HEIGHT, cfg.height]
    if spec.kind is SourceKind.V4L2:
        return spec.target, cv2.CAP_V4L2, size
    if spec.kind is SourceKind.INDEX:
        return int(spec.target), cv2.CAP_ANY, size
    if spec.kind is SourceKind.STREAM:
        if spec.target.lower().startswith("rtsp"):
            os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
        ms = int(cfg.timeout_s * 1000)
        return (
            spec.target,
            cv2.CAP_FFMPEG,
            [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms],
        )
    if spec.kind is SourceKind.VIDEO:
        return spec.target, cv2.CAP_ANY, []
    raise UserError(f"{spec.address} is a {spec.kind} source; use 'lit-edge tag' for photos")


@dataclass
class Frame:
    """A frame as read: its index in the source, upright RGB pixels and when it was taken."""

    index: int
    rgb: np.ndarray
    captured_at: str
    time_source: str  # clock (live) | video (position in the file, ISO 8601 duration)
    read_at: float  # time.perf_counter() when read, for latency


class FrameQueue:
    """Bounded queue; ``drop_oldest`` makes ``put`` evict the oldest frame instead of waiting."""

    def __init__(self, maxsize: int, drop_oldest: bool):
        self._d: deque = deque()
        self._max = max(1, maxsize)
        self._drop = drop_oldest
        self._cv = threading.Condition()
        self.dropped = 0
        self.closed = False

    def put(self, item, stop: threading.Event) -> None:
        with self._cv:
            while len(self._d) >= self._max:
                if self._drop:
                    self._d.popleft()
                    self.dropped += 1
                    break
                if stop.is_set():
                    return
                self._cv.wait(0.1)
            self._d.append(item)
            self._cv.notify_all()

    def get(self, timeout: float) -> Frame | None:
        with self._cv:
            end = time.monotonic() + timeout
            while not self._d:
                left = end - time.monotonic()
                if self.closed or left <= 0:
                    return None
                self._cv.wait(left)
            item = self._d.popleft()
            self._cv.notify_all()
            return item

    def close(self) -> None:
        with self._cv:
            self.closed = True
            self._cv.notify_all()

    def __len__(self) -> int:
        return len(self._d)


class MotionGate:
    """Passes a frame when enough of a small blurred grey copy changed since the last passed frame."""

    def __init__(self, fraction: float, size: int = 96, delta: int = 25):
        self.fraction, self.size, self.delta = fraction, size, delta
        self._last: np.ndarray | None = None

    def __call__(self, bgr: np.ndarray) -> bool:
        import cv2

        small = cv2.resize(bgr, (self.size, self.size), interpolation=cv2.INTER_AREA)
        grey = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), (5, 5), 0)
        if self._last is None:
            self._last = grey
            return True
        changed = float(np.mean(cv2.absdiff(grey, self._last) > self.delta))
        if changed >= self.fraction:
            self._last = grey
            return True
        return False


class LiveSource:
    """Reads a camera, stream or video on a thread; see the module docstring for the policies."""

    def __init__(self, spec: SourceSpec, cfg: CaptureConfig, first_index: int = 0):
        if spec.kind.photos:
            raise UserError(f"{spec.address} is a {spec.kind} source; use 'lit-edge tag' for photos")
        self.spec, self.cfg = spec, cfg
        self.queue = FrameQueue(cfg.queue_size, drop_oldest=spec.live)
        self.first_index = first_index
        self.reconnects = 0
        self.ended = threading.Event()
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lit-edge-source-{spec.kind}", daemon=True)
        self._gate = MotionGate(cfg.motion) if cfg.motion > 0 else None
        self._what, self._api, self._params = capture_args(spec, cfg)

    def start(self) -> LiveSource:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.cfg.timeout_s + 5)

    def get(self, timeout: float = 0.5) -> Frame | None:
        return self.queue.get(timeout)

    @property
    def exhausted(self) -> bool:
        """The source has ended and every frame it read has been taken."""
        return self.ended.is_set() and len(self.queue) == 0

    def _open(self):
        import cv2

        cap = (
            cv2.VideoCapture(self._what, self._api, self._params)
            if self._params
            else cv2.VideoCapture(self._what, self._api)
        )
        if not cap.isOpened():
            cap.release()
            return None
        return cap

    def _run(self) -> None:
        backoff = self.cfg.backoff_s
        n = 0  # frames read from the source since start (over reconnects)
        last_emit = -1e9
        try:
            while not self._stop.is_set():
                cap = self._open()
                if cap is None:
                    if not self.spec.live:
                        self.error = f"cannot open video {self.spec.target}"
                        log.error("%s", self.error)
                        return
                    log.warning("cannot open %s; retrying in %.1f s", self.spec.address, backoff)
                else:
                    got_any = False
                    while not self._stop.is_set():
                        ok, bgr = cap.read()
                        if not ok or bgr is None:
                            break
                        got_any = True
                        n += 1
                        if (n - 1) % max(1, self.cfg.every):
                            continue
                        # a video is sampled on its own clock (CAP_PROP_POS_MSEC), a camera on ours
                        now = time.monotonic() if self.spec.live else cap.get(0) / 1000.0
                        if self.cfg.fps > 0 and now - last_emit < 1.0 / self.cfg.fps - 1e-6:
                            continue
                        if self._gate is not None and not self._gate(bgr):
                            continue
                        last_emit = now
                        self.queue.put(self._frame(n - 1, bgr, cap), self._stop)
                    cap.release()
                    if not self.spec.live:
                        log.info("%s: end of video after %d frames", self.spec.address, n)
                        return
                    if got_any:
                        backoff = self.cfg.backoff_s
                    if self._stop.is_set():
                        return
                    log.warning(
                        "%s: stream dropped after %d frames; reconnecting in %.1f s",
                        self.spec.address,
                        n,
                        backoff,
                    )
                if not self.cfg.reconnect or (0 <= self.cfg.max_reconnects <= self.reconnects):
                    self.error = f"{self.spec.address}: source lost and not reconnected"
                    log.error("%s", self.error)
                    return
                if self._stop.wait(backoff):
                    return
                backoff = min(backoff * 2, self.cfg.backoff_max_s)
                self.reconnects += 1
                log.info("%s: reconnect attempt %d", self.spec.address, self.reconnects)
        finally:
            self.ended.set()
            self.queue.close()

    def _frame(self, idx: int, bgr: np.ndarray, cap) -> Frame:
        import cv2

        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if self.spec.live:
            stamp, how = datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "clock"
        else:
            stamp, how = f"PT{cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0:.3f}S", "video"
        return Frame(self.first_index + idx, rgb, stamp, how, time.perf_counter())
