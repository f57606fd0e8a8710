"""Bundle loading refuses what it must (tampered, truncated, missing, foreign, wrong version, unsafe
tar members) with one clear line, and the `lit-edge bundle` commands report it. Real files, real
tar archives, the real CLI; the bundle is hand-made here (no torch needed)."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lit_edge import bundle as bf
from lit_edge.cli.app import app

runner = CliRunner()


@pytest.fixture()
def bundle_dir(tmp_path) -> Path:
    """A small valid bundle: a real ONNX tower (uint8 NHWC -> L2-normalised embedding), labels, matrix."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    root = tmp_path / "bundle"
    root.mkdir()
    g = helper.make_graph(
        [
            helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
            helper.make_node("ReduceMean", ["f", "axes"], ["m"], keepdims=0),
            helper.make_node("LpNormalization", ["m"], ["embedding"], axis=-1, p=2),
        ],
        "tower",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["batch", 8, 8, 3])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 3])],
        [numpy_helper.from_array(np.array([1, 2], np.int64), "axes")],
    )
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), root / "image_fp32.onnx")
    labels = [bf.Label(i, n, "", tuple((r, "") for r in bf.RANKS)) for i, n in enumerate(["Aa bb", "Cc dd"])]
    bf.write_labels(root / "labels.csv", labels)
    np.save(root / "text_embeddings.npy", np.eye(2, 3, dtype=np.float32), allow_pickle=False)
    manifest = bf.Manifest(
        model=bf.ModelInfo(name="hand-made", embed_dim=3, logit_scale=10.0),
        preprocess=bf.Preprocess(input_size=(8, 8)),
        image_towers={"fp32": "image_fp32.onnx"},
        num_classes=2,
    )
    bf.write_manifest(root, manifest)
    return root


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_valid_bundle_loads_and_verifies(bundle_dir):
    b = bf.load(bundle_dir)
    assert b.text_embeddings.shape == (2, 3) and [lab.scientific_name for lab in b.labels] == [
        "Aa bb",
        "Cc dd",
    ]
    r = runner.invoke(app, ["bundle", "verify", str(bundle_dir)])
    assert r.exit_code == 0 and r.output.startswith("ok: ")


def test_tampered_byte_is_refused(bundle_dir):
    p = bundle_dir / "image_fp32.onnx"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped
    p.write_bytes(bytes(data))
    with pytest.raises(bf.BundleError, match="checksum does not match"):
        bf.load(bundle_dir)
    assert "tampered" in _one_line_error(runner.invoke(app, ["bundle", "verify", str(bundle_dir)]))


def test_truncated_file_is_refused(bundle_dir):
    p = bundle_dir / "text_embeddings.npy"
    p.write_bytes(p.read_bytes()[:-7])
    line = _one_line_error(runner.invoke(app, ["bundle", "verify", str(bundle_dir)]))
    assert "truncated" in line and "text_embeddings.npy" in line


def test_missing_file_is_refused(bundle_dir):
    (bundle_dir / "labels.csv").unlink()
    assert "missing" in _one_line_error(runner.invoke(app, ["bundle", "verify", str(bundle_dir)]))


def test_wrong_format_version_is_refused(bundle_dir):
    m = json.loads((bundle_dir / "manifest.json").read_text())
    m["format_version"] = bf.FORMAT_VERSION + 1
    (bundle_dir / "manifest.json").write_text(json.dumps(m))
    line = _one_line_error(runner.invoke(app, ["bundle", "info", str(bundle_dir)]))
    assert "format version" in line and "re-export" in line


@pytest.mark.parametrize(
    "text, why",
    [
        ('{"format": "something-else", "files": {}}', "not a lit-edge bundle manifest"),
        ('{"name": "package", "version": "1.0"}', "not a lit-edge bundle manifest"),
        ("{not json", "not valid JSON"),
        ('{"format": "lit-edge-bundle", "format_version": 1}', "incomplete or malformed"),
    ],
)
def test_foreign_manifest_is_refused(bundle_dir, text, why):
    (bundle_dir / "manifest.json").write_text(text)
    assert why in _one_line_error(runner.invoke(app, ["bundle", "verify", str(bundle_dir)]))


def test_manifest_naming_a_file_outside_is_refused(bundle_dir, tmp_path):
    (tmp_path / "outside.bin").write_bytes(b"x")
    m = json.loads((bundle_dir / "manifest.json").read_text())
    m["files"]["../outside.bin"] = {"sha256": bf.sha256_file(tmp_path / "outside.bin"), "bytes": 1}
    (bundle_dir / "manifest.json").write_text(json.dumps(m))
    assert "outside the bundle" in _one_line_error(runner.invoke(app, ["bundle", "verify", str(bundle_dir)]))


def test_pickled_matrix_is_refused(bundle_dir):
    np.save(bundle_dir / "text_embeddings.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    m = bf.load(bundle_dir, verify=False).manifest
    bf.write_manifest(bundle_dir, m)  # checksums match: only the format gives it away
    with pytest.raises(bf.BundleError, match="not a plain numpy array"):
        _ = bf.load(bundle_dir).text_embeddings


def test_not_a_bundle_is_one_line(tmp_path):
    (tmp_path / "x.tar").write_bytes(b"definitely not a tar" * 50)
    assert "not a bundle folder" in _one_line_error(
        runner.invoke(app, ["bundle", "verify", str(tmp_path / "x.tar")])
    )
    assert "no manifest.json" in _one_line_error(runner.invoke(app, ["bundle", "verify", str(tmp_path)]))
    assert "not found" in _one_line_error(runner.invoke(app, ["bundle", "verify", str(tmp_path / "nope")]))


# tar archives ----------------------------------------------------------------------------------


def test_tar_roundtrip(bundle_dir, tmp_path):
    tar = bf.pack(bundle_dir, tmp_path / "b.tar")
    b = bf.load(tar, unpack_dir=tmp_path / "out")
    assert b.root == tmp_path / "out" and b.manifest.model.name == "hand-made"
    r = runner.invoke(app, ["bundle", "verify", str(tar)])
    assert r.exit_code == 0, r.output


def _tar_with(tmp_path: Path, bundle_dir: Path, add) -> Path:
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as tar:
        for p in sorted(bundle_dir.iterdir()):
            tar.add(p, arcname=p.name)
        add(tar)
    return path


def _file(name: str, data: bytes = b"pwned"):
    def add(tar: tarfile.TarFile):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    return add


def _link(name: str, target: str, kind=tarfile.SYMTYPE):
    def add(tar: tarfile.TarFile):
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = target
        tar.addfile(info)

    return add


@pytest.mark.parametrize(
    "member, why",
    [
        (_file("../evil"), "outside"),
        (_file("sub/../../evil"), "outside"),
        (_file("/tmp/lit-edge-evil-abs"), "outside"),
        (_link("labels_link.csv", "/etc/passwd"), "not links"),
        (_link("up", "../.."), "not links"),
        (_link("hard", "/etc/passwd", tarfile.LNKTYPE), "not links"),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink-abs", "symlink-up", "hardlink"],
)
def test_tar_paths_outside_the_target_are_refused(bundle_dir, tmp_path, member, why):
    tar = _tar_with(tmp_path, bundle_dir, member)
    target = tmp_path / "deep" / "target"
    with pytest.raises(bf.BundleError, match=why):
        bf.load(tar, unpack_dir=target)
    assert not target.exists() or not any(target.rglob("*"))  # refused before anything was written
    assert not (tmp_path / "deep" / "evil").exists() and not (tmp_path / "evil").exists()
    assert not Path("/tmp/lit-edge-evil-abs").exists()
    line = _one_line_error(runner.invoke(app, ["bundle", "verify", str(tar)]))
    assert "refusing to unpack" in line


# info and path ---------------------------------------------------------------------------------


def test_bundle_path_and_info_default(bundle_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LIT_EDGE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LIT_EDGE_BUNDLE", raising=False)
    r = runner.invoke(app, ["bundle", "path"])
    assert r.exit_code == 0 and Path(r.output.strip()) == tmp_path / "home" / "bundles" / "starter"
    line = _one_line_error(runner.invoke(app, ["bundle", "info"]))
    assert "lit-edge export starter" in line  # no default bundle yet: says how to make one
    monkeypatch.setenv("LIT_EDGE_BUNDLE", str(bundle_dir))
    r = runner.invoke(app, ["bundle", "path"])
    assert Path(r.output.strip()) == bundle_dir
    r = runner.invoke(app, ["bundle", "info"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    for text in ("hand-made", "2 species", "image towers: fp32", "image_fp32.onnx", "8x8"):
        assert text in r.output


def test_bundle_commands_have_help():
    for cmd in ("info", "verify", "path"):
        r = runner.invoke(app, ["bundle", cmd, "--help"])
        assert r.exit_code == 0 and "Usage" in r.output


def test_bundle_commands_import_no_torch(bundle_dir):
    import subprocess
    import sys

    code = (
        "import sys; from typer.testing import CliRunner; from lit_edge.cli.app import app;"
        f"r = CliRunner().invoke(app, ['bundle', 'info', {str(bundle_dir)!r}]); assert r.exit_code == 0, r.output;"
        "import lit_edge.device.engines, lit_edge.export.head;"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_loading_a_tar_twice_reuses_one_unpacked_copy(bundle_dir, tmp_path):
    tar = bf.pack(bundle_dir, tmp_path / "b.tar")
    first = bf.load(tar)
    second = bf.load(tar)
    assert first.root == second.root
    unpacked = first.root.parent
    assert not [p for p in unpacked.iterdir() if p.name.startswith(".unpacking-")]  # no stray copies
    assert len(second.labels) == len(bf.load(bundle_dir).labels)
