"""INT8 recipe mechanisms on a tiny hand-built conv tower: range estimation per method, bias
correction, convs kept float by position. Real ONNX graphs, real ONNX Runtime calibration and
sessions, real crops of the sample photos; the tower is small so each test takes a second or two."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from lit_edge.bundle import Preprocess
from lit_edge.export import biascorr, calib, fold, quantize, ranges

SIZE = 32


def _tower(path: Path, seed: int = 0) -> Path:
    """uint8 NHWC -> normalise -> conv3x3 s2 -> ReLU6 -> depthwise 3x3 -> ReLU6 -> conv1x1 -> ReLU6
    -> conv1x1 (the output, NCHW): the shape of a mobile CNN block, in ONNX directly."""
    rng = np.random.default_rng(seed)
    inits, nodes = [], []

    def init(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr, np.float32), name))

    def conv(i, x, cin, cout, k, stride=1, group=1, relu=True):
        init(f"w{i}", rng.normal(0, np.sqrt(2 / (cin // group * k * k)), (cout, cin // group, k, k)))
        init(f"b{i}", rng.normal(0, 0.1, cout))
        pads = [k // 2] * 4
        if stride == 2:  # timm's TF 'SAME': an explicit, asymmetric Pad node before the conv
            pads = numpy_helper.from_array(np.array([0, 0, 0, 0, 0, 0, 1, 1], np.int64))
            nodes.append(helper.make_node("Constant", [], [f"p{i}"], name=f"const{i}", value=pads))
            nodes.append(helper.make_node("Pad", [x, f"p{i}"], [f"x{i}"], name=f"pad{i}", mode="constant"))
            x, pads = f"x{i}", [0, 0, 0, 0]
        nodes.append(
            helper.make_node(
                "Conv", [x, f"w{i}", f"b{i}"], [f"c{i}"], name=f"conv{i}", kernel_shape=[k, k],
                strides=[stride, stride], pads=pads, group=group,
            )
        )  # fmt: skip
        if not relu:
            return f"c{i}"
        nodes.append(helper.make_node("Clip", [f"c{i}", "zero", "six"], [f"r{i}"], name=f"relu{i}"))
        return f"r{i}"

    init("zero", 0.0)
    init("six", 6.0)
    init("scale", 1 / 127.5)
    init("shift", -1.0)
    nodes += [
        helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT, name="cast"),
        helper.make_node("Transpose", ["f"], ["t"], perm=[0, 3, 1, 2], name="nchw"),
        helper.make_node("Mul", ["t", "scale"], ["m"], name="scale"),
        helper.make_node("Add", ["m", "shift"], ["x"], name="shift"),
    ]
    x = conv(0, "x", 3, 16, 3, stride=2)
    x = conv(1, x, 16, 16, 3, group=16)
    x = conv(2, x, 16, 32, 1)
    w2, b2 = (next(i for i in inits if i.name == n) for n in ("w2", "b2"))
    dead_w, dead_b = numpy_helper.to_array(w2).copy(), numpy_helper.to_array(b2).copy()
    dead_w[0], dead_b[0] = 1e-9 * dead_w[0], 1.0  # a dead channel (weights ~0), as training leaves
    w2.CopyFrom(numpy_helper.from_array(dead_w, "w2"))
    b2.CopyFrom(numpy_helper.from_array(dead_b, "b2"))
    x = conv(3, x, 32, 8, 1, relu=False)
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", SIZE, SIZE, 3])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", 8, SIZE // 2, SIZE // 2])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def tower(tmp_path_factory) -> Path:
    return _tower(tmp_path_factory.mktemp("quant") / "tiny.onnx")


def _crops(n: int, seed: int) -> np.ndarray:
    photos = [img for _, img in calib.sample_photos()]
    return calib.random_crops(photos, n, Preprocess(input_size=(SIZE, SIZE)), calib.CropConfig(seed=seed))


def _run(path: Path, images: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(
        None, {"image": images}
    )[0]


def _ranges(model: Path, images: np.ndarray, tmp: Path, **kw) -> dict[str, tuple[float, float]]:
    from onnxruntime.quantization.calibrate import load_tensors_data

    cfg = ranges.RangeConfig(**kw)
    out = ranges.measure(model, images, cfg, tmp / f"{cfg.method}-{cfg.symmetric}.json", ("Conv", "Clip"))
    return {
        k: tuple(float(np.ravel(x)[0]) for x in v.range_value) for k, v in load_tensors_data(out).data.items()
    }


def test_range_methods_really_differ_and_cpu_ranges_keep_the_relu_floor(tower, tmp_path):
    images = _crops(32, seed=0)
    mm = _ranges(tower, images, tmp_path, method="minmax")
    ent = _ranges(tower, images, tmp_path, method="entropy")
    pct = _ranges(tower, images, tmp_path, method="percentile", percentile=99.0)
    # ORT's defaults made Entropy a single-candidate search == MinMax; with real bins it clips outliers
    assert any(ent[t][1] < mm[t][1] * 0.99 for t in mm), (ent, mm)
    assert all(pct[t][1] <= mm[t][1] + 1e-6 for t in mm)
    assert pct["r2"][0] >= 0 and pct["r2"][1] > 0  # a ReLU6 output: the range starts at 0
    assert pct["c3"][0] > mm["c3"][0] and pct["c3"][1] < mm["c3"][1]  # a signed output: both tails cut
    mixed = _ranges(tower, images, tmp_path, method="mixed", percentile=99.0)
    assert mixed["r2"] == mm["r2"] and mixed["c3"] == pct["c3"]  # MinMax where >= 0, else Percentile


def test_bias_correction_removes_the_mean_shift_of_rounded_weights(tower, tmp_path):
    cal, held = _crops(48, seed=0), _crops(48, seed=1)
    ref = _run(tower, held)
    # weights-only damage is what bias correction targets: 7-bit weights make it large enough to see
    base = quantize.QuantConfig(
        "cpu", "minmax", keep_first=0, reduce_range=True, dense_weights="s8", bias_correction=False
    )
    plain = quantize.quantize(tower, tmp_path / "plain.onnx", cal, base)
    fixed = quantize.quantize(tower, tmp_path / "fixed.onnx", cal, replace(base, bias_correction=True))

    def mean_shift(path):  # per output channel, over held-out images and positions
        return np.abs((_run(path, held) - ref).mean(axis=(0, 2, 3))).mean()

    assert mean_shift(fixed) < 0.7 * mean_shift(plain), (mean_shift(fixed), mean_shift(plain))
    # same graph, only int32 bias values changed
    assert [n.op_type for n in onnx.load(fixed).graph.node] == [
        n.op_type for n in onnx.load(plain).graph.node
    ]


def test_dead_channel_keeps_its_bias(tower, tmp_path):
    """ORT gives a dead channel (weights ~1e-9) a ~1e-11 weight scale, so its int32 bias overflows and is
    clipped (1.0 became ~0.2 on EfficientNet-Lite0); the default recipe re-quantizes it."""
    out = quantize.quantize(
        tower, tmp_path / "q.onnx", _crops(16, seed=0), quantize.QuantConfig("cpu", "minmax", keep_first=0)
    )
    model = onnx.load(out)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    conv = next(n for n in model.graph.node if n.name == "conv2")
    dq = producer[conv.input[2]]
    bias = inits[dq.input[0]].astype(np.float64) * inits[dq.input[1]]
    assert bias[0] == pytest.approx(1.0, abs=0.01)  # within half a bias step


def test_bias_correction_leaves_a_float_graph_alone(tower, tmp_path):
    assert biascorr.correct(tower, tower, _crops(4, seed=0), tmp_path / "same.onnx") == []


def test_pads_fold_into_convs_exactly(tower, tmp_path):
    model = onnx.load(tower)
    assert fold.fold_pads(model) == 1
    assert "Pad" not in {n.op_type for n in model.graph.node}
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, tmp_path / "folded.onnx")
    images = _crops(4, seed=3)
    np.testing.assert_array_equal(_run(tmp_path / "folded.onnx", images), _run(tower, images))
    q = quantize.quantize(
        tower, tmp_path / "q.onnx", _crops(8, seed=0), quantize.QuantConfig("cpu", "minmax")
    )
    assert "Pad" not in {n.op_type for n in onnx.load(q).graph.node}


def _ort_optimized(path: Path, tmp: Path) -> list[str]:
    """Op types of the graph ONNX Runtime's CPU provider actually runs (after its QDQ fusions)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(tmp / "ort.onnx")
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return [n.op_type for n in onnx.load(tmp / "ort.onnx").graph.node]


@pytest.mark.parametrize("target", ["cpu", "tensorrt"])
def test_convs_kept_float_by_position_really_run_in_float(tower, tmp_path, target):
    cfg = quantize.QuantConfig(target, "minmax", keep_first=1, keep_convs=(2, 99))
    out = quantize.quantize(tower, tmp_path / "q.onnx", _crops(16, seed=0), cfg)
    convs = quantize.inspect_convs(out)
    assert [c.weight_quantized for c in convs[:2]] == [False, True] and convs[3].weight_quantized
    if target == "cpu":  # mid-graph: int16 weights, which ORT cannot fuse into an int8 kernel
        assert convs[2].weight_dtype == TensorProto.INT16
        ops = _ort_optimized(out, tmp_path)
        assert ops.count("Conv") == 2 and ops.count("QLinearConv") == 2, ops
    else:  # TensorRT runs a conv without Q/DQ in float
        assert not convs[2].weight_quantized


def test_sensitivity_scores_every_conv_against_the_all_int8_model(tower):
    from lit_edge.export import sensitivity

    cfg = quantize.QuantConfig("cpu", "minmax", bias_correction=False)
    base, scores = sensitivity.layer_scores(tower, _crops(16, seed=0), cfg)
    assert sorted(s.position for s in scores) == [0, 1, 2, 3]
    assert [s.cosine for s in scores] == sorted((s.cosine for s in scores), reverse=True)
    assert 0.5 < base < 1.0 and all(0.5 < s.cosine <= 1.0 for s in scores)
    assert len({round(s.cosine, 6) for s in scores}) > 1  # each conv's float version is really different
