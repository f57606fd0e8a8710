"""A clip as a work item of the ordered pipeline: its sampled frames, then the clip's own row.

``tag`` hands the pipeline one :func:`load_clip` per clip. The loader runs on a decode-pool thread:
it probes the clip, reads its telemetry, samples the frames the database lacks and stamps each
with its time and place; the pipeline classifies them in order, and the loader's ``close`` step
(run on the calling thread after the clip's last frame) adds the clip's row, with the decision
its frames vote for. So the database never holds a clip row before all of its frames (the db
contract): a kill mid-clip leaves frame rows and no clip row, and the next run samples only the
missing frames (``done``, read on the calling thread, because a loader cannot use the Store's
connection) and lets every frame vote, this run's and the earlier runs' (``earlier``).

A clip that cannot be opened is one failed clip row; one that breaks half way keeps the frames it
gave and its row is failed with the sampler's reason. A broken or empty SRT is a warning on the
clip (logged, and counted by ``tag``), never a stop.

Nothing here imports torch; :class:`ClipStamper` is what ``detect`` uses for a video file's frames.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import timezone
from pathlib import Path

from lit_edge.db import schema
from lit_edge.db.reader import Reader
from lit_edge.db.writer import MediaRecord
from lit_edge.device.classify import Decision
from lit_edge.device.config import ClipConfig
from lit_edge.device.pipeline import Engine, Loaded, Sample
from lit_edge.device.telemetry import Telemetry, find_telemetry, load_telemetry
from lit_edge.device.video import ClipError, ClipInfo, ClipSampler, SampleConfig, probe
from lit_edge.device.video.decision import clip_decision, decision_of
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
            log.warning("%s: %s; the clip is tagged without it", path.name, tele.warning)
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
        self, key: str, source: str, frames: Sequence[MediaRecord], earlier: Sequence[Decision] = ()
    ) -> MediaRecord:
        """The clip's own row: its start, its place (the first positioned frame's), its length,
        and the decision all its frames vote for (this run's ``frames`` and ``earlier`` ones)."""
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
        placed = next((f for f in frames if f.latitude is not None), None)
        if placed is not None:
            rec.latitude, rec.longitude = placed.latitude, placed.longitude
            rec.altitude, rec.relative_altitude = placed.altitude, placed.relative_altitude
        rec.decision = clip_decision([*earlier, *(f.decision for f in frames if f.decision is not None)])
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


def load_clip(work: ClipWork, engine: Engine, cfg: ClipConfig, tally: ClipTally) -> Loaded:
    """Sample, stamp and prepare one clip's missing frames; never raises (see the module docstring)."""
    source = str(work.path)
    try:
        stamper = ClipStamper.open(work.path, cfg)
    except ClipError as exc:
        return Loaded([Sample(_failed(work, str(exc)))], close=_count_failed(tally))
    except Exception as exc:  # an OpenCV surprise on a strange file: a reason, and the run goes on
        reason = (
            f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else ''}"
        )
        return Loaded([Sample(_failed(work, reason))], close=_count_failed(tally))
    sampler = ClipSampler(work.path, sample_config(cfg, engine.min_side), stamper.info)
    samples = [
        Sample(stamper.frame_record(work.key, source, f.index, f.offset_s), engine.prepare(f.rgb))
        for f in sampler.frames(done=work.done)
    ]

    def close(records: list[MediaRecord]) -> list[MediaRecord]:
        frames = [r for r in records if r.kind == schema.FRAME]
        rec = stamper.clip_record(work.key, source, frames, work.earlier)
        if sampler.failure:
            rec.status, rec.error, rec.decision = schema.FAILED, sampler.failure, None
            tally.failed += 1
            log.warning("%s: %s; its %d frame(s) read are kept", work.path, sampler.failure, len(frames))
        tally.clips += 1
        tally.frames += len(frames)
        tally.telemetry_warnings += stamper.warning is not None
        return [rec]

    return Loaded(samples, close=close)


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
