"""Photo decoding with OpenCV: orientation, reduced-size JPEG decode and awkward pixel formats.

Why this is its own module: decoding is where field photos go wrong (a truncated card copy, a PNG
with alpha from an editing tool, a 16-bit TIFF from a scanner, a CMYK JPEG from a print workflow,
a 100-megapixel panorama). Every such case must become either an RGB ``uint8`` image or a
:class:`DecodeError` with a one-line reason, never a crash.

JPEGs are decoded with ``IMREAD_IGNORE_ORIENTATION`` and rotated here from our own EXIF parse, so
the full-size and the reduced-size (``IMREAD_REDUCED_COLOR_2/4/8``) paths apply orientation the
same way, whatever OpenCV version does or does not do for reduced decodes.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lit_edge.device.exif import JpegInfo, is_jpeg, read_jpeg_info

#: Photo formats OpenCV decodes.
DECODABLE_SUFFIXES = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jpe",
        ".png",
        ".tif",
        ".tiff",
        ".bmp",
        ".webp",
        ".jp2",
        ".pgm",
        ".ppm",
        ".pnm",
        ".gif",
    }
)
#: Photo formats a camera may write that OpenCV cannot read: listed (a failed row says how to fix
#: it) rather than silently skipped, so that no photo of a card goes unaccounted for.
UNSUPPORTED_SUFFIXES = frozenset(
    {".heic", ".heif", ".avif", ".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2"}
)
IMAGE_SUFFIXES = DECODABLE_SUFFIXES | UNSUPPORTED_SUFFIXES
_REDUCED = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}
_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)


class DecodeError(Exception):
    """A file that cannot become an image; ``str(exc)`` is the reason recorded in the database."""


@dataclass
class Decoded:
    """An RGB ``uint8`` image and what we learned about the file on the way."""

    rgb: np.ndarray  # H x W x 3, upright
    width: int  # original width, upright, before any reduced decode
    height: int
    file_size: int
    reduced: int = 1  # 1, 2, 4 or 8
    info: JpegInfo = JpegInfo()
    warning: str | None = None  # decoded, but not all of it (a truncated JPEG's top part)


def reduce_factor(width: int, height: int, min_side: int) -> int:
    """The largest JPEG DCT scale (8, 4, 2) that still leaves the shorter side >= ``min_side``."""
    short = min(width, height)
    for f in (8, 4, 2):
        if short // f >= min_side:
            return f
    return 1


def read_bytes(path: Path) -> bytes:
    """Read a file, turning every way it can be unreadable into a :class:`DecodeError`."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):  # a FIFO or device named .jpg would block or never end
            kind = "directory" if stat.S_ISDIR(st.st_mode) else "FIFO, socket or device"
            raise DecodeError(f"not a regular file ({kind})")
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError as exc:
        kind = "broken symlink" if os.path.islink(path) else "file not found"
        raise DecodeError(f"{kind}: {exc.strerror}") from exc
    except IsADirectoryError as exc:
        raise DecodeError("is a directory") from exc
    except PermissionError as exc:
        raise DecodeError(f"unreadable: {exc.strerror}") from exc
    except OSError as exc:
        raise DecodeError(f"unreadable: {exc.strerror or exc}") from exc
    if not data:
        raise DecodeError("empty file (0 bytes)")
    return data


def decode_file(path: Path, min_side: int = 0) -> Decoded:
    """Decode ``path`` to upright RGB; use a reduced JPEG decode when the shorter side allows it."""
    data = read_bytes(path)
    try:
        return decode_bytes(data, min_side)
    except DecodeError as exc:
        suffix = Path(path).suffix.lower()
        if suffix in UNSUPPORTED_SUFFIXES and str(exc).startswith("not an image"):
            raise DecodeError(
                f"unsupported format ({suffix}): OpenCV cannot read it; convert to JPEG and rerun"
            ) from exc
        raise


def decode_bytes(data: bytes, min_side: int = 0) -> Decoded:
    buf = np.frombuffer(data, dtype=np.uint8)
    if is_jpeg(data):
        return _decode_jpeg(data, buf, min_side)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DecodeError(_unknown_reason(data))
    rgb = to_rgb8(img)
    h, w = rgb.shape[:2]
    return Decoded(rgb=rgb, width=w, height=h, file_size=len(data))


def _decode_jpeg(data: bytes, buf: np.ndarray, min_side: int) -> Decoded:
    info = read_jpeg_info(data)
    if info.width is None or info.height is None:
        raise DecodeError("corrupt JPEG: no frame header")
    factor = reduce_factor(info.width, info.height, min_side) if min_side else 1
    flags = _REDUCED[factor] if factor > 1 else (cv2.IMREAD_COLOR if _RGB is None else _RGB)
    warning = None
    if _truncated(data):
        img, present = _decode_top(data, flags | cv2.IMREAD_IGNORE_ORIENTATION)
        if img is None or present < MIN_PRESENT:
            shown = f" (only {present:.0%} of its rows are there)" if img is not None else ""
            raise DecodeError(f"truncated JPEG: the file ends before the image data does{shown}")
        warning = f"truncated JPEG: classified the top {present:.0%} of the photo, the part the file holds"
    else:
        img = cv2.imdecode(buf, flags | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None:
        raise DecodeError("corrupt JPEG: OpenCV could not decode it")
    if factor > 1 or _RGB is None:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    img = apply_orientation(img, info.orientation)
    w, h = info.width, info.height
    if info.orientation >= 5:  # transposed orientations swap the upright width and height
        w, h = h, w
    return Decoded(
        rgb=img, width=w, height=h, file_size=len(data), reduced=factor, info=info, warning=warning
    )


#: The least share of a truncated JPEG's rows worth classifying. A card pulled before the camera
#: finished writing leaves the top of the photo intact, and that part is evidence worth a decision
#: (the row says it was partial); a photo with most of its frame missing stays a failure, so that
#: an answer about a sliver is not passed off as an answer about the photo.
MIN_PRESENT = 2 / 3


def _decode_top(data: bytes, flags: int) -> tuple[np.ndarray | None, float]:
    """Decode a cut-short JPEG's rows that the file holds: ``(top rows, share of rows present)``.

    OpenCV refuses a baseline JPEG whose data stops mid-scan; given an end-of-image marker it decodes
    what is there and fills the rest with one flat value (libjpeg pads the missing blocks). The flat
    band at the bottom is cut off, so the model sees only real pixels. A progressive JPEG decodes to
    a whole (blurrier) frame with no flat band: all its rows count as present.
    """
    img = cv2.imdecode(np.frombuffer(data + b"\xff\xd9", dtype=np.uint8), flags)
    if img is None:
        return None, 0.0
    rows = img.reshape(img.shape[0], -1)
    flat = rows.min(axis=1) == rows.max(axis=1)
    fill = rows[-1, 0]
    if not flat[-1]:
        return img, 1.0
    missing = 0
    for r in range(img.shape[0] - 1, -1, -1):
        if not flat[r] or rows[r, 0] != fill:
            break
        missing += 1
    present = img.shape[0] - missing
    return (img[:present] if present else None), present / img.shape[0]


def _truncated(data: bytes) -> bool:
    """A JPEG with no end-of-image marker after its last scan was cut short.

    OpenCV (libjpeg) may decode a cut-short file anyway, filling the rest with grey and only printing
    a warning, so without this check a half-copied photo would be classified as if it were whole
    (:func:`_decode_top` keeps only the rows the file holds).
    Entropy-coded data never holds a literal FFD9, and a trailer after the image is allowed.
    Truncated means: no start-of-scan, or one after the last end-of-image (an EXIF thumbnail
    has its own pair, so "any EOI" is not enough). Searched from the end of the image, not over
    its whole entropy-coded data (a 2 MB photo: 0.2 ms of CPU, holding Python's lock, saved).
    """
    eoi = data.rfind(b"\xff\xd9")
    return eoi < 0 or data.find(b"\xff\xda") < 0 or data.find(b"\xff\xda", eoi) >= 0


def apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip as EXIF orientation 1-8 says, so the result is upright."""
    if orientation == 2:
        return cv2.flip(img, 1)
    if orientation == 3:
        return cv2.rotate(img, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(img, 0)
    if orientation == 5:
        return cv2.transpose(img)
    if orientation == 6:
        return cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return cv2.rotate(cv2.transpose(img), cv2.ROTATE_180)
    if orientation == 8:
        return cv2.rotate(img, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return img


def to_rgb8(img: np.ndarray) -> np.ndarray:
    """Any OpenCV ``IMREAD_UNCHANGED`` result (gray, BGR, BGRA; 8/16-bit, float) -> RGB ``uint8``.

    Alpha is composited over white, which is what a viewer shows for a transparent background.
    """
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype in (np.float32, np.float64):
        img = np.clip(img * 255.0, 0, 255).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise DecodeError(f"unsupported pixel type {img.dtype}")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    channels = img.shape[2]
    if channels == 1:
        return cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2RGB)
    if channels == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if channels == 4:
        alpha = img[:, :, 3:4].astype(np.float32) / 255.0
        rgb = img[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        return cv2.cvtColor(rgb.astype(np.uint8), cv2.COLOR_BGR2RGB)
    raise DecodeError(f"unsupported channel count {channels}")


def _unknown_reason(data: bytes) -> str:
    head = data[:16]
    if head.startswith(b"\x89PNG"):
        return "corrupt PNG: OpenCV could not decode it"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "corrupt or unsupported TIFF"
    if head.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "corrupt WebP"
    return "not an image (unknown or unsupported format)"
