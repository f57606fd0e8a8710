"""Clips the tests write, whose every frame carries its own index as a visible code.

A frame's index is drawn as 12 black/white cells across its top half (most significant first),
large enough to survive lossy coding and downscaling, so a test can check that the frame the
sampler says is frame 57 shows 57, whichever way (keyframe, decoding, seeking) it was read.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

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
