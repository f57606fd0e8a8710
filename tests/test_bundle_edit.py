"""The one staged bundle edit: write aside, verify, swap atomically.

Real bundles (tests/bundle_factory.py: a real ONNX tower, no torch), real classifier graphs folded
with onnx and run with ONNX Runtime, and real processes killed with SIGKILL at every named step of
an edit (and at random moments): afterwards ``bundle.load(verify=True)`` must pass and hold either
the old bundle or the new one, and the next edit must work.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bundle_factory import COLOURS, make_bundle, solid
from lit_edge import bundle as bf
from lit_edge import bundle_edit

SRC = Path(__file__).resolve().parents[1] / "src"
TESTS = Path(__file__).resolve().parent


@pytest.fixture()
def bundle(tmp_path) -> Path:
    """The four colour species, with fp32 and int8_cpu classifier graphs."""
    root = make_bundle(tmp_path / "b")
    with bf.edit(root) as staged:
        staged.set_classifiers(["fp32", "int8_cpu"])
    return root


def _scores(b: bf.Bundle, flavour: str, rgb) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(
        str(b.root / b.manifest.classifiers[flavour]), providers=["CPUExecutionProvider"]
    )
    h, w = b.manifest.preprocess.input_size
    return sess.run(None, {"image": solid(rgb, (h, w))[None]})[0][0]


def _siblings(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}."))


def test_rows_edit_refolds_the_classifier_graphs_and_keeps_the_towers(bundle):
    before = bf.load(bundle)
    tower_inode = (bundle / "image_fp32.onnx").stat().st_ino
    with bf.edit(bundle) as staged:
        keep = [0, 3]  # Rubra rosea, Caerulea mare
        staged.set_rows([staged.labels[i] for i in keep], staged.matrix[keep])
    after = staged.bundle
    assert [lab.scientific_name for lab in after.labels] == ["Rubra rosea", "Caerulea mare"]
    assert [lab.id for lab in after.labels] == [0, 1] and after.manifest.num_classes == 2
    for flavour in ("fp32", "int8_cpu"):  # the graphs score against the new rows
        scores = _scores(after, flavour, COLOURS["Caerulea mare"])
        assert scores.shape == (2,) and scores.argmax() == 1
    assert after.manifest.files["image_fp32.onnx"] == before.manifest.files["image_fp32.onnx"]
    assert (bundle / "image_fp32.onnx").stat().st_ino == tower_inode  # carried by a hard link
    assert _siblings(bundle) == []


def test_a_new_bundle_from_another_leaves_the_base_alone(bundle, tmp_path):
    old = bf.load(bundle)
    with bf.edit(tmp_path / "calibrated", base=bundle) as staged:
        staged.manifest.model = bf.ModelInfo(**{**vars(staged.manifest.model), "logit_scale": 3.0})
        staged.manifest.extra["calibration"] = {"method": "test"}
    new = bf.load(tmp_path / "calibrated")
    assert new.manifest.extra["calibration"] == {"method": "test"}
    s_old = _scores(old, "fp32", COLOURS["Viridis silva"])
    s_new = _scores(new, "fp32", COLOURS["Viridis silva"])
    np.testing.assert_allclose(s_new, s_old * 3.0 / old.manifest.model.logit_scale, rtol=1e-5)  # refolded
    assert bf.load(bundle).manifest.files == old.manifest.files  # the base is untouched
    assert (tmp_path / "calibrated" / "image_fp32.onnx").stat().st_nlink == 1  # a copy, not a link


def test_an_error_in_the_edit_leaves_the_bundle_untouched(bundle):
    stamp = (bundle / "manifest.json").read_bytes()
    with pytest.raises(RuntimeError, match="boom"), bf.edit(bundle) as staged:
        staged.set_rows(staged.labels[:1], staged.matrix[:1])
        raise RuntimeError("boom")
    assert (bundle / "manifest.json").read_bytes() == stamp and _siblings(bundle) == []
    with pytest.raises(ValueError, match="L2-normalised"), bf.edit(bundle) as staged:
        staged.set_rows(staged.labels, staged.matrix * 2)
    bf.load(bundle)


def test_other_files_are_checksummed_and_carried_by_later_edits(bundle):
    with bf.edit(bundle) as staged:
        staged.path("calibration.json").write_text('{"temperature": 1.5}')
    assert "calibration.json" in staged.bundle.manifest.files
    with bf.edit(bundle) as staged:
        staged.set_rows(staged.labels[:3], staged.matrix[:3])
    assert (bundle / "calibration.json").read_text() == '{"temperature": 1.5}'
    (bundle / "calibration.json").write_text('{"temperature": 9.9}')
    with pytest.raises(bf.BundleError, match="checksum"):
        bf.load(bundle)


def test_engines_survive_an_in_place_edit(bundle):
    (bundle / "engines").mkdir()
    (bundle / "engines" / "int8_tensorrt.gpu.trt10.int8.engine").write_bytes(b"engine bytes")
    with bf.edit(bundle) as staged:
        staged.set_rows(staged.labels[:2], staged.matrix[:2])
    assert (bundle / "engines" / "int8_tensorrt.gpu.trt10.int8.engine").read_bytes() == b"engine bytes"


def test_a_folder_that_is_not_a_bundle_is_never_replaced(tmp_path, bundle):
    home = tmp_path / "Documents"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    with pytest.raises(bf.BundleError, match="not a lit-edge bundle"), bf.edit(home, base=bundle):
        pass
    assert (home / "thesis.tex").read_text() == "years of work"


def test_a_new_bundle_needs_a_manifest_and_rows(tmp_path):
    with pytest.raises(bf.BundleError, match="needs a manifest"), bf.edit(tmp_path / "x", base=None):
        pass
    assert not (tmp_path / "x").exists() and _siblings(tmp_path / "x") == []


def test_the_rename_dance_is_recovered_by_load(bundle, monkeypatch):
    """Without RENAME_EXCHANGE the swap is two renames; a crash between them leaves no target
    folder, and load() puts the verified new bundle in place."""
    monkeypatch.setattr(bundle_edit, "_exchange", lambda a, b: False)

    class Crash(BaseException):
        pass

    def crash(name):
        if name == "old-aside":
            raise Crash

    monkeypatch.setattr(bundle_edit, "_step", crash)
    with pytest.raises(Crash), bf.edit(bundle) as staged:
        staged.set_rows(staged.labels[:1], staged.matrix[:1])
    assert not bundle.exists()
    assert [n.split("-")[0] for n in _siblings(bundle)] == [".b.old", ".b.ready"]
    assert len(bf.load(bundle).labels) == 1  # rolled forward: the new bundle
    monkeypatch.setattr(bundle_edit, "_step", lambda name: None)
    with bf.edit(bundle) as staged:  # the next edit cleans up what the crash left
        pass
    assert _siblings(bundle) == []


# killed for real --------------------------------------------------------------------------------

_EDIT = """
import sys, time
from pathlib import Path
from lit_edge import bundle_edit
target, stop, mode = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
def pause(name):
    if name == stop:
        print(name, flush=True)
        time.sleep(600)
bundle_edit._step = pause
if mode == "rename":
    bundle_edit._exchange = lambda a, b: False
import numpy as np
from lit_edge import bundle as bf
from lit_edge.export.species import set_background
dim = bf.load(target).text_embeddings.shape[1]
print("start", flush=True)
set_background(target, [bf.Label(0, bf.BLANK, "no animal: test")], np.eye(1, dim), {"recipe": "crash-test"})
print("done", flush=True)
"""

STEPS = ["staging", "written", "carried", "folded", "manifest", "verified", "swapped", "cleaned"]
RENAME_STEPS = ["verified", "ready", "old-aside", "swapped", "cleaned"]


def _edit_process(target: Path, stop: str, mode: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS)]), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", _EDIT, str(target), stop, mode], stdout=subprocess.PIPE, text=True, env=env
    )


def _old_or_new(target: Path) -> str:
    b = bf.load(target, verify=True)
    _ = b.text_embeddings
    n = len(b.labels)
    assert n in (4, 5), n
    if n == 5:
        assert b.labels[-1].is_blank and b.manifest.extra["background"]["recipe"] == "crash-test"
        assert _scores(b, "fp32", COLOURS["Viridis silva"]).shape == (5,)
        return "new"
    assert _scores(b, "fp32", COLOURS["Viridis silva"]).shape == (4,)
    return "old"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "stop"), [("exchange", s) for s in STEPS] + [("rename", s) for s in RENAME_STEPS]
)
def test_sigkill_at_every_step_leaves_the_old_or_the_new_bundle(bundle, mode, stop):
    proc = _edit_process(bundle, stop, mode)
    assert proc.stdout.readline().strip() == "start"
    assert proc.stdout.readline().strip() == stop, "the edit never reached the step"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    expected = "new" if stop in ("swapped", "cleaned") or (mode, stop) == ("rename", "old-aside") else "old"
    assert _old_or_new(bundle) == expected
    with bf.edit(bundle) as staged:  # the next edit works and clears the leftovers
        staged.manifest.extra["after"] = True
    assert bf.load(bundle).manifest.extra["after"] and _siblings(bundle) == []


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_the_old_or_the_new_bundle(tmp_path):
    rng = random.Random(0)
    target = make_bundle(tmp_path / "b")
    with bf.edit(target) as staged:
        staged.set_classifiers(["fp32"])
    proc = _edit_process(target, "never", "exchange")
    assert proc.stdout.readline().strip() == "start"
    t0 = time.perf_counter()
    assert proc.stdout.readline().strip() == "done"
    took = time.perf_counter() - t0  # the edit itself, imports done
    assert proc.wait(timeout=30) == 0 and _old_or_new(target) == "new"
    for i in range(12):
        target = make_bundle(tmp_path / f"b{i}")
        with bf.edit(target) as staged:
            staged.set_classifiers(["fp32"])
        proc = _edit_process(target, "never", "rename" if i % 2 else "exchange")
        assert proc.stdout.readline().strip() == "start"
        time.sleep(rng.uniform(0.0, took))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        _old_or_new(target)  # which of the two depends on when the kill landed; both are valid
