"""ONNX Runtime's GPU execution providers, configured for a bundle: the second GPU path.

Where the ``tensorrt`` Python package is not installed but ``onnxruntime-gpu`` is, ONNX Runtime's
TensorRT execution provider builds (and caches) the same explicit-INT8 engine from the QDQ graph,
with CUDA and then the CPU as fallbacks for any node TensorRT cannot take. Torch-free: the device
runtime passes :func:`provider_list` to ``onnxruntime.InferenceSession``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


@dataclass(frozen=True)
class GpuProviderConfig:
    """Options for ONNX Runtime's TensorRT/CUDA providers."""

    device_id: int = 0
    int8: bool = True  # the QDQ tower: TensorRT takes its scales from the graph
    fp16: bool = True  # float layers (outside the Q/DQ pairs) in FP16
    cache_dir: Path | None = None  # engines and timing cache; a bundle's engines/ort-trt
    max_workspace_mb: int = 1024
    max_batch: int = 16
    use_tensorrt: bool = True
    use_cuda: bool = True


def provider_list(cfg: GpuProviderConfig = GpuProviderConfig(), image_shape: tuple[int, int] | None = None):
    """``providers=`` for ``InferenceSession``: TensorRT, then CUDA, then CPU, each with options.

    ``image_shape`` (H, W) sets TensorRT's dynamic-batch profile so it builds one engine for batches
    1..max_batch instead of rebuilding as batch sizes appear.
    """
    out: list = []
    if cfg.use_tensorrt:
        trt = {
            "device_id": cfg.device_id,
            "trt_int8_enable": cfg.int8,
            "trt_fp16_enable": cfg.fp16,
            "trt_max_workspace_size": cfg.max_workspace_mb << 20,
        }
        if cfg.cache_dir is not None:
            trt |= {
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": str(cfg.cache_dir),
                "trt_timing_cache_enable": True,
                "trt_timing_cache_path": str(cfg.cache_dir),
            }
        if image_shape is not None:
            h, w = image_shape
            trt |= {
                "trt_profile_min_shapes": f"image:1x{h}x{w}x3",
                "trt_profile_opt_shapes": f"image:1x{h}x{w}x3",
                "trt_profile_max_shapes": f"image:{cfg.max_batch}x{h}x{w}x3",
            }
        out.append((TRT, trt))
    if cfg.use_cuda:
        out.append((CUDA, {"device_id": cfg.device_id}))
    out.append(CPU)
    return out


def available_gpu_providers() -> list[str]:
    """The GPU providers this ONNX Runtime build has (empty on a CPU-only install)."""
    import onnxruntime as ort

    have = ort.get_available_providers()
    return [p for p in (TRT, CUDA) if p in have]
