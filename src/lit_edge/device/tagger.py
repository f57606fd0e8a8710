"""``lit-edge tag``: classify every photo and clip of a folder (or glob, or file) exactly once into SQLite.

Each photo is a work item of the ordered pipeline (:mod:`lit_edge.device.pipeline`): a decode
pool reads and resizes photos (OpenCV), inference workers run the model on batches (ONNX Runtime
or TensorRT), and the store's writer thread commits the records (SQLite), in file order. How many
workers, threads and photos per batch: :mod:`lit_edge.device.plan`, for the backend that opened.

Resuming is by resolved path: what the database already holds as done (or failed, unless
``retry_failed``) is skipped before any decoding. A photo that cannot be read or decoded becomes a
``failed`` media row with its reason, and the run goes on. A record reaches the store only once its
photo is classified, so a kill at any moment loses at most work, never consistency.

Each clip is a work item too (:mod:`lit_edge.device.video.loader`): its sampled frames become
``frame`` rows, then the clip's own row. A clip is skipped when its clip row is there; otherwise
only the frames the database lacks (:meth:`Store.frames_done`) are sampled.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

from lit_edge.db.schema import INTERRUPTED
from lit_edge.db.summary import Summary, summarise
from lit_edge.db.writer import MediaRecord, RunInfo, Store, StoreConfig
from lit_edge.device import shard as sharding
from lit_edge.device.config import TagConfig
from lit_edge.device.decode import DecodeError, decode_file
from lit_edge.device.pipeline import Engine, Loaded, Pipeline, Sample
from lit_edge.device.plan import plan_tag
from lit_edge.device.sources import SourceKind, list_files, parse_address
from lit_edge.device.video import is_clip
from lit_edge.device.video.loader import (
    ClipTally,
    ClipWork,
    check_telemetry_option,
    clip_loads,
    earlier_decisions,
    sample_config,
    utc_offset,
)

log = logging.getLogger(__name__)


@dataclass
class TagResult:
    run_id: int
    total: int  # photos and clips found
    skipped: int  # already in the database
    processed: int  # photos and clips classified or failed in this run
    failed: int  # photos and clips
    seconds: float
    first_prediction_s: float | None
    interrupted: bool
    summary: Summary
    clips: ClipTally = field(default_factory=ClipTally)  # this run's clips, their frames, warnings

    @property
    def photos(self) -> int:
        """Photos classified or failed in this run."""
        return self.processed - self.clips.clips


def default_db(source: str) -> Path:
    """``FOLDER/lit-edge.db`` for a folder (the results travel with the photos), else ``./lit-edge.db``."""
    spec = parse_address(source)
    if spec.kind is SourceKind.FOLDER:
        return Path(spec.target) / "lit-edge.db"
    return Path("lit-edge.db")


def media_key(path: Path) -> str:
    """A photo's identity in the database: its resolved path (a broken link is keyed by itself)."""
    return os.path.realpath(path) if os.path.exists(path) else os.path.abspath(path)


def load_photo(path: Path, key: str, engine: Engine) -> Loaded:
    """Decode + resize one photo into one sample; every failure becomes a failed record (never an
    exception)."""
    rec = MediaRecord(path=key, source=str(path))
    try:
        st = os.stat(path)
        rec.file_size = st.st_size
    except OSError:
        st = None
    try:
        dec = decode_file(path, engine.min_side)
        image = engine.prepare(dec.rgb)
    except DecodeError as exc:
        rec.status, rec.error = "failed", str(exc)
        return Loaded([Sample(rec)])
    except Exception as exc:  # an OpenCV or numpy surprise on a strange file: record it, go on
        rec.status, rec.error = "failed", f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        return Loaded([Sample(rec)])
    info = dec.info
    rec.error = dec.warning  # a photo classified from part of itself says so (its status stays done)
    rec.width, rec.height = dec.width, dec.height
    rec.latitude, rec.longitude, rec.altitude = info.latitude, info.longitude, info.altitude
    if info.datetime_original:
        rec.captured_at, rec.time_source = info.datetime_original, "exif"
    elif st is not None:
        rec.captured_at = datetime.fromtimestamp(st.st_mtime, timezone.utc).isoformat(timespec="seconds")
        rec.time_source = "mtime"
    return Loaded([Sample(rec, image)])


def run_tag(
    config: TagConfig,
    *,
    engine: Engine | None = None,
    progress: Callable[[int, int], None] | None = None,
    stop: threading.Event | None = None,
) -> TagResult:
    """Tag ``config.source`` into ``config.db``. ``progress(done, total)`` is called as files
    (photos and clips) finish."""
    t0 = time.perf_counter()
    spec = parse_address(config.source)
    sample_config(config.clips, 0)  # bad sampling options fail before the model is opened
    utc_offset(config.clips)
    if engine is None:  # open the model while the folder is walked: both take a while on a big card
        with ThreadPoolExecutor(1, thread_name_prefix="lit-edge-engine") as ex:
            pending = ex.submit(Engine, config.engine, lambda s: plan_tag(config, s).threads)
            files = list_files(spec, clips=True)
            n_clips = sum(map(is_clip, files))
            check_telemetry_option(config.clips, n_clips)
            engine = pending.result()
    else:
        files = list_files(spec, clips=True)
        n_clips = sum(map(is_clip, files))
        check_telemetry_option(config.clips, n_clips)
    files = sharding.select(files, sharding.base_of(spec.kind, spec.target), config.shard)
    n_clips = sum(map(is_clip, files))  # this shard's
    how = plan_tag(config, engine.backend.spec)  # for the backend that really opened
    stop = stop or threading.Event()
    counts = {"processed": 0, "failed": 0}
    tally = ClipTally()
    first: list[float] = []
    with Store(config.db, StoreConfig(batch=config.commit_every)) as store:
        skip = store.done_paths(config.retry_failed)
        todo = [(p, k) for p in files if (k := media_key(p)) not in skip]
        # a folder listed twice through a symlinked sub-folder is still one photo per resolved path
        seen: set[str] = set()
        todo = [(p, k) for p, k in todo if not (k in seen or seen.add(k))]
        # a clip killed mid-way: sample only the frames it lacks, and let the stored ones vote too
        # (read here: the loaders run on pool threads and cannot use the store's connection)
        done = {k: store.frames_done(k, config.retry_failed) for p, k in todo if is_clip(p)}
        earlier = earlier_decisions(config.db, [k for k, d in done.items() if d])
        run_id = store.start_run(
            RunInfo(
                command="tag",
                source=config.source,
                bundle=engine.bundle,
                backend=engine.backend.name,
                flavour=engine.backend.flavour,
                settings={**asdict(config), "plan": asdict(how)},
                shard=str(config.shard) if config.shard else None,
            )
        )
        log.info(
            "run %d: %d photos, %d clips, %d already in %s, %d to do; %d worker(s) x %d thread(s), batch %d",
            run_id,
            len(files) - n_clips,
            n_clips,
            len(files) - len(todo),
            config.db,
            len(todo),
            how.workers,
            how.threads,
            how.batch_size,
        )
        if progress:
            progress(0, len(todo))

        def sink(sample: Sample) -> None:
            rec = sample.record
            store.put(rec)
            if rec.status == "done" and not first:
                first.append(time.perf_counter() - t0)
            if rec.frame_index >= 0:  # a clip's frame: the clip's own row counts it
                return
            counts["processed"] += 1
            counts["failed"] += rec.status == "failed"
            if progress:
                progress(counts["processed"], len(todo))

        with Pipeline(engine, how, sink, embeddings=config.embeddings) as pipe:
            for path, key in todo:
                if stop.is_set():
                    break
                if key in done:
                    work = ClipWork(path, key, done[key], earlier.get(key, []))
                    pipe.put(*clip_loads(work, engine, config.clips, tally))
                else:
                    pipe.put(partial(load_photo, path, key, engine))
        if stop.is_set():
            store.outcome = INTERRUPTED
    return TagResult(
        run_id=run_id,
        total=len(files),
        skipped=len(files) - len(todo),
        processed=counts["processed"],
        failed=counts["failed"],
        seconds=time.perf_counter() - t0,
        first_prediction_s=first[0] if first else None,
        interrupted=store.outcome == INTERRUPTED,
        summary=summarise(config.db),
        clips=tally,
    )
