"""A clip as work items of the ordered pipeline: its sampled frames, then the clip's own row.

``tag`` hands the pipeline the items :func:`clip_loads` makes of a clip: it probes the clip, and
each item's loader (on a decode-pool thread, in turn) takes the next chunk of the frames the
database lacks from one sampler, stamps each with its time and place (telemetry read once), and
prepares it; the pipeline classifies them in order, and the last item's ``close`` step (run on
the calling thread after the clip's last frame) adds the clip's row, with the decision its
frames vote for. So the database never holds a clip row before all of its frames (the db
contract): a kill mid-clip leaves frame rows and no clip row, and the next run samples only the
missing frames (``done``, read on the calling thread, because a loader cannot use the Store's
connection) and lets every frame vote, this run's and the earlier runs' (``earlier``).

A clip that cannot be opened is one failed clip row; one that breaks half way keeps the frames it
gave and its row is failed with the sampler's reason. A broken or empty SRT is a warning on the
clip (logged, and counted by ``tag``), never a stop.

Why several items and not one: the pipeline holds an item's samples at the tower's input size
(150 KB each at 224 px), and a fixed number of items ahead of the workers; a 10-minute drone clip
at one frame a second as one item would be 90 MB waiting, per clip. In chunks of :data:`CHUNK`
frames, memory stays bounded whatever the clip's length, and its first frames are classified
while the rest are still being decoded.

Nothing here imports torch; :class:`ClipStamper` is what ``detect`` uses for a video file's frames.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import threading
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timezone
from functools import partial
from pathlib import Path

from lit_edge.db import schema
from lit_edge.db.reader import Reader
from lit_edge.db.writer import MediaRecord
from lit_edge.device.classify import Decision
from lit_edge.device.config import ClipConfig
from lit_edge.device.pipeline import Engine, Load, Loaded, Sample
from lit_edge.device.telemetry import Telemetry, find_telemetry, load_telemetry
from lit_edge.device.video import (
    ClipError,
    ClipInfo,
    ClipSampler,
    SampleConfig,
    SampledFrame,
    plan,
    probe,
    remaining,
)
from lit_edge.device.video.decision import clip_decision, decision_of
from lit_edge.device.video.sampler import tolerance_s
from lit_edge.device.video.stamps import FrameStamp, stamp
from lit_edge.errors import UserError
from lit_edge.timezones import parse_offset

log = logging.getLogger(__name__)


def sample_config(cfg: ClipConfig, min_side: int) -> SampleConfig:
    """The sampler's config for ``cfg``, frames downscaled to ``min_side`` right after decoding."""
    try:
        return SampleConfig(every_s=cfg.every_s, n_frames=cfg.n_frames, min_side=min_side)
    except ValueError as exc:
        raise UserError(f"{exc}; check --video-every / --video-frames") from None


def utc_offset(cfg: ClipConfig) -> timezone | None:
    """``--utc-offset`` parsed (None: telemetry times stay the drone's naive local clock)."""
    return parse_offset(cfg.utc_offset, "--utc-offset") if cfg.utc_offset else None


def check_telemetry_option(cfg: ClipConfig, clips: int) -> None:
    """``--telemetry FILE`` is one clip's SRT: refuse it for a source with several clips."""
    if cfg.telemetry is None:
        return
    if not Path(cfg.telemetry).is_file():
        raise UserError(f"--telemetry {cfg.telemetry}: no such file; give the clip's .SRT")
    if clips != 1:
        raise UserError(
            f"--telemetry {cfg.telemetry} is one clip's telemetry, but the source holds {clips} clips; "
            "give one clip, or put each clip's .SRT beside it (same name) and leave --telemetry out"
        )


class ClipStamper:
    """A clip's facts and telemetry, read once: the time and place of any of its frames."""

    def __init__(self, info: ClipInfo, telemetry: Telemetry | None, tz: timezone | None):
        self.info, self.telemetry, self.tz = info, telemetry, tz

    @classmethod
    def open(cls, path: Path, cfg: ClipConfig, info: ClipInfo | None = None) -> ClipStamper:
        """Probe ``path`` (unless ``info`` is given; :class:`ClipError` when it cannot be opened)
        and read its telemetry (``cfg.telemetry``, else ``clip.SRT`` beside it), logging a
        broken or empty one as a warning."""
        info = info or probe(path)
        srt = cfg.telemetry or find_telemetry(path)
        tele = load_telemetry(srt) if srt else None
        if tele is not None and tele.warning:
            log.warning("%s: %s; its frames get no telemetry", path.name, tele.warning)
        return cls(info, tele, utc_offset(cfg))

    @property
    def warning(self) -> str | None:
        return self.telemetry.warning if self.telemetry is not None else None

    def __call__(self, offset_s: float) -> FrameStamp:
        return stamp(self.info, offset_s, self.telemetry, self.tz)

    def frame_record(self, key: str, source: str, index: int, offset_s: float) -> MediaRecord:
        """A sampled frame's row (its decision comes from the pipeline)."""
        s = self(offset_s)
        return MediaRecord(
            path=key,
            frame_index=index,
            kind=schema.FRAME,
            source=source,
            captured_at=s.captured_at,
            time_source=s.time_source,
            latitude=s.latitude,
            longitude=s.longitude,
            altitude=s.altitude,
            relative_altitude=s.relative_altitude,
            width=self.info.width,
            height=self.info.height,
            offset_s=round(offset_s, 3),
        )

    def clip_record(
        self, key: str, source: str, decisions: Sequence[Decision], placed: MediaRecord | None = None
    ) -> MediaRecord:
        """The clip's own row: its start, its length, the decision all its frames' ``decisions``
        vote for, and its place: ``placed``'s, the first frame with a position."""
        s = self(0.0)
        rec = MediaRecord(
            path=key,
            kind=schema.CLIP,
            source=source,
            captured_at=s.captured_at,
            time_source=s.time_source,
            width=self.info.width,
            height=self.info.height,
            file_size=self.info.file_size,
            duration_s=round(self.info.duration_s, 3),
        )
        if placed is not None:
            rec.latitude, rec.longitude = placed.latitude, placed.longitude
            rec.altitude, rec.relative_altitude = placed.altitude, placed.relative_altitude
        rec.decision = clip_decision(decisions)
        return rec


@dataclass
class ClipWork:
    """One clip to tag: where it is, its database key, and what earlier runs already recorded."""

    path: Path
    key: str
    done: Collection[int] = ()  # frame indices already in the database
    earlier: list[Decision] = field(default_factory=list)  # those frames' decisions


@dataclass
class ClipTally:
    """What the clips of one run gave; updated on the calling thread only (in ``close``)."""

    clips: int = 0
    frames: int = 0
    failed: int = 0
    telemetry_warnings: int = 0


#: Frames per work item: a long drone clip is several items, so that at most a few chunks of
#: prepared frames wait in memory (the pipeline holds a bounded number of items ahead), not the
#: whole flight, and its first frames are classified while the rest are still being sampled.
CHUNK = 32


def clip_loads(
    work: ClipWork, engine: Engine, cfg: ClipConfig, tally: ClipTally, chunk: int = CHUNK
) -> list[Load | Loaded]:
    """The work items of one clip, in order, for :meth:`Pipeline.put`; never raises.

    Probes the clip here (on the calling thread: the number of items depends on its length); one
    that cannot be opened is a single failed clip row.
    """
    try:
        info = probe(work.path)
    except ClipError as exc:
        return [Loaded([Sample(_failed(work, str(exc)))], close=_count_failed(tally))]
    except Exception as exc:  # an OpenCV surprise on a strange file: a reason, and the run goes on
        return [Loaded([Sample(_failed(work, _reason(exc)))], close=_count_failed(tally))]
    return _ClipReading(work, engine, cfg, tally, info).loads(chunk)


class _ClipReading:
    """One clip's sampling, shared by its items: each takes the next ``chunk`` frames in turn.

    The decode pool starts items in the order they were put, so item ``i`` waits at most for item
    ``i - 1``, which is already running: the turns cannot deadlock. The last item drains the
    sampler and closes the clip with its own row.
    """

    def __init__(self, work: ClipWork, engine: Engine, cfg: ClipConfig, tally: ClipTally, info: ClipInfo):
        self.work, self.engine, self.cfg, self.tally, self.info = work, engine, cfg, tally, info
        self.sample_cfg = sample_config(cfg, engine.min_side)
        self.source = str(work.path)
        self.records: list[MediaRecord] = []  # this run's frames, decided by the time close runs
        self.failure: str | None = None
        self._turn = 0
        self._cv = threading.Condition()
        self._stamper: ClipStamper | None = None
        self._sampler: ClipSampler | None = None
        self._frames: Iterator[SampledFrame] = iter(())

    def loads(self, chunk: int) -> list[Load]:
        targets = remaining(plan(self.info, self.sample_cfg), self.work.done, self._tolerance_frames())
        n = max(1, math.ceil(len(targets) / max(1, chunk)))
        return [partial(self._load, i, chunk, i == n - 1) for i in range(n)]

    def _tolerance_frames(self) -> float:
        return tolerance_s(self.info, self.sample_cfg) * self.info.fps

    def _load(self, turn: int, chunk: int, last: bool) -> Loaded:
        with self._cv:
            self._cv.wait_for(lambda: self._turn == turn)
        try:
            if turn == 0:
                self._stamper = ClipStamper.open(self.work.path, self.cfg, self.info)
                self._sampler = ClipSampler(self.work.path, self.sample_cfg, self.info)
                self._frames = self._sampler.frames(done=self.work.done)
            samples = []
            for f in self._frames if last else itertools.islice(self._frames, chunk):
                rec = self._stamper.frame_record(self.work.key, self.source, f.index, f.offset_s)
                samples.append(Sample(rec, self.engine.prepare(f.rgb)))
                self.records.append(rec)
        except Exception as exc:  # never raise from a loader: the clip fails, its frames stay
            self.failure = self.failure or _reason(exc)
            self._frames = iter(())
            samples = []
        finally:
            with self._cv:
                self._turn += 1
                self._cv.notify_all()
        return Loaded(samples, close=self._close if last else None)

    def _close(self, _records: list[MediaRecord]) -> list[MediaRecord]:
        """The clip's row, after its last frame (this run's frames are all decided by now)."""
        failure = self.failure or (self._sampler.failure if self._sampler else None)
        if self._stamper is None:  # the first item failed before it read the telemetry
            self._stamper = ClipStamper(self.info, None, None)
        decisions = [*self.work.earlier, *(r.decision for r in self.records if r.decision is not None)]
        placed = next((r for r in self.records if r.latitude is not None), None)
        rec = self._stamper.clip_record(self.work.key, self.source, decisions, placed)
        if failure:
            rec.status, rec.error, rec.decision = schema.FAILED, failure, None
            self.tally.failed += 1
            log.warning("%s: %s; its %d frame(s) read are kept", self.work.path, failure, len(self.records))
        self.tally.clips += 1
        self.tally.frames += len(self.records)
        self.tally.telemetry_warnings += self._stamper.warning is not None
        self.records = []
        return [rec]


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[-1][:200]}" if text else type(exc).__name__


def _failed(work: ClipWork, reason: str) -> MediaRecord:
    rec = MediaRecord(
        path=work.key, kind=schema.CLIP, source=str(work.path), status=schema.FAILED, error=reason
    )
    with contextlib.suppress(OSError):  # a missing file has no size; its reason says so
        rec.file_size = os.stat(work.path).st_size
    return rec


def _count_failed(tally: ClipTally):
    def close(records: list[MediaRecord]) -> list[MediaRecord]:
        tally.clips += 1
        tally.failed += 1
        return []

    return close


def earlier_decisions(db: Path, keys: Collection[str]) -> dict[str, list[Decision]]:
    """The stored decisions of the frames of the clips ``keys`` (clips resumed mid-way), by key.

    One pass over the database's frame rows, whatever the number of clips resumed.
    """
    out: dict[str, list[Decision]] = {k: [] for k in keys}
    if not out:
        return out
    with Reader(db) as reader:
        for row in reader.iter_media(kinds=(schema.FRAME,), ok=True):
            if row.path in out and (d := decision_of(row)) is not None:
                out[row.path].append(d)
    return out
