"""``lit-edge tag``: classify every photo of a folder (or glob, or file) exactly once into SQLite.

The loop keeps every core busy with three kinds of threads, all of which spend their time in code
that releases the GIL: a pool decodes and resizes photos (OpenCV), a few inference workers run the
model on batches (ONNX Runtime), and the store's writer thread commits results (SQLite). The main
thread only hands decoded photos to the workers in order and results to the store.

Why several inference workers of one intra-op thread each rather than one session on all cores:
EfficientNet-Lite0's convolutions are small, and splitting each of them over two threads costs
synchronisation: on a quiet 2-core machine the INT8 tower did 94 img/s as one two-thread call
and 131-152 as two one-thread calls side by side, and ``tag`` 110 files/s against 81 with
``--workers 1`` (the one-session setting; ``bench/bench_device.py`` prints both). The workers
share one ONNX Runtime session (``run`` is thread-safe), which holds the weights once.

Resuming is by resolved path: what the database already holds as done (or failed, unless
``retry_failed``) is skipped before any decoding. A photo that cannot be read or decoded becomes a
``failed`` media row with its reason, and the run goes on. A record reaches the store only once its
photo is classified, so a kill at any moment loses at most work, never consistency.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from lit_edge.db.schema import INTERRUPTED
from lit_edge.db.summary import Summary, summarise
from lit_edge.db.writer import MediaRecord, RunInfo, Store, StoreConfig
from lit_edge.device.decode import DecodeError, decode_file
from lit_edge.device.pipeline import Engine, EngineConfig
from lit_edge.device.sources import list_files, parse_address
from lit_edge.device.threads import usable_cores

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TagConfig:
    """Everything one ``lit-edge tag`` run needs."""

    source: str  # folder, image file or glob
    db: Path
    engine: EngineConfig = field(default_factory=EngineConfig)
    retry_failed: bool = False
    batch_size: int = 0  # photos per inference; 0 = auto (see auto_batch_size)
    workers: int = 0  # inference workers (batches run at once); 0 = auto (see plan)
    decoders: int = 0  # decode threads; 0 = one per usable core
    own_sessions: bool = False  # a model session per worker instead of one shared (more memory)
    commit_every: int = 256  # records per database transaction


@dataclass(frozen=True)
class Plan:
    """How a run uses the machine: what ``plan`` made of the config's zeros (auto)."""

    workers: int
    threads: int  # ONNX Runtime intra-op threads per call
    batch_size: int
    decoders: int


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


@dataclass
class _Loaded:
    path: str
    image: np.ndarray | None = None
    record: MediaRecord | None = None


def cpu_workers(cores: int) -> int:
    """Inference workers on a CPU: one per core (one intra-op thread each), at most 4.

    The cap bounds memory: every worker has a batch in flight in ONNX Runtime's activation arena
    (10-20 MB per image). Past four, the leftover cores become intra-op threads of each call
    (a guess: only 2 cores were at hand to measure).
    """
    return max(1, min(cores, 4))


def plan(config: TagConfig, backend_name: str | None = None, cores: int | None = None) -> Plan:
    """Fill in the config's automatic settings for ``backend_name`` on ``cores`` cores.

    On a CPU, one worker per core; on a GPU, one worker (the decode pool keeps it fed). Each
    worker's calls get an equal share of the cores as intra-op threads. ``backend_name`` None
    means the one ``config`` will open (``auto``: the best available), so that the session can be
    created with the right number of threads before the backend exists.
    """
    cores = cores or usable_cores()
    name = backend_name or expected_backend(config.engine.backend.backend)
    workers = config.workers or (cpu_workers(cores) if name == "onnxruntime-cpu" else 1)
    threads = config.engine.backend.threads or max(1, cores // workers)
    batch = config.batch_size or auto_batch_size(name)
    return Plan(workers=workers, threads=threads, batch_size=batch, decoders=config.decoders or cores)


def expected_backend(requested: str) -> str:
    """The backend that ``backends.create`` will open for ``requested`` (``auto``: the first available)."""
    if requested != "auto":
        return requested
    from lit_edge.device.backends import available

    return next(iter(available()), "onnxruntime-cpu")


def auto_batch_size(backend_name: str) -> int:
    """Small batches on CPU, larger on a GPU.

    On a CPU a convolutional tower costs about the same per image at batch 1 or 32 (batch 8 was
    slower here), but ONNX Runtime's activation arena grows with the images in flight
    (EfficientNet-Lite0 INT8: 10-20 MB each), and every worker has a batch in flight: a batch of 2
    keeps ``tag`` well inside its 250 MB memory budget. A GPU needs batches to be busy.
    """
    return 2 if backend_name == "onnxruntime-cpu" else 16


def default_db(source: str) -> Path:
    """``FOLDER/lit-edge.db`` for a folder (the results travel with the photos), else ``./lit-edge.db``."""
    spec = parse_address(source)
    if spec.kind == "folder":
        return Path(spec.target) / "lit-edge.db"
    return Path("lit-edge.db")


def media_key(path: Path) -> str:
    """A photo's identity in the database: its resolved path (a broken link is keyed by itself)."""
    return os.path.realpath(path) if os.path.exists(path) else os.path.abspath(path)


def _load(path: Path, key: str, engine: Engine) -> _Loaded:
    """Decode + resize one photo; every failure becomes a failed record (never an exception)."""
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
        return _Loaded(key, None, rec)
    except Exception as exc:  # an OpenCV or numpy surprise on a strange file: record it, go on
        rec.status, rec.error = "failed", f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        return _Loaded(key, None, rec)
    info = dec.info
    rec.width, rec.height = dec.width, dec.height
    rec.latitude, rec.longitude, rec.altitude = info.latitude, info.longitude, info.altitude
    if info.datetime_original:
        rec.captured_at, rec.time_source = info.datetime_original, "exif"
    elif st is not None:
        rec.captured_at = datetime.fromtimestamp(st.st_mtime, timezone.utc).isoformat(timespec="seconds")
        rec.time_source = "mtime"
    return _Loaded(key, image, rec)


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
        threads = plan(config).threads
        engine_config = replace(config.engine, backend=replace(config.engine.backend, threads=threads))
        with ThreadPoolExecutor(1, thread_name_prefix="lit-edge-engine") as ex:
            pending = ex.submit(Engine, engine_config)
            files = list_files(spec)
            engine = pending.result()
    else:
        files = list_files(spec)
    how = plan(config, engine.backend.name)
    store = Store(config.db, StoreConfig(batch=config.commit_every))
    try:
        skip = store.done_paths(config.retry_failed)
    except BaseException:
        store.close()
        raise
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
    stop = stop or threading.Event()
    infer = _Inference(engine, how.workers, config.own_sessions)
    processed = failed = 0
    first: float | None = None
    try:
        with (
            ThreadPoolExecutor(how.decoders, thread_name_prefix="lit-edge-decode") as pool,
            ThreadPoolExecutor(how.workers, thread_name_prefix="lit-edge-infer") as workers,
        ):
            decoding: deque = deque()  # decode futures, in file order
            running: deque = deque()  # (batch, inference future), oldest first
            it = iter(todo)
            batch: list[_Loaded] = []

            def fill() -> None:
                # enough decoded photos ahead for every worker's next batch, and no more (memory)
                while len(decoding) < (how.workers + 2) * how.batch_size and not stop.is_set():
                    nxt = next(it, None)
                    if nxt is None:
                        return
                    decoding.append(pool.submit(_load, nxt[0], nxt[1], engine))

            def collect(keep: int) -> None:
                # hand finished batches to the store, oldest first, until at most `keep` run
                nonlocal processed, first
                while len(running) > keep:
                    items, future = running.popleft()
                    for item, decision in zip(items, future.result(), strict=True):
                        item.record.decision = decision
                        store.put(item.record)
                    if first is None:
                        first = time.perf_counter() - t0
                    processed += len(items)
                    if progress:
                        progress(processed, len(todo))

            fill()
            while decoding:
                loaded = decoding.popleft().result()
                fill()
                if loaded.image is None:
                    store.put(loaded.record)
                    processed += 1
                    failed += 1
                    if progress:
                        progress(processed, len(todo))
                else:
                    batch.append(loaded)
                if len(batch) >= how.batch_size or (not decoding and batch):
                    running.append((batch, workers.submit(infer, [b.image for b in batch])))
                    batch = []
                    # one batch queued behind the running ones keeps every worker busy
                    collect(how.workers)
            collect(0)
            if stop.is_set():
                store.outcome = INTERRUPTED
    except BaseException:
        store.outcome = INTERRUPTED
        raise
    finally:
        store.close()  # flushes, marks the run with store.outcome, closes every connection
    return TagResult(
        run_id=run_id,
        total=len(files),
        skipped=len(files) - len(todo),
        processed=processed,
        failed=failed,
        seconds=time.perf_counter() - t0,
        first_prediction_s=first,
        interrupted=store.outcome == INTERRUPTED,
        summary=summarise(config.db),
    )


class _Inference:
    """Runs a batch through the model on the calling worker thread.

    With a shared session (the default) every worker calls the engine's backend. With
    ``own_sessions`` each worker thread opens its own session on first use (the weights and the
    activation arena are then held once per worker; measured in the bench, for comparison).
    """

    def __init__(self, engine: Engine, workers: int, own_sessions: bool):
        self.engine = engine
        self.own = own_sessions and workers > 1 and getattr(engine.backend, "concurrent", False)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._spare = [engine.backend]  # the first worker takes the engine's own session

    def _backend(self):
        backend = getattr(self._local, "backend", None)
        if backend is None:
            with self._lock:
                backend = self._spare.pop() if self._spare else None
            backend = backend or self.engine.open_backend()
            self._local.backend = backend
        return backend

    def __call__(self, images: list[np.ndarray]):
        return self.engine.classify_prepared(images, self._backend() if self.own else None)


class GracefulStop:
    """SIGINT/SIGTERM set an event (finish the batch, flush, exit); a second signal interrupts hard."""

    def __init__(self):
        self.event = threading.Event()
        self._old: dict = {}

    def _handle(self, signum, frame):
        if self.event.is_set():
            raise KeyboardInterrupt
        log.info("%s: finishing the current batch and flushing the database", signal.Signals(signum).name)
        self.event.set()

    def __enter__(self) -> threading.Event:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self.event

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
