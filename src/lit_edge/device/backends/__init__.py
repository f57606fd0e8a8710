"""Inference backends as a registry: name -> how to open it, whether it is installed, what it runs.

Every backend runs a bundle's image tower behind one call, ``embed(uint8 NHWC batch) -> float32
[N, D]``. What the rest of the runtime needs to know about one is its :class:`BackendSpec`:

- ``open(bundle, flavour, threads)``: the factory (imports its library only when called);
- ``probe()``: whether its library is installed here (cheap; no model is loaded);
- ``int8_flavour`` and ``default_precision``: the bundle's image tower variant it prefers (a
  flavour, or a function of the machine: OpenVINO picks by the CPU's INT8 instructions);
- ``concurrent``: whether several threads may call ``embed`` on one instance at once;
- ``device``: CPU or GPU, which is what :mod:`lit_edge.device.plan` plans workers and batches by;
- ``priority``: ``auto`` tries the installed backends lowest first.

Built in (registered below):

``tensorrt``          a TensorRT engine built from the bundle's ONNX on first use and cached in the
                      bundle's ``engines/`` folder (:mod:`lit_edge.device.engines`)
``onnxruntime-trt``   ONNX Runtime with the TensorRT execution provider
``onnxruntime-cuda``  ONNX Runtime with the CUDA execution provider
``openvino``          OpenVINO's CPU plugin on the bundle's ONNX, compiled once and cached in the
                      bundle's ``engines/openvino/`` (:mod:`lit_edge.device.backends.ov`); ahead of
                      ONNX Runtime on x86 with VNNI/AMX (measured faster there, at the same
                      accuracy); not auto-picked on AVX2-only x86 (slower there) nor on ARM
``onnxruntime-cpu``   ONNX Runtime on the CPU (INT8 ``int8_cpu`` tower by default)

Adding a backend is one :func:`register` call with a factory that imports its module lazily.
``auto`` opens the first installed backend that really opens and logs which (a GPU library can be
installed without a working GPU); a backend asked for by name that cannot open is a
:class:`UserError`, never a silent fallback.

This module imports nothing heavy (``lit-edge --help`` lists the names from it).
"""

from __future__ import annotations

import importlib.util
import logging
import platform
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from lit_edge.device.config import BackendConfig
from lit_edge.errors import UserError

if TYPE_CHECKING:
    import numpy as np

    from lit_edge.bundle import Bundle

log = logging.getLogger(__name__)

AUTO = "auto"
PRECISIONS = ("fp32", "int8")


class Device(str, Enum):
    """Where a backend computes: it decides how ``tag`` plans its workers and batches."""

    CPU = "cpu"
    GPU = "gpu"

    def __str__(self) -> str:
        return self.value


class Runner(Protocol):
    """What a backend's factory returns: the model, ready to run."""

    def embed(self, batch: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class BackendSpec:
    """One registered backend (see the module docstring)."""

    name: str
    open: Callable[[Bundle, str, int], Runner]  # (bundle, flavour, intra-op threads; 0 = all cores)
    probe: Callable[[], bool]
    # the INT8 tower it runs: a bundle flavour, or a function of the machine (OpenVINO: by the CPU)
    int8_flavour: str | Callable[[], str]
    default_precision: str = "int8"
    concurrent: bool = False
    device: Device = Device.CPU
    priority: int = 100
    summary: str = ""

    def int8(self) -> str:
        """The bundle's INT8 tower this backend runs here."""
        return self.int8_flavour() if callable(self.int8_flavour) else self.int8_flavour


@dataclass
class Backend:
    """An opened backend: its spec, the tower variant it runs, and the runner."""

    spec: BackendSpec
    flavour: str  # the bundle's image tower variant that runs (fp32, int8_cpu, int8_tensorrt)
    runner: Runner
    threads: int = 0  # intra-op threads it was opened with (0 = the library's default)

    @property
    def name(self) -> str:
        return self.spec.name

    def embed(self, batch: np.ndarray) -> np.ndarray:
        return self.runner.embed(batch)


_REGISTRY: dict[str, BackendSpec] = {}


def register(spec: BackendSpec) -> BackendSpec:
    """Add (or replace) a backend; ``auto`` and ``--backend`` know it from then on."""
    if spec.name == AUTO:
        raise ValueError("'auto' is not a backend name")
    if spec.default_precision not in PRECISIONS:
        raise ValueError(f"default_precision must be one of {PRECISIONS}")
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def names() -> list[str]:
    """Registered backend names, in ``auto``'s order of preference."""
    return [s.name for s in sorted(_REGISTRY.values(), key=lambda s: s.priority)]


def get(name: str) -> BackendSpec:
    """The spec registered as ``name``; an unknown name is a one-line :class:`UserError`."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UserError(f"unknown backend {name!r}; choose one of {', '.join([AUTO, *names()])}") from None


def check_name(name: str) -> str:
    """``name`` if it is ``auto`` or registered, else the :func:`get` error (for CLI validation)."""
    if name != AUTO:
        get(name)
    return name


def available() -> list[str]:
    """Installed backends, best first (installed is not yet working: see :func:`create`)."""
    return [n for n in names() if _REGISTRY[n].probe()]


def flavour_for(bundle: Bundle, spec: BackendSpec, precision: str | None) -> str:
    """The image tower variant ``spec`` runs from ``bundle`` at ``precision`` (None: its default).

    An explicit ``--precision`` that the bundle lacks is an error; a default that it lacks falls
    back to FP32 with a log line (nothing was asked for, so nothing is silently denied).
    """
    if precision not in (None, *PRECISIONS):
        raise UserError(f"unknown precision {precision!r}; use {' or '.join(PRECISIONS)}")
    if (precision or spec.default_precision) == "fp32":
        return "fp32"
    int8 = spec.int8()
    if precision == "int8":
        bundle.image_tower(int8)  # raises a clear BundleError when missing
        return int8
    if int8 in bundle.manifest.image_towers:
        return int8
    log.info("bundle has no %s tower; using fp32", int8)
    return "fp32"


def create(
    bundle: Bundle, config: BackendConfig, threads_for: Callable[[BackendSpec], int] | None = None
) -> Backend:
    """Open the backend ``config`` names (or, for ``auto``, the best one that opens) on ``bundle``.

    ``threads_for(spec)`` gives the intra-op threads for a candidate before it is opened (a CPU
    backend shares the cores among workers, a GPU one need not), so that when ``auto`` falls back
    from a GPU to the CPU the CPU session gets the CPU plan's threads; default: ``config.threads``.
    """
    auto = config.backend == AUTO
    specs = [_REGISTRY[n] for n in names()] if auto else [get(config.backend)]
    last: UserError | None = None
    for spec in specs:
        if auto and not spec.probe():  # probed in turn: what comes after the one that opens is never imported
            continue
        flavour = flavour_for(bundle, spec, config.precision)
        threads = threads_for(spec) if threads_for else config.threads
        try:
            runner = spec.open(bundle, flavour, threads)
        except UserError as exc:
            if not auto:
                raise UserError(f"backend {spec.name}: {exc}") from exc
            log.warning("backend %s unavailable (%s); trying the next one", spec.name, exc)
            last = exc
            continue
        how = "auto-selected" if auto else "selected"
        log.info("backend: %s (%s), tower: %s", spec.name, how, flavour)
        return Backend(spec, flavour, runner, threads)
    raise last or UserError("no inference backend is installed; install onnxruntime")


def has_module(name: str) -> bool:
    """Whether ``name`` can be imported, without importing it (a probe's building block)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


# -- the built-in backends ---------------------------------------------------------------------------


#: the shared library an onnxruntime-gpu install ships for each GPU provider (capi/ folder)
_ORT_PROVIDER_LIBS = {
    "TensorrtExecutionProvider": "providers_tensorrt",
    "CUDAExecutionProvider": "providers_cuda",
}


def _ort_provider_installed(provider: str) -> Callable[[], bool]:
    """Whether ONNX Runtime here has ``provider``. A GPU provider is looked for as its library file
    first: importing ONNX Runtime only to learn that it has none costs ``auto`` 30 MB and 0.1-0.3 s
    on a machine where another backend (OpenVINO) runs."""

    def probe() -> bool:
        spec = importlib.util.find_spec("onnxruntime") if has_module("onnxruntime") else None
        if spec is None:
            return False
        lib = _ORT_PROVIDER_LIBS.get(provider)
        if lib is not None and spec.origin is not None:
            capi = Path(spec.origin).parent / "capi"
            if capi.is_dir() and not any(lib in f.name for f in capi.iterdir()):
                return False
        import onnxruntime as ort

        return provider in ort.get_available_providers()

    return probe


def _open_ort(provider: str) -> Callable[[Bundle, str, int], Runner]:
    def open_(bundle: Bundle, flavour: str, threads: int) -> Runner:
        from lit_edge.device.backends.ort import CPU, OrtRunner

        providers = None
        if provider != CPU:  # INT8 from the QDQ graph, the batch profile, the engine cache
            from lit_edge.device.engines import TRT, bundle_providers

            providers = bundle_providers(bundle, flavour, use_tensorrt=provider == TRT)
        return OrtRunner(bundle.image_tower(flavour), provider, threads, providers)

    return open_


def _open_openvino(bundle: Bundle, flavour: str, threads: int) -> Runner:
    from lit_edge.device.backends.ov import OpenVinoRunner, ov_config
    from lit_edge.device.threads import usable_cores

    return OpenVinoRunner(bundle, flavour, ov_config(usable_cores(), threads))


def _openvino_measured_faster() -> bool:
    """Installed, on x86-64 with VNNI or AMX: where ``bench/bench_export.py towers`` measured it
    ahead of ONNX Runtime (its ``int8_tensorrt`` tower 1.6x less CPU per photo than ORT's best).

    A rule recorded from measurement rather than a benchmark at each start (that would cost a
    second compile). Without VNNI (AVX2 only) OpenVINO must run ``int8_cpu`` to stay accurate, and
    there it was slower than ONNX Runtime (21.3 vs 16.6 ms per photo, batch 16, on an AVX2 EPYC), so
    ``auto`` takes ONNX Runtime. On ARM it was not measured: ``--backend openvino`` names it.
    """
    from lit_edge.device import cpu

    x86 = platform.machine().lower() in ("x86_64", "amd64")
    return x86 and cpu.has_int8_dot() and has_module("openvino")


def _openvino_int8() -> str:
    from lit_edge.device.backends.ov import int8_flavour

    return int8_flavour()


def _open_tensorrt(bundle: Bundle, flavour: str, threads: int) -> Runner:
    from lit_edge.device.backends.trt import TensorRTRunner

    return TensorRTRunner(bundle, flavour)


register(
    BackendSpec(
        "tensorrt",
        _open_tensorrt,
        probe=lambda: has_module("tensorrt") and has_module("pycuda"),
        int8_flavour="int8_tensorrt",
        device=Device.GPU,
        priority=10,
        summary="a TensorRT engine built on this GPU from the bundle and cached beside it",
    )
)
register(
    BackendSpec(
        "onnxruntime-trt",
        _open_ort("TensorrtExecutionProvider"),
        probe=_ort_provider_installed("TensorrtExecutionProvider"),
        int8_flavour="int8_tensorrt",
        concurrent=True,
        device=Device.GPU,
        priority=20,
        summary="ONNX Runtime with its TensorRT execution provider",
    )
)
register(
    BackendSpec(
        "onnxruntime-cuda",
        _open_ort("CUDAExecutionProvider"),
        probe=_ort_provider_installed("CUDAExecutionProvider"),
        int8_flavour="int8_tensorrt",
        default_precision="fp32",
        concurrent=True,
        device=Device.GPU,
        priority=30,
        summary="ONNX Runtime with its CUDA execution provider",
    )
)
register(
    BackendSpec(
        "openvino",
        _open_openvino,
        probe=_openvino_measured_faster,
        int8_flavour=_openvino_int8,
        concurrent=True,
        device=Device.CPU,
        priority=80,
        summary="OpenVINO on the CPU (pip install 'lit-edge[openvino]'); the fastest on x86 with VNNI/AMX",
    )
)
register(
    BackendSpec(
        "onnxruntime-cpu",
        _open_ort("CPUExecutionProvider"),
        probe=_ort_provider_installed("CPUExecutionProvider"),
        int8_flavour="int8_cpu",
        concurrent=True,
        device=Device.CPU,
        priority=90,
        summary="ONNX Runtime on the CPU",
    )
)
