"""Inference backends behind one interface: ``embed(uint8 NHWC batch) -> float32 [N, D]``.

``tensorrt``          a TensorRT engine built from the bundle's ONNX on first use and cached in the
                      bundle's ``engines/`` folder, keyed by GPU, TensorRT version and precision
``onnxruntime-trt``   ONNX Runtime with the TensorRT execution provider
``onnxruntime-cuda``  ONNX Runtime with the CUDA execution provider
``onnxruntime-cpu``   ONNX Runtime on the CPU (INT8 ``int8_cpu`` tower by default)

``auto`` takes the first of these that is really available and logs which. Asking for one by name
that is not available is a :class:`UserError`: ONNX Runtime silently drops an execution provider it
cannot load, so after creating a session we check the providers it really has.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from lit_edge.bundle import Bundle
from lit_edge.errors import UserError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "tensorrt", "onnxruntime-trt", "onnxruntime-cuda", "onnxruntime-cpu")
_ORT_PROVIDER = {
    "onnxruntime-trt": "TensorrtExecutionProvider",
    "onnxruntime-cuda": "CUDAExecutionProvider",
    "onnxruntime-cpu": "CPUExecutionProvider",
}


@dataclass(frozen=True)
class BackendConfig:
    """Which backend and tower to run."""

    backend: str = "auto"
    precision: str | None = None  # fp32 | int8; None = the backend's best default
    threads: int = 0  # ONNX Runtime intra-op threads; 0 = one per core


class Backend(Protocol):
    name: str
    flavour: str
    concurrent: bool  # may embed() be called from several threads at once?

    def embed(self, batch: np.ndarray) -> np.ndarray: ...


def flavour_for(bundle: Bundle, backend: str, precision: str | None) -> str:
    """The image tower to run: INT8 by default on CPU and TensorRT, FP32 on CUDA.

    An explicit ``--precision`` that the bundle lacks is an error; a default that it lacks falls
    back to FP32 with a log line (nothing was asked for, so nothing is silently denied).
    """
    if precision not in (None, "fp32", "int8"):
        raise UserError(f"unknown precision {precision!r}; use fp32 or int8")
    int8 = "int8_cpu" if backend == "onnxruntime-cpu" else "int8_tensorrt"
    if precision == "fp32" or (precision is None and backend == "onnxruntime-cuda"):
        return "fp32"
    if precision == "int8":
        bundle.image_tower(int8)  # raises a clear BundleError when missing
        return int8
    if int8 in bundle.manifest.image_towers:
        return int8
    log.info("bundle has no %s tower; using fp32", int8)
    return "fp32"


class OrtBackend:
    """An ONNX Runtime session on one execution provider (checked, never silently another).

    ``InferenceSession.run`` is thread-safe and releases the GIL, so one session serves several
    inference threads at once (``concurrent``): with one intra-op thread each call runs on its
    caller's thread, and the weights are held once.
    """

    concurrent = True

    def __init__(self, model: Path, name: str, threads: int = 0, providers: list | None = None):
        import onnxruntime as ort

        provider = _ORT_PROVIDER[name]
        if provider not in ort.get_available_providers():
            raise UserError(
                f"backend {name} needs ONNX Runtime's {provider}, which this install lacks "
                f"(it has: {', '.join(ort.get_available_providers())}); install onnxruntime-gpu "
                "or choose --backend onnxruntime-cpu"
            )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        # no busy-waiting between ops: the decode threads need those cycles, and a battery does too
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if name == "onnxruntime-cpu":
            # The memory pattern pre-plans one block per batch shape on top of the arena; without it
            # the arena alone reuses buffers: measured 9-18 MB less peak RSS per batch in flight
            # (EfficientNet-Lite0 INT8, batch 1-2), at the same speed.
            opts.enable_mem_pattern = False
        providers = providers or [provider]
        self.session = ort.InferenceSession(str(model), sess_options=opts, providers=providers)
        if provider not in self.session.get_providers():
            raise UserError(
                f"backend {name}: ONNX Runtime could not load {provider} on this machine "
                "(driver or library missing); fix the GPU install or choose --backend onnxruntime-cpu"
            )
        self.name = name
        self.flavour = ""
        inputs = {i.name: i for i in self.session.get_inputs()}
        if "image" not in inputs:
            raise UserError(f"{model}: image tower has no input named 'image'; re-export the bundle")
        self._output = ["embedding"]

    def embed(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(self._output, {"image": batch})[0]


class TensorRTBackend:
    """A TensorRT engine (explicit-quantization INT8 or FP32/FP16) with buffers allocated once.

    One execution context, one stream and shared buffers: not safe from two threads at once.
    """

    concurrent = False

    def __init__(self, bundle: Bundle, flavour: str):
        from lit_edge.errors import require

        trt = require("tensorrt", "tensorrt")
        cuda = require("pycuda.driver", "tensorrt")
        require("pycuda.autoinit", "tensorrt")
        engine_path = self._engine(bundle, flavour, trt)
        self._trt, self._cuda = trt, cuda
        logger = trt.Logger(trt.Logger.WARNING)
        with open(engine_path, "rb") as f:
            self.engine = trt.Runtime(logger).deserialize_cuda_engine(f.read())
        if self.engine is None:
            raise UserError(f"{engine_path}: TensorRT could not load this engine; delete it to rebuild")
        self.context = self.engine.create_execution_context()
        self.stream = cuda.Stream()
        self._buffers: dict[int, tuple] = {}
        self.name = "tensorrt"
        self.flavour = flavour

    @staticmethod
    def _engine(bundle: Bundle, flavour: str, trt) -> Path:
        try:
            from lit_edge.export import tensorrt as builder
        except ImportError as exc:
            raise UserError(
                "the TensorRT engine builder (lit_edge.export.tensorrt) is not available in this "
                "install; use --backend onnxruntime-trt or onnxruntime-cpu"
            ) from exc
        build = getattr(builder, "engine_for_bundle", None)
        if build is None:
            raise UserError("this lit-edge's TensorRT builder has no engine_for_bundle(); upgrade lit-edge")
        return Path(build(bundle, flavour))

    def embed(self, batch: np.ndarray) -> np.ndarray:
        cuda, n = self._cuda, batch.shape[0]
        if n not in self._buffers:
            self.context.set_input_shape("image", batch.shape)
            out_shape = tuple(self.context.get_tensor_shape("embedding"))
            host_out = cuda.pagelocked_empty(out_shape, dtype=np.float32)
            d_in, d_out = cuda.mem_alloc(batch.nbytes), cuda.mem_alloc(host_out.nbytes)
            self._buffers[n] = (host_out, d_in, d_out)
        host_out, d_in, d_out = self._buffers[n]
        self.context.set_input_shape("image", batch.shape)
        self.context.set_tensor_address("image", int(d_in))
        self.context.set_tensor_address("embedding", int(d_out))
        cuda.memcpy_htod_async(d_in, np.ascontiguousarray(batch), self.stream)
        self.context.execute_async_v3(self.stream.handle)
        cuda.memcpy_dtoh_async(host_out, d_out, self.stream)
        self.stream.synchronize()
        return np.array(host_out)


def _ort_providers(bundle: Bundle, name: str, flavour: str) -> list:
    """ONNX Runtime providers with options: the export side's GPU settings (dynamic-batch profile,
    INT8 from the QDQ graph, engine cache in the bundle) for the GPU backends, plain CPU otherwise."""
    if name == "onnxruntime-cpu":
        return ["CPUExecutionProvider"]
    from lit_edge.export.providers import GpuProviderConfig, provider_list

    cache: Path | None = bundle.engines_dir / "ort-trt"
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a read-only bundle: run, but rebuild the engine each start
        log.warning("cannot cache TensorRT engines in %s (%s); they will be rebuilt each start", cache, exc)
        cache = None
    cfg = GpuProviderConfig(
        int8=flavour.startswith("int8"), cache_dir=cache, use_tensorrt=name == "onnxruntime-trt"
    )
    return provider_list(cfg, bundle.manifest.preprocess.input_size)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def available() -> list[str]:
    """Backends usable on this machine, best first (ONNX Runtime providers as it reports them)."""
    import onnxruntime as ort

    have = set(ort.get_available_providers())
    out = []
    if _has("tensorrt") and _has("pycuda"):
        out.append("tensorrt")
    out += [name for name, prov in _ORT_PROVIDER.items() if prov in have]
    return out


def create(bundle: Bundle, config: BackendConfig) -> Backend:
    """Open the backend ``config`` names (or the best available for ``auto``) on ``bundle``."""
    if config.backend not in BACKENDS:
        raise UserError(f"unknown backend {config.backend!r}; choose one of {', '.join(BACKENDS)}")
    names = available() if config.backend == "auto" else [config.backend]
    last: UserError | None = None
    for name in names:
        flavour = flavour_for(bundle, name, config.precision)
        try:
            if name == "tensorrt":
                backend: Backend = TensorRTBackend(bundle, flavour)
            else:
                backend = OrtBackend(
                    bundle.image_tower(flavour), name, config.threads, _ort_providers(bundle, name, flavour)
                )
                backend.flavour = flavour
        except UserError as exc:
            if config.backend != "auto":
                raise
            log.warning("backend %s unavailable (%s); trying the next one", name, exc)
            last = exc
            continue
        how = "auto-selected" if config.backend == "auto" else "selected"
        log.info("backend: %s (%s), tower: %s", name, how, flavour)
        return backend
    raise last or UserError("no inference backend is available; install onnxruntime")
