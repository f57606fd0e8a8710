"""Test helper: how each Conv of a QDQ graph is quantized (read from the graph alone, torch- and
ORT-free). The export tests check the INT8 recipes' structure with it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx


@dataclass(frozen=True)
class QdqConv:
    """How one Conv of a QDQ graph is quantized (what the structure tests look at)."""

    name: str
    weight_quantized: bool
    input_quantized: bool
    weight_dtype: int | None
    input_dtype: int | None
    zero_points: tuple[int, ...]


def inspect_convs(path: Path) -> list[QdqConv]:
    """For every Conv: are its weight and input activation fed by DequantizeLinear, in which dtype,
    with which zero points. Torch-free and ORT-free: reads the graph only."""
    model = onnx.load(path)
    producer = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    consts = {
        n.output[0]: onnx.numpy_helper.to_array(n.attribute[0].t)
        for n in model.graph.node
        if n.op_type == "Constant" and n.attribute and n.attribute[0].type == onnx.AttributeProto.TENSOR
    }
    values = {**inits, **consts}

    def dq(name: str):
        node = producer.get(name)
        if node is None or node.op_type != "DequantizeLinear":
            return None, ()
        zp = values.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        x = values.get(node.input[0])
        if x is None:  # activation: DQ <- Q, dtype is the zero point's
            dtype = onnx.helper.np_dtype_to_tensor_dtype(zp.dtype) if zp is not None else None
        else:
            dtype = onnx.helper.np_dtype_to_tensor_dtype(x.dtype)
        zps = tuple(int(v) for v in np.ravel(zp)) if zp is not None else (0,)
        return dtype, zps

    out = []
    for n in model.graph.node:
        if n.op_type != "Conv":
            continue
        in_t, in_zp = dq(n.input[0])
        w_t, w_zp = dq(n.input[1])
        out.append(QdqConv(n.name, w_t is not None, in_t is not None, w_t, in_t, in_zp + w_zp))
    return out
