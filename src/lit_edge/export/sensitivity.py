"""Which convs of a tower cost the most accuracy in INT8: a per-layer sensitivity search.

Offline only (minutes: one quantization per conv); its result is a short list of conv positions that
:class:`~lit_edge.export.quantize.QuantConfig` keeps in float by default (``keep_convs``), derived
here and recorded in ``export/README.md``. Scores are measured on calibration images, never on the
held-out images the accuracy table reports, so the choice is not fitted to the evaluation.

Method: quantize everything, then for each conv alone quantize everything *but* that conv and
measure how much closer the output gets to fp32 (mean cosine of the outputs). The greedy recipe keeps
the convs with the largest gain in float, one at a time, re-measuring the whole model each step.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from lit_edge.export import quantize as qz

log = logging.getLogger(__name__)


def embedding_cosine(ref: np.ndarray, out: np.ndarray) -> float:
    """Mean cosine between rows: how far INT8 outputs are from fp32 ones, 1.0 = identical."""
    a = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    b = out / np.linalg.norm(out, axis=1, keepdims=True)
    return float((a * b).sum(1).mean())


@dataclass(frozen=True)
class LayerScore:
    position: int  # index among the graph's convs (graph order)
    name: str
    cosine: float  # mean output cosine with this conv float and every other layer INT8


def _run(path: Path, images: np.ndarray) -> np.ndarray:
    from lit_edge.export.onnx_export import run_ort

    return run_ort(path, images, threads=2)


def layer_scores(
    fp32: Path,
    images: np.ndarray,
    cfg: qz.QuantConfig,
    score: Callable[[np.ndarray, np.ndarray], float] = embedding_cosine,
    positions: list[int] | None = None,
) -> tuple[float, list[LayerScore]]:
    """Output score of the all-INT8 model (``cfg`` with nothing kept float), and for each conv the
    score with only that conv float, best first."""
    base_cfg = replace(cfg, keep_first=0, keep_convs=(), keep_float=(), keep_nodes=())
    ref = _run(fp32, images)
    with tempfile.TemporaryDirectory(prefix="lit-edge-sens-") as tmp:
        cache, out = Path(tmp) / "ranges.json", Path(tmp) / "q.onnx"
        qz.quantize(fp32, out, images, base_cfg, calib_cache=cache)
        base = score(ref, _run(out, images))
        pre = qz.preprocessed_convs(fp32, cfg)
        scores = []
        for pos in positions if positions is not None else range(len(pre)):
            qz.quantize(fp32, out, images, replace(base_cfg, keep_convs=(pos,)), calib_cache=cache)
            s = score(ref, _run(out, images))
            log.info("conv %d %s: %.5f (all INT8 %.5f)", pos, pre[pos], s, base)
            scores.append(LayerScore(pos, pre[pos], s))
    return base, sorted(scores, key=lambda s: -s.cosine)
