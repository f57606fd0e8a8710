"""Sample a clip's frames: one every ``every_s`` seconds, or ``n_frames`` evenly spread.

Why not just read every frame and keep one a second: decoding is the whole cost, and at 30 fps
that throws away 29 decoded frames in 30. What is cheaper depends on where the clip's keyframes
are, which is why the sampler works with two readers over the same file, each moving forward only:

1. a *keyframe* reader, whose decoder skips every frame but keyframes (FFmpeg ``avdiscard``):
   a target time with a keyframe within ``tolerance`` of it is served by that keyframe, at the
   cost of decoding that one frame. Camera traps and drones write a keyframe every 0.5-2 s, so
   at one frame a second this serves most targets (``bench/bench_video.py``: >= 5x the naive loop
   when keyframes are 1 s apart).
2. a *decoding* reader for the targets that no keyframe serves. It decodes forward (``grab``: the
   frame is decoded but not converted to colour; only sampled frames are) and seeks only across
   gaps much longer than the keyframe interval: OpenCV's seek restarts decoding at the keyframe
   before (target - 16 frames), so seeking to every second of a long-GOP clip decodes more than
   reading it straight through (measured: 2.7x slower at 8 s keyframe spacing). A seek is
   verified by the frame's own timestamp; where it lands wrong, that reader stops seeking.

A frame's ``offset_s`` is its own presentation time, and ``index`` is that time in frames
(``round(offset_s * fps)``), so a keyframe that serves a target 0.3 s away is recorded where it
really is. Frames come out in time order, each at most once, downscaled right after decoding (so
that a 4K drone frame never sits in memory at full size) and converted to RGB.

A clip that cannot be opened yields nothing; one that ends early (a truncated copy, a card pulled
out while recording) yields what it had; either way :attr:`ClipSampler.failure` says why. Frames
already in the database are passed as ``done`` and not sampled again (resume).
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from lit_edge.device.video.clips import ClipError, ClipInfo, open_capture, probe

log = logging.getLogger(__name__)

_OPENCV_SEEK_BACKOFF = 16  # frames OpenCV's seek backs off before the target (cap_ffmpeg_impl)


@dataclass(frozen=True)
class SampleConfig:
    """Which frames of a clip to take, and how to read them."""

    every_s: float = 1.0  # one frame every this many seconds (when n_frames is 0)
    n_frames: int = 0  # > 0: this many frames, evenly spread over the clip, instead
    tolerance_s: float | None = (
        None  # how far a keyframe may be from a target; None: half the spacing, at most 1 s
    )
    min_side: int = 0  # downscale frames whose shorter side is larger than this (0: keep full size)
    keyframes: bool = True  # serve targets from keyframes when one is near enough
    threads: int = 0  # FFmpeg decoding threads per reader (0: OpenCV's default, one per core)

    def __post_init__(self):
        if self.n_frames < 0:
            raise ValueError("n_frames must be >= 0")
        if self.n_frames == 0 and not self.every_s > 0:
            raise ValueError("every_s must be > 0 seconds")


@dataclass(frozen=True)
class Target:
    """A frame the plan asks for: its index at the clip's frame rate and its time."""

    index: int
    offset_s: float


@dataclass
class SampledFrame:
    """A sampled frame: where it is in the clip, and its pixels (RGB, possibly downscaled)."""

    index: int
    offset_s: float
    rgb: np.ndarray = field(repr=False)
    keyframe: bool = False  # served by the keyframe reader


def spacing_s(info: ClipInfo, cfg: SampleConfig) -> float:
    """Seconds between planned samples."""
    if cfg.n_frames:
        return info.duration_s / cfg.n_frames if info.duration_s > 0 else 1.0
    return cfg.every_s


def tolerance_s(info: ClipInfo, cfg: SampleConfig) -> float:
    """How far from its target time a frame may be and still serve it."""
    if cfg.tolerance_s is not None:
        return max(0.0, cfg.tolerance_s)
    return min(0.5 * spacing_s(info, cfg), 1.0)


def plan(info: ClipInfo, cfg: SampleConfig) -> list[Target]:
    """The frames to sample, in time order.

    ``every_s``: at 0, every_s, 2 every_s, ... before the end. ``n_frames``: the middle of each
    of ``n_frames`` equal parts of the clip (not its first and last frames, which are often a
    trigger's grey start and a cut-off end). Indices are unique, so a short clip with a high
    ``n_frames`` gets each of its frames once.
    """
    fps, n = info.fps, info.frame_count
    if n <= 0:
        return []
    if cfg.n_frames:
        k = min(cfg.n_frames, n)
        idx = [min(n - 1, int((i + 0.5) * n / k)) for i in range(k)]
    else:
        step = cfg.every_s * fps
        idx = [min(n - 1, round(i * step)) for i in range(max(1, math.ceil(n / step)))]
    out, seen = [], set()
    for i in idx:
        if i not in seen:
            seen.add(i)
            out.append(Target(i, i / fps))
    return out


def remaining(targets: list[Target], done: Collection[int], tolerance_frames: float) -> list[Target]:
    """``targets`` less those that a frame already done (an index in ``done``) serves (resume).

    A done frame serves a target when it is within the tolerance: the keyframe that served a target
    in the first run is not where the target is, and must not make the resumed run sample it again.
    """
    if not done:
        return list(targets)
    have = sorted(done)
    out = []
    for t in targets:
        i = bisect.bisect_left(have, t.index - tolerance_frames)
        if i < len(have) and have[i] <= t.index + tolerance_frames:
            continue
        out.append(t)
    return out


def downscale(bgr: np.ndarray, min_side: int) -> np.ndarray:
    """Shrink (area interpolation) so the shorter side is ``min_side``; smaller frames are kept."""
    h, w = bgr.shape[:2]
    if min_side <= 0 or min(h, w) <= min_side:
        return bgr
    scale = min_side / min(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)


class _Reader:
    """One capture moving forward through the clip; knows the time and index of its last frame."""

    def __init__(self, path: Path, info: ClipInfo, cfg: SampleConfig, keyframes_only: bool):
        self.info, self.cfg, self.keyframes_only = info, cfg, keyframes_only
        self.cap = open_capture(path, keyframes_only=keyframes_only, threads=cfg.threads)
        self.index = -1  # index of the frame last grabbed (-1: none yet)
        self.offset_s = -1.0
        self.pending = False  # a grabbed frame not yet used or passed over
        self.ended = False
        self.grabs = 0
        self.seeks = 0
        self.seekable = True

    def grab(self) -> bool:
        if self.ended or not self.cap.grab():
            self.ended = True
            self.pending = False
            return False
        self.grabs += 1
        self.offset_s = max(0.0, self.cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0)
        self.index = round(self.offset_s * self.info.fps)
        self.pending = True
        return True

    def take(self) -> SampledFrame | None:
        """The pending frame's pixels (the colour conversion happens only here)."""
        ok, bgr = self.cap.retrieve()
        self.pending = False
        if not ok or bgr is None:
            return None
        small = downscale(bgr, self.cfg.min_side)
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        return SampledFrame(self.index, self.offset_s, rgb, keyframe=self.keyframes_only)

    def seek(self, index: int) -> bool:
        """Seek so that the next :meth:`grab` would return frame ``index``; False if it landed wrong."""
        self.seeks += 1
        self.cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        if not self.grab():
            return False
        return self.index == index

    def close(self) -> None:
        self.cap.release()


class ClipSampler:
    """Samples one clip; iterate :meth:`frames`, then read :attr:`failure` (None when it read whole).

    ``info`` may be passed when the clip was already probed (its row needs it anyway).
    """

    def __init__(self, path: Path | str, cfg: SampleConfig | None = None, info: ClipInfo | None = None):
        self.path = Path(path)
        self.cfg = cfg or SampleConfig()
        self.info = info
        self.failure: str | None = None
        self.planned = 0  # targets left to sample after ``done`` (resume)
        self.sampled = 0
        self.stats: dict[str, int] = {}
        self._key: _Reader | None = None
        self._dec: _Reader | None = None
        self._gaps: list[float] = []  # seconds between the keyframes seen

    def frames(self, done: Collection[int] = ()) -> Iterator[SampledFrame]:
        """Yield the planned frames not in ``done``, in time order; set :attr:`failure` on a bad clip."""
        try:
            if self.info is None:
                self.info = probe(self.path)
            if self.info.frame_count <= 0:
                self.info = self._counted(self.info)
            yield from self._frames(self.info, done)
        except ClipError as exc:
            self.failure = str(exc)
        except cv2.error as exc:  # an OpenCV surprise on a strange file: a reason, not a crash
            self.failure = f"OpenCV error: {str(exc).strip().splitlines()[-1][:200]}"
        finally:
            self._close()

    def _frames(self, info: ClipInfo, done: Collection[int]) -> Iterator[SampledFrame]:
        tol = tolerance_s(info, self.cfg)
        targets = remaining(plan(info, self.cfg), done, tol * info.fps)
        self.planned = len(targets)
        if not targets:
            return
        if self.cfg.keyframes:
            self._key = _Reader(self.path, info, self.cfg, keyframes_only=True)
        last = -1  # index of the last frame yielded: never yield one twice
        for t in targets:
            frame = self._from_keyframes(t, tol, spacing_s(info, self.cfg))
            if frame is None:
                frame = self._by_decoding(t)
            if frame is None:
                self.failure = self._ended_early(info, t)
                return
            if frame.index <= last:
                continue
            last = frame.index
            self.sampled += 1
            yield frame

    def _from_keyframes(self, t: Target, tol: float, spacing: float) -> SampledFrame | None:
        key = self._key
        if key is None or key.ended:
            return None
        best, best_distance = None, math.inf  # the keyframe nearest the target so far
        while True:
            if not key.pending:
                before = key.offset_s
                if not key.grab():
                    return best
                if before >= 0:
                    self._gaps.append(key.offset_s - before)
                    if _median(self._gaps) > 2 * spacing + tol:
                        # keyframes far sparser than the samples: the decoding reader reads
                        # every frame anyway, so stop demuxing the file twice
                        self._retire_keyframes()
                        return best
            if key.offset_s < t.offset_s - tol - 1e-6:
                key.pending = False  # too early for this target, and for every later one
                continue
            if key.offset_s > t.offset_s + tol + 1e-6:
                return best  # beyond this target: keep it pending for a later one
            distance = abs(key.offset_s - t.offset_s)
            if best is not None and distance >= best_distance:
                return best  # farther than the one taken: keep it pending for a later target
            best, best_distance = key.take(), distance
            if key.offset_s >= t.offset_s:
                return best  # every later keyframe is farther still

    def _by_decoding(self, t: Target) -> SampledFrame | None:
        info = self.info
        if self._dec is None:
            self._dec = _Reader(self.path, info, self.cfg, keyframes_only=False)
        dec = self._dec
        # A seek decodes from the keyframe before (target - 16 frames): worth it only across gaps
        # well past the keyframe spacing (not known yet: assume a long one, 10 s).
        spacing = _median(self._gaps) if self._gaps else 10.0
        far = t.index - dec.index > _OPENCV_SEEK_BACKOFF + 1.5 * spacing * info.fps
        if dec.seekable and far and not dec.seek(t.index) and not dec.ended:
            log.debug("%s: seek to frame %d landed on %d; reading on", self.path, t.index, dec.index)
            if dec.index > t.index:  # overshot: read again from the start, without seeking
                dec.close()
                self._dec = dec = _Reader(self.path, info, self.cfg, keyframes_only=False)
            dec.seekable = False
        while True:
            if dec.pending and dec.index >= t.index:
                return dec.take()
            if not dec.grab():
                return None

    def _retire_keyframes(self) -> None:
        if self._key is not None:
            self.stats["keyframe_grabs"] = self._key.grabs
            self._key.close()
            self._key.ended = True

    def _close(self) -> None:
        key, dec = self._key, self._dec
        self.stats = {
            "keyframe_grabs": key.grabs if key else 0,
            "decode_grabs": dec.grabs if dec else 0,
            "seeks": dec.seeks if dec else 0,
        }
        for r in (key, dec):
            if r is not None:
                r.close()

    def _counted(self, info: ClipInfo) -> ClipInfo:
        """A clip whose header gives no frame count: count by decoding (rare: streams, some MTS)."""
        r = _Reader(self.path, info, self.cfg, keyframes_only=False)
        try:
            while r.grab():
                pass
        finally:
            r.close()
        if r.grabs == 0:
            raise ClipError("no frame could be decoded: a corrupt or truncated file")
        return replace(info, frame_count=r.index + 1, duration_s=(r.index + 1) / info.fps)

    def _ended_early(self, info: ClipInfo, t: Target) -> str | None:
        """Why sampling stopped before ``t``; None when that is just the header overstating the end.

        Containers often count a frame or two more than they hold, so the last target may not
        exist: that is no failure. A clip whose frames stop well before its stated end is one.
        """
        reached = max((r.offset_s for r in (self._key, self._dec) if r is not None), default=-1.0)
        if t.offset_s >= info.duration_s - max(2.0 / info.fps, 0.5):
            return None
        if reached < 0:
            return "no frame could be decoded: a corrupt or truncated file"
        return (
            f"video ends at {reached:.1f} s of {info.duration_s:.1f} s: truncated or corrupt "
            f"({self.sampled} of {self.planned} sampled frames read)"
        )


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]
