"""What a clip is (by suffix), opening it with OpenCV, and what it says about itself.

A clip is opened through OpenCV's FFmpeg backend, by path (UTF-8, spaces and all). Everything the
sampler and the database need about the file comes from :func:`probe`: frame rate, frame count,
duration, size, codec, and when it was recorded (the container header, else the file time, with
``time_source`` saying which).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import cv2

from lit_edge.device.video.containers import container_time

#: Clip formats of camera traps (AVI, MP4, MOV, ASF/WMV), camcorders (MTS/M2TS) and drones (MP4,
#: MOV); matched case-insensitively.
CLIP_SUFFIXES = frozenset({".avi", ".mp4", ".mov", ".asf", ".wmv", ".mts", ".m2ts", ".m4v", ".mkv"})

# FFmpeg decoder options and its log level reach OpenCV only through process-wide variables, read
# while a capture opens; the lock keeps two threads from opening with each other's settings.
_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_LOGLEVEL_ENV = "OPENCV_FFMPEG_LOGLEVEL"
_QUIET = "-8"  # AV_LOG_QUIET: a damaged clip is reported once as its failure, not as decoder chatter
_OPEN_LOCK = threading.Lock()


class ClipError(Exception):
    """A clip that cannot be read; ``str(exc)`` is the one-line reason recorded in the database."""


def is_clip(path: Path | str) -> bool:
    """Whether ``path`` names a clip (by suffix; a folder named ``x.avi`` is not one)."""
    name = os.path.basename(str(path))
    return Path(name).suffix.lower() in CLIP_SUFFIXES and not name.startswith("._")


@dataclass(frozen=True)
class ClipInfo:
    """A clip's own facts, as its container states them."""

    path: str
    fps: float
    frame_count: int  # as the container states it (may be off by one, or estimated from duration)
    duration_s: float
    width: int
    height: int
    codec: str  # FourCC or FFmpeg codec name, e.g. 'h264', 'FMP4'
    file_size: int
    start: datetime | None  # when recording began (naive = the camera's clock, see containers.py)
    time_source: str  # 'container' | 'mtime' (the file's time less the clip's length)


def open_capture(path: Path | str, *, keyframes_only: bool = False, threads: int = 0) -> cv2.VideoCapture:
    """An FFmpeg capture of ``path``; ``keyframes_only`` makes the decoder skip every other frame.

    With ``keyframes_only`` FFmpeg decodes nothing but keyframes (``avdiscard=nonkey``): a key
    frame costs no more than it would anyway, and the frames between are neither decoded nor
    converted. Raises :class:`ClipError` when the file cannot be opened.
    """
    params = [cv2.CAP_PROP_N_THREADS, threads] if threads > 0 else []
    options = os.environ.get(_OPTIONS_ENV)
    if keyframes_only:  # OpenCV parses "key;value|key;value"; keep the user's (or detect's) own
        options = f"{options}|avdiscard;nonkey" if options else "avdiscard;nonkey"
    settings = {_OPTIONS_ENV: options, _LOGLEVEL_ENV: os.environ.get(_LOGLEVEL_ENV, _QUIET)}
    with _OPEN_LOCK:
        saved = {k: os.environ.get(k) for k in settings}
        cvlog = getattr(cv2.utils, "logging", None)  # OpenCV < 4.9 (JetPack's, our floor) has none
        log_level = cvlog.getLogLevel() if cvlog else None
        if cvlog:
            cvlog.setLogLevel(cvlog.LOG_LEVEL_ERROR)
        try:
            for k, v in settings.items():
                _setenv(k, v)
            cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, params)
        finally:
            for k, v in saved.items():
                _setenv(k, v)
            if cvlog:
                cvlog.setLogLevel(log_level)
    if not cap.isOpened():
        cap.release()
        raise ClipError(_unopenable(Path(path)))
    return cap


def _setenv(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _unopenable(path: Path) -> str:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "file not found"
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    if path.is_dir():
        return "is a directory"
    if size == 0:
        return "empty file (0 bytes)"
    return "cannot open video: not a video, an unsupported codec, or a truncated file (no index)"


def _fourcc(value: float) -> str:
    code = int(value)
    text = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4))
    return text.strip("\0 ") if text.isprintable() else str(code)


def probe(path: Path | str) -> ClipInfo:
    """Open ``path`` and read its facts; :class:`ClipError` with a reason when it is no usable clip."""
    path = Path(path)
    cap = open_capture(path)
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        codec = _fourcc(cap.get(cv2.CAP_PROP_FOURCC))
    finally:
        cap.release()
    if not (0 < fps < 1000):
        raise ClipError(f"no usable frame rate ({fps:g} fps): a corrupt header")
    if width <= 0 or height <= 0:
        raise ClipError("no video stream (audio only, or a corrupt header)")
    st = path.stat()
    start = container_time(path)
    source = "container"
    if start is None:  # the file was last written when recording stopped
        start = datetime.fromtimestamp(st.st_mtime - max(count, 0) / fps, timezone.utc)
        source = "mtime"
    return ClipInfo(
        path=str(path),
        fps=fps,
        frame_count=max(count, 0),
        duration_s=max(count, 0) / fps,
        width=width,
        height=height,
        codec=codec,
        file_size=st.st_size,
        start=start,
        time_source=source,
    )
