"""Fold the species matrix into an image graph: ``scores = logit_scale * embedding @ matrix.T (+ bias)``.

The classifier graph is the image graph with one MatMul (and an Add) appended, written with the
``onnx`` helpers rather than re-exported from torch: so it works the same on the fp32 and on both
INT8 towers (the QDQ part is untouched, the head stays float), and adding a species rewrites it
without torch. One engine then returns scores directly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

EMBEDDING = "embedding"
SCORES = "scores"


def add_scores_head(
    image_graph: Path, out: Path, matrix: np.ndarray, logit_scale: float, logit_bias: float | None = None
) -> Path:
    """Write ``out``: ``image_graph`` whose output ``embedding`` [N, D] becomes ``scores`` [N, C]."""
    model = onnx.load(image_graph)
    g = model.graph
    if [o.name for o in g.output] != [EMBEDDING]:
        raise ValueError(f"{image_graph}: expected one output named {EMBEDDING!r}")
    matrix = np.asarray(matrix, dtype=np.float32)
    weight = np.ascontiguousarray((matrix * np.float32(logit_scale)).T)  # [D, C], scale folded in
    g.initializer.append(numpy_helper.from_array(weight, "species_matrix_scaled"))
    last = "scores_matmul" if logit_bias is not None else SCORES
    g.node.append(
        helper.make_node("MatMul", [EMBEDDING, "species_matrix_scaled"], [last], name="species_scores")
    )
    if logit_bias is not None:
        g.initializer.append(numpy_helper.from_array(np.array(logit_bias, np.float32), "logit_bias"))
        g.node.append(helper.make_node("Add", [last, "logit_bias"], [SCORES], name="species_bias"))
    del g.output[:]
    g.output.append(helper.make_tensor_value_info(SCORES, TensorProto.FLOAT, ["batch", matrix.shape[0]]))
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, out)
    return out
