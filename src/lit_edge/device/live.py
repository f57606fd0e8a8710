"""``lit-edge detect``: classify a live source until stopped, logging every classified frame.

The source thread reads and samples frames (``--fps``, ``--every``, ``--motion``) into a small
bounded queue; this loop takes up to ``batch_size`` frames that are already waiting (never waits to
fill a batch, so latency stays one inference), classifies them, and hands the records to the
store's writer thread. SIGINT/SIGTERM set a stop event: the current batch finishes, the database is
flushed, the run is marked and the command exits 0. A video file ends the run when it ends; a
live stream that drops is reopened by the source with backoff.

Each frame is a work item of the ordered pipeline (:mod:`lit_edge.device.pipeline`) that ``tag``
runs too, planned for latency (:func:`lit_edge.device.plan.plan_detect`): by default one inference
worker with every core, a batch handed over only when a worker is free (until then frames wait
in the source's queue, where a live camera drops the oldest), results logged in frame order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np

from lit_edge.db.schema import INTERRUPTED, LIVE
from lit_edge.db.summary import Summary, summarise
from lit_edge.db.writer import MediaRecord, RunInfo, Store, StoreConfig
from lit_edge.device.config import DetectConfig
from lit_edge.device.pipeline import Engine, Loaded, Pipeline, Sample
from lit_edge.device.plan import plan_detect
from lit_edge.device.sources import Frame, LiveSource, SourceKind, capture_args, parse_address
from lit_edge.errors import UserError

log = logging.getLogger(__name__)


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


def run_detect(
    config: DetectConfig,
    *,
    stop: threading.Event | None = None,
    engine: Engine | None = None,
    echo: Callable[[str], None] = print,
) -> DetectResult:
    spec = parse_address(config.source)
    if spec.kind.photos:
        raise UserError(
            f"{config.source} is photos, not a live source or video; use 'lit-edge tag {config.source}'"
        )
    capture_args(spec, config.capture)  # a CSI camera without GStreamer fails here, before any I/O
    display = _Display() if config.display else None
    if engine is None:
        engine = Engine(config.engine, lambda s: plan_detect(config, s).threads)
    how = plan_detect(config, engine.backend.spec)  # for the backend that really opened
    store_config = StoreConfig(
        batch=config.commit_every,
        flush_s=0.5,
        save_frames=config.save_frames,
        save_quota_mb=config.save_quota_mb,
    )
    key = str(Path(spec.target).resolve()) if spec.kind is SourceKind.VIDEO else spec.address
    stop = stop or threading.Event()
    closed = threading.Event()  # the user closed the display window
    frames = detections = 0
    latencies: list[float] = []  # read -> logged, queue wait included
    process_ms: list[float] = []  # taken from the queue -> logged (preprocess + inference)
    with Store(config.db, store_config) as store:
        # A live source continues its frame numbering over runs; a video re-run replaces its frames.
        first_index = store.next_frame_index(key) if spec.live else 0
        source = LiveSource(spec, config.capture, first_index=first_index)
        run_id = store.start_run(
            RunInfo(
                command="detect",
                source=config.source,
                bundle=engine.bundle,
                backend=engine.backend.name,
                flavour=engine.backend.flavour,
                settings={**asdict(config), "plan": asdict(how)},
            )
        )
        log.info(
            "run %d: %s (%s) -> %s, %d inference worker(s)",
            run_id,
            config.source,
            spec.kind,
            config.db,
            how.workers,
        )
        t0 = last_status = time.perf_counter()

        def load(f: Frame, taken: float) -> Loaded:
            h, w = f.rgb.shape[:2]
            rec = MediaRecord(
                path=key,
                frame_index=f.index,
                kind=LIVE,  # a video file too, until clips get their own rows (kind clip/frame)
                source=config.source,
                captured_at=f.captured_at,
                time_source=f.time_source,
                width=w,
                height=h,
            )
            return Loaded([Sample(rec, engine.prepare(f.rgb), (f, taken))])

        def sink(sample: Sample) -> None:
            """Log one classified frame, in frame order."""
            nonlocal frames, detections, last_status
            f, taken = sample.context
            rec, d = sample.record, sample.record.decision
            done = time.perf_counter()
            latencies.append((done - f.read_at) * 1000.0)
            process_ms.append((done - taken) * 1000.0)
            if store.saver and d.rank == "species" and d.score >= config.save_min_score:
                rec.frame = f.rgb
            store.put(rec)
            frames += 1
            if d.named:  # a species or a rolled-up taxon; not an outcome such as uncertain or blank
                detections += 1
                if config.print_detections:
                    echo(f"{f.captured_at}  frame {f.index}  {d.rank} {d.name}  {d.score:.2f}")
            if display is not None and not display.show(f.rgb, d):
                closed.set()  # 'q' or Esc
            if config.status_every_s and done - last_status >= config.status_every_s:
                last_status = done
                echo(_status_line(frames, done - t0, latencies, source, store))

        source.start()
        try:
            with Pipeline(engine, how, sink, embeddings=config.embeddings) as pipe:
                while not (stop.is_set() or closed.is_set()):
                    if config.duration_s and time.perf_counter() - t0 >= config.duration_s:
                        break
                    first = source.get(timeout=0.2)
                    if first is None:
                        pipe.flush()
                        if source.exhausted:
                            break
                        continue
                    taken = time.perf_counter()
                    batch = [first]  # and the frames already waiting: a batch never waits to fill
                    while len(batch) < how.batch_size and (nxt := source.queue.get(0)) is not None:
                        batch.append(nxt)
                    pipe.put(*(partial(load, f, taken) for f in batch))
            if stop.is_set():
                store.outcome = INTERRUPTED
        finally:
            if display is not None:
                display.close()
            source.stop()
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
        workers=how.workers,
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
