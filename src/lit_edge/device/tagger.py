"""``lit-edge tag``: classify every photo of a folder (or glob, or file) exactly once into SQLite.

Each photo is a work item of the ordered pipeline (:mod:`lit_edge.device.pipeline`): a decode
pool reads and resizes photos (OpenCV), inference workers run the model on batches (ONNX Runtime
or TensorRT), and the store's writer thread commits the records (SQLite), in file order. How many
workers, threads and photos per batch: :mod:`lit_edge.device.plan`, for the backend that opened.

Resuming is by resolved path: what the database already holds as done (or failed, unless
``retry_failed``) is skipped before any decoding. A photo that cannot be read or decoded becomes a
``failed`` media row with its reason, and the run goes on. A record reaches the store only once its
photo is classified, so a kill at any moment loses at most work, never consistency.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

from lit_edge.db.schema import INTERRUPTED
from lit_edge.db.summary import Summary, summarise
from lit_edge.db.writer import MediaRecord, RunInfo, Store, StoreConfig
from lit_edge.device.config import TagConfig
from lit_edge.device.decode import DecodeError, decode_file
from lit_edge.device.pipeline import Engine, Loaded, Pipeline, Sample
from lit_edge.device.plan import plan_tag
from lit_edge.device.sources import SourceKind, list_files, parse_address

log = logging.getLogger(__name__)


@dataclass
class TagResult:
    run_id: int
    total: int  # photos found
    skipped: int  # already in the database
    processed: int  # classified or failed in this run
    failed: int
    seconds: float
    first_prediction_s: float | None
    interrupted: bool
    summary: Summary


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
    """Tag ``config.source`` into ``config.db``. ``progress(done, total)`` is called as work finishes."""
    t0 = time.perf_counter()
    spec = parse_address(config.source)
    if engine is None:  # open the model while the folder is walked: both take a while on a big card
        with ThreadPoolExecutor(1, thread_name_prefix="lit-edge-engine") as ex:
            pending = ex.submit(Engine, config.engine, lambda s: plan_tag(config, s).threads)
            files = list_files(spec)
            engine = pending.result()
    else:
        files = list_files(spec)
    how = plan_tag(config, engine.backend.spec)  # for the backend that really opened
    stop = stop or threading.Event()
    counts = {"processed": 0, "failed": 0}
    first: list[float] = []
    with Store(config.db, StoreConfig(batch=config.commit_every)) as store:
        skip = store.done_paths(config.retry_failed)
        todo = [(p, k) for p in files if (k := media_key(p)) not in skip]
        # a folder listed twice through a symlinked sub-folder is still one photo per resolved path
        seen: set[str] = set()
        todo = [(p, k) for p, k in todo if not (k in seen or seen.add(k))]
        run_id = store.start_run(
            RunInfo(
                command="tag",
                source=config.source,
                bundle=engine.bundle,
                backend=engine.backend.name,
                flavour=engine.backend.flavour,
                settings={**asdict(config), "plan": asdict(how)},
            )
        )
        log.info(
            "run %d: %d photos, %d already in %s, %d to do; %d worker(s) x %d thread(s), batch %d",
            run_id,
            len(files),
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
            store.put(sample.record)
            counts["processed"] += 1
            if sample.record.status == "failed":
                counts["failed"] += 1
            elif not first:
                first.append(time.perf_counter() - t0)
            if progress:
                progress(counts["processed"], len(todo))

        with Pipeline(engine, how, sink, embeddings=config.embeddings) as pipe:
            for path, key in todo:
                if stop.is_set():
                    break
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
    )
