"""GPU engines built on the device (lit_edge.device.engines): the TensorRT engine cache (its logic
without TensorRT; the build itself where TensorRT exists) and ONNX Runtime's GPU provider options."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace

import pytest

from bundle_factory import make_bundle
from lit_edge import bundle as bf
from lit_edge.device import engines


def _key(**kw):
    return engines.EngineKey(**{"flavour": "int8_tensorrt", "gpu": "Orin (nvgpu)", "trt_version": "10.3.0",
                                "precision": "int8", **kw})  # fmt: skip


def test_engine_cache_key_and_sidecar(tmp_path):
    cfg = engines.BuildConfig()
    key = _key()
    path = engines.engine_path(tmp_path / "engines", key)
    assert path.name == "int8_tensorrt.orin-nvgpu.trt10.3.0.int8.engine"
    assert not engines.cached_engine(path, key, "abc", cfg)  # nothing built yet
    path.parent.mkdir()
    path.write_bytes(os.urandom(256))
    engines.write_sidecar(path, key, "abc", cfg, 1.0)
    side = json.loads(engines.sidecar_path(path).read_text())
    assert side["engine_sha256"] == bf.sha256_file(path) and side["key"]["gpu"] == "Orin (nvgpu)"
    assert engines.cached_engine(path, key, "abc", cfg)
    assert not engines.cached_engine(path, key, "other-onnx", cfg)
    assert not engines.cached_engine(path, _key(trt_version="10.4.0"), "abc", cfg)
    assert not engines.cached_engine(path, key, "abc", replace(cfg, max_batch=32))
    data = bytearray(path.read_bytes())
    data[0] ^= 1
    path.write_bytes(bytes(data))
    assert not engines.cached_engine(path, key, "abc", cfg)  # corrupted engine: rebuild


@pytest.mark.gpu
def test_tensorrt_engine_builds_and_is_reused(tmp_path):
    pytest.importorskip("tensorrt")
    b = bf.load(make_bundle(tmp_path / "b", flavours=("fp32", "int8_tensorrt")))
    first = engines.engine_for_bundle(b, "fp32")
    stamp = first.stat().st_mtime_ns
    assert engines.engine_for_bundle(b, "fp32").stat().st_mtime_ns == stamp
    shutil.rmtree(b.engines_dir)


def test_ort_gpu_provider_options(tmp_path):
    ps = engines.provider_list(engines.GpuProviderConfig(cache_dir=tmp_path, max_batch=8), (224, 224))
    (trt_name, trt), (cuda_name, _), cpu = ps
    assert (trt_name, cuda_name, cpu) == (engines.TRT, engines.CUDA, engines.CPU)
    assert trt["trt_int8_enable"] and trt["trt_engine_cache_enable"]
    assert trt["trt_engine_cache_path"] == str(tmp_path)
    assert trt["trt_profile_max_shapes"] == "image:8x224x224x3"
    assert engines.provider_list(engines.GpuProviderConfig(use_tensorrt=False, use_cuda=False)) == [
        engines.CPU
    ]


def test_a_bundles_gpu_providers_cache_engines_in_the_bundle(tmp_path):
    """What ONNX Runtime is handed on a GPU host (checked here without one)."""
    b = bf.load(make_bundle(tmp_path / "b"))
    name, opts = engines.bundle_providers(b, "int8_tensorrt", use_tensorrt=True)[0]
    assert name == engines.TRT and opts["trt_int8_enable"] is True
    assert (
        opts["trt_engine_cache_path"] == str(b.engines_dir / "ort-trt")
        and (b.engines_dir / "ort-trt").is_dir()
    )
    assert opts["trt_profile_max_shapes"].startswith("image:16x32x32x3")
    cuda = engines.bundle_providers(b, "fp32", use_tensorrt=False)
    assert [p if isinstance(p, str) else p[0] for p in cuda] == [engines.CUDA, engines.CPU]
    assert dict(cuda[0][1]) == {"device_id": 0}


def test_the_device_side_never_imports_the_export_package():
    """Building an engine is the device's job: the runtime depends on nothing under lit_edge.export."""
    code = (
        "import sys\n"
        "import lit_edge.device.engines, lit_edge.device.backends, lit_edge.device.backends.ort\n"
        "import lit_edge.device.backends.trt, lit_edge.device.tagger, lit_edge.device.live\n"
        "import lit_edge.cli.tag_cmd, lit_edge.cli.detect_cmd\n"
        "print(sorted(m for m in sys.modules if m.startswith('lit_edge.export')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
