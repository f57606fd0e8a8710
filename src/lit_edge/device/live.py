"""``lit-edge detect``: classify a live source until stopped, logging every classified frame.

The source thread reads and samples frames (``--fps``, ``--every``, ``--motion``) into a small
bounded queue; this loop takes up to ``batch_size`` frames that are already waiting (never waits to
fill a batch, so latency stays one inference), classifies them, and hands the records to the
store's writer thread. SIGINT/SIGTERM set a stop event: the current batch finishes, the database is
flushed, the run is marked and the command exits 0. A video file ends the run when it ends; a
live stream that drops is reopened by the source with backoff.

By default one inference worker runs the model on every core for each batch: a live camera needs
each frame's latency low. ``workers`` > 1 runs batches side by side, each on fewer intra-op
threads, with results still logged in frame order; that is ``lit-edge tag``'s plan (see
:mod:`lit_edge.device.tagger`), but it is not the default for a video file either: the source
thread's video decoding already fills the gaps the two-thread model leaves on 2 cores, and in
``bench/bench_device.py`` two workers were not faster here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from lit_edge.db.schema import INTERRUPTED, LIVE
from lit_edge.db.summary import Summary, summarise
from lit_edge.db.writer import MediaRecord, RunInfo, Store, StoreConfig
from lit_edge.device.pipeline import Engine, EngineConfig
from lit_edge.device.sources import CaptureConfig, LiveSource, capture_args, parse_address
from lit_edge.device.threads import usable_cores
from lit_edge.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectConfig:
    """Everything one ``lit-edge detect`` run needs."""

    source: str
    db: Path = Path("detections.db")
    engine: EngineConfig = field(default_factory=EngineConfig)
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    batch_size: int = 2  # most frames per inference; a batch never waits to fill
    workers: int = 1  # inference workers (batches run side by side); see the module docstring
    duration_s: float = 0.0  # stop after this many seconds (0 = until stopped / source ends)
    status_every_s: float = 10.0  # a status line this often (0 = never)
    print_detections: bool = True  # a line per frame that names a taxon (not uncertain or blank)
    display: bool = False  # show frames in a window (needs OpenCV with GUI; headless is the default)
    save_frames: Path | None = None  # save confident frames as JPEG here
    save_min_score: float = 0.8
    save_quota_mb: float = 500.0
    commit_every: int = 32


@dataclass
class DetectResult:
    run_id: int
    frames: int
    detections: int
    reconnects: int
    dropped: int
    seconds: float
    latencies_ms: list[float]
    process_ms: list[float]
    source_error: str | None
    summary: Summary
    workers: int = 1


def detect_workers(config: DetectConfig, cores: int | None = None) -> tuple[int, int]:
    """(inference workers, intra-op threads): the cores are shared out among the workers."""
    cores = cores or usable_cores()
    workers = max(1, config.workers)
    threads = config.engine.backend.threads or max(1, cores // workers)
    return workers, threads


def run_detect(
    config: DetectConfig,
    *,
    stop: threading.Event | None = None,
    engine: Engine | None = None,
    echo: Callable[[str], None] = print,
) -> DetectResult:
    spec = parse_address(config.source)
    if spec.kind in ("folder", "glob", "image"):
        raise UserError(
            f"{config.source} is photos, not a live source or video; use 'lit-edge tag {config.source}'"
        )
    capture_args(spec, config.capture)  # a CSI camera without GStreamer fails here, before any I/O
    display = _Display() if config.display else None
    workers, threads = detect_workers(config)
    if engine is None:
        engine = Engine(replace(config.engine, backend=replace(config.engine.backend, threads=threads)))
    store = Store(
        config.db,
        StoreConfig(
            batch=config.commit_every,
            flush_s=0.5,
            save_frames=config.save_frames,
            save_quota_mb=config.save_quota_mb,
        ),
    )
    saver = store.saver
    key = str(Path(spec.target).resolve()) if spec.kind == "video" else spec.address
    # A live source continues its frame numbering over runs; a video re-run replaces its frames.
    try:
        first_index = store.next_frame_index(key) if spec.live else 0
    except BaseException:
        store.close()
        raise
    source = LiveSource(spec, config.capture, first_index=first_index)
    run_id = store.start_run(
        RunInfo(
            command="detect",
            source=config.source,
            bundle=engine.bundle,
            backend=engine.backend.name,
            flavour=engine.backend.flavour,
            settings={**asdict(config), "plan": {"workers": workers, "threads": threads}},
        )
    )
    log.info(
        "run %d: %s (%s) -> %s, %d inference worker(s)", run_id, config.source, spec.kind, config.db, workers
    )
    stop = stop or threading.Event()
    t0 = time.perf_counter()
    last_status = t0
    frames = detections = 0
    latencies: list[float] = []  # read -> logged, queue wait included
    process_ms: list[float] = []  # taken from the queue -> logged (preprocess + inference)
    source.start()

    def infer(batch: list) -> tuple[list, float]:
        decisions = engine.classify_prepared([engine.prepare(f.rgb) for f in batch])
        return decisions, time.perf_counter()

    def log_batch(batch: list, started: float, decisions: list, done: float) -> bool:
        """Record a classified batch; False when the user closed the display window."""
        nonlocal frames, detections, last_status
        for f, d in zip(batch, decisions, strict=True):
            latencies.append((done - f.read_at) * 1000.0)
            process_ms.append((done - started) * 1000.0)
            confident = d.rank == "species" and d.score >= config.save_min_score
            h, w = f.rgb.shape[:2]
            store.put(
                MediaRecord(
                    path=key,
                    frame_index=f.index,
                    kind=LIVE,  # a video file too, until clips get their own rows (kind clip/frame)
                    source=config.source,
                    captured_at=f.captured_at,
                    time_source=f.time_source,
                    width=w,
                    height=h,
                    decision=d,
                    frame=f.rgb if (saver and confident) else None,
                )
            )
            frames += 1
            if d.named:  # a species or a rolled-up taxon; not uncertain, not blank
                detections += 1
                if config.print_detections:
                    echo(f"{f.captured_at}  frame {f.index}  {d.rank} {d.name}  {d.score:.2f}")
        if display is not None and not display.show(batch[-1].rgb, decisions[-1]):
            return False  # the user closed the window ('q' or Esc)
        if config.status_every_s and done - last_status >= config.status_every_s:
            last_status = done
            echo(_status_line(frames, done - t0, latencies, source, store))
        return True

    pool = ThreadPoolExecutor(workers, thread_name_prefix="lit-edge-infer") if workers > 1 else None
    running: deque[tuple[list, float, Future]] = deque()  # oldest first: frames are logged in order

    def finish(keep: int) -> bool:
        while len(running) > keep:
            batch, started, future = running.popleft()
            if not log_batch(batch, started, *future.result()):
                return False
        return True

    try:
        while not stop.is_set():
            if config.duration_s and time.perf_counter() - t0 >= config.duration_s:
                break
            first = source.get(timeout=0.2)
            if first is None:
                if not finish(0) or source.exhausted:
                    break
                continue
            started = time.perf_counter()
            batch = [first]
            while len(batch) < config.batch_size and (nxt := source.queue.get(0)) is not None:
                batch.append(nxt)
            if pool is None:
                if not log_batch(batch, started, *infer(batch)):
                    break
                continue
            running.append((batch, started, pool.submit(infer, batch)))
            if not finish(workers - 1):  # a batch waits for a free worker in the source's queue
                break
        finish(0)
        if stop.is_set():
            store.outcome = INTERRUPTED
    except BaseException:
        store.outcome = INTERRUPTED
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
        if display is not None:
            display.close()
        source.stop()
        store.close()  # flushes, marks the run with store.outcome, closes every connection
    return DetectResult(
        run_id=run_id,
        frames=frames,
        detections=detections,
        reconnects=source.reconnects,
        dropped=source.queue.dropped,
        seconds=time.perf_counter() - t0,
        latencies_ms=latencies,
        process_ms=process_ms,
        source_error=source.error,
        summary=summarise(config.db, run_id=run_id),
        workers=workers,
    )


def _status_line(
    frames: int, elapsed: float, latencies: list[float], source: LiveSource, store: Store
) -> str:
    recent = latencies[-200:]
    p50 = float(np.percentile(recent, 50)) if recent else 0.0
    p99 = float(np.percentile(recent, 99)) if recent else 0.0
    return (
        f"status: {frames} frames, {frames / max(elapsed, 1e-9):.1f} fps, latency p50 {p50:.0f} ms "
        f"p99 {p99:.0f} ms, source queue {len(source.queue)}, dropped {source.queue.dropped}, "
        f"db queue {store.queue_depth}, reconnects {source.reconnects}"
    )


class _Display:
    """An OpenCV window with the decision drawn on the frame; refused clearly on headless OpenCV."""

    NAME = "lit-edge"

    def __init__(self):
        import cv2

        try:
            cv2.namedWindow(self.NAME, cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            raise UserError(
                "--display needs OpenCV with GUI support, and this one is headless; "
                "run without --display (the default) or install an OpenCV with GUI"
            ) from exc

    def show(self, rgb: np.ndarray, d) -> bool:
        import cv2

        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        text = f"{d.name} ({d.rank}) {d.score:.2f}"
        cv2.putText(bgr, text, (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (0, 0, 0), 4, cv2.LINE_AA)
        cv2.putText(bgr, text, (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2, cv2.LINE_AA)
        cv2.imshow(self.NAME, bgr)
        return cv2.waitKey(1) & 0xFF not in (ord("q"), 27)

    def close(self) -> None:
        import cv2

        cv2.destroyWindow(self.NAME)
