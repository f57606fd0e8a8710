"""Backend choice: auto says what it picked, a named missing backend is an error, never a fallback."""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest

from bundle_factory import make_bundle
from lit_edge.bundle import load
from lit_edge.device import backends
from lit_edge.device.backends import BackendConfig
from lit_edge.errors import UserError


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return load(make_bundle(tmp_path_factory.mktemp("b")))


def test_auto_picks_an_available_backend_and_logs_it(bundle, caplog):
    with caplog.at_level(logging.INFO, logger="lit_edge.device.backends"):
        b = backends.create(bundle, BackendConfig())
    assert b.name in backends.available()
    assert f"backend: {b.name} (auto-selected)" in caplog.text
    out = b.embed(np.zeros((3, 32, 32, 3), np.uint8))
    assert out.shape == (3, 16) and out.dtype == np.float32


def test_cpu_defaults_to_int8_and_honours_fp32(bundle):
    assert backends.create(bundle, BackendConfig("onnxruntime-cpu")).flavour == "int8_cpu"
    assert backends.create(bundle, BackendConfig("onnxruntime-cpu", precision="fp32")).flavour == "fp32"


def test_int8_asked_but_missing_is_an_error(tmp_path):
    only_fp32 = load(make_bundle(tmp_path / "b", flavours=("fp32",)))
    with pytest.raises(UserError, match="no 'int8_cpu' image tower"):
        backends.create(only_fp32, BackendConfig("onnxruntime-cpu", precision="int8"))
    assert backends.create(only_fp32, BackendConfig("onnxruntime-cpu")).flavour == "fp32"


@pytest.mark.parametrize("name", ["onnxruntime-cuda", "onnxruntime-trt", "tensorrt"])
def test_named_backend_that_is_missing_is_an_error_not_a_fallback(bundle, name):
    if name in backends.available():
        pytest.skip(f"{name} is available on this machine")
    with pytest.raises(UserError) as exc:
        backends.create(bundle, BackendConfig(name))
    msg = str(exc.value)
    assert "\n" not in msg and ("install" in msg or "choose" in msg or "use --backend" in msg)


def test_unknown_backend_is_an_error(bundle):
    with pytest.raises(UserError, match="unknown backend 'gpu'"):
        backends.create(bundle, BackendConfig("gpu"))


@pytest.mark.skipif("CUDAExecutionProvider" not in ort.get_available_providers(), reason="no CUDA EP")
@pytest.mark.gpu
def test_cuda_backend_matches_cpu(bundle):
    x = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
    cpu = backends.create(bundle, BackendConfig("onnxruntime-cpu", precision="fp32")).embed(x)
    gpu = backends.create(bundle, BackendConfig("onnxruntime-cuda", precision="fp32")).embed(x)
    np.testing.assert_allclose(cpu, gpu, atol=1e-4)


def test_device_runtime_imports_no_torch():
    code = (
        "import sys\n"
        "import lit_edge.device, lit_edge.device.tagger, lit_edge.device.live, lit_edge.device.backends\n"
        "import lit_edge.cli.tag_cmd, lit_edge.cli.detect_cmd\n"
        "from lit_edge.cli.app import app\n"
        "for argv in (['tag', '--help'], ['detect', '--help']):\n"
        "    try:\n        app(argv)\n    except SystemExit:\n        pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "NO-TORCH", out.stderr[-2000:]


def test_engine_keeps_numpy_blas_single_threaded(bundle):
    import threadpoolctl

    from lit_edge.device.pipeline import Engine, EngineConfig

    blas = [i for i in threadpoolctl.threadpool_info() if i["internal_api"] == "openblas"]
    if not blas:
        pytest.skip("numpy here does not use OpenBLAS")
    with threadpoolctl.threadpool_limits(2, user_api="blas"):  # as numpy starts on a 2-core machine
        Engine(EngineConfig(bundle=bundle.root))
        after = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["internal_api"] == "openblas"]
    assert after and all(n == 1 for n in after)


def test_gpu_backends_get_the_bundles_provider_options(bundle):
    """What ONNX Runtime is handed on a GPU host (checked here without one)."""
    trt = backends._ort_providers(bundle, "onnxruntime-trt", "int8_tensorrt")
    name, opts = trt[0]
    assert name == "TensorrtExecutionProvider" and opts["trt_int8_enable"] is True
    assert opts["trt_engine_cache_path"] == str(bundle.engines_dir / "ort-trt")
    assert opts["trt_profile_max_shapes"].startswith("image:16x32x32x3")
    cuda = backends._ort_providers(bundle, "onnxruntime-cuda", "fp32")
    assert [p if isinstance(p, str) else p[0] for p in cuda] == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    assert backends._ort_providers(bundle, "onnxruntime-cpu", "int8_cpu") == ["CPUExecutionProvider"]
