"""Bias correction: undo the mean shift that rounding the weights puts on each conv's output.

Rounding a conv's weights to int8 changes ``W`` to ``W + dW``. The rounding error is small per
weight, but its product with the *mean* input, ``dW @ E[x]``, does not average out: it moves every
output channel by a constant, and those shifts add up through the depthwise-separable blocks of a
mobile CNN (Nagel et al., "Data-Free Quantization", 2019). Subtracting the shift from the bias
costs nothing at run time. ``E[x]`` is each conv input's per-channel mean, measured by running the
float graph on the calibration images (spatial borders are treated like the interior, which is
exact for 1x1 convs and close for the rest).

Works on the QDQ graph ONNX Runtime wrote: the corrected bias is re-quantized to int32 with the
bias's own scale (input scale x weight scale), so the graph's structure does not change.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

log = logging.getLogger(__name__)


_DEAD = 1e-8  # weight scales below this belong to dead channels (weights ~0)


def _set(init: onnx.TensorProto, values: np.ndarray) -> None:
    """Overwrite an initializer's values, keeping its name and dtype."""
    dtype = numpy_helper.to_array(init).dtype
    init.CopyFrom(numpy_helper.from_array(np.asarray(values).astype(dtype), init.name))


@dataclass(frozen=True)
class Correction:
    conv: str
    max_shift: float  # largest |mean output shift| removed, in output units


def _input_means(fp32: onnx.ModelProto, tensors: list[str], images: np.ndarray, batch: int = 8):
    """Per-channel mean of each named NCHW tensor of ``fp32`` over ``images``."""
    import onnxruntime as ort

    model = onnx.ModelProto()
    model.CopyFrom(fp32)
    known = {o.name for o in model.graph.output}
    for t in tensors:
        if t not in known:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(t))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    sums: dict[str, np.ndarray] = {}
    for i in range(0, len(images), batch):
        outs = sess.run(tensors, {name: images[i : i + batch]})
        for t, v in zip(tensors, outs, strict=True):
            s = v.astype(np.float64).sum(axis=(0, 2, 3))
            sums[t] = sums.get(t, 0) + s / (v.shape[2] * v.shape[3])
    return {t: s / len(images) for t, s in sums.items()}


def correct(qdq_path: Path, fp32_path: Path, images: np.ndarray, out: Path) -> list[Correction]:
    """Rewrite the int32 biases of ``qdq_path``'s quantized convs so their mean output matches the
    float convs of ``fp32_path`` (the graph that was quantized: same node names), save to ``out``."""
    qdq, fp32 = onnx.load(qdq_path), onnx.load(fp32_path)
    f_inits = {i.name: i for i in fp32.graph.initializer}
    f_convs = {n.name: n for n in fp32.graph.node if n.op_type == "Conv"}
    q_inits = {i.name: i for i in qdq.graph.initializer}
    producer = {o: n for n in qdq.graph.node for o in n.output}

    def dq_parts(tensor: str):
        node = producer.get(tensor)
        if node is None or node.op_type != "DequantizeLinear" or node.input[0] not in q_inits:
            return None
        return node

    todo = []  # (conv name, weight DQ node, bias DQ node, float conv)
    for n in qdq.graph.node:
        f = f_convs.get(n.name)
        if n.op_type != "Conv" or f is None or len(n.input) < 3 or f.input[2] not in f_inits:
            continue
        w_dq, b_dq = dq_parts(n.input[1]), dq_parts(n.input[2])
        if w_dq is not None and b_dq is not None:
            todo.append((n.name, w_dq, b_dq, f_convs[n.name]))
    if not todo:
        onnx.save(qdq, out)
        return []
    means = _input_means(fp32, list(dict.fromkeys(c.input[0] for *_, c in todo)), images)
    done = []
    for name, w_dq, b_dq, conv in todo:
        w = numpy_helper.to_array(f_inits[conv.input[1]]).astype(np.float64)
        wq = numpy_helper.to_array(q_inits[w_dq.input[0]]).astype(np.float64)
        w_scale = numpy_helper.to_array(q_inits[w_dq.input[1]]).astype(np.float64)
        w_zp = numpy_helper.to_array(q_inits[w_dq.input[2]]) if len(w_dq.input) > 2 else 0
        scale = w_scale.reshape(-1, *([1] * (w.ndim - 1)))
        dw = (wq - np.asarray(w_zp, np.float64).reshape(scale.shape)) * scale - w
        groups = next((a.i for a in conv.attribute if a.name == "group"), 1)
        mean_in = means[conv.input[0]]
        cin_g = w.shape[1]
        # output channel o reads input channels [g*cin_g, (g+1)*cin_g) of its group g
        per_out = mean_in.reshape(groups, cin_g)[np.arange(w.shape[0]) // (w.shape[0] // groups)]
        shift = (dw.sum(axis=(2, 3)) * per_out).sum(1)
        # re-quantize from the float bias: ORT clips int32 biases whose scale is tiny (a "dead"
        # channel, weights ~1e-8, gets a weight scale ~1e-10), so their value is lost (-1.27 -> -0.19
        # on EfficientNet-Lite0). Those channels get zero weights and weight scale 1.
        b_fp = numpy_helper.to_array(f_inits[conv.input[2]]).astype(np.float64)
        b_scale = numpy_helper.to_array(q_inits[b_dq.input[1]]).astype(np.float64)
        dead = w_scale.reshape(-1) < _DEAD if w_scale.size > 1 else np.zeros(len(w), bool)
        if dead.any():
            wq_init = q_inits[w_dq.input[0]]
            zp = np.broadcast_to(np.asarray(w_zp).reshape(-1, *([1] * (w.ndim - 1))), wq.shape)
            _set(wq_init, np.where(dead.reshape(scale.shape), zp, wq))
            b_scale = np.where(dead, b_scale / np.where(dead, w_scale, 1.0), b_scale)
            _set(q_inits[w_dq.input[1]], np.where(dead, 1.0, w_scale))
            _set(q_inits[b_dq.input[1]], b_scale)
        _set(q_inits[b_dq.input[0]], np.clip(np.round((b_fp - shift) / b_scale), -(2**31), 2**31 - 1))
        done.append(Correction(name, float(np.abs(shift).max())))
    onnx.save(qdq, out)
    log.info("bias correction on %d convs (largest shift %.4g)", len(done), max(c.max_shift for c in done))
    return done
