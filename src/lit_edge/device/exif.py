"""A small, dependency-free reader of the JPEG facts the runtime needs before decoding.

Why not PIL: it is not in the base (device) install, and all we need is a few fields of the APP1
EXIF TIFF structure (orientation, DateTimeOriginal, GPS latitude/longitude/altitude) and the frame
size from the SOF marker, which tells us whether a reduced-size decode is possible. Parsing stops
at the first scan, so the cost is a few microseconds whatever the photo's size. Malformed EXIF is
ignored (a photo with broken metadata is still a photo), never an exception.
"""

from __future__ import annotations

import contextlib
import struct
from dataclasses import dataclass

_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 7: 1, 9: 4, 10: 8}


@dataclass(frozen=True)
class JpegInfo:
    """What the JPEG header says: stored size (before orientation) and EXIF fields, None if absent."""

    width: int | None = None
    height: int | None = None
    components: int | None = None
    orientation: int = 1
    datetime_original: str | None = None  # ISO 8601, local time as the camera wrote it
    latitude: float | None = None
    longitude: float | None = None
    altitude: float | None = None


def is_jpeg(data: bytes | memoryview) -> bool:
    return len(data) >= 3 and data[0] == 0xFF and data[1] == 0xD8 and data[2] == 0xFF


def read_jpeg_info(data: bytes | memoryview) -> JpegInfo:
    """Walk the JPEG markers up to the first scan; never raises on malformed input."""
    data = memoryview(data)
    fields: dict = {}
    if not is_jpeg(data):
        return JpegInfo()
    pos, n = 2, len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            break
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        seg = data[pos + 4 : pos + 2 + length]
        if marker == 0xE1 and bytes(seg[:6]) == b"Exif\x00\x00" and "orientation" not in fields:
            with contextlib.suppress(
                struct.error, ValueError, IndexError, ZeroDivisionError, UnicodeDecodeError
            ):
                fields.update(_parse_tiff(bytes(seg[6:])))
        elif marker in _SOF and len(seg) >= 6:
            _, h, w, comps = struct.unpack_from(">BHHB", seg, 0)
            fields.update(height=h, width=w, components=comps)
        elif marker == 0xDA:  # start of scan: no more headers
            break
        pos += 2 + length
    return JpegInfo(**fields)


def _parse_tiff(t: bytes) -> dict:
    endian = {b"II": "<", b"MM": ">"}.get(t[:2])
    if endian is None:
        return {}

    def u16(off: int) -> int:
        return struct.unpack_from(endian + "H", t, off)[0]

    def u32(off: int) -> int:
        return struct.unpack_from(endian + "I", t, off)[0]

    def ifd(off: int) -> dict[int, tuple[int, int, int]]:
        """tag -> (type, count, offset of the value bytes)."""
        out = {}
        if off <= 0 or off + 2 > len(t):
            return out
        for i in range(min(u16(off), 512)):
            e = off + 2 + 12 * i
            if e + 12 > len(t):
                break
            tag, typ, count = u16(e), u16(e + 2), u32(e + 4)
            size = _TYPE_SIZES.get(typ, 1) * count
            out[tag] = (typ, count, e + 8 if size <= 4 else u32(e + 8))
        return out

    def value(entry: tuple[int, int, int]):
        typ, count, off = entry
        if typ == 2:
            return t[off : off + count].split(b"\x00", 1)[0].decode("ascii", "replace").strip()
        if typ == 3:
            return [u16(off + 2 * i) for i in range(count)]
        if typ == 4:
            return [u32(off + 4 * i) for i in range(count)]
        if typ == 1 or typ == 7:
            return list(t[off : off + count])
        if typ == 5:
            return [u32(off + 8 * i) / u32(off + 8 * i + 4) for i in range(count) if u32(off + 8 * i + 4)]
        return None

    out: dict = {}
    ifd0 = ifd(u32(4))
    if 0x0112 in ifd0:
        o = value(ifd0[0x0112])
        if o and 1 <= o[0] <= 8:
            out["orientation"] = o[0]
    if 0x8769 in ifd0:
        exif = ifd(value(ifd0[0x8769])[0])
        stamp = value(exif[0x9003]) if 0x9003 in exif else (value(ifd0[0x0132]) if 0x0132 in ifd0 else None)
        if stamp and len(stamp) >= 19 and stamp[:4].isdigit() and stamp[:4] != "0000":
            out["datetime_original"] = f"{stamp[0:4]}-{stamp[5:7]}-{stamp[8:10]}T{stamp[11:19]}"
    if 0x8825 in ifd0:
        gps = ifd(value(ifd0[0x8825])[0])
        for key, ref_tag, val_tag, neg in (("latitude", 1, 2, "S"), ("longitude", 3, 4, "W")):
            if val_tag in gps:
                dms = value(gps[val_tag])
                if dms and len(dms) == 3:
                    deg = dms[0] + dms[1] / 60 + dms[2] / 3600
                    ref = value(gps[ref_tag]) if ref_tag in gps else ""
                    out[key] = -deg if ref == neg else deg
        if 6 in gps:
            alt = value(gps[6])
            if alt:
                below = 5 in gps and (value(gps[5]) or [0])[0] == 1
                out["altitude"] = -alt[0] if below else alt[0]
    return out
