"""The image tower as ONNX: ``uint8`` NHWC RGB in, L2-normalised embedding out, checked on export.

The graph owns its preprocessing (cast, layout, mean/std), so every runtime (ONNX Runtime, TensorRT,
a Jetson) only decodes and resizes, and cannot get the normalisation wrong. Every export is checked
the way timm checks its exports: the ONNX checker (full check), then ONNX Runtime against torch on
random and real inputs; a mismatch is an error, not a warning.

The TorchScript exporter (``dynamo=False``) is used on purpose: the dynamo exporter writes opset 18
when 17 is asked, and opset 17 is what TensorRT 8.6 (JetPack 5) and every supported ORT accept.
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from lit_edge.bundle import Preprocess
from lit_edge.errors import UserError

log = logging.getLogger(__name__)

INPUT = "image"
EMBEDDING = "embedding"
SCORES = "scores"


@dataclass(frozen=True)
class OnnxExportConfig:
    opset: int = 17
    atol: float = 1e-3  # max abs diff of L2-normalised embeddings accepted between ORT and torch
    check_batch: int = 4


class ImageGraph(nn.Module):
    """uint8 ``[N, H, W, 3]`` RGB -> ``encoder`` on the normalised NCHW float -> L2-normalised output.

    ``encoder`` maps a normalised float NCHW batch to a ``[N, D]`` embedding (normalised or not; it is
    normalised here, which is idempotent). Mean and std fold into one multiply-add.
    """

    def __init__(self, encoder: nn.Module, pre: Preprocess, normalize: bool = True):
        super().__init__()
        self.encoder = encoder
        self.normalize = normalize
        mean = torch.tensor(pre.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(pre.std, dtype=torch.float32).view(1, 3, 1, 1)
        self.register_buffer("scale", 1.0 / (255.0 * std), persistent=False)
        self.register_buffer("shift", -mean / std, persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.permute(0, 3, 1, 2).to(torch.float32) * self.scale + self.shift
        out = self.encoder(x)
        if self.normalize:  # not F.normalize: its clamp exports as a Clip, which INT8 would quantize
            norm = torch.linalg.vector_norm(out, dim=-1, keepdim=True)
            out = out / torch.maximum(norm, torch.tensor(1e-12, dtype=out.dtype))
        return out


class _StaticPadConv(nn.Module):
    """A TF-'SAME' conv whose padding was computed once for the fixed input size."""

    def __init__(self, conv: nn.Conv2d, pads: tuple[int, int, int, int]):
        super().__init__()
        self.conv, self.pads = conv, pads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.pad(x, self.pads)
        c = self.conv
        return nn.functional.conv2d(x, c.weight, c.bias, c.stride, 0, c.dilation, c.groups)


def freeze_same_padding(module: nn.Module, example: torch.Tensor) -> nn.Module:
    """Replace timm's dynamic TF-'SAME' convs by static pads (in place; returns ``module``).

    Left dynamic, each one exports as a Shape/Gather/Ceil/Pad chain evaluated at run time; those
    shape tensors break calibration histograms and TensorRT has to carry them. The input size is
    fixed (only the batch varies), so the pads are constants.
    """
    try:
        from timm.layers.conv2d_same import Conv2dSame
        from timm.layers.padding import pad_same_arg
    except ImportError:  # pragma: no cover - timm is part of the export extra
        return module
    sizes: dict[str, tuple[int, int]] = {}
    hooks = [
        m.register_forward_pre_hook(
            lambda _m, inp, name=name: sizes.__setitem__(name, tuple(inp[0].shape[-2:]))
        )
        for name, m in module.named_modules()
        if isinstance(m, Conv2dSame)
    ]
    with torch.no_grad():
        module(example)
    for h in hooks:
        h.remove()
    for name, size in sizes.items():
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        conv = getattr(parent, child)
        pads = pad_same_arg(list(size), list(conv.weight.shape[-2:]), list(conv.stride), list(conv.dilation))
        setattr(parent, child, _StaticPadConv(conv, tuple(int(p) for p in pads)))
    return module


def export(module: nn.Module, path: Path, pre: Preprocess, output: str = EMBEDDING, cfg=OnnxExportConfig()):
    """Export ``module`` (taking uint8 NHWC) to ``path`` with a dynamic batch; returns the path.

    ``module`` is copied and its dynamic 'SAME' padding frozen first; the caller's module is
    untouched (so :func:`check` compares the export against the original)."""
    import copy

    h, w = pre.input_size
    dummy = torch.zeros(2, h, w, 3, dtype=torch.uint8)
    module = freeze_same_padding(copy.deepcopy(module).eval(), dummy)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript tracer chatter; the parity check is what counts
        torch.onnx.export(
            module,
            (dummy,),
            buf,
            dynamo=False,
            opset_version=cfg.opset,
            input_names=[INPUT],
            output_names=[output],
            dynamic_axes={INPUT: {0: "batch"}, output: {0: "batch"}},
            do_constant_folding=True,
        )
    model = onnx.load_from_string(buf.getvalue())
    model.producer_name = "lit-edge"
    onnx.save(model, path)
    log.info("exported %s (opset %d, %.1f MB)", path, cfg.opset, path.stat().st_size / 1e6)
    return path


@dataclass(frozen=True)
class Parity:
    """How an ONNX graph's outputs compare with torch's on the same inputs."""

    max_abs_diff: float
    top1_agree: float  # fraction of rows whose argmax is identical
    n: int

    def __str__(self) -> str:
        return f"max|diff| {self.max_abs_diff:.2e}, top-1 identical {self.top1_agree:.1%} of {self.n}"


def run_ort(path: Path, images: np.ndarray, batch: int = 16, threads: int = 0) -> np.ndarray:
    """Run an ONNX image graph on the CPU over uint8 NHWC ``images``; returns its only output."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    outs = [sess.run(None, {INPUT: images[i : i + batch]})[0] for i in range(0, len(images), batch)]
    return np.concatenate(outs)


def check(path: Path, module: nn.Module, images: np.ndarray, cfg=OnnxExportConfig()) -> Parity:
    """ONNX checker (full), then ORT vs torch on real ``images`` plus random noise; raises on a mismatch.

    The max abs diff covers both; top-1 identity is asked of the real photos."""
    onnx.checker.check_model(onnx.load(path), full_check=True)
    model = onnx.load(path)
    if model.opset_import[0].version != cfg.opset:
        raise UserError(f"{path}: opset {model.opset_import[0].version} written, {cfg.opset} asked")
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, size=(cfg.check_batch, *images.shape[1:]), dtype=np.uint8)
    x = np.concatenate([images, noise])
    with torch.no_grad():
        ref = module.eval()(torch.from_numpy(x)).numpy()
    got = run_ort(path, x)
    real = slice(0, len(images))  # top-1 on real photos; noise has near-ties that prove nothing
    parity = Parity(
        max_abs_diff=float(np.abs(ref - got).max()),
        top1_agree=float((ref[real].argmax(1) == got[real].argmax(1)).mean()),
        n=len(images),
    )
    log.info("parity %s: %s", path.name, parity)
    if parity.max_abs_diff > cfg.atol or parity.top1_agree < 1.0:
        raise UserError(f"{path}: ONNX Runtime disagrees with torch ({parity}); report this export bug")
    return parity
