"""The model side of the runtime, shared by ``tag`` and ``detect``: bundle -> backend -> decisions.

:class:`Engine` owns the verified bundle, one backend and the classifier, and turns a list of
upright RGB images into :class:`~lit_edge.device.classify.Decision` s. Sources, decoding and the
database stay outside, so the same engine serves a photo folder and a camera.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from lit_edge import bundle as bundle_mod
from lit_edge.device import backends
from lit_edge.device.classify import Classifier, ClassifyConfig, Decision
from lit_edge.device.preprocess import min_decode_side, prepare
from lit_edge.device.threads import limit_blas_threads
from lit_edge.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineConfig:
    """Which bundle, which backend, how to decide."""

    bundle: Path | None = None  # None = lit_edge.paths.default_bundle_dir()
    backend: backends.BackendConfig = field(default_factory=backends.BackendConfig)
    classify: ClassifyConfig = field(default_factory=ClassifyConfig)
    verify: bool = True  # check the bundle's checksums before trusting it


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

    def __init__(self, config: EngineConfig):
        self.config = config
        limit_blas_threads(1)  # the classifier's matmul is tiny; threaded OpenBLAS only spins
        self.bundle = open_bundle(config.bundle, config.verify)
        m = self.bundle.manifest
        self.preprocess = m.preprocess
        if m.preprocess.layout != "NHWC" or m.preprocess.colour_order != "RGB":
            raise UserError(f"{self.bundle.root}: this runtime needs an NHWC RGB image tower; re-export it")
        self.backend = backends.create(self.bundle, config.backend)
        # a backend that cannot run two batches at once (TensorRT's one context) is taken in turn
        self._lock = None if getattr(self.backend, "concurrent", False) else threading.Lock()
        self.classifier = Classifier(
            self.bundle.text_embeddings,
            self.bundle.labels,
            m.model.logit_scale,
            m.model.logit_bias,
            config.classify,
            m.scoring,
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

    def open_backend(self) -> backends.Backend:
        """Another session of the same backend and tower, for an inference thread of its own."""
        return backends.create(self.bundle, replace(self.config.backend, backend=self.backend.name))

    def classify_prepared(
        self, batch: list[np.ndarray] | np.ndarray, backend: backends.Backend | None = None
    ) -> list[Decision]:
        """Classify images already at ``input_size`` (uint8 RGB); safe from several threads.

        ``backend`` runs the model instead of the engine's own (see :meth:`open_backend`).
        """
        if len(batch) == 0:
            return []
        arr = batch if isinstance(batch, np.ndarray) else np.stack(batch)
        if backend is not None:
            emb = backend.embed(arr)
        elif self._lock is None:
            emb = self.backend.embed(arr)
        else:
            with self._lock:
                emb = self.backend.embed(arr)
        return self.classifier(emb)

    def run_info(self) -> dict:
        return {"backend": self.backend.name, "flavour": self.backend.flavour}
