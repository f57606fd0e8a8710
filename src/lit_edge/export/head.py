"""Fold the species matrix into an image graph: ``scores = logit_scale * embedding @ matrix.T (+ bias)``.

The classifier graph is the image graph with one MatMul (and an Add) appended: so it works the
same on the fp32 and on both INT8 towers (the QDQ part is untouched, the head stays float), and one
engine returns scores directly.

Why it is written at the protobuf wire level instead of with the ``onnx`` package: every change of
the rows (adding a species by name, background rows, ``lit-edge learn`` on a device) refolds these
graphs, and ``learn`` must run on the device, whose install has ONNX Runtime but not ``onnx``. The
edit is small: in the ``ModelProto``, the ``GraphProto`` loses its ``output`` entries and gains two
initializers, one or two nodes and the new ``scores`` output; every other byte is copied as it is.
Protobuf is a sequence of (field number, wire type, value) records, so keeping a message's unknown
or untouched fields is just copying their bytes. The tests check the result with ``onnx.checker``
and run it with ONNX Runtime.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

EMBEDDING = "embedding"
SCORES = "scores"

# onnx.proto field numbers (stable since ONNX 1.0)
_MODEL_GRAPH = 7
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_OUTPUT = 1, 5, 12
_NODE_INPUT, _NODE_OUTPUT, _NODE_NAME, _NODE_OP_TYPE = 1, 2, 3, 4
_TENSOR_DIMS, _TENSOR_DATA_TYPE, _TENSOR_NAME, _TENSOR_RAW_DATA = 1, 2, 8, 9
_VALUE_NAME, _VALUE_TYPE = 1, 2
_TYPE_TENSOR, _TENSOR_ELEM_TYPE, _TENSOR_SHAPE = 1, 1, 2
_SHAPE_DIM, _DIM_VALUE, _DIM_PARAM = 1, 1, 2
_FLOAT = 1  # TensorProto.FLOAT
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


# protobuf wire format -----------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1  # negative int64 values are ten-byte two's complement
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(buf: memoryview):
    """Yield ``(field number, payload, raw record bytes)``; payload is the bytes of a length-delimited
    field and None for the others (which this module never needs to read)."""
    pos = 0
    while pos < len(buf):
        start = pos
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        payload = None
        if wire == _VARINT:
            _, pos = _read_varint(buf, pos)
        elif wire == _I64:
            pos += 8
        elif wire == _I32:
            pos += 4
        elif wire == _LEN:
            size, pos = _read_varint(buf, pos)
            payload = buf[pos : pos + size]
            pos += size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > len(buf):
            raise ValueError("truncated protobuf message")
        yield number, payload, buf[start:pos]


def _len_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | _LEN) + _varint(len(payload)) + payload


def _int_field(number: int, value: int) -> bytes:
    return _varint(number << 3 | _VARINT) + _varint(value)


def _str(number: int, text: str) -> bytes:
    return _len_field(number, text.encode("utf-8"))


# ONNX messages ------------------------------------------------------------------------------------


def _node(op_type: str, inputs: list[str], output: str, name: str) -> bytes:
    body = b"".join(_str(_NODE_INPUT, i) for i in inputs)
    body += _str(_NODE_OUTPUT, output) + _str(_NODE_NAME, name) + _str(_NODE_OP_TYPE, op_type)
    return _len_field(_GRAPH_NODE, body)


def _float_tensor(name: str, values: np.ndarray) -> bytes:
    values = np.ascontiguousarray(values, dtype="<f4")
    body = b"".join(_int_field(_TENSOR_DIMS, int(d)) for d in values.shape)
    body += _int_field(_TENSOR_DATA_TYPE, _FLOAT) + _str(_TENSOR_NAME, name)
    body += _len_field(_TENSOR_RAW_DATA, values.tobytes())
    return _len_field(_GRAPH_INITIALIZER, body)


def _scores_output(classes: int) -> bytes:
    dims = _len_field(_SHAPE_DIM, _str(_DIM_PARAM, "batch"))
    dims += _len_field(_SHAPE_DIM, _int_field(_DIM_VALUE, classes))
    tensor = _int_field(_TENSOR_ELEM_TYPE, _FLOAT) + _len_field(_TENSOR_SHAPE, dims)
    value_type = _len_field(_TYPE_TENSOR, tensor)
    return _len_field(_GRAPH_OUTPUT, _str(_VALUE_NAME, SCORES) + _len_field(_VALUE_TYPE, value_type))


def _output_name(value_info: memoryview) -> str:
    for number, payload, _ in _fields(value_info):
        if number == _VALUE_NAME and payload is not None:
            return bytes(payload).decode("utf-8")
    return ""


def _head(matrix: np.ndarray, logit_scale: float, logit_bias: float | None) -> bytes:
    """The graph records appended to the image graph: initializers, nodes, the ``scores`` output."""
    weight = (matrix * np.float32(logit_scale)).T  # [D, C], scale folded in
    last = "scores_matmul" if logit_bias is not None else SCORES
    out = _float_tensor("species_matrix_scaled", weight)
    out += _node("MatMul", [EMBEDDING, "species_matrix_scaled"], last, "species_scores")
    if logit_bias is not None:
        out += _float_tensor("logit_bias", np.array(logit_bias, np.float32))
        out += _node("Add", [last, "logit_bias"], SCORES, "species_bias")
    return out + _scores_output(matrix.shape[0])


def add_scores_head(
    image_graph: Path, out: Path, matrix: np.ndarray, logit_scale: float, logit_bias: float | None = None
) -> Path:
    """Write ``out``: ``image_graph`` whose output ``embedding`` [N, D] becomes ``scores`` [N, C]."""
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim != 2 or not np.isfinite(matrix).all():
        raise ValueError(f"species matrix must be a finite 2-D array, got shape {matrix.shape}")
    model = memoryview(Path(image_graph).read_bytes())
    parts: list[bytes] = []
    graphs = 0
    for number, payload, raw in _fields(model):
        if number != _MODEL_GRAPH or payload is None:
            parts.append(bytes(raw))
            continue
        graphs += 1
        kept, outputs = [], []
        for g_number, g_payload, g_raw in _fields(payload):
            if g_number == _GRAPH_OUTPUT and g_payload is not None:
                outputs.append(_output_name(g_payload))
            else:
                kept.append(bytes(g_raw))
        if outputs != [EMBEDDING]:
            raise ValueError(f"{image_graph}: expected one output named {EMBEDDING!r}, found {outputs}")
        parts.append(_len_field(_MODEL_GRAPH, b"".join(kept) + _head(matrix, logit_scale, logit_bias)))
    if graphs != 1:
        raise ValueError(f"{image_graph}: not an ONNX model with one graph")
    tmp = Path(out).with_name(Path(out).name + ".partial")
    tmp.write_bytes(b"".join(parts))
    tmp.replace(out)
    return Path(out)
