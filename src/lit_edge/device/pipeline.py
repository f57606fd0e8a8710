"""The model side of the runtime, shared by ``tag`` and ``detect``: bundle -> backend -> decisions.

:class:`Engine` owns the verified bundle, one backend and the classifier, and turns a list of
upright RGB images into :class:`~lit_edge.device.classify.Decision` s. Sources, decoding and the
database stay outside, so the same engine serves a photo folder and a camera.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lit_edge import bundle as bundle_mod
from lit_edge.device import backends
from lit_edge.device.classify import Classifier, Decision
from lit_edge.device.config import EngineConfig
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
