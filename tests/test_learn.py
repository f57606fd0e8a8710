"""learn: verified photos make a better bundle. Real parts: the colour bundle's ONNX image tower run by
ONNX Runtime on real (noisy, solid-colour) images, the real bundle writer and loader, and the
runtime's own Classifier deciding held-out photos with the old and the new bundle."""

from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import pytest

from bundle_factory import make_bundle
from lit_edge import bundle as bf
from lit_edge.device.classify import Classifier, ClassifyConfig
from lit_edge.errors import UserError
from lit_edge.learn import LearnConfig, Verified, background, calibrate, folds, learn, rows
from lit_edge.learn.core import runtime_scorer
from lit_edge.learn.write import write

#: The site's look of each label: this site's "Caerulea mare" is violet, which the text rows call
#: Rubra purpurea; "Aurantia sol" is not in the bundle at all; blanks are near-black.
SITE = {
    "Rubra rosea": (255, 0, 0),
    "Caerulea mare": (140, 0, 255),
    "Viridis silva": (0, 255, 0),
    "Rubra purpurea": (255, 0, 200),
    "Aurantia sol": (255, 170, 0),
    "blank": (60, 60, 70),
}


def _photos(rgb, n: int, rng: np.random.Generator, size=(16, 16)) -> np.ndarray:
    """``n`` photos around one colour: per-photo colour jitter plus pixel noise."""
    base = np.asarray(rgb, np.float32) + rng.normal(0, 14, (n, 1, 1, 3))
    img = base + rng.normal(0, 8, (n, *size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def colour_bundle(tmp_path_factory):
    return bf.load(make_bundle(tmp_path_factory.mktemp("learn") / "bundle"))


def _embed(b: bf.Bundle, images: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(b.image_tower("fp32")), providers=["CPUExecutionProvider"])
    return sess.run(["embedding"], {"image": images})[0]


def _site(b: bf.Bundle, per_label: int, seed: int) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    emb, labels = [], []
    for name, rgb in SITE.items():
        emb.append(_embed(b, _photos(rgb, per_label, rng)))
        labels += [name] * per_label
    return np.concatenate(emb), labels


def _right(b_labels, matrix, scale, emb, labels, scoring=bf.Scoring()) -> dict[str, int]:
    decide = Classifier(matrix, b_labels, scale, None, ClassifyConfig(), scoring)
    out = dict.fromkeys(SITE, 0)
    for d, lab in zip(decide(emb), labels, strict=True):
        ok = d.rank == "blank" if lab == "blank" else (d.rank != "blank" and d.top[0].scientific_name == lab)
        out[lab] += ok
    return out


def test_learn_beats_zero_shot_on_held_out_photos_and_the_written_bundle_verifies(colour_bundle, tmp_path):
    b = colour_bundle
    emb, labels = _site(b, 6, seed=0)
    verified = Verified(emb, tuple(labels), tuple("sun bird" if x == "Aurantia sol" else "" for x in labels))
    new = write(b, learn(b, verified), tmp_path / "learned")

    assert bf.load(new.root).manifest.files  # loads and verifies every checksum
    held_emb, held_labels = _site(b, 10, seed=1)  # photos learn never saw
    m = b.manifest.model
    before = _right(b.labels, b.text_embeddings, m.logit_scale, held_emb, held_labels)
    after = _right(new.labels, new.text_embeddings, new.manifest.model.logit_scale, held_emb, held_labels)
    assert sum(after.values()) > sum(before.values())
    assert before["Caerulea mare"] <= 2 and after["Caerulea mare"] >= 9  # the confused species is fixed
    assert before["Aurantia sol"] == 0 and after["Aurantia sol"] >= 9  # the species added from photos
    assert after["blank"] >= 9  # verified blanks made background rows where the bundle had none
    assert all(after[k] >= before[k] - 1 for k in SITE)  # no label worse by more than one photo

    from typer.testing import CliRunner

    from lit_edge.cli.app import app

    shown = CliRunner().invoke(app, ["bundle", "info", str(new.root)])
    assert shown.exit_code == 0 and "learned from 36 verified photos" in " ".join(shown.output.split())


def test_a_class_mass_bundle_is_cross_validated_with_its_own_scoring_and_keeps_its_scale(
    colour_bundle, tmp_path
):
    """A ``class_mass`` bundle's held-out photos are ranked as its runtime ranks them, and it has no
    logit scale to recalibrate: the learned bundle decides better with that scoring, scale unchanged."""
    with bf.edit(tmp_path / "mass", base=colour_bundle.root) as staged:
        staged.manifest.scoring = bf.Scoring("class_mass")
    b = staged.bundle
    emb, labels = _site(b, 6, seed=0)
    learned = learn(b, Verified(emb, tuple(labels)), LearnConfig(background=False))
    # (the colour bundle is no class-distribution model: its rows overlap, so a class's gain can be
    # a neighbour's loss under class mass; only the totals are asserted here)
    new = write(b, learned, tmp_path / "learned")

    assert new.manifest.scoring.kind == "class_mass"
    assert new.manifest.model.logit_scale == b.manifest.model.logit_scale
    assert new.manifest.extra["learn"]["calibration"]["fitted"] is False
    held_emb, held_labels = _site(b, 10, seed=1)
    scale, mass = b.manifest.model.logit_scale, b.manifest.scoring
    before = _right(b.labels, b.text_embeddings, scale, held_emb, held_labels, mass)
    after = _right(new.labels, new.text_embeddings, scale, held_emb, held_labels, mass)
    assert sum(after.values()) > sum(before.values())
    assert before["Aurantia sol"] == 0 and after["Aurantia sol"] >= 9
    cv = new.manifest.extra["learn"]["cv"]
    assert cv["chosen"]["right"] > cv["text_rows"]["right"]  # the CV, scored by class mass, saw the gain


def test_the_class_mass_cv_scores_rows_as_the_runtime_classifier_does(colour_bundle, tmp_path):
    """Candidate species rows share their classes with the bundle's outcome rows, as at run time."""
    with bf.edit(tmp_path / "mass", base=colour_bundle.root) as staged:
        staged.manifest.scoring = bf.Scoring("class_mass")
        t = colour_bundle.text_embeddings
        overlap = rows.normalise(np.stack([t[0] + t[1], t[2] + 0.5 * t[3]]))
        staged.set_rows(
            [*colour_bundle.labels, bf.Label(0, "blank", "no animal: test"), bf.Label(0, "human", "person")],
            np.concatenate([t, overlap]),
        )
    b = staged.bundle
    m = b.manifest
    emb, _ = _site(b, 3, seed=2)
    species = np.array([not lab.outcome for lab in b.labels])
    runtime = Classifier(b.text_embeddings, b.labels, m.model.logit_scale, None, ClassifyConfig(), m.scoring)
    got = runtime_scorer(b)(b.text_embeddings[species], emb)
    np.testing.assert_allclose(got, runtime.scores(emb).species, rtol=1e-5, atol=1e-6)
    assert runtime_scorer(colour_bundle) is None  # softmax ranks by cosine: closed form


def test_a_species_added_from_photos_keeps_its_names_and_the_genus_ranks(colour_bundle, tmp_path):
    b = colour_bundle
    rng = np.random.default_rng(3)
    emb = _embed(b, _photos(SITE["Aurantia sol"], 3, rng))
    emb2 = _embed(b, _photos((255, 60, 150), 2, rng))
    v = Verified(
        np.concatenate([emb, emb2]),
        ("Aurantia sol",) * 3 + ("Rubra  aurea",) * 2,
        ("sun bird",) * 3 + ("golden rose-bird",) * 2,
    )
    new = write(b, learn(b, v), tmp_path / "added")
    added = {lab.scientific_name: lab for lab in new.labels[len(b.labels) :]}
    assert set(added) == {"Aurantia sol", "Rubra aurea"}
    assert (
        added["Aurantia sol"].common_name == "sun bird" and added["Aurantia sol"].rank("genus") == "Aurantia"
    )
    sibling = next(lab for lab in b.labels if lab.scientific_name == "Rubra rosea")
    assert added["Rubra aurea"].rank("family") == sibling.rank("family") == "Chromidae"  # from its genus
    assert [lab.id for lab in new.labels[: len(b.labels)]] == [lab.id for lab in b.labels]  # old ids kept
    assert len({lab.id for lab in new.labels}) == len(new.labels)
    np.testing.assert_allclose(np.linalg.norm(new.text_embeddings, axis=1), 1.0, atol=1e-5)
    prov = new.manifest.extra["learn"]
    assert prov["counts"] == {"Aurantia sol": 3, "Rubra aurea": 2}
    assert prov["added_species"] == ["Aurantia sol", "Rubra aurea"]
    assert prov["parent"]["image_tower_sha256"] == b.manifest.files["image_fp32.onnx"]["sha256"]


def test_learned_bundle_classifier_graphs_are_refolded_with_the_new_rows_and_scale(tmp_path):
    from lit_edge.export.head import add_scores_head

    folder = make_bundle(tmp_path / "with-graphs")
    b = bf.load(folder)
    add_scores_head(folder / "image_fp32.onnx", folder / "classifier_fp32.onnx", b.text_embeddings, 30.0)
    m = b.manifest
    m.classifiers = {"fp32": "classifier_fp32.onnx"}
    bf.write_manifest(folder, m)
    b = bf.load(folder)
    emb, labels = _site(b, 5, seed=4)
    new = write(b, learn(b, Verified(emb, tuple(labels))), tmp_path / "learned")
    images = _photos(SITE["Caerulea mare"], 3, np.random.default_rng(9))
    sess = ort.InferenceSession(str(new.root / "classifier_fp32.onnx"), providers=["CPUExecutionProvider"])
    (scores,) = sess.run(["scores"], {"image": images})
    expect = new.manifest.model.logit_scale * _embed(new, images) @ new.text_embeddings.T
    assert scores.shape == (3, len(new.labels))
    np.testing.assert_allclose(scores, expect, rtol=1e-4, atol=1e-4)


def test_rows_named_human_are_outcome_rows_kept_as_they_are_and_their_photos_counted(tmp_path):
    """A bundle with rows of its own for people: learn neither blends them as a species nor teaches
    the background that people are blank."""
    folder = make_bundle(tmp_path / "b")
    b = bf.load(folder)
    grey = _embed(b, _photos((40, 40, 40), 1, np.random.default_rng(0)))
    labels = [*b.labels, bf.Label(len(b.labels), "human", "person", tuple((r, "") for r in bf.RANKS))]
    np.save(folder / "text_embeddings.npy", np.concatenate([b.text_embeddings, grey]).astype(np.float32))
    bf.write_labels(folder / "labels.csv", labels)
    bf.write_manifest(folder, b.manifest)
    b = bf.load(folder)
    emb, site_labels = _site(b, 3, seed=2)
    site_labels = ["human" if x == "blank" else x for x in site_labels]
    lr = learn(b, Verified(emb, tuple(site_labels)))
    np.testing.assert_array_equal(lr.matrix[len(b.labels) - 1], b.text_embeddings[-1])  # the human row
    assert lr.provenance["skipped"] == {"human (the bundle's own human rows are not relearned)": 3}
    assert "human" not in lr.provenance["counts"] and lr.provenance["background"]["rows_added"] == 0


def test_learn_refuses_embeddings_of_another_model_and_labels_that_teach_nothing(colour_bundle):
    b = colour_bundle
    with pytest.raises(UserError, match="another model"):
        learn(b, Verified(np.ones((3, 8), np.float32) / math.sqrt(8), ("Rubra rosea",) * 3))
    emb, _ = _site(b, 1, seed=0)
    with pytest.raises(UserError, match="no verified photos"):
        learn(b, Verified(emb, ("unknown",) * len(emb)))
    with pytest.raises(UserError, match="method"):
        LearnConfig(method="svm")


def test_write_refuses_to_overwrite_the_parent_and_replaces_an_older_learned_bundle(colour_bundle, tmp_path):
    b = colour_bundle
    emb, labels = _site(b, 3, seed=5)
    lr = learn(b, Verified(emb, tuple(labels)))
    with pytest.raises(UserError, match="learned from"):
        write(b, lr, b.root)
    (tmp_path / "junk").mkdir()
    with pytest.raises(UserError, match="not a bundle"):
        write(b, lr, tmp_path / "junk")
    first = write(b, lr, tmp_path / "new")
    second = write(b, learn(b, Verified(emb[:6], tuple(labels[:6]))), tmp_path / "new")
    assert second.manifest.extra["learn"]["counts"] != first.manifest.extra["learn"]["counts"]
    assert not list(tmp_path.glob("new.*"))  # no staging or replaced folder left behind


# the numpy parts -----------------------------------------------------------------------------------


def test_folds_are_stratified_and_leave_one_out_when_small():
    labels = np.array(["a"] * 7 + ["b"] * 2 + ["c"])
    f = folds.assign(labels)
    assert folds.count(f) == 10 and sorted(f.tolist()) == list(range(10))  # leave-one-out
    big = np.array(["a"] * 40 + ["b"] * 20)
    f = folds.assign(big)
    assert folds.count(f) == 10
    for k in range(10):
        assert (big[f == k] == "a").sum() == 4 and (big[f == k] == "b").sum() == 2


def test_prototype_blend_moves_with_the_photo_count_and_keeps_text_at_infinity():
    text = np.eye(3, 4, dtype=np.float32)
    sums = np.zeros((3, 4))
    sums[0] = [0, 0, 0, 3.0]  # three photos along axis 3
    np.testing.assert_allclose(rows.blend(text, sums, math.inf), text)
    np.testing.assert_allclose(rows.blend(text, sums, 0.0)[0], [0, 0, 0, 1])
    np.testing.assert_allclose(
        rows.blend(text, sums, 3.0)[0], np.array([1, 0, 0, 1]) / math.sqrt(2), atol=1e-6
    )
    added = np.zeros((1, 4), np.float32)
    np.testing.assert_allclose(rows.blend(added, np.array([[0, 2.0, 0, 0]]), math.inf), [[0, 1, 0, 0]])


def test_rows_fit_keeps_the_text_rows_when_photos_do_not_help():
    rng = np.random.default_rng(0)
    text = rows.normalise(rng.normal(size=(4, 16))).astype(np.float32)
    y = np.repeat(np.arange(4), 5)
    emb = rows.normalise(text[y] + rng.normal(0, 0.05, (20, 16))).astype(np.float32)
    fit = rows.fit(emb, y, text)
    assert fit.text.right == 20
    assert fit.chosen.right == 20


@pytest.mark.parametrize("method", ["prototype", "probe"])
def test_rows_fit_learns_a_species_the_text_row_misses(method):
    rng = np.random.default_rng(1)
    text = rows.normalise(rng.normal(size=(4, 16))).astype(np.float32)
    y = np.repeat(np.arange(4), 6)
    look = text.copy()
    look[2] = rows.normalise(text[3:4] + 0.6 * rng.normal(size=(1, 16)))  # species 2 looks like 3's text
    emb = rows.normalise(look[y] + rng.normal(0, 0.05, (24, 16))).astype(np.float32)
    fit = rows.fit(emb, y, text, method=method, scale=30.0)
    assert fit.text.right < 24 and fit.chosen.right > fit.text.right
    assert fit.chosen.method == method
    assert np.argmax(emb[y == 2] @ fit.rows.T, axis=1).tolist() == [2] * 6


def test_background_adds_rows_only_when_held_out_photos_say_so():
    rng = np.random.default_rng(2)
    d = 12
    old = np.eye(d, dtype=np.float32)[:2]
    blank = rows.normalise(np.eye(d)[5] + 0.1 * rng.normal(size=(8, d))).astype(
        np.float32
    )  # outside the old span
    animal = rows.normalise(np.eye(d)[7] + 0.1 * rng.normal(size=(8, d))).astype(np.float32)
    fit = background.fit(
        np.concatenate([blank, animal]), np.r_[np.ones(8), np.zeros(8)].astype(bool), old, 0.5
    )
    assert len(fit.rows) >= 1 and fit.before == 0.5 and fit.after == 1.0
    np.testing.assert_allclose(fit.rows @ old.T, 0, atol=1e-6)  # orthogonal to the old span
    # the old rows already call these blanks blank: nothing to add
    covered = rows.normalise(np.eye(d)[0] + 0.1 * rng.normal(size=(8, d))).astype(np.float32)
    fit = background.fit(
        np.concatenate([covered, animal]), np.r_[np.ones(8), np.zeros(8)].astype(bool), old, 0.5
    )
    assert len(fit.rows) == 0 and fit.after == fit.before == 1.0


def test_calibration_lowers_an_overconfident_scale_and_leaves_small_sets_alone():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 5, 200)
    cos = rng.normal(0.2, 0.05, (200, 5))
    right = rng.random(200) < 0.7
    cos[np.arange(200), y] += np.where(right, 0.1, -0.05)  # right 70% of the time, by a small margin
    cal = calibrate.fit(cos, y, 100.0)
    assert cal.fitted and cal.logit_scale < 100.0 and cal.after < cal.before
    assert cal.logit_scale >= 100.0 / calibrate.SPAN
    small = calibrate.fit(cos[:5], y[:5], 100.0)
    assert not small.fitted and small.logit_scale == 100.0


@pytest.mark.slow
def test_starter_learns_the_grey_heron_from_five_real_night_photos(fieldset, tmp_path):
    """The starter knows no heron (ImageNet never saw Ardea cinerea): five verified photos add it,
    and the other five photos of the same camera, which learn never saw, are decided heron."""
    from lit_edge.device.backends import BackendConfig
    from lit_edge.device.decode import decode_file
    from lit_edge.device.pipeline import Engine, EngineConfig
    from lit_edge.export.starter import ensure_starter_bundle

    engine = Engine(EngineConfig(bundle=ensure_starter_bundle(), backend=BackendConfig("onnxruntime-cpu")))
    photos = sorted((fieldset / "heron").glob("*.JPG"))
    emb = np.stack(
        [engine.backend.embed(engine.prepare(decode_file(p, engine.min_side).rgb)[None])[0] for p in photos]
    )
    b = engine.bundle
    new = write(
        b,
        learn(b, Verified(emb[::2], ("Ardea cinerea",) * len(emb[::2]), ("Grey heron",) * 5)),
        tmp_path / "site",
    )
    m = b.manifest.model

    def herons(bundle):
        decide = Classifier(
            bundle.text_embeddings,
            bundle.labels,
            bundle.manifest.model.logit_scale,
            m.logit_bias,
            ClassifyConfig(),
            bundle.manifest.scoring,
        )
        return sum(d.top[0].scientific_name == "Ardea cinerea" for d in decide(emb[1::2]))

    assert herons(new) >= 4 and not any(lab.scientific_name == "Ardea cinerea" for lab in b.labels)
    heron = next(lab for lab in new.labels if lab.scientific_name == "Ardea cinerea")
    same_genus = [lab for lab in b.labels if lab.rank("genus") == "Ardea"]  # the starter's Ardea alba
    assert heron.common_name == "Grey heron" and heron.rank("genus") == "Ardea"
    assert heron.rank("family") == (same_genus[0].rank("family") if same_genus else "")
    assert bf.load(new.root).manifest.extra["learn"]["added_species"] == ["Ardea cinerea"]
