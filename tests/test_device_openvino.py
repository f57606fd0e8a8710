"""The OpenVINO backend: a real compile of real bundles, the same embeddings as ONNX Runtime, the
CLI, the compiled-model cache, streams per plan, and a missing OpenVINO named on the command line
(an error line, never a fallback). Skipped, visibly, where OpenVINO is not installed."""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from bundle_factory import COLOURS, make_bundle, solid, write_jpeg
from lit_edge.bundle import load
from lit_edge.device import backends, cpu
from lit_edge.device.config import BackendConfig, DetectConfig, EngineConfig, TagConfig

ov = pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install 'lit-edge[openvino]')")
from lit_edge.device.backends.ov import int8_flavour  # noqa: E402

FLAVOURS = ("fp32", "int8_cpu", "int8_tensorrt")


@pytest.fixture
def bundle(tmp_path):
    return load(make_bundle(tmp_path / "b", flavours=FLAVOURS))


def _images(n: int = 6) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def test_openvino_embeddings_match_onnxruntime(bundle):
    x = _images()
    ref = backends.create(bundle, BackendConfig("onnxruntime-cpu", precision="fp32")).embed(x)
    b = backends.create(bundle, BackendConfig("openvino"))
    assert b.flavour == int8_flavour()  # its default tower: INT8, chosen by the CPU
    got = b.embed(x)
    assert got.dtype == np.float32 and got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-4)
    fp32 = backends.create(bundle, BackendConfig("openvino", precision="fp32"))
    assert fp32.flavour == "fp32"
    np.testing.assert_allclose(fp32.embed(x[:1]), ref[:1], atol=1e-4)


def test_second_start_loads_the_compiled_model_from_the_cache(bundle):
    from lit_edge.device.backends.ov import OpenVinoRunner

    first = OpenVinoRunner(bundle, "fp32")
    assert first.cache is not None and first.cache.parent == bundle.engines_dir / "openvino"
    # keyed by tower, the ONNX's sha256, the CPU and OpenVINO's version
    sha = bundle.manifest.files["image_fp32.onnx"]["sha256"]
    assert first.cache.name.startswith(f"fp32.{sha[:12]}.") and ".ov" in first.cache.name
    assert first.compiled.get_property("LOADED_FROM_CACHE") is False
    blobs = sorted(p.name for p in first.cache.iterdir())
    assert blobs
    second = OpenVinoRunner(bundle, "fp32")
    assert second.cache == first.cache
    assert second.compiled.get_property("LOADED_FROM_CACHE") is True
    assert sorted(p.name for p in second.cache.iterdir()) == blobs  # nothing compiled again
    np.testing.assert_array_equal(first.embed(_images(2)), second.embed(_images(2)))
    other = OpenVinoRunner(bundle, "int8_tensorrt")  # another tower: its own folder
    assert other.cache != first.cache


def test_a_damaged_cache_blob_is_compiled_again_not_an_error(bundle):
    """A start killed while OpenVINO wrote its blob leaves a truncated file: the next start recompiles."""
    from lit_edge.device.backends.ov import OpenVinoRunner

    first = OpenVinoRunner(bundle, "fp32")
    blobs = [p for p in first.cache.iterdir() if p.is_file()]
    assert blobs
    for p in blobs:
        p.write_bytes(p.read_bytes()[:100])
    again = OpenVinoRunner(bundle, "fp32")
    assert again.from_cache is False
    np.testing.assert_allclose(again.embed(_images(2)), first.embed(_images(2)), atol=1e-6)
    assert OpenVinoRunner(bundle, "fp32").from_cache is True  # rewritten whole


def test_a_bundle_that_cannot_hold_the_cache_caches_in_the_home(bundle, tmp_path, monkeypatch):
    from lit_edge.device.backends.ov import OpenVinoRunner

    monkeypatch.setenv("LIT_EDGE_HOME", str(tmp_path / "home"))
    bundle.engines_dir.write_text("not a folder")  # mkdir fails here, even for root
    runner = OpenVinoRunner(bundle, "fp32")
    assert runner.cache is not None and runner.cache.is_relative_to(
        tmp_path / "home" / "engines" / "openvino"
    )
    assert runner.compiled.get_property("LOADED_FROM_CACHE") is False
    assert OpenVinoRunner(bundle, "fp32").compiled.get_property("LOADED_FROM_CACHE") is True


def test_tag_plans_streams_and_detect_plans_latency(bundle):
    """tag's workers become OpenVINO streams (THROUGHPUT); detect's one worker gets LATENCY."""
    from lit_edge.device.pipeline import Engine
    from lit_edge.device.plan import plan_detect, plan_tag
    from lit_edge.device.threads import usable_cores

    eng = EngineConfig(bundle=bundle.root, backend=BackendConfig("openvino"))
    tag = TagConfig(source=".", db=Path("t.db"), engine=eng)
    plan = plan_tag(tag, backends.get("openvino"), cores=2)
    tagged = Engine(eng, lambda s: plan_tag(tag, s, cores=2).threads)
    assert plan.workers == 2 and tagged.backend.spec.concurrent
    props = tagged.backend.runner.properties
    if usable_cores() >= 2:
        assert props["PERFORMANCE_HINT"] == "THROUGHPUT" and props["NUM_STREAMS"] == "2"
    det = DetectConfig(source="0", engine=eng)
    detected = Engine(eng, lambda s: plan_detect(det, s).threads)
    props = detected.backend.runner.properties
    assert props["PERFORMANCE_HINT"] == "LATENCY" and props["NUM_STREAMS"] == "1"


def test_one_compiled_model_serves_several_threads(bundle):
    from lit_edge.device.backends.ov import OpenVinoConfig, OpenVinoRunner

    runner = OpenVinoRunner(bundle, "fp32", OpenVinoConfig(streams=2, threads=2))
    batches = [_images(4) + i for i in range(8)]
    serial = [runner.embed(b) for b in batches]
    out: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        for _ in range(5):
            out[i] = runner.embed(batches[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(batches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, ref in enumerate(serial):
        np.testing.assert_allclose(out[i], ref, atol=1e-6)


def test_tag_with_backend_openvino_through_the_cli(bundle, tmp_path):
    from typer.testing import CliRunner

    from lit_edge.cli.app import app

    photos = tmp_path / "p"
    photos.mkdir()
    for i, name in enumerate(COLOURS):
        write_jpeg(photos / f"{i}.jpg", solid(COLOURS[name]))
    db = tmp_path / "t.db"
    args = ["tag", str(photos), "--db", str(db), "--bundle", str(bundle.root), "--backend", "openvino"]
    r = CliRunner().invoke(app, [*args, "--no-progress"])
    assert r.exit_code == 0, r.output
    con = sqlite3.connect(db)
    assert con.execute("SELECT backend, flavour FROM runs").fetchall() == [("openvino", int8_flavour())]
    got = dict(con.execute("SELECT path, top_name FROM media").fetchall())
    settings = json.loads(con.execute("SELECT settings FROM runs").fetchone()[0])
    con.close()
    assert {Path(p).stem: n for p, n in got.items()} == {str(i): n for i, n in enumerate(COLOURS)}
    assert settings["plan"]["workers"] >= 1


def _as_if_cpu(monkeypatch, *flags: str) -> None:
    """Make the runtime see a CPU with these feature flags (what the backends decide from)."""
    monkeypatch.setattr(cpu, "flags", lambda: frozenset(flags))


@pytest.mark.parametrize(
    ("flags", "tower"),
    [
        (("avx2", "avx512_vnni"), "int8_tensorrt"),
        (("avx2", "avx_vnni"), "int8_tensorrt"),
        (("avx2",), "int8_cpu"),
    ],
)
def test_openvino_runs_the_int8_tower_made_for_the_cpus_arithmetic(bundle, monkeypatch, flags, tower):
    # without VNNI, int8_tensorrt's full 8-bit activations saturate AVX2's int16 pair sums (0.87
    # cosine to fp32 on the fieldset, measured): OpenVINO must run int8_cpu there
    _as_if_cpu(monkeypatch, *flags)
    b = backends.create(bundle, BackendConfig("openvino"))
    assert b.flavour == tower
    ref = backends.create(bundle, BackendConfig("onnxruntime-cpu", precision="fp32")).embed(_images())
    np.testing.assert_allclose(b.embed(_images()), ref, atol=1e-4)


def test_auto_takes_openvino_only_where_it_was_measured_faster(bundle, caplog, monkeypatch):
    import platform

    if any(backends.get(n).device is backends.Device.GPU for n in backends.available()):
        pytest.skip("a GPU backend is installed here and comes first")
    _as_if_cpu(monkeypatch, "avx2", "fma")  # AVX2 only: OpenVINO's accurate tower is slower than ORT's
    assert backends.create(bundle, BackendConfig()).name == "onnxruntime-cpu"
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("auto picks OpenVINO only on x86-64, where it was measured faster")
    _as_if_cpu(monkeypatch, "avx2", "avx512_vnni")
    with caplog.at_level(logging.INFO, logger="lit_edge.device.backends"):
        b = backends.create(bundle, BackendConfig())
    assert b.name == "openvino"
    assert "backend: openvino (auto-selected), tower: int8_tensorrt" in caplog.text


_NO_OPENVINO = "import sys; sys.modules['openvino'] = None\nfrom lit_edge.cli.app import main; main()\n"


def _cli_without_openvino(*argv: str) -> subprocess.CompletedProcess:
    """The real CLI in a process where ``import openvino`` fails, as on a machine without it."""
    code = _NO_OPENVINO.replace("main()", f"sys.argv = ['lit-edge', *{list(argv)!r}]; main()")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_a_missing_openvino_named_is_one_error_line_not_a_fallback(bundle, tmp_path):
    photos = tmp_path / "p"
    photos.mkdir()
    write_jpeg(photos / "a.jpg", solid(COLOURS["Viridis silva"]))
    db = tmp_path / "t.db"
    common = ["tag", str(photos), "--db", str(db), "--bundle", str(bundle.root), "--no-progress"]
    named = _cli_without_openvino(*common, "--backend", "openvino")
    assert named.returncode == 2, named.stderr[-2000:]
    err = named.stderr.strip().splitlines()
    assert err[-1].startswith("error: backend openvino: ") and "pip install 'lit-edge[openvino]'" in err[-1]
    assert "Traceback" not in named.stderr
    # auto on the same machine quietly runs ONNX Runtime: OpenVINO is not installed there
    auto = _cli_without_openvino(*common)
    assert auto.returncode == 0, auto.stderr[-2000:]
    con = sqlite3.connect(db)
    assert con.execute("SELECT backend FROM runs WHERE status = 'finished'").fetchall() == [
        ("onnxruntime-cpu",)
    ]
    con.close()


@pytest.mark.slow
def test_starter_tower_on_openvino_agrees_with_onnxruntime_fp32(fieldset):
    """The real starter bundle: OpenVINO's INT8 tower against ONNX Runtime's fp32 on real photos."""
    import cv2

    from lit_edge.device.pipeline import open_bundle
    from lit_edge.device.preprocess import prepare
    from lit_edge.export.starter import ensure_starter_bundle

    starter = open_bundle(ensure_starter_bundle())
    pre = starter.manifest.preprocess
    images = []
    for path in sorted((fieldset / "stills").iterdir()) + sorted((fieldset / "heron").iterdir()):
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is not None:
            images.append(prepare(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), pre))
    x = np.stack(images)
    assert len(x) >= 20
    ref = backends.create(starter, BackendConfig("onnxruntime-cpu", precision="fp32")).embed(x)
    got = backends.create(starter, BackendConfig("openvino")).embed(x)
    cos = (ref * got).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(got, axis=1)
    assert cos.min() >= 0.98, cos
    # the best row among ~800 (species and outcome rows, many nearly tied on a photo the head finds
    # diffuse) may flip under any INT8 tower: OpenVINO's must agree with fp32 about as often as
    # ONNX Runtime's own INT8 tower does (one photo of slack)
    ort8 = backends.create(starter, BackendConfig("onnxruntime-cpu", precision="int8")).embed(x)
    m = starter.text_embeddings.T
    best = (ref @ m).argmax(1)
    ov_agree, ort_agree = ((got @ m).argmax(1) == best).mean(), ((ort8 @ m).argmax(1) == best).mean()
    assert ov_agree >= ort_agree - 1.0 / len(x) and ov_agree >= 0.75, (ov_agree, ort_agree)
    # and what a user sees, the decisions (class_mass: outcomes first, then the rank reached)
    from lit_edge.device.pipeline import Engine

    decide = Engine(EngineConfig(bundle=starter.root, backend=BackendConfig("onnxruntime-cpu"))).classifier
    truth = [d.name for d in decide(ref)]
    same = {
        k: np.mean([d.name == t for d, t in zip(decide(e), truth, strict=True)])
        for k, e in (("ov", got), ("ort", ort8))
    }
    assert same["ov"] >= same["ort"] - 2.0 / len(x), same


def test_auto_on_openvino_does_not_load_onnxruntime(bundle):
    """Backends are probed in turn: once OpenVINO opens, ONNX Runtime (30 MB) is never imported."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("auto picks OpenVINO only on x86-64")
    code = (
        "import sys\n"
        "from lit_edge.bundle import load\n"
        "from lit_edge.device import backends\n"
        "from lit_edge.device.config import BackendConfig\n"
        "from lit_edge.device import cpu\n"
        "cpu.flags = lambda: frozenset({'avx2', 'avx512_vnni'})  # where auto picks OpenVINO\n"
        f"b = backends.create(load({str(bundle.root)!r}), BackendConfig())\n"
        "print(b.name, 'onnxruntime' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    name, loaded = out.stdout.split()
    if name != "openvino":
        pytest.skip(f"a GPU backend ({name}) comes first on this machine")
    assert loaded == "False"
