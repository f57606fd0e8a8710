"""The OpenVINO runner: the bundle's ONNX tower compiled by OpenVINO's CPU plugin, cached on disk.

Why a second CPU backend: on x86 the image tower is most of a photo's cost, and OpenVINO's CPU
plugin runs the same ONNX files 2-3x faster than ONNX Runtime (``bench/bench_export.py towers``),
most of all the symmetric-INT8 ``int8_tensorrt`` QDQ graph, whose Q/DQ pairs it folds into VNNI
INT8 convolutions.

- **Which INT8 tower: by the CPU** (:func:`int8_flavour`). With VNNI or AMX, ``int8_tensorrt``
  (fastest, and as accurate as ONNX Runtime's INT8). Without them, that graph's full 8-bit
  activations saturate AVX2's int16 pair sums (:mod:`lit_edge.device.cpu`): on an AVX2-only EPYC
  it kept a mean cosine of 0.87 to fp32 on the fieldset and turned the elephants into "Bovidae".
  There OpenVINO runs ``int8_cpu``, the tower made for that arithmetic (cosine 0.998).

- **Compiled-model cache.** Compiling the graph costs most of a start; OpenVINO's ``CACHE_DIR``
  stores the compiled blob. The folder is keyed like the TensorRT engines
  (:func:`cache_dir`: tower flavour, the ONNX's sha256, the CPU, OpenVINO's version) under the
  bundle's ``engines/openvino/``, or under the lit-edge home when the bundle is read-only.
- **Streams, not threads.** A worker thread calls :meth:`OpenVinoRunner.embed` with its own
  ``InferRequest`` (thread-local), so several workers run at once on one compiled model (the spec
  says ``concurrent``). The model is compiled with one stream per worker: ``tag``'s plan (N workers
  of ``cores // N`` threads) gives ``THROUGHPUT`` with N streams, ``detect``'s (one worker with
  every core) gives ``LATENCY`` with one stream (:func:`ov_config`).
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lit_edge.bundle import Bundle, sha256_file
from lit_edge.device import cpu
from lit_edge.errors import UserError, require

log = logging.getLogger(__name__)

DEVICE = "CPU"


@dataclass(frozen=True)
class OpenVinoConfig:
    """How the tower is compiled: streams (concurrent infer requests), threads, precision hint."""

    streams: int = 1  # 1: LATENCY (one request at a time, on every thread); >1: THROUGHPUT
    threads: int = 0  # CPU threads for all streams together; 0 = OpenVINO's choice (all cores)
    # INFERENCE_PRECISION_HINT for the layers the graph leaves in float. Not OpenVINO's default: that
    # is bf16 on CPUs with AVX512_BF16 or AMX, which moves an fp32 tower's embedding by ~1e-3 and
    # was not measured faster here (bench/bench_export.py towers, accuracy --openvino).
    precision: str = "f32"
    cache: bool = True  # compiled-model cache (CACHE_DIR)


def ov_config(cores: int, threads_per_call: int) -> OpenVinoConfig:
    """The plan's workers as OpenVINO streams: ``cores // threads_per_call`` of them (0 = all cores)."""
    per_call = threads_per_call or cores
    streams = max(1, cores // per_call)
    return OpenVinoConfig(streams=streams, threads=max(cores, per_call))


def properties(cfg: OpenVinoConfig, cache: Path | None) -> dict[str, str]:
    """``compile_model`` properties (strings: OpenVINO parses them like its own CLI tools)."""
    props = {
        "PERFORMANCE_HINT": "THROUGHPUT" if cfg.streams > 1 else "LATENCY",
        "NUM_STREAMS": str(cfg.streams),
    }
    if cfg.threads:
        props["INFERENCE_NUM_THREADS"] = str(cfg.threads)
    if cfg.precision:
        props["INFERENCE_PRECISION_HINT"] = cfg.precision
    if cache is not None:
        props["CACHE_DIR"] = str(cache)
    return props


def int8_flavour(cpu_flags: frozenset[str] | None = None) -> str:
    """The bundle's INT8 tower OpenVINO runs on this CPU (``cpu_flags``: for tests; see the module
    docstring): ``int8_tensorrt`` with exact INT8 dot products, else ``int8_cpu``."""
    return "int8_tensorrt" if cpu.has_int8_dot(cpu_flags) else "int8_cpu"


def cache_key(flavour: str, onnx_sha256: str, device: str, version: str) -> str:
    """``flavour.sha12.device.ovVERSION``: everything the compiled model depends on."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", device).strip("-").lower() or "cpu"
    ver = re.sub(r"[^A-Za-z0-9.]+", "-", version.split("-")[0])
    return f"{flavour}.{onnx_sha256[:12]}.{slug}.ov{ver}"


def cache_dir(bundle: Bundle, flavour: str, version: str) -> Path | None:
    """A writable cache folder for ``bundle``'s ``flavour`` tower, or None (compile each start)."""
    from lit_edge.paths import home

    onnx = bundle.image_tower(flavour)
    sha = bundle.manifest.files.get(onnx.name, {}).get("sha256") or sha256_file(onnx)
    key = cache_key(flavour, sha, cpu.name(), version)
    for root in (bundle.engines_dir / "openvino", home() / "engines" / "openvino"):
        try:
            (root / key).mkdir(parents=True, exist_ok=True)
            return root / key
        except OSError as exc:
            log.info("cannot cache OpenVINO models in %s (%s)", root, exc)
    log.warning("no writable OpenVINO cache; the tower is compiled on every start")
    return None


class OpenVinoRunner:
    """``bundle``'s ``flavour`` tower compiled for the CPU; ``embed`` is safe from several threads."""

    def __init__(self, bundle: Bundle, flavour: str, cfg: OpenVinoConfig = OpenVinoConfig()):
        ov = require("openvino", "openvino")
        core = ov.Core()
        onnx = bundle.image_tower(flavour)
        cache = cache_dir(bundle, flavour, ov.get_version()) if cfg.cache else None
        props = properties(cfg, cache)
        try:  # from the path: with a cache hit OpenVINO loads the blob and never parses the ONNX
            self.compiled = core.compile_model(str(onnx), DEVICE, props)
        except RuntimeError as exc:  # an unreadable graph, a property this OpenVINO does not know
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(
                f"{onnx}: OpenVINO cannot compile this tower ({first}); use --backend onnxruntime-cpu"
            ) from exc
        if "image" not in {n for port in self.compiled.inputs for n in port.get_names()}:
            raise UserError(f"{onnx}: image tower has no input named 'image'; re-export the bundle")
        self.config, self.cache = cfg, cache
        self.properties = props
        self._local = threading.local()
        self.from_cache = bool(cache is not None and self.compiled.get_property("LOADED_FROM_CACHE"))
        log.info(
            "OpenVINO %s on %s: %s, %d stream(s), %s threads, %s; %s",
            ov.get_version().split("-")[0],
            cpu.name(),
            props["PERFORMANCE_HINT"],
            cfg.streams,
            cfg.threads or "all",
            cfg.precision or "default precision",
            f"compiled model loaded from {cache}"
            if self.from_cache
            else f"compiled (cache: {cache or 'off'})",
        )

    def embed(self, batch: np.ndarray) -> np.ndarray:
        request = getattr(self._local, "request", None)
        if request is None:  # one infer request per calling thread: requests are not thread-safe
            request = self._local.request = self.compiled.create_infer_request()
        request.infer({"image": np.ascontiguousarray(batch)})
        return np.array(request.get_tensor("embedding").data, dtype=np.float32)
