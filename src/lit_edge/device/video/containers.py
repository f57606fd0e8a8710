"""When a clip was recorded, read from its container's own header (no FFmpeg, no ffprobe).

OpenCV does not expose container metadata, so the few bytes that hold a recording time are read
here, by seeking through the file's structure rather than loading it (a drone clip is gigabytes):

MP4 / MOV / M4V / 3GP   ``moov/mvhd`` creation time (seconds since 1904)
AVI                     the ``IDIT`` chunk (a date string) that camera traps write in the header
ASF / WMV               the File Properties Object's creation date (100 ns since 1601, UTC)
MKV / WebM              the Segment Info ``DateUTC`` element (ns since 2001, UTC)

Which clock: QuickTime's and AVI's times are returned *naive*, as the camera's own clock. The
QuickTime format says UTC, but camera traps have no time-zone setting and most write local time
there (ExifTool, for the same reason, does not assume UTC by default); a naive time is placed by
``--utc-offset`` on export, exactly like a photo's EXIF time. ASF and Matroska times are UTC by
their writers' practice and are returned aware. A zero or implausible value (encoders write 0, or
the Unix epoch, when they know no time) is no time at all: the caller falls back to the file time.
"""

from __future__ import annotations

import re
import struct
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import BinaryIO

_MP4 = datetime(1904, 1, 1)
_FILETIME = datetime(1601, 1, 1, tzinfo=timezone.utc)
_MKV = datetime(2001, 1, 1, tzinfo=timezone.utc)
_ASF_HEADER = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
_ASF_FILE_PROPERTIES = bytes.fromhex("a1dcab8c47a9cf118ee400c00c205365")
_MP4_CONTAINERS = {b"moov", b"trak", b"udta"}
_HEAD = 256 * 1024  # AVI and MKV keep their header (and its date) at the start


def _plausible(when: datetime) -> bool:
    """Cameras that know no time write 0 (1904, 1601) or the Unix epoch; both are no time."""
    year = when.year
    return 1990 <= year <= datetime.now().year + 1 and when.replace(tzinfo=None) != datetime(1970, 1, 1)


def container_time(path: Path | str) -> datetime | None:
    """The recording time in ``path``'s container header, or None (unknown format, no time, unreadable)."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            if len(head) < 12:
                return None
            f.seek(0)
            if head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
                when = _mp4_time(f)
            elif head[:4] == b"RIFF" and head[8:12] == b"AVI ":
                when = _avi_time(f.read(_HEAD))
            elif head[:16] == _ASF_HEADER:
                when = _asf_time(f.read(_HEAD))
            elif head[:4] == b"\x1a\x45\xdf\xa3":
                when = _mkv_time(f.read(_HEAD))
            else:
                return None
    except (OSError, ValueError, OverflowError, struct.error):
        return None
    return when if when is not None and _plausible(when) else None


def _boxes(f: BinaryIO, end: int):
    """(type, payload start, payload end) of the ISO-BMFF boxes from the current position to ``end``."""
    while True:
        start = f.tell()
        if start + 8 > end:
            return
        header = f.read(8)
        if len(header) < 8:
            return
        size, kind = struct.unpack(">I4s", header)
        body = start + 8
        if size == 1:  # 64-bit size follows
            (size,) = struct.unpack(">Q", f.read(8))
            body += 8
        elif size == 0:  # box runs to the end of the file
            size = end - start
        if size < body - start:
            return  # corrupt: a box smaller than its own header
        yield kind, body, min(start + size, end)
        f.seek(start + size)


def _mp4_time(f: BinaryIO) -> datetime | None:
    f.seek(0, 2)
    end = f.tell()
    f.seek(0)
    return _find_mvhd(f, end, depth=0)


def _find_mvhd(f: BinaryIO, end: int, depth: int) -> datetime | None:
    for kind, body, box_end in list(_boxes(f, end)):
        if kind == b"mvhd":
            f.seek(body)
            version = f.read(4)[0]
            if version == 1:
                (created,) = struct.unpack(">Q", f.read(8))
            else:
                (created,) = struct.unpack(">I", f.read(4))
            return _MP4 + timedelta(seconds=created) if created else None
        if kind == b"moov" and depth == 0:
            f.seek(body)
            return _find_mvhd(f, box_end, depth + 1)
    return None


_AVI_FORMATS = ("%a %b %d %H:%M:%S %Y", "%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S")


def _avi_time(head: bytes) -> datetime | None:
    """The ``IDIT`` chunk: ``Mon Mar 15 10:09:35 2010`` (or an EXIF-like date), NUL/newline padded."""
    at = head.find(b"IDIT")
    if at < 0 or at + 8 > len(head):
        return None
    (size,) = struct.unpack("<I", head[at + 4 : at + 8])
    text = head[at + 8 : at + 8 + min(size, 64)].split(b"\0")[0].decode("ascii", "replace").strip()
    text = re.sub(r"\s+", " ", text)
    for fmt in _AVI_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def _asf_time(head: bytes) -> datetime | None:
    at = head.find(_ASF_FILE_PROPERTIES)
    if at < 0 or at + 56 > len(head):
        return None
    # GUID (16) + object size (8) + file id (16) + file size (8), then the creation FILETIME
    (filetime,) = struct.unpack("<Q", head[at + 48 : at + 56])
    return _FILETIME + timedelta(microseconds=filetime // 10) if filetime else None


def _mkv_time(head: bytes) -> datetime | None:
    at = head.find(b"\x44\x61\x88")  # DateUTC, a size-8 (0x88) signed integer of nanoseconds
    if at < 0 or at + 11 > len(head):
        return None
    (ns,) = struct.unpack(">q", head[at + 3 : at + 11])
    return _MKV + timedelta(microseconds=ns // 1000)
