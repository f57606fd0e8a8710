"""Explicit INT8 (QDQ) image towers, calibrated on real images, for two targets.

- ``cpu``: uint8 activations, int8 per-channel weights. ONNX Runtime fuses the Q/DQ pairs into
  integer kernels on x86 and ARM, which is where the CPU speed-up comes from.
- ``tensorrt``: symmetric int8 activations and weights (every zero point 0), the only form
  TensorRT's explicit quantization accepts (implicit calibration is gone from current TensorRT).

The ranges live in the ONNX file, so the device never calibrates. Layers whose quantization costs
accuracy out of proportion to their run time (the first conv sees raw pixels; the head decides the
class) can stay in float: ``keep_float`` names them by role, not by node name, so it works for any
tower. The defaults were chosen by measurement (``bench/bench_export.py --accuracy``).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from lit_edge.errors import UserError
from lit_edge.export import biascorr, fold, ranges
from lit_edge.export.ranges import RangeConfig

log = logging.getLogger(__name__)

TARGETS = ("cpu", "tensorrt")  # the runtimes an INT8 graph is made for: towers int8_cpu, int8_tensorrt
METHODS = ("minmax", "percentile", "entropy", "mixed")
#: Roles ``keep_float`` understands: the first conv, the last conv, the layers after global pooling.
ROLES = ("first_conv", "last_conv", "head")
_POOLS = {"GlobalAveragePool", "ReduceMean", "GlobalMaxPool"}
#: Op types given Q/DQ (and calibrated). Not ORT's default, which adds Softmax, Max, Where...: the
#: tail of an embedding graph (softmax, sqrt, L2 norm) must stay float, and its near-constant
#: tensors (a norm of ~1.0) crash the percentile/entropy histograms.
OP_TYPES = (
    "Conv", "Gemm", "MatMul", "Add", "Mul", "Clip", "Relu", "Pad", "GlobalAveragePool",
    "AveragePool", "MaxPool", "Concat", "Flatten", "Reshape", "Transpose", "Resize",
)  # fmt: skip


@dataclass(frozen=True)
class QuantConfig:
    """How an image tower is quantized. ``target`` picks the number formats; the rest is accuracy."""

    target: str = "cpu"  # cpu (u8/s8, ONNX Runtime) | tensorrt (symmetric s8, explicit quantization)
    method: str = "mixed"  # minmax | percentile | entropy | mixed (MinMax if >= 0, else Percentile)
    percentile: float = 99.999
    per_channel: bool = True
    # 7-bit weights everywhere (cpu target): avoids AVX2's int16 saturation, but costs accuracy;
    # ``dense_weights`` does better (export/README.md).
    reduce_range: bool = False
    # cpu target, weights of the convs x86 runs as a GEMM (group == 1). AVX2 without VNNI sums u8*s8
    # pairs in saturating int16 (vpmaddubsw) there: measured mean cosine 0.984 with s8 weights vs
    # 0.996 for the same graph in exact arithmetic. "u8": MLAS's u8u8 GEMM widens to int16 before
    # multiplying (exact, full 8 bits, same speed here); "s8r": 7-bit s8; "s8": plain.
    # Depthwise kernels accumulate in int32 and never saturate: they keep s8 weights.
    dense_weights: str = "u8"
    weights: str = "s8"  # cpu target, every conv: "u8" is exact but 4x slower (no u8u8 depthwise)
    keep_float: tuple[str, ...] = ()  # roles from ROLES; a float head measured no better and is 5 MB
    keep_first: int = 3  # leading convs kept float (measured: the stem and first block are fragile)
    keep_convs: tuple[int, ...] = ()  # positions (graph order) of further convs kept float
    keep_nodes: tuple[str, ...] = ()  # further node names kept float
    # fold the mean output shift of int8 weight rounding back into each conv's bias (biascorr.py)
    bias_correction: bool = True
    preprocess: bool = True  # onnxruntime's quant_pre_process (shape inference + graph optimisation)
    fold_pads: bool = True  # explicit zero Pads into the next Conv (fold.py: ORT runs them in float)
    batch: int = 16
    op_types: tuple[str, ...] = OP_TYPES
    extra: dict = field(default_factory=dict)  # passed on to quantize_static's extra_options

    def __post_init__(self):
        if self.target not in TARGETS:
            raise UserError(f"unknown INT8 target {self.target!r}; choose one of {', '.join(TARGETS)}")
        if self.method not in METHODS:
            raise UserError(f"unknown calibration method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.dense_weights not in ("s8", "s8r", "u8"):
            raise UserError(f"unknown dense weight type {self.dense_weights!r}; choose s8, s8r or u8")
        if self.weights not in ("s8", "u8"):
            raise UserError(f"unknown INT8 weight type {self.weights!r}; choose s8 or u8")
        if self.keep_first < 0:
            raise UserError(f"keep_first must be >= 0, not {self.keep_first}")
        bad = set(self.keep_float) - set(ROLES)
        if bad:
            raise UserError(f"unknown layer role(s) {sorted(bad)} to keep in float; choose from {ROLES}")


def nodes_for_roles(
    model: onnx.ModelProto, roles: Sequence[str], first: int = 0, positions: Sequence[int] = ()
) -> list[str]:
    """Names of the nodes that play ``roles`` in a CNN tower graph, plus its ``first`` convs and the
    convs at ``positions`` (graph order is topological; positions past the end are ignored, so one
    recipe fits towers of any depth)."""
    nodes = list(model.graph.node)
    convs = [n for n in nodes if n.op_type == "Conv"]
    pool_idx = max((i for i, n in enumerate(nodes) if n.op_type in _POOLS), default=None)
    names: list[str] = [n.name for n in convs[:first]]
    names += [convs[i].name for i in positions if -len(convs) <= i < len(convs)]
    if first and convs:
        # the whole prefix, activations and input normalisation included, so it really runs float
        # (a quantized activation between two float convs would make the second one DQ -> Conv)
        end = nodes.index(convs[first]) if first < len(convs) else len(nodes)
        names += [n.name for n in nodes[:end] if n.op_type not in ("QuantizeLinear", "DequantizeLinear")]
    elif convs and (convs[0].name in names or "first_conv" in roles):
        # a float first conv wants float input: keep the input normalisation float too (quantized,
        # it runs as Q -> QLinearMul -> QLinearAdd -> DQ, slower than the float ops and lossy)
        names += [n.name for n in nodes[: nodes.index(convs[0])]]
    if "first_conv" in roles and convs:
        names.append(convs[0].name)
    if "last_conv" in roles and convs:
        names.append(convs[-1].name)
    if "head" in roles and pool_idx is not None:  # pooling and all after: classifier, softmax, norm
        names += [n.name for n in nodes[pool_idx:]]
    return list(dict.fromkeys(names))


def _prepared(fp32: Path, cfg: QuantConfig, dst: Path) -> onnx.ModelProto:
    """The graph that is quantized: ORT's pre-processing (if asked) and a name on every node."""
    model = onnx.load(fp32)
    if cfg.preprocess:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        quant_pre_process(model, str(dst), skip_symbolic_shape=True)
        model = onnx.load(dst)
    if cfg.fold_pads:
        log.debug("folded %d Pad nodes into convs", fold.fold_pads(model))
    _ensure_names(model)
    onnx.save(model, dst)
    return model


def preprocessed_convs(fp32: Path, cfg: QuantConfig) -> list[str]:
    """Names of the convs as the quantizer sees them (``keep_convs`` positions index this list)."""
    with tempfile.TemporaryDirectory(prefix="lit-edge-quant-") as tmp:
        model = _prepared(fp32, cfg, Path(tmp) / "pre.onnx")
    return [n.name for n in model.graph.node if n.op_type == "Conv"]


def _int16_instead_of_float(model: onnx.ModelProto, exclude: list[str]) -> dict[str, str]:
    """Convs to keep "float" whose input is quantized anyway (mid-graph), as {conv: weight}.

    ONNX Runtime's CPU optimizer (``WeightBiasQuantization``) rewrites DQ -> Conv(float weight) -> Q
    into an int8 QLinearConv with *per-tensor* weights: the conv we kept float for accuracy runs in
    the worst int8 of all (measured: mean cosine 0.99 -> 0.91 with the first depthwise conv "kept").
    int16 weights are not fused by ORT (no kernel), so the conv really runs in float, with 16-bit
    weights, whatever the runtime's session options.
    """
    producer = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name for i in model.graph.initializer}
    keep = set(exclude)
    wide = {}
    for n in model.graph.node:
        if n.op_type != "Conv" or n.name not in keep or n.input[1] not in inits:
            continue
        src = producer.get(n.input[0])
        if src is not None and src.name not in keep:  # its input will be quantized (DQ)
            wide[n.name] = n.input[1]
    return wide


def _dense_conv_weights(model: onnx.ModelProto) -> list[str]:
    """Weight initializers of the convs that are not grouped (ORT runs them as a GEMM)."""
    inits = {i.name for i in model.graph.initializer}
    return [
        n.input[1]
        for n in model.graph.node
        if n.op_type == "Conv"
        and n.input[1] in inits
        and next((a.i for a in n.attribute if a.name == "group"), 1) == 1
    ]


def _ensure_names(model: onnx.ModelProto) -> None:
    for i, n in enumerate(model.graph.node):
        if not n.name:
            n.name = f"{n.op_type}_{i}"


def quantize(
    fp32: Path,
    out: Path,
    images: np.ndarray,
    cfg: QuantConfig = QuantConfig(),
    calib_cache: Path | None = None,
) -> Path:
    """Write the INT8 QDQ version of ``fp32`` to ``out``, calibrated on uint8 NHWC ``images``.

    ``calib_cache`` (a JSON file) keeps the measured tensor ranges, so recipes that differ only in
    which layers stay float (the accuracy bench) calibrate once; it must belong to the same model,
    images, method and target.
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    if len(images) == 0:
        raise UserError("no calibration images; pass a folder of real photos to --calib")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lit-edge-quant-") as tmp:
        src = Path(tmp) / "pre.onnx"
        model = _prepared(fp32, cfg, src)
        exclude = nodes_for_roles(model, cfg.keep_float, cfg.keep_first, cfg.keep_convs) + list(
            cfg.keep_nodes
        )
        symmetric = cfg.target == "tensorrt"
        overrides = {}
        if cfg.dense_weights != "s8" and not symmetric:
            o = (
                {"axis": 0, "reduce_range": True}
                if cfg.dense_weights == "s8r"
                else {"axis": 0, "quant_type": QuantType.QUInt8}
            )
            overrides = {w: [dict(o)] for w in _dense_conv_weights(model)}
        if not symmetric:
            wide = _int16_instead_of_float(model, exclude)
            exclude = [n for n in exclude if n not in wide]
            overrides |= {w: [{"axis": 0, "quant_type": QuantType.QInt16}] for w in wide.values()}
        extra = {
            "TensorQuantOverrides": overrides,
            "ActivationSymmetric": symmetric,
            "WeightSymmetric": True,
            # ORT drops a Relu/Clip after a conv when the Q range implies it; with symmetric int8 the
            # range has a negative half, so the clip would be lost: keep it (TensorRT fuses it anyway).
            "QDQKeepRemovableActivations": symmetric,
            **cfg.extra,
        }
        log.info(
            "quantizing %s -> %s (%s, %s, %d images, float: %s)",
            fp32.name,
            out.name,
            cfg.target,
            cfg.method,
            len(images),
            exclude or "none",
        )
        cache = Path(calib_cache) if calib_cache is not None else Path(tmp) / "ranges.json"
        if not cache.is_file():
            rcfg = RangeConfig(cfg.method, cfg.percentile, symmetric=symmetric, batch=cfg.batch)
            ranges.measure(src, images, rcfg, cache, cfg.op_types)
        # its "bias exceeds int32" warnings are about dead channels, which bias correction fixes
        with _quiet_root_logger(logging.ERROR if cfg.bias_correction else logging.WARNING):
            quantize_static(
                str(src),
                str(out),
                None,
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
                weight_type=QuantType.QUInt8 if cfg.weights == "u8" and not symmetric else QuantType.QInt8,
                per_channel=cfg.per_channel,
                reduce_range=cfg.reduce_range and not symmetric,
                calibrate_method=ranges.ort_method(cfg.method),
                nodes_to_exclude=exclude,
                op_types_to_quantize=list(cfg.op_types),
                extra_options=extra,
                calibration_cache_path=cache,
            )
        if cfg.bias_correction:
            biascorr.correct(out, src, images, out)
    model = onnx.load(out)
    model.producer_name = "lit-edge"
    onnx.save(model, out)
    return out


@contextlib.contextmanager
def _quiet_root_logger(floor: int = logging.WARNING):
    """ONNX Runtime's quantizer logs every bias-scale adjustment at INFO on the root logger:
    hundreds of lines a user cannot act on. Keep them out of the terminal for the call."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, floor))
    try:
        yield
    finally:
        root.setLevel(level)


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
