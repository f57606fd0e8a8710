"""`lit-edge bundle calibrate`: a trained bundle's logit scale fitted on labelled photos, through the
real CLI, real JPEG files decoded by OpenCV, a real ONNX Runtime tower and the staged bundle edit.

The colour bundle's two *Rubra* species differ only in blue; photos whose blue is pushed halfway
between them are genuinely ambiguous, so a scale of 300 is over-confident (a coin toss scored
1.00) and a scale of 0.3 under-confident (a clean red photo scored about 0.3). Calibration must move the
scale the right way, make the held-out ECE smaller, and the runtime must score with the new scale.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from bundle_factory import COLOURS, make_bundle, solid, write_jpeg
from lit_edge import bundle as bf
from lit_edge.cli.app import app
from lit_edge.device.config import BackendConfig, EngineConfig
from lit_edge.device.pipeline import Engine


def labelled_folder(root, per_class: int = 20, seed: int = 0):
    """One folder per colour species; each photo's colour mixed with another species' colour
    (up to 60 % of it): near the middle a photo is a coin toss, near its own colour it is sure."""
    rng = np.random.default_rng(seed)
    names = list(COLOURS)
    for name, rgb in COLOURS.items():
        folder = root / name.replace(" ", "_")
        folder.mkdir(parents=True)
        for k in range(per_class):
            other = COLOURS[names[rng.choice([i for i, n in enumerate(names) if n != name])]]
            w = rng.uniform(0.0, 0.6)
            c = (1 - w) * np.array(rgb, dtype=np.float64) + w * np.array(other, dtype=np.float64)
            write_jpeg(folder / f"{k:02d}.jpg", solid(np.clip(c, 0, 255).astype(np.uint8)))
    return root


def run(*args):
    return CliRunner().invoke(app, ["bundle", "calibrate", *map(str, args), "--backend", "onnxruntime-cpu"])


def red_score(bundle) -> float:
    engine = Engine(EngineConfig(bundle=bundle, backend=BackendConfig(backend="onnxruntime-cpu")))
    (d,) = engine.classify_prepared([engine.prepare(solid(COLOURS["Rubra rosea"]))])
    return d.top[0].score


@pytest.mark.parametrize("scale, lower", [(300.0, True), (0.3, False)])
def test_calibrate_moves_the_scale_and_the_runtime_follows(tmp_path, scale, lower):
    bundle = make_bundle(tmp_path / "b", logit_scale=scale)
    data = labelled_folder(tmp_path / "val")
    before = red_score(bundle)

    res = run(bundle, "--data", data, "--format", "folder")
    assert res.exit_code == 0, res.output
    assert "logit scale" in res.output and "held-out ECE" in res.output

    b = bf.load(bundle, verify=True)
    new = b.manifest.model.logit_scale
    assert (new < scale) if lower else (new > scale)
    cal = b.manifest.extra["score_calibration"]
    assert cal["photos"] == 80 and cal["species"] == 4 and cal["split"] == "val"
    assert cal["logit_scale_before"] == scale and cal["logit_scale"] == pytest.approx(new, rel=1e-4)
    ece_old, ece_new = cal["heldout_ece"]
    assert ece_new < ece_old  # fitted on one half, scored on the other
    assert cal["heldout_nll"][1] < cal["heldout_nll"][0]

    after = red_score(bundle)  # a clean red photo: less sure when the scale fell, surer when it rose
    assert (after < before) if lower else (after > before)
    info = CliRunner().invoke(app, ["bundle", "info", str(bundle)])
    assert "scores calibrated on 80 photos of 4 species" in info.output


def test_unreadable_photos_and_unknown_classes_are_counted(tmp_path):
    bundle = make_bundle(tmp_path / "b", logit_scale=300.0)
    data = labelled_folder(tmp_path / "val")
    (data / "Rubra_rosea" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (data / "Ignota_species").mkdir()
    write_jpeg(data / "Ignota_species" / "a.jpg", solid((10, 10, 10)))
    res = run(bundle, "--data", data, "--format", "folder")
    assert res.exit_code == 0, res.output
    assert "1 unreadable" in res.output and "1 classes not in the bundle" in res.output
    cal = json.loads((bundle / "manifest.json").read_text())["extra"]["score_calibration"]
    assert cal["photos"] == 80 and cal["unreadable"] == 1 and cal["classes_not_in_bundle"] == 1


def test_too_few_photos_is_one_line_and_leaves_the_bundle(tmp_path):
    bundle = make_bundle(tmp_path / "b", logit_scale=300.0)
    data = labelled_folder(tmp_path / "val", per_class=1)
    sha = (bundle / "manifest.json").read_bytes()
    res = run(bundle, "--data", data, "--format", "folder")
    assert res.exit_code == 2
    line = res.output.strip()
    assert line.startswith("error:") and "\n" not in line and "at least 10 photos" in line
    assert (bundle / "manifest.json").read_bytes() == sha


def test_class_mass_bundle_is_refused(tmp_path):
    bundle = make_bundle(tmp_path / "b")
    m = json.loads((bundle / "manifest.json").read_text())
    m["scoring"] = {"kind": "class_mass"}
    (bundle / "manifest.json").write_text(json.dumps(m))
    bf.write_manifest(bundle, bf.load(bundle, verify=False).manifest)
    res = run(bundle, "--data", labelled_folder(tmp_path / "val"), "--format", "folder")
    assert res.exit_code == 2 and "no temperature to fit" in res.output
