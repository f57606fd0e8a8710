"""A clip as one work item of the ordered pipeline: its sampled frames, then its own row.

``tag`` (and ``detect`` on a video file) put :func:`load_clip` on the pipeline as they put a
photo's loader: it returns the clip's frames as samples (each completing a ``kind='frame'``
record: frame index, offset, time and place), and a ``close`` step that the pipeline runs once
the last frame is classified, in order. ``close`` writes the clip's own ``kind='clip'`` row: the
decision voted from all its frames (this run's and, after a resume, ``earlier`` ones) and its
length, or ``failed`` with the reason the clip broke off (its good frames stay). A clip that
cannot be opened at all is one failed clip row. Nothing here raises for a bad file.

The pipeline holds a clip's samples at the tower's input size (150 KB each at 224 px): a
10-minute drone clip at one frame a second is 90 MB. Split such clips (``SampleConfig``
windows) if memory is tight; camera-trap clips (10-60 s) are a few MB.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import timezone
from pathlib import Path

import numpy as np

from lit_edge.db import schema
from lit_edge.db.writer import MediaRecord
from lit_edge.device.classify import Decision
from lit_edge.device.pipeline import Loaded, Sample
from lit_edge.device.telemetry import Telemetry, find_telemetry, load_telemetry
from lit_edge.device.video.clips import ClipError, probe
from lit_edge.device.video.decision import clip_decision
from lit_edge.device.video.sampler import ClipSampler, SampleConfig
from lit_edge.device.video.stamps import stamp


@dataclass(frozen=True)
class ClipLoadConfig:
    """How ``tag``/``detect`` sample clips and place their frames."""

    sample: SampleConfig = field(default_factory=SampleConfig)
    telemetry: Path | None = None  # an SRT for this clip (--telemetry); None: clip.SRT beside it
    tz: timezone | None = None  # --utc-offset, for telemetry's local times (None: keep them naive)


def load_clip(
    path: Path,
    key: str,
    prepare: Callable[[np.ndarray], np.ndarray],
    cfg: ClipLoadConfig,
    done: Collection[int] = (),
    earlier: Sequence[Decision] = (),
    on_warning: Callable[[str], None] | None = None,
) -> Loaded:
    """Sample ``path`` (database key ``key``) into the pipeline's samples and closing step.

    ``prepare`` is the engine's (RGB -> the tower's input); ``done`` the frame indices the
    database already holds for this clip and ``earlier`` their decisions (resume);
    ``on_warning`` hears a telemetry warning (broken or empty SRT), once.
    """
    try:
        info = probe(path)
    except ClipError as exc:
        failed = MediaRecord(
            path=key, kind=schema.CLIP, source=str(path), status=schema.FAILED, error=str(exc)
        )
        return Loaded([Sample(failed)])
    telemetry = _telemetry(path, cfg, on_warning)
    sampler = ClipSampler(path, cfg.sample, info)
    samples = []
    for f in sampler.frames(done=done):
        s = stamp(info, f.offset_s, telemetry, cfg.tz)
        rec = MediaRecord(
            path=key,
            frame_index=f.index,
            kind=schema.FRAME,
            source=str(path),
            captured_at=s.captured_at,
            time_source=s.time_source,
            latitude=s.latitude,
            longitude=s.longitude,
            altitude=s.altitude,
            relative_altitude=s.relative_altitude,
            width=info.width,
            height=info.height,
            offset_s=round(f.offset_s, 3),
        )
        samples.append(Sample(rec, prepare(f.rgb)))
    start = stamp(info, 0.0, telemetry, cfg.tz)

    def close(finished: list) -> list:
        decisions = [*earlier, *(r.decision for r in finished if r.decision is not None)]
        positioned = next((r for r in finished if r.latitude is not None), None)
        clip = MediaRecord(
            path=key,
            kind=schema.CLIP,
            source=str(path),
            captured_at=start.captured_at,
            time_source=start.time_source,
            latitude=positioned.latitude if positioned else None,
            longitude=positioned.longitude if positioned else None,
            altitude=positioned.altitude if positioned else None,
            relative_altitude=positioned.relative_altitude if positioned else None,
            width=info.width,
            height=info.height,
            file_size=info.file_size,
            duration_s=round(info.duration_s, 3),
            decision=clip_decision(decisions),
        )
        if sampler.failure is not None:
            clip.status, clip.error = schema.FAILED, sampler.failure
        return [clip]

    return Loaded(samples, close)


def _telemetry(path: Path, cfg: ClipLoadConfig, on_warning: Callable[[str], None] | None) -> Telemetry | None:
    where = cfg.telemetry or find_telemetry(path)
    if where is None:
        return None
    t = load_telemetry(where)
    if t.warning and on_warning is not None:
        on_warning(t.warning)
    return t
