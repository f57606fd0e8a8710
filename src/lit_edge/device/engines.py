"""GPU engines for a bundle, built on the device: TensorRT's own, and ONNX Runtime's GPU providers.

Building an engine is the device's job (its GPU, its TensorRT): the runtime's ``tensorrt`` backend
calls :func:`engine_for_bundle`, the ``onnxruntime-trt``/``onnxruntime-cuda`` backends take their
provider options from :func:`bundle_providers`, and ``lit-edge export engine`` builds one ahead of
time through the same code. Nothing here imports torch or :mod:`lit_edge.export`.

**TensorRT engines.** Follows NVIDIA's ``EngineBuilder`` pattern (TensorRT samples/python): parse the ONNX, log every parser
error and every input/output, add an optimisation profile for the dynamic batch, build, serialise.
INT8 comes from the graph's explicit Q/DQ (implicit calibration is gone from current TensorRT), so
the network is created *strongly typed*: each layer runs in the type the QDQ graph dictates, and an
INT8 request can never silently become FP32. On TensorRT releases without strong typing
(8.6, JetPack 5) the builder falls back to INT8 + FP16 flags and says so.

Engines are cached in ``BUNDLE/engines/`` under a name keyed by GPU, TensorRT version, flavour and
precision, each with a JSON sidecar holding the engine's sha256 and the source ONNX's sha256; a
restart reuses a matching engine and never rebuilds. ``tensorrt`` is imported only inside the build,
and the build profile is a :class:`BuildConfig`.

**ONNX Runtime's GPU providers.** Where the ``tensorrt`` Python package is not installed but
``onnxruntime-gpu`` is, ONNX Runtime's TensorRT execution provider builds (and caches, in
``BUNDLE/engines/ort-trt``) the same explicit-INT8 engine from the QDQ graph, with CUDA and then
the CPU as fallbacks for any node TensorRT cannot take (:func:`provider_list`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from lit_edge.bundle import Bundle, sha256_file
from lit_edge.errors import UserError, require

log = logging.getLogger(__name__)

PRECISIONS = ("int8", "fp16", "fp32")
INPUT = "image"


@dataclass(frozen=True)
class BuildConfig:
    """What to build: the TensorRT precision, the dynamic-batch profile and the builder's memory budget."""

    precision: str = "int8"  # int8: as the QDQ graph says | fp16 | fp32
    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 16
    workspace_mb: int = 1024


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on besides the ONNX itself (whose sha256 the sidecar holds)."""

    flavour: str
    gpu: str
    trt_version: str
    precision: str

    @property
    def stem(self) -> str:
        gpu = re.sub(r"[^A-Za-z0-9]+", "-", self.gpu).strip("-").lower() or "gpu"
        return f"{self.flavour}.{gpu}.trt{self.trt_version}.{self.precision}"


def engine_path(engines_dir: Path, key: EngineKey) -> Path:
    return engines_dir / f"{key.stem}.engine"


def sidecar_path(engine: Path) -> Path:
    return engine.with_suffix(".json")


def write_sidecar(engine: Path, key: EngineKey, onnx_sha256: str, cfg: BuildConfig, seconds: float) -> Path:
    doc = {
        "engine_sha256": sha256_file(engine),
        "engine_bytes": engine.stat().st_size,
        "onnx_sha256": onnx_sha256,
        "key": asdict(key),
        "config": asdict(cfg),
        "build_seconds": round(seconds, 1),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path = sidecar_path(engine)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def cached_engine(engine: Path, key: EngineKey, onnx_sha256: str, cfg: BuildConfig) -> bool:
    """True when ``engine`` exists, is intact (sha256 as its sidecar says) and was built from this
    ONNX with this key and profile; anything else means rebuild (logged, never an error)."""
    side = sidecar_path(engine)
    if not (engine.is_file() and side.is_file()):
        return False
    try:
        doc = json.loads(side.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        log.warning("%s: unreadable sidecar; rebuilding the engine", side)
        return False
    reasons = []
    if doc.get("onnx_sha256") != onnx_sha256:
        reasons.append("the ONNX changed")
    if doc.get("key") != asdict(key):
        reasons.append("GPU/TensorRT/precision differ")
    if doc.get("config") != asdict(cfg):
        reasons.append("the batch profile changed")
    if not reasons and doc.get("engine_sha256") != sha256_file(engine):
        reasons.append("the engine file is corrupted")
    if reasons:
        log.info("%s: not reusable (%s); rebuilding", engine.name, ", ".join(reasons))
        return False
    return True


def gpu_name() -> str:
    """The GPU's marketing name (CUDA device 0), or the Jetson module's model string."""
    try:
        import pycuda.driver as cuda

        cuda.init()
        return cuda.Device(0).name()
    except Exception:  # pycuda missing or no context: try the tools every NVIDIA host has
        pass
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        if out.stdout.strip():
            return out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError):
        pass
    model = Path("/proc/device-tree/model")  # Jetson: no nvidia-smi
    if model.is_file():
        return model.read_text(errors="replace").strip("\x00\n ")
    raise UserError("no NVIDIA GPU found (no pycuda, nvidia-smi or Jetson device tree); use a CPU backend")


def build_engine(onnx_path: Path, out: Path, cfg: BuildConfig = BuildConfig()) -> Path:
    """Parse ``onnx_path``, build a serialised engine for ``cfg`` and write it atomically to ``out``."""
    trt = require("tensorrt", "tensorrt")
    if cfg.precision not in PRECISIONS:
        raise UserError(
            f"unknown TensorRT precision {cfg.precision!r}; choose one of {', '.join(PRECISIONS)}"
        )
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags_enum = trt.NetworkDefinitionCreationFlag
    strongly_typed = cfg.precision == "int8" and hasattr(flags_enum, "STRONGLY_TYPED")
    if strongly_typed:
        flags = 1 << int(flags_enum.STRONGLY_TYPED)
    else:
        flags = 1 << int(flags_enum.EXPLICIT_BATCH) if hasattr(flags_enum, "EXPLICIT_BATCH") else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        for e in errors:
            log.error("TensorRT ONNX parser: %s", e)
        raise UserError(f"{onnx_path}: TensorRT cannot parse this graph ({errors[0] if errors else '?'})")
    for i in range(network.num_inputs):
        t = network.get_input(i)
        log.info("input  %s %s %s", t.name, t.dtype, tuple(t.shape))
    for i in range(network.num_outputs):
        t = network.get_output(i)
        log.info("output %s %s %s", t.name, t.dtype, tuple(t.shape))

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, cfg.workspace_mb << 20)
    if not strongly_typed:
        if cfg.precision == "int8":
            log.warning("this TensorRT has no strongly typed networks; building with INT8 + FP16 flags")
            config.set_flag(trt.BuilderFlag.INT8)
            config.set_flag(trt.BuilderFlag.FP16)
        elif cfg.precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
    inp = network.get_input(0)
    if inp.name != INPUT:
        raise UserError(f"{onnx_path}: input is {inp.name!r}, expected {INPUT!r}; re-export the bundle")
    hwc = tuple(inp.shape)[1:]
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT, (cfg.min_batch, *hwc), (cfg.opt_batch, *hwc), (cfg.max_batch, *hwc))
    config.add_optimization_profile(profile)

    log.info("building TensorRT %s engine from %s (minutes, once per device)", cfg.precision, onnx_path.name)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise UserError(f"{onnx_path}: TensorRT failed to build an engine (see the log above)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(serialized)
    os.replace(tmp, out)
    return out


def default_precision(flavour: str) -> str:
    """INT8 for the QDQ towers (as the graph dictates), FP16 for the float tower."""
    return "int8" if flavour.startswith("int8") else "fp16"


def engine_for_bundle(bundle: Bundle, flavour: str = "int8_tensorrt", cfg: BuildConfig | None = None) -> Path:
    """The cached engine for ``bundle``'s ``flavour`` tower on this GPU, built on first use."""
    trt = require("tensorrt", "tensorrt")
    cfg = cfg or BuildConfig(precision=default_precision(flavour))
    onnx_path = bundle.image_tower(flavour)
    onnx_sha = bundle.manifest.files.get(onnx_path.name, {}).get("sha256") or sha256_file(onnx_path)
    key = EngineKey(flavour=flavour, gpu=gpu_name(), trt_version=trt.__version__, precision=cfg.precision)
    path = engine_path(bundle.engines_dir, key)
    if cached_engine(path, key, onnx_sha, cfg):
        log.info("reusing TensorRT engine %s", path)
        return path
    t0 = time.perf_counter()
    build_engine(onnx_path, path, cfg)
    write_sidecar(path, key, onnx_sha, cfg, time.perf_counter() - t0)
    log.info("TensorRT engine written: %s (%.0f s)", path, time.perf_counter() - t0)
    return path


# -- ONNX Runtime's TensorRT and CUDA execution providers -----------------------------------------

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


def bundle_providers(bundle: Bundle, flavour: str, use_tensorrt: bool) -> list:
    """The GPU providers for ``bundle``'s ``flavour`` tower: INT8 from the QDQ graph, the
    dynamic-batch profile of its input size, and TensorRT's engine cache in the bundle."""
    cache: Path | None = bundle.engines_dir / "ort-trt"
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a read-only bundle: run, but rebuild the engine each start
        log.warning("cannot cache TensorRT engines in %s (%s); they will be rebuilt each start", cache, exc)
        cache = None
    cfg = GpuProviderConfig(int8=flavour.startswith("int8"), cache_dir=cache, use_tensorrt=use_tensorrt)
    return provider_list(cfg, bundle.manifest.preprocess.input_size)
