"""Export: ONNX parity with torch, INT8 QDQ structure per flavour, classifier graphs, species by name,
the starter bundle command and the TensorRT engine cache. Real parts throughout: torch modules,
ONNX checker, ONNX Runtime sessions, the CLI through CliRunner; a tiny model keeps it fast."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner

from lit_edge import bundle as bf
from lit_edge.cli.app import app
from lit_edge.export import calib, head, quantize
from lit_edge.export import onnx_export as ox
from lit_edge.export.writer import BundleConfig, build_bundle
from qdq_inspect import inspect_convs

torch.set_num_threads(1)
runner = CliRunner()


def _fast_config() -> BundleConfig:
    cfg = BundleConfig(calib_images=24)
    return replace(
        cfg,
        quant_cpu=replace(cfg.quant_cpu, method="minmax"),
        quant_tensorrt=replace(cfg.quant_tensorrt, method="minmax"),
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A saved lit-tiny-test checkpoint, its species list and a bundle built from both."""
    from lit_edge.model import create_model, load_checkpoint, save_checkpoint

    root = tmp_path_factory.mktemp("export")
    torch.manual_seed(0)
    save_checkpoint(create_model("lit-tiny-test"), root / "ckpt")
    model = load_checkpoint(root / "ckpt")
    species = root / "species.csv"
    species.write_text(
        "scientific_name,common_name,kingdom,class,family,genus,species\n"
        "Danaus plexippus,Monarch,Animalia,Insecta,Nymphalidae,Danaus,plexippus\n"
        "Apis mellifera,Western honey bee,Animalia,Insecta,Apidae,Apis,mellifera\n"
        "Vulpes vulpes,Red fox,Animalia,Mammalia,Canidae,Vulpes,vulpes\n",
        encoding="utf-8",
    )
    out = build_bundle(model, species, root / "bundle", cfg=_fast_config(), checkpoint=root / "ckpt")
    return {"root": root, "model": model, "ckpt": root / "ckpt", "species": species, "bundle": out}


def _real(pre: bf.Preprocess, n: int | None = None) -> np.ndarray:
    photos = np.stack([calib.fit(img, pre) for _, img in calib.sample_photos()])
    return photos[:n]


def _sess(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


# ONNX ------------------------------------------------------------------------------------------


def test_bundle_towers_follow_the_onnx_contract(tiny):
    b = bf.load(tiny["bundle"])
    h, w = b.manifest.preprocess.input_size
    for flavour in ("fp32", "int8_cpu", "int8_tensorrt"):
        model = onnx.load(b.image_tower(flavour))
        onnx.checker.check_model(model, full_check=True)
        assert {o.domain or "ai.onnx": o.version for o in model.opset_import}["ai.onnx"] == 17
        sess = _sess(b.image_tower(flavour))
        (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
        assert (inp.name, inp.type, inp.shape[1:]) == ("image", "tensor(uint8)", [h, w, 3])
        assert isinstance(inp.shape[0], str), "batch must be dynamic"
        assert (out.name, out.type) == ("embedding", "tensor(float)")
        for n in (1, 5):  # dynamic batch really works, and outputs are unit vectors
            emb = sess.run(None, {"image": _real(b.manifest.preprocess, n)})[0]
            assert emb.shape == (n, b.manifest.model.embed_dim)
            np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)


def test_fp32_tower_matches_torch_on_real_photos(tiny):
    model, b = tiny["model"], bf.load(tiny["bundle"])
    pre = b.manifest.preprocess
    images = _real(pre)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    x = (x - torch.tensor(pre.mean).view(1, 3, 1, 1)) / torch.tensor(pre.std).view(1, 3, 1, 1)
    with torch.no_grad():
        ref = model.encode_image(x, normalize=True).numpy()
    got = _sess(b.image_tower("fp32")).run(None, {"image": images})[0]
    assert np.abs(ref - got).max() < 1e-4
    assert (ref.argmax(1) == got.argmax(1)).all()
    assert b.manifest.extra["parity_fp32"]["top1_agree"] == 1.0


def test_check_refuses_a_graph_that_disagrees_with_torch(tmp_path):
    pre = bf.Preprocess(input_size=(32, 32))
    torch.manual_seed(0)
    net = ox.ImageGraph(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 8)), pre)
    path = ox.export(net, tmp_path / "a.onnx", pre)
    ox.check(path, net, _real(pre, 4))
    other = ox.ImageGraph(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 8)), pre)
    with pytest.raises(Exception, match="disagrees with torch"):
        ox.check(path, other, _real(pre, 4))


@pytest.mark.slow
def test_real_efficientnet_tower_parity(tmp_path):
    """The packaged EfficientNet-Lite0 weights: ORT and torch agree on real photos (top-1 identical)."""
    from lit_edge.model import get_config
    from lit_edge.model.image_tower import ImageTower

    cfg = get_config("lit-effnetlite0-minilm-classdist")
    tower = ImageTower(cfg.image, cfg.embed_dim, pretrained=True).eval()
    pre = bf.Preprocess(input_size=(cfg.image.image_size,) * 2, mean=cfg.image.mean, std=cfg.image.std)
    graph = ox.ImageGraph(tower, pre)
    path = ox.export(graph, tmp_path / "tower.onnx", pre)
    parity = ox.check(path, graph, _real(pre))
    assert parity.top1_agree == 1.0 and parity.max_abs_diff < 1e-3
    with torch.no_grad():  # the photos are really recognised (chelsea is a cat), not just equal noise
        x = (torch.from_numpy(_real(pre, 2)).permute(0, 3, 1, 2).float() / 127.5) - 1.0
        top = tower.classify(x).argmax(1).tolist()
    assert 281 <= top[1] <= 285, top  # ImageNet 281-285: domestic cats


# INT8 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["cpu", "tensorrt"])
def test_int8_every_conv_quantized_with_the_targets_formats(tiny, tmp_path, target):
    b = bf.load(tiny["bundle"])
    images = calib.calibration_set(b.manifest.preprocess, n=16)
    out = quantize.quantize(
        b.image_tower("fp32"),
        tmp_path / "q.onnx",
        images,
        quantize.QuantConfig(target, "minmax", keep_float=(), keep_first=0),
    )
    convs = inspect_convs(out)
    assert convs
    for c in convs:
        assert c.weight_quantized and c.input_quantized, c
        if target == "tensorrt":
            assert c.weight_dtype == onnx.TensorProto.INT8, c
            assert c.input_dtype == onnx.TensorProto.INT8, c
            assert set(c.zero_points) == {0}, c
        else:  # u8 activations; u8 weights where x86 runs a GEMM (dense_weights), s8 elsewhere
            assert c.weight_dtype in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8), c
            assert c.input_dtype == onnx.TensorProto.UINT8, c
    if target == "cpu":
        assert {c.weight_dtype for c in convs} == {onnx.TensorProto.INT8, onnx.TensorProto.UINT8}


@pytest.mark.parametrize("flavour", ["int8_cpu", "int8_tensorrt"])
def test_bundle_int8_keeps_first_convs_in_float_and_tracks_fp32(tiny, flavour):
    b = bf.load(tiny["bundle"])
    convs = inspect_convs(b.image_tower(flavour))
    keep = quantize.QuantConfig().keep_first
    assert len(convs) > keep
    assert not any(c.weight_quantized for c in convs[:keep])  # the fragile first convs stay float
    assert all(c.weight_quantized and c.input_quantized for c in convs[keep:])
    nodes = list(onnx.load(b.image_tower(flavour)).graph.node)
    norm = next(i for i, n in enumerate(nodes) if n.op_type == "ReduceL2")
    tail = {n.op_type for n in nodes[norm:]}
    assert not tail & {"QuantizeLinear", "DequantizeLinear"}, tail  # the L2 normalisation stays float
    images = calib.calibration_set(b.manifest.preprocess, n=16, seed=7)  # held out from calibration
    ref = _sess(b.image_tower("fp32")).run(None, {"image": images})[0]
    got = _sess(b.image_tower(flavour)).run(None, {"image": images})[0]
    assert np.mean(np.sum(ref * got, axis=1)) > 0.9


def test_head_role_keeps_pooling_and_everything_after_in_float(tiny, tmp_path):
    b = bf.load(tiny["bundle"])
    images = calib.calibration_set(b.manifest.preprocess, n=8)
    cfg = quantize.QuantConfig("cpu", "minmax", keep_float=("head",), keep_first=0)
    nodes = list(
        onnx.load(quantize.quantize(b.image_tower("fp32"), tmp_path / "q.onnx", images, cfg)).graph.node
    )
    pool = max(i for i, n in enumerate(nodes) if n.op_type == "GlobalAveragePool")
    tail = {n.op_type for n in nodes[pool:]}
    assert "MatMul" in tail and not tail & {"QuantizeLinear", "DequantizeLinear"}, tail


def test_quant_config_refuses_unknowns():
    with pytest.raises(Exception, match="target"):
        quantize.QuantConfig(target="gpu")
    with pytest.raises(Exception, match="calibration method"):
        quantize.QuantConfig(method="kl")
    with pytest.raises(Exception, match="role"):
        quantize.QuantConfig(keep_float=("stem",))
    with pytest.raises(Exception, match="keep_first"):
        quantize.QuantConfig(keep_first=-1)


# classifier graph ------------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", ["fp32", "int8_cpu", "int8_tensorrt"])
def test_classifier_graph_is_scaled_embedding_times_matrix(tiny, flavour):
    b = bf.load(tiny["bundle"])
    images = _real(b.manifest.preprocess, 6)
    emb = _sess(b.image_tower(flavour)).run(None, {"image": images})[0]
    sess = _sess(b.root / b.manifest.classifiers[flavour])
    assert [o.name for o in sess.get_outputs()] == ["scores"]
    scores = sess.run(None, {"image": images})[0]
    expect = b.manifest.model.logit_scale * emb @ b.text_embeddings.T
    np.testing.assert_allclose(scores, expect, rtol=1e-4, atol=1e-4)


def test_scores_head_adds_bias(tmp_path, tiny):
    b = bf.load(tiny["bundle"])
    m = np.eye(b.manifest.model.embed_dim, dtype=np.float32)[:3]
    out = head.add_scores_head(b.image_tower("fp32"), tmp_path / "c.onnx", m, 2.0, -1.5)
    images = _real(b.manifest.preprocess, 2)
    emb = _sess(b.image_tower("fp32")).run(None, {"image": images})[0]
    np.testing.assert_allclose(_sess(out).run(None, {"image": images})[0], 2.0 * emb[:, :3] - 1.5, atol=1e-5)
    onnx.checker.check_model(onnx.load(out), full_check=True)  # written at the wire level: still valid ONNX


def test_scores_head_is_written_without_the_onnx_package(tmp_path, tiny):
    """The device install has no ``onnx``; refolding the graphs (learn, new species) must not need it."""
    import os
    import subprocess
    import sys

    b = bf.load(tiny["bundle"])
    out = tmp_path / "c.onnx"
    code = (
        "import sys; sys.modules['onnx'] = None\n"  # any import of onnx now fails
        "import numpy as np\n"
        "from lit_edge.export.head import add_scores_head\n"
        f"add_scores_head({str(b.image_tower('int8_cpu'))!r}, {str(out)!r}, np.load({str(b.root / 'text_embeddings.npy')!r}), 3.0)\n"
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    )
    images = _real(b.manifest.preprocess, 3)
    emb = _sess(b.image_tower("int8_cpu")).run(None, {"image": images})[0]
    got = _sess(out).run(None, {"image": images})[0]
    np.testing.assert_allclose(got, 3.0 * emb @ b.text_embeddings.T, rtol=1e-4, atol=1e-4)


def test_scores_head_refuses_a_graph_without_the_embedding_output(tmp_path, tiny):
    b = bf.load(tiny["bundle"])
    with pytest.raises(ValueError, match="embedding"):
        head.add_scores_head(
            b.root / b.manifest.classifiers["fp32"], tmp_path / "c.onnx", b.text_embeddings, 1.0
        )
    (tmp_path / "junk.onnx").write_bytes(b"\xff\xff\xff")
    with pytest.raises(ValueError):
        head.add_scores_head(tmp_path / "junk.onnx", tmp_path / "c.onnx", b.text_embeddings, 1.0)


# species ---------------------------------------------------------------------------------------


def test_species_to_folder_from_csv(tiny, tmp_path):
    r = runner.invoke(
        app, ["export", "species", str(tiny["ckpt"]), "--species", str(tiny["species"]), "-o", str(tmp_path)]
    )
    assert r.exit_code == 0, r.output
    labels = bf.read_labels(tmp_path / "labels.csv")
    assert [lab.scientific_name for lab in labels] == ["Danaus plexippus", "Apis mellifera", "Vulpes vulpes"]
    assert labels[2].rank("family") == "Canidae" and labels[0].common_name == "Monarch"
    header = (tmp_path / "labels.csv").read_text(encoding="utf-8").splitlines()[0].split(",")
    assert tuple(header) == bf.LABEL_COLUMNS
    m = np.load(tmp_path / "text_embeddings.npy", allow_pickle=False)
    assert m.shape == (3, 32) and m.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(m, axis=1), 1.0, atol=1e-5)
    assert np.abs(m[0] - m[1]).max() > 1e-3  # different names, different rows
    same = np.load(tiny["bundle"] / "text_embeddings.npy", allow_pickle=False)
    np.testing.assert_allclose(m, same, atol=1e-6)  # the bundle's matrix is the same encoding


def test_add_species_by_name_to_a_bundle(tiny, tmp_path):
    import shutil

    work = tmp_path / "b"
    shutil.copytree(tiny["bundle"], work)
    before = bf.load(work)
    old = before.text_embeddings.copy()
    r = runner.invoke(
        app,
        ["export", "species", str(tiny["ckpt"]), "--bundle", str(work), "--add", "Bufo bufo, Common toad"],
    )
    assert r.exit_code == 0, r.output
    after = bf.load(work)  # verifies every checksum
    assert len(after.labels) == 4 and after.manifest.num_classes == 4
    assert (after.labels[-1].scientific_name, after.labels[-1].common_name) == ("Bufo bufo", "Common toad")
    assert after.labels[-1].rank("genus") == "Bufo"
    assert after.text_embeddings.shape == (4, old.shape[1])
    np.testing.assert_array_equal(after.text_embeddings[:3], old)  # existing rows untouched
    for name in after.manifest.classifiers.values():
        assert _sess(after.root / name).get_outputs()[0].shape[1] == 4
    assert after.manifest.files["image_int8_cpu.onnx"] == before.manifest.files["image_int8_cpu.onnx"]
    r = runner.invoke(
        app, ["export", "species", str(tiny["ckpt"]), "--bundle", str(work), "--add", "bufo Bufo"]
    )
    assert r.exit_code == 2 and "already in the bundle" in r.output


def test_species_are_added_to_a_starter_bundle_by_the_starters_name(tiny, tmp_path, monkeypatch):
    """``export species starter --bundle ... --add ...``: the starter's checkpoint is found by its
    name under the lit-edge home; before it is built, one line says how to build it."""
    import shutil

    monkeypatch.setenv("LIT_EDGE_HOME", str(tmp_path / "home"))
    work = tmp_path / "b"
    shutil.copytree(tiny["bundle"], work)
    add = ["--bundle", str(work), "--add", "Bufo bufo, Common toad"]
    r = runner.invoke(app, ["export", "species", "starter-lite2", *add])
    assert r.exit_code == 2 and "lit-edge train starter --tower lite2" in r.output, r.output
    assert len(bf.load(work).labels) == 3
    shutil.copytree(tiny["ckpt"], tmp_path / "home" / "models" / "starter")
    r = runner.invoke(app, ["export", "species", "starter", *add])
    assert r.exit_code == 0, r.output
    assert bf.load(work).labels[-1].scientific_name == "Bufo bufo"


def test_set_species_from_a_plain_list(tiny, tmp_path):
    import shutil

    work = tmp_path / "b"
    shutil.copytree(tiny["bundle"], work)
    names = tmp_path / "names.txt"
    names.write_text("# field list\nLynx lynx, Eurasian lynx\nMeles meles\n", encoding="utf-8")
    r = runner.invoke(
        app, ["export", "species", str(tiny["ckpt"]), "--bundle", str(work), "--species", str(names)]
    )
    assert r.exit_code == 0, r.output
    b = bf.load(work)
    assert [lab.scientific_name for lab in b.labels] == ["Lynx lynx", "Meles meles"]
    assert b.text_embeddings.shape[0] == 2


def test_species_edits_keep_the_background_rows(tiny, tmp_path, monkeypatch):
    import shutil

    from lit_edge import bundle_edit
    from lit_edge.export.species import set_background

    swaps = []
    swap = bundle_edit._swap
    monkeypatch.setattr(bundle_edit, "_swap", lambda a, b: (swaps.append(b), swap(a, b)))

    work = tmp_path / "b"
    shutil.copytree(tiny["bundle"], work)
    dim = bf.load(work).text_embeddings.shape[1]
    empty = tuple((r, "") for r in bf.RANKS)
    rows = [bf.Label(0, bf.BLANK, f"no animal: {n}", empty) for n in ("grass", "rock")]
    background = np.eye(2, dim, dtype=np.float32)
    set_background(work, rows, background, {"recipe": "test"})
    ckpt = str(tiny["ckpt"])
    swaps.clear()
    r = runner.invoke(app, ["export", "species", ckpt, "--bundle", str(work), "--add", "Bufo bufo"])
    assert r.exit_code == 0, r.output
    assert len(swaps) == 1  # species and background rows written in one edit
    b = bf.load(work)
    names = [lab.scientific_name for lab in b.labels]
    assert names == ["Danaus plexippus", "Apis mellifera", "Vulpes vulpes", "Bufo bufo", "blank", "blank"]
    assert [lab.rank("genus") for lab in b.labels[-2:]] == ["", ""]  # still not a taxon
    np.testing.assert_array_equal(b.text_embeddings[-2:], background)
    names_file = tmp_path / "names.txt"
    names_file.write_text("Meles meles\n", encoding="utf-8")
    r = runner.invoke(app, ["export", "species", ckpt, "--bundle", str(work), "--species", str(names_file)])
    assert r.exit_code == 0, r.output
    b = bf.load(work)
    assert [lab.scientific_name for lab in b.labels] == ["Meles meles", "blank", "blank"]
    assert [lab.id for lab in b.labels] == [0, 1, 2]
    assert b.manifest.extra["background"] == {"recipe": "test", "rows": 2}
    np.testing.assert_array_equal(b.text_embeddings[1:], background)


def test_species_refuses_a_foreign_model(tiny, tmp_path):
    import shutil

    work = tmp_path / "b"
    shutil.copytree(tiny["bundle"], work)
    m = json.loads((work / "manifest.json").read_text())
    m["model"]["name"] = "some-other-model"
    (work / "manifest.json").write_text(json.dumps(m))
    r = runner.invoke(
        app, ["export", "species", str(tiny["ckpt"]), "--bundle", str(work), "--add", "Bufo bufo"]
    )
    assert r.exit_code == 2 and "bundle's own checkpoint" in r.output and "Traceback" not in r.output


# bundle and starter commands -------------------------------------------------------------------


def test_export_bundle_cli_writes_a_verified_tar(tiny, tmp_path):
    out = tmp_path / "cli_bundle"
    r = runner.invoke(
        app,
        ["export", "bundle", str(tiny["ckpt"]), "--species", str(tiny["species"]), "-o", str(out),
         "--calib-images", "8", "--method", "minmax", "--no-classifiers", "--tar"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    b = bf.load(out.with_suffix(".tar"), unpack_dir=tmp_path / "unpacked")
    assert (
        set(b.manifest.image_towers) == {"fp32", "int8_cpu", "int8_tensorrt"} and not b.manifest.classifiers
    )
    assert not list(tmp_path.glob(".cli_bundle.*"))  # no staging folder left behind


def test_export_bundle_flavours_writes_only_the_towers_asked_for(tiny, tmp_path):
    out = tmp_path / "cpu_only"
    args = ["export", "bundle", str(tiny["ckpt"]), "--species", str(tiny["species"]), "-o", str(out),
            "--calib-images", "8", "--method", "minmax"]  # fmt: skip
    r = runner.invoke(app, [*args, "--flavours", "int8_cpu"])
    assert r.exit_code == 0, r.output
    b = bf.load(out)
    assert set(b.manifest.image_towers) == set(b.manifest.classifiers) == {"fp32", "int8_cpu"}
    seconds = b.manifest.extra["export_seconds"]  # where the time went, per step
    assert {"species matrix", "fp32 tower", "parity check", "int8_cpu tower"} <= set(seconds)
    assert set(b.manifest.extra["export_steps"]["int8_cpu"]) >= {"ranges", "quantize", "bias correction"}
    r = runner.invoke(app, [*args, "--flavours", "int8_gpu"])
    assert r.exit_code == 2 and "unknown image tower flavour" in r.output and "Traceback" not in r.output
    assert set(bf.load(out).manifest.image_towers) == {"fp32", "int8_cpu"}  # the refused run changed nothing


def test_export_bundle_calibrates_from_a_folder_and_skips_bad_files(tiny, tmp_path):
    import cv2

    photos = tmp_path / "photos"
    photos.mkdir()
    for name, img in calib.sample_photos()[:3]:
        cv2.imwrite(str(photos / f"{name}.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    pre = tiny["model"].preprocess_config()
    images = calib.calibration_set(pre, photos, n=10)
    assert images.shape == (10, *pre.input_size, 3) and images.dtype == np.uint8
    r = runner.invoke(app, ["export", "bundle", str(tiny["ckpt"]), "--species", str(tiny["species"]),
                            "-o", str(tmp_path / "b"), "--calib", str(tmp_path / "nowhere")])  # fmt: skip
    assert r.exit_code == 2 and "calibration folder not found" in r.output


def test_export_starter_builds_once_then_reuses(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("LIT_EDGE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LIT_EDGE_BUNDLE", raising=False)
    args = ["export", "starter", "--checkpoint", str(tiny["ckpt"]), "--species", str(tiny["species"]),
            "--calib-images", "8"]  # fmt: skip
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    target = tmp_path / "home" / "bundles" / "starter"
    assert Path(r.output.strip().splitlines()[-1]) == target
    stamp = (target / "manifest.json").stat().st_mtime_ns
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert (target / "manifest.json").stat().st_mtime_ns == stamp  # reused, not rebuilt
    r = runner.invoke(app, ["bundle", "info"])  # no argument: the default bundle
    assert r.exit_code == 0 and "3 species" in r.output and "int8_tensorrt" in r.output


def test_export_commands_have_help():
    for cmd in ("species", "bundle", "starter", "engine"):
        r = runner.invoke(app, ["export", cmd, "--help"])
        assert r.exit_code == 0 and "Usage" in r.output


# TensorRT: the engine cache itself is tested in test_device_engines.py -------------------------


def test_engine_command_without_tensorrt_is_one_line(tiny):
    pytest.importorskip("onnx")
    try:
        import tensorrt  # noqa: F401

        pytest.skip("tensorrt is installed here")
    except ImportError:
        pass
    r = runner.invoke(app, ["export", "engine", str(tiny["bundle"])])
    assert r.exit_code == 2 and "pip install 'lit-edge[tensorrt]'" in r.output
