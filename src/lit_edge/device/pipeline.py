"""The inference side of the runtime, shared by ``tag`` and ``detect``: the engine and one ordered pipeline.

:class:`Engine` owns the verified bundle, one backend and the classifier, and turns a batch of
images at the tower's input size into embeddings and :class:`~lit_edge.device.classify.Decision` s.

:class:`Pipeline` is the one loop both commands run: work items go in, in order (a photo; a clip
whose loader yields many sampled frames; a live frame), are loaded on a decode pool, run in
batches by N inference workers, and come out *in input order* as finished records to a sink (the
database writer). Everything slow runs outside Python's lock (OpenCV decoding, ONNX Runtime,
SQLite in the store's thread); the calling thread only moves items between the stages.

- A loader returns a :class:`Loaded`: its :class:`Sample` s in order (an image to classify and the
  record it completes, or a record as it is: a failure) and an optional ``close`` step that sees
  the item's classified records once its last one is done and may add records (a clip's own row,
  written after its frames). A loader never raises: a bad input is a failed record.
- Throughput or latency is the plan's choice (:mod:`lit_edge.device.plan`): ``tag`` waits for
  full batches and keeps one batch queued behind the running ones; ``detect`` runs what is there
  (a batch never waits to fill) and hands a batch to a worker only when one is free.
- A record reaches the sink only once classified, in input order, so a kill at any moment loses
  at most work: the database never holds a record out of order or half-written.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lit_edge import bundle as bundle_mod
from lit_edge.device import backends
from lit_edge.device.classify import Classifier, Decision
from lit_edge.device.config import EngineConfig
from lit_edge.device.plan import Plan
from lit_edge.device.preprocess import min_decode_side, prepare
from lit_edge.device.threads import limit_blas_threads
from lit_edge.errors import UserError

log = logging.getLogger(__name__)


def open_bundle(path: Path | None, verify: bool = True) -> bundle_mod.Bundle:
    from lit_edge.paths import default_bundle_dir

    where = Path(path) if path else default_bundle_dir()
    if not where.exists():
        hint = (
            "pass --bundle PATH"
            if path
            else "build the starter with 'lit-edge export starter' or pass --bundle"
        )
        raise UserError(f"bundle not found: {where}; {hint}")
    return bundle_mod.load(where, verify=verify)


class Engine:
    """Bundle + backend + classifier; ``classify(images)`` is the whole model side."""

    def __init__(
        self, config: EngineConfig, threads_for: Callable[[backends.BackendSpec], int] | None = None
    ):
        """``threads_for(spec)``: intra-op threads for a candidate backend (see ``backends.create``)."""
        self.config = config
        limit_blas_threads(1)  # the classifier's matmul is tiny; threaded OpenBLAS only spins
        self.bundle = open_bundle(config.bundle, config.verify)
        m = self.bundle.manifest
        self.preprocess = m.preprocess
        if m.preprocess.layout != "NHWC" or m.preprocess.colour_order != "RGB":
            raise UserError(f"{self.bundle.root}: this runtime needs an NHWC RGB image tower; re-export it")
        self.backend = backends.create(self.bundle, config.backend, threads_for)
        # a backend that cannot run two batches at once (TensorRT's one context) is taken in turn
        self._lock = None if self.backend.spec.concurrent else threading.Lock()
        self.classifier = Classifier(
            self.bundle.text_embeddings,
            self.bundle.labels,
            m.model.logit_scale,
            m.model.logit_bias,
            config.classify,
        )
        self.min_side = min_decode_side(self.preprocess)
        self._check_contract()

    def _check_contract(self) -> None:
        """One warm-up inference that also proves the tower and the text matrix fit together.

        A bundle assembled from mismatched parts would otherwise fail on the first photo with a
        numpy shape error; the warm-up also takes the first-run allocation off the first frame.
        """
        h, w = self.preprocess.input_size
        out = self.backend.embed(np.zeros((1, h, w, 3), dtype=np.uint8))
        dim = self.bundle.text_embeddings.shape[1]
        if out.ndim != 2 or out.shape != (1, dim):
            raise UserError(
                f"{self.bundle.root}: the image tower outputs shape {list(out.shape)} for one image, "
                f"but the text embeddings are {dim}-d; the bundle mixes parts of different models, re-export it"
            )

    def prepare(self, rgb: np.ndarray) -> np.ndarray:
        return prepare(rgb, self.preprocess)

    def embed(self, batch: list[np.ndarray] | np.ndarray) -> np.ndarray:
        """Image embeddings (float32 ``[N, D]``, L2-normalised) of images at ``input_size``; thread-safe."""
        arr = batch if isinstance(batch, np.ndarray) else np.stack(batch)
        if self._lock is None:
            return self.backend.embed(arr)
        with self._lock:
            return self.backend.embed(arr)

    def infer(self, batch: list[np.ndarray] | np.ndarray) -> tuple[np.ndarray, list[Decision]]:
        """Embeddings and decisions of images at ``input_size`` (uint8 RGB); thread-safe."""
        if len(batch) == 0:
            return np.zeros((0, self.classifier.matrix_t.shape[0]), np.float32), []
        emb = self.embed(batch)
        return emb, self.classifier(emb)

    def classify_prepared(self, batch: list[np.ndarray] | np.ndarray) -> list[Decision]:
        """Decisions of images already at ``input_size`` (uint8 RGB); safe from several threads."""
        return self.infer(batch)[1]


@dataclass
class Sample:
    """An image to classify and the record it completes; or, with no image, a record as it is."""

    record: Any  # the store's MediaRecord: the pipeline sets its decision (and embedding)
    image: np.ndarray | None = None  # at the tower's input size, uint8 RGB
    context: Any = None  # the caller's, handed back with the finished sample (a live frame)


@dataclass
class Loaded:
    """What loading one work item gave (see the module docstring)."""

    samples: list[Sample] = field(default_factory=list)
    close: Callable[[list[Any]], list[Any]] | None = None


@dataclass
class _Slot:
    """A sample on its way through, or (``sample`` None) the closing step of an item with no samples."""

    item: _Item
    sample: Sample | None
    last: bool  # the item's last slot: its close step runs after it


@dataclass
class _Item:
    loaded: Loaded
    done: list[Any] = field(default_factory=list)


Load = Callable[[], Loaded]


class Pipeline:
    """Ordered, batched inference over work items (see the module docstring).

    ``with Pipeline(engine, plan, sink) as pipe: pipe.put(load)`` for each item; leaving the
    ``with`` (or :meth:`flush`) runs what is in flight to the sink. ``sink(sample)`` is called on
    the calling thread, in input order, with the sample's record decided.
    """

    def __init__(
        self,
        engine: Engine,
        plan: Plan,
        sink: Callable[[Sample], None],
        *,
        embeddings: bool = True,
    ):
        self.engine, self.plan, self.sink, self.embeddings = engine, plan, sink, embeddings
        self._decode = (
            ThreadPoolExecutor(plan.decoders, thread_name_prefix="lit-edge-decode") if plan.decoders else None
        )
        self._infer = ThreadPoolExecutor(plan.workers, thread_name_prefix="lit-edge-infer")
        self._loading: deque[Future | Loaded] = deque()  # loads in input order
        self._batch: list[_Slot] = []
        self._images = 0  # images in self._batch
        self._running: deque[tuple[list[_Slot], Future]] = deque()  # oldest first
        # decoded photos held ahead of the workers: enough for every worker's next batch, no more
        self._ahead = max(1, (plan.workers + 2) * plan.batch_size)

    # -- input --------------------------------------------------------------------------------
    def put(self, *loads: Load | Loaded) -> None:
        """Add work items, in order: loaders (run on the decode pool, or here without one) or
        their results. Items put together may share a batch even when batches do not wait to fill."""
        for load in loads:
            if isinstance(load, Loaded):
                self._loading.append(load)
            elif self._decode is None:
                self._loading.append(load())
            else:
                self._loading.append(self._decode.submit(load))
        self._advance(final=False)
        while len(self._loading) > self._ahead:  # back-pressure: wait for the oldest load
            self._advance(final=False, wait=True)

    def flush(self) -> None:
        """Run everything put so far to the sink (a partial batch included)."""
        self._advance(final=True)

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        try:
            if exc_type is None:
                self.flush()
        finally:
            if self._decode is not None:
                self._decode.shutdown(wait=True, cancel_futures=True)
            self._infer.shutdown(wait=True, cancel_futures=True)

    # -- the loop -----------------------------------------------------------------------------
    def _advance(self, final: bool, wait: bool = False) -> None:
        while self._loading and (final or wait or _ready(self._loading[0])):
            wait = False
            head = self._loading.popleft()
            self._add(head if isinstance(head, Loaded) else head.result())
        if self._batch and (final or (not self.plan.fill_batches and not self._loading)):
            self._submit()
        self._collect(keep=0 if final else None)

    def _add(self, loaded: Loaded) -> None:
        item = _Item(loaded)
        if not loaded.samples:
            self._batch.append(_Slot(item, None, True))
        for i, sample in enumerate(loaded.samples):
            self._batch.append(_Slot(item, sample, i == len(loaded.samples) - 1))
            if sample.image is not None:
                self._images += 1
                if self._images >= self.plan.batch_size:
                    self._submit()

    def _submit(self) -> None:
        slots, self._batch, self._images = self._batch, [], 0
        images = [s.sample.image for s in slots if s.sample is not None and s.sample.image is not None]
        self._running.append((slots, self._infer.submit(self.engine.infer, images) if images else None))
        # at most `workers - 1 + queued` batches stay in flight once this one is handed over
        self._collect(keep=self.plan.workers - 1 + self.plan.queued)

    def _collect(self, keep: int | None) -> None:
        """Hand finished batches to the sink, oldest first; wait until at most ``keep`` run
        (None: only those already finished)."""
        while self._running:
            slots, future = self._running[0]
            if future is not None and not future.done() and (keep is None or len(self._running) <= keep):
                return
            self._running.popleft()
            emb, decisions = future.result() if future is not None else (None, [])
            k = 0
            for slot in slots:
                sample = slot.sample
                if sample is not None:
                    if sample.image is not None:
                        sample.record.decision = decisions[k]
                        if self.embeddings:
                            sample.record.embedding = emb[k].astype(np.float16)
                        sample.image = None  # the pixels are no longer needed
                        k += 1
                    self.sink(sample)
                    slot.item.done.append(sample.record)
                if slot.last and slot.item.loaded.close is not None:
                    for record in slot.item.loaded.close(slot.item.done):
                        self.sink(Sample(record))


def _ready(x: Future | Loaded) -> bool:
    return isinstance(x, Loaded) or x.done()
