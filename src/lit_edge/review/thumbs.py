"""Thumbnails and previews for the review page, made on the fly and cached on disk.

Photos are never modified: a thumbnail is decoded from the photo (a reduced-size JPEG decode,
upright by its EXIF orientation, through :mod:`lit_edge.device.decode`), or from the clip's
frame, or from a live frame the runtime saved, and written as a small JPEG under the lit-edge
home (``thumbs/``). The cache key holds the file's path, size and modification time, so a photo
that changes gets a new thumbnail and deleting the cache folder is always safe.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lit_edge.db.queue import Item

#: What the browser shows without converting the file (anything else is served as a JPEG).
BROWSER_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".jpe": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
}


class ThumbError(Exception):
    """A photo that cannot be shown; ``str(exc)`` says why (file gone, cannot decode)."""


@dataclass(frozen=True)
class ThumbConfig:
    """Where thumbnails live and how big they are (longest side, pixels)."""

    root: Path
    # preview: the detail pane is ~550 px wide, so 1000 px is sharp on a 2x screen, and a
    # 12-megapixel JPEG (4000 x 3000) decodes at a quarter of its size for it, four times faster
    sizes: tuple[tuple[str, int], ...] = (("grid", 320), ("preview", 1000))
    quality: int = 82

    def px(self, size: str) -> int:
        for name, px in self.sizes:
            if name == size:
                return px
        raise ValueError(f"size {size!r}: use one of {', '.join(n for n, _ in self.sizes)}")


@dataclass(frozen=True)
class Source:
    """The file that shows a media row, and the frame of it when it is a clip."""

    path: Path
    frame_index: int = -1  # >= 0: that frame of a video file

    @classmethod
    def of(cls, item: Item, clip_frame: int | None = None) -> Source:
        if item.kind == "live":
            if not item.saved_frame:
                raise ThumbError("this live frame was not saved to disk")
            return cls(Path(item.saved_frame))
        if item.kind == "clip":
            return cls(Path(item.path), clip_frame if clip_frame is not None else 0)
        return cls(Path(item.path), item.frame_index if item.frame_index >= 0 else -1)

    @property
    def is_video(self) -> bool:
        return self.frame_index >= 0

    @property
    def browser_type(self) -> str | None:
        """The MIME type when the browser can show the file as it is."""
        return None if self.is_video else BROWSER_TYPES.get(self.path.suffix.lower())


class Thumbs:
    """The cache: :meth:`get` returns the path of a cached JPEG of ``source`` at ``size``."""

    def __init__(self, cfg: ThumbConfig):
        self.cfg = cfg

    def key(self, source: Source, size: str) -> str:
        try:
            st = source.path.stat()
        except OSError as exc:
            raise ThumbError(f"file not found: {source.path}") from exc
        text = f"{source.path}\0{source.frame_index}\0{st.st_size}\0{st.st_mtime_ns}\0{self.cfg.px(size)}"
        return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:32]

    def get(self, source: Source, size: str) -> Path:
        key = self.key(source, size)
        out = self.cfg.root / key[:2] / f"{key}.jpg"
        if out.is_file():
            return out
        data = self._render(source, self.cfg.px(size))
        out.parent.mkdir(parents=True, exist_ok=True)
        # written aside and renamed: a reader never sees half a file, two writers never collide
        fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, out)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return out

    def _render(self, source: Source, px: int) -> bytes:
        import cv2

        rgb = read_frame(source.path, source.frame_index) if source.is_video else _decode(source.path, px)
        h, w = rgb.shape[:2]
        scale = px / max(h, w)
        if scale < 1:
            rgb = cv2.resize(
                rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
            )
        ok, buf = cv2.imencode(
            ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, self.cfg.quality]
        )
        if not ok:
            raise ThumbError(f"cannot encode a thumbnail of {source.path}")
        return buf.tobytes()


def full_jpeg(source: Source, quality: int = 92) -> bytes:
    """The whole photo (or frame) as a JPEG, for files the browser cannot show as they are."""
    import cv2

    rgb = read_frame(source.path, source.frame_index) if source.is_video else _decode(source.path, 0)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ThumbError(f"cannot encode {source.path} as JPEG")
    return buf.tobytes()


def _decode(path: Path, px: int):
    from lit_edge.device.decode import DecodeError, decode_file

    try:
        # the reduced decode keeps the shorter side >= 3/4 of the longest wanted: sharp enough
        return decode_file(path, min_side=px * 3 // 4).rgb
    except DecodeError as exc:
        raise ThumbError(f"{path.name}: {exc}") from exc


def read_frame(path: Path, index: int):
    """Frame ``index`` of a video file, as RGB."""
    import cv2

    if not path.is_file():
        raise ThumbError(f"file not found: {path}")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise ThumbError(f"{path.name}: OpenCV cannot open this video")
        if index > 0:
            cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, bgr = cap.read()
        if not ok or bgr is None:
            raise ThumbError(f"{path.name}: cannot read frame {index}")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()
