"""Clips the tests write, whose every frame carries its own index as a visible code.

A frame's index is drawn as 12 black/white cells across its top half (most significant first),
large enough to survive lossy coding and downscaling, so a test can check that the frame the
sampler says is frame 57 shows 57, whichever way (keyframe, decoding, seeking) it was read.
"""

from __future__ import annotations

import struct
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from fielddata_fixtures import DEER, FOX, _decided, fill_db
from lit_edge.device.telemetry import find_telemetry, load_telemetry
from lit_edge.device.video import ClipSampler, SampleConfig, probe
from lit_edge.device.video.stamps import stamp

BITS = 12


def frame_image(index: int, width: int, height: int) -> np.ndarray:
    """BGR frame ``index``: the code on top, a moving gradient below (so frames differ)."""
    img = np.zeros((height, width, 3), np.uint8)
    cell = width // BITS
    for b in range(BITS):
        if (index >> (BITS - 1 - b)) & 1:
            img[: height // 2, b * cell : (b + 1) * cell] = 255
    x = np.linspace(0, 255, width, dtype=np.float32)
    img[height // 2 :, :, 1] = ((x + index * 7) % 256).astype(np.uint8)
    return img


def read_index(rgb: np.ndarray) -> int:
    """The index drawn by :func:`frame_image`, read back from a (possibly downscaled) frame."""
    h, w = rgb.shape[:2]
    cell = w / BITS
    grey = rgb[: h // 2].mean(axis=2)
    value = 0
    for b in range(BITS):
        x0, x1 = int(b * cell + cell / 4), int((b + 1) * cell - cell / 4)
        value = (value << 1) | int(grey[h // 8 : 3 * h // 8, x0:x1].mean() > 127)
    return value


def write_clip(path: Path, *, frames: int, fps: float = 30.0, size=(1280, 720), fourcc: str = "mp4v") -> Path:
    """Write an index-coded clip with OpenCV (``mp4v`` MPEG-4 in .mp4, ``MJPG``/``XVID`` in .avi)."""
    w, h = size
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert out.isOpened(), f"OpenCV cannot write {fourcc} to {path}"
    for i in range(frames):
        out.write(frame_image(i, w, h))
    out.release()
    return path


def set_mp4_creation_time(path: Path, seconds_since_1904: int) -> None:
    """Write a creation time into an MP4's ``mvhd`` box (version 0), as a camera would."""
    data = bytearray(path.read_bytes())
    at = data.find(b"mvhd")
    assert at > 0 and data[at + 4] == 0, "no version-0 mvhd box"
    data[at + 8 : at + 12] = struct.pack(">I", seconds_since_1904)
    path.write_bytes(bytes(data))


def set_avi_idit(path: Path, text: str) -> None:
    """Turn the AVI header's JUNK padding chunk into an ``IDIT`` date chunk of the same size."""
    data = bytearray(path.read_bytes())
    at = data.find(b"JUNK")
    assert at > 0, "no JUNK chunk to reuse"
    (size,) = struct.unpack("<I", data[at + 4 : at + 8])
    payload = text.encode("ascii") + b"\n\0"
    assert len(payload) <= size
    data[at : at + 4] = b"IDIT"
    data[at + 8 : at + 8 + size] = payload + b"\0" * (size - len(payload))
    path.write_bytes(bytes(data))


def track(i: int) -> tuple[float, float, float]:
    """A made-up flight: lat, lon, height above take-off for second ``i``."""
    return 46.5 + 0.0001 * i, -121.75 + 0.0002 * i, 10.0 + i


def srt_text(n: int, order: str, start: datetime) -> str:
    """A DJI SRT of ``n`` one-second entries along :func:`track`, tuples in ``order`` (Mavic Pro or M300)."""
    out = []
    for i in range(n):
        lat, lon, h = track(i)
        t0, t1 = timedelta(seconds=i), timedelta(seconds=i + 1)
        tc = f"0{t0}".replace(".", ",") + ",000 --> " + f"0{t1}".replace(".", ",") + ",000"
        when = (start + t0).strftime("%Y.%m.%d %H:%M:%S")
        if order == "lon,lat":  # Mavic Pro: HOME/GPS longitude first, satellites third
            body = f"HOME({track(0)[1]:.4f},{track(0)[0]:.4f}) {when}\nGPS({lon:.4f},{lat:.4f},16) BAROMETER:{h:.1f}"
        else:  # Matrice 300: latitude first, absolute altitude in metres third
            body = f"{when}\nGPS({lat:.4f},{lon:.4f},{h + 120:.1f}M) BAROMETER:{h:.1f}M"
        out.append(f"{i + 1}\n{tc}\n{body}\n")
    return "\n".join(out)


def flight_db(tmp_path: Path) -> tuple[Path, Path]:
    """A drone clip with its SRT, sampled and stamped for real; a photo with GPS; a blank; one unplaced."""
    clip = write_clip(tmp_path / "DJI_0007.MP4", frames=150, size=(320, 240))
    (tmp_path / "DJI_0007.SRT").write_text(
        srt_text(5, "lat,lon", datetime(2024, 5, 17, 6, 42, 10)), encoding="utf-8"
    )
    info, tele = probe(clip), load_telemetry(find_telemetry(clip))
    rows = []
    for f in ClipSampler(clip, SampleConfig(keyframes=False)).frames():
        s = stamp(info, f.offset_s, tele)
        row = {
            "path": str(clip),
            "kind": "frame",
            "frame_index": f.index,
            "offset_s": f.offset_s,
            "captured_at": s.captured_at,
            "time_source": s.time_source,
            "latitude": s.latitude,
            "longitude": s.longitude,
            "altitude": s.altitude,
            "relative_altitude": s.relative_altitude,
        }
        rows.append(
            {
                **row,
                **(
                    _decided(DEER, 0.9)
                    if f.index in (30, 90)
                    else {"top_name": "blank", "top_rank": "blank", "top_score": 0.8}
                ),
            }
        )
    first = stamp(info, 0.0, tele)
    rows.append(  # the clip's own row, as the pipeline writes it after its last frame
        {
            "path": str(clip),
            "kind": "clip",
            "duration_s": info.duration_s,
            "captured_at": first.captured_at,
            "time_source": first.time_source,
            "latitude": first.latitude,
            "longitude": first.longitude,
            **_decided(DEER, 0.9),
        }
    )
    rows.append(
        {
            "path": str(tmp_path / "IMG_1.JPG"),
            "captured_at": "2024-05-17T07:00:00",
            "latitude": -20.2533,
            "longitude": 149.0251,
            **_decided(FOX, 0.7),
        }
    )
    rows.append(
        {"path": str(tmp_path / "IMG_2.JPG"), "captured_at": "2024-05-17T07:01:00", **_decided(FOX, 0.8)}
    )
    db = tmp_path / "flight.db"
    fill_db(db, rows)
    return db, clip
