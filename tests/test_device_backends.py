"""Backends as a registry: auto says what it picked, a named missing backend is an error (never a
fallback), a registered backend is usable by name, and an auto fall-back is planned for what opened."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest

from bundle_factory import COLOURS, make_bundle, solid, write_jpeg
from lit_edge.bundle import load
from lit_edge.device import backends
from lit_edge.device.backends import BackendSpec, Device
from lit_edge.device.config import BackendConfig, EngineConfig, TagConfig
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
    with pytest.raises(UserError, match="unknown backend 'gpu'; choose one of auto, "):
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

    from lit_edge.device.pipeline import Engine

    blas = [i for i in threadpoolctl.threadpool_info() if i["internal_api"] == "openblas"]
    if not blas:
        pytest.skip("numpy here does not use OpenBLAS")
    with threadpoolctl.threadpool_limits(2, user_api="blas"):  # as numpy starts on a 2-core machine
        Engine(EngineConfig(bundle=bundle.root))
        after = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["internal_api"] == "openblas"]
    assert after and all(n == 1 for n in after)


def _first_cpu_backend() -> str:
    """What auto falls back to on this machine's CPU (OpenVINO where installed on x86, else ORT)."""
    return next(n for n in backends.available() if backends.get(n).device is Device.CPU)


def _broken_gpu(bundle, flavour, threads):
    raise UserError("no GPU driver on this machine")


@pytest.fixture
def broken_gpu_first():
    """A GPU backend that is installed (its probe says so) but cannot open, ahead of all others."""
    backends.register(
        BackendSpec("broken-gpu", _broken_gpu, probe=lambda: True, int8_flavour="int8_cpu",
                    device=Device.GPU, priority=0)
    )  # fmt: skip
    yield
    backends.unregister("broken-gpu")


def test_auto_falls_back_past_a_backend_that_does_not_open_and_plans_for_what_opened(
    tmp_path, bundle, broken_gpu_first, caplog
):
    """The fall-back CPU session gets the CPU plan's threads, not the GPU plan's (all cores each)."""
    from lit_edge.device.plan import plan_tag
    from lit_edge.device.tagger import run_tag

    photos = tmp_path / "p"
    photos.mkdir()
    for i, name in enumerate(COLOURS):
        write_jpeg(photos / f"{i}.jpg", solid(COLOURS[name]))
    cfg = TagConfig(source=str(photos), db=tmp_path / "t.db", engine=EngineConfig(bundle=bundle.root))
    with caplog.at_level(logging.INFO):
        result = run_tag(cfg)
    cpu = _first_cpu_backend()
    assert "backend broken-gpu unavailable (no GPU driver on this machine)" in caplog.text
    assert f"backend: {cpu} (auto-selected)" in caplog.text
    assert result.processed == 4 and result.failed == 0
    cpu_plan = plan_tag(cfg, backends.get(cpu))
    gpu_plan = plan_tag(cfg, backends.get("broken-gpu"))
    con = sqlite3.connect(cfg.db)
    backend, settings = con.execute("SELECT backend, settings FROM runs").fetchone()
    con.close()
    assert backend == cpu
    assert json.loads(settings)["plan"]["threads"] == cpu_plan.threads
    if len(os.sched_getaffinity(0)) > 1:  # on one core both plans are 1 worker x 1 thread
        assert (cpu_plan.workers, cpu_plan.threads) != (gpu_plan.workers, gpu_plan.threads)


def test_the_session_really_gets_the_planned_threads(bundle, broken_gpu_first):
    from lit_edge.device.pipeline import Engine

    engine = Engine(
        EngineConfig(bundle=bundle.root), threads_for=lambda s: 1 if s.device is Device.CPU else 7
    )
    assert engine.backend.name == _first_cpu_backend() and engine.backend.threads == 1
    if engine.backend.name == "onnxruntime-cpu":
        assert engine.backend.runner.session.get_session_options().intra_op_num_threads == 1
    else:  # OpenVINO: one-thread calls are streams, one per core
        from lit_edge.device.threads import usable_cores

        assert engine.backend.runner.config.streams == usable_cores()


def test_a_named_backend_that_does_not_open_is_an_error_not_a_fallback(bundle, broken_gpu_first):
    with pytest.raises(UserError, match="^backend broken-gpu: no GPU driver on this machine$"):
        backends.create(bundle, BackendConfig("broken-gpu"))


def test_one_registration_makes_a_backend_usable_by_name_through_the_cli(tmp_path, bundle):
    """A new backend (here: ONNX Runtime's CPU runner under another name) needs nothing but register()."""
    from typer.testing import CliRunner

    from lit_edge.cli.app import app
    from lit_edge.device.backends.ort import OrtRunner

    opened = []

    def open_(b, flavour, threads):
        opened.append((flavour, threads))
        return OrtRunner(b.image_tower(flavour), threads=threads)

    backends.register(
        BackendSpec("my-cpu", open_, probe=lambda: True, int8_flavour="int8_cpu",
                    default_precision="fp32", concurrent=True)
    )  # fmt: skip
    try:
        (tmp_path / "p").mkdir()
        write_jpeg(tmp_path / "p" / "a.jpg", solid(COLOURS["Viridis silva"]))
        db = tmp_path / "t.db"
        r = CliRunner().invoke(
            app, ["tag", str(tmp_path / "p"), "--db", str(db), "--bundle", str(bundle.root),
                  "--backend", "my-cpu", "--no-progress"],
        )  # fmt: skip
        assert r.exit_code == 0, r.output
        assert opened and opened[0][0] == "fp32"  # its own default precision
        con = sqlite3.connect(db)
        assert con.execute("SELECT backend, flavour FROM runs").fetchall() == [("my-cpu", "fp32")]
        assert con.execute("SELECT top_name FROM media").fetchall() == [("Viridis silva",)]
        con.close()
    finally:
        backends.unregister("my-cpu")
    r = CliRunner().invoke(app, ["tag", str(tmp_path / "p"), "--backend", "my-cpu"])
    assert r.exit_code == 2 and "unknown backend 'my-cpu'" in r.output
