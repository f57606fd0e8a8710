"""The blank ("no animal") outcome: background rows in a bundle, the runtime's rule, and field data.

Decision-rule tests use tiny hand-made matrices (rows along the axes, so every score is known);
the bundle tests rewrite a real colour bundle (``bundle_factory``) whose black photos are
background, and run the real CLI, ONNX Runtime and SQLite on it.
"""

from __future__ import annotations

import csv
import json
import sqlite3

import numpy as np
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from bundle_factory import COLOURS, jpeg_with_exif, make_bundle, solid
from lit_edge.bundle import BLANK, RANKS, Label, Manifest, load, write_manifest
from lit_edge.cli.app import app
from lit_edge.device.classify import Classifier, ClassifyConfig
from lit_edge.export.species import set_background

runner = CliRunner()


def _label(i: int, name: str, genus: str = "", kingdom: str = "") -> Label:
    ranks = dict.fromkeys(RANKS, "")
    ranks.update(genus=genus, kingdom=kingdom, species=name if genus else "")
    return Label(i, name, "", tuple(ranks.items()))


#: Two species of one genus on axes 0 and 1, two background rows on axes 2 and 3.
LABELS = [
    _label(0, "Rubra rosea", "Rubra", "Animalia"),
    _label(1, "Rubra purpurea", "Rubra", "Animalia"),
    _label(2, BLANK),
    _label(3, BLANK),
]
SCALE = 10.0


def _clf(labels=LABELS, **kw) -> Classifier:
    return Classifier(np.eye(len(labels), 4, dtype=np.float32), labels, SCALE, None, ClassifyConfig(**kw))


def _emb(*x: float) -> np.ndarray:
    e = np.array(x, dtype=np.float32)
    return (e / np.linalg.norm(e))[None, :]


def _no_background(**kw) -> Classifier:
    return Classifier(np.eye(2, 4, dtype=np.float32), LABELS[:2], SCALE, None, ClassifyConfig(**kw))


def test_embedding_in_the_background_subspace_is_blank_and_top_k_holds_species_only():
    (d,) = _clf(top_k=5)(_emb(0.0, 0.0, 1.0, 0.0))
    assert (d.rank, d.name, d.label_id, d.score) == ("blank", "blank", None, pytest.approx(1.0))
    assert [t.scientific_name for t in d.top] == ["Rubra rosea", "Rubra purpurea"]
    assert not d.named  # what live detection prints and saves frames for


def test_background_rows_add_up_and_a_strong_species_does_not_outvote_them():
    # 0.36 of the embedding's energy on a species, 0.32 on each background row: each row alone is
    # below one half, the two together (the subspace) hold 0.64
    y = np.sqrt((1 - 0.36) / 2)
    e = _emb(0.6, 0.0, y, y)
    (d,) = _clf()(e)
    assert (d.rank, d.score) == ("blank", pytest.approx(0.64, abs=1e-5))
    assert _clf(LABELS[:3])(e)[0].rank != "blank"  # one row's share alone: 0.32
    # below the blank threshold the decision is exactly the one without background rows
    (d,) = _clf(blank_threshold=0.7)(e)
    (same,) = _no_background()(e)
    assert (d.rank, d.name, d.label_id, d.score) == (same.rank, same.name, same.label_id, same.score)
    assert (d.rank, d.name) == ("species", "Rubra rosea")


def test_species_that_wins_is_decided_as_before():
    (d,) = _clf()(_emb(1.0, 0.0, 0.2, 0.2))
    assert (d.rank, d.name, d.label_id) == ("species", "Rubra rosea", 0) and d.named
    (d,) = _clf()(_emb(1.0, 1.0, 0.2, 0.0))  # between two species of a genus: roll-up
    assert (d.rank, d.name) == ("genus", "Rubra")


def test_roll_up_ignores_background_rows_even_with_ranks():
    # add_species re-reads old rows as taxa, so a background row may carry genus 'blank'
    labels = [*LABELS[:2], _label(2, BLANK, "blank"), _label(3, BLANK, "blank")]
    (d,) = _clf(labels, blank_threshold=1.01)(_emb(0.0, 0.0, 1.0, 1.0))
    assert (d.rank, d.name) == ("genus", "Rubra")  # the two species tie; never genus 'blank'
    assert all(t.scientific_name != BLANK for t in d.top)


def test_species_file_keeps_the_background_rows(tmp_path):
    f = tmp_path / "keep.txt"
    f.write_text("Rubra purpurea\n", encoding="utf-8")
    clf = _clf(species_file=f)
    assert [lab.scientific_name for lab in clf.labels] == ["Rubra purpurea"]
    assert len(clf.blank_labels) == 2
    assert clf(_emb(0.0, 0.0, 0.0, 1.0))[0].rank == "blank"
    (d,) = clf(_emb(1.0, 0.0, 0.0, 0.0))  # rosea is not allowed: the only species left takes it
    assert (d.rank, d.name) == ("species", "Rubra purpurea")


def test_overlapping_background_rows_span_their_subspace():
    from lit_edge.device.classify import background_basis

    rows = np.array([[0, 0, 1, 0], [0, 0, 0.6, 0.8], [0, 0, 0.8, 0.6]], dtype=np.float32)
    basis = background_basis(rows)  # three rows, two directions
    assert basis.shape == (2, 4)
    np.testing.assert_allclose(basis @ basis.T, np.eye(2), atol=1e-5)
    clf = Classifier(
        np.concatenate([np.eye(2, 4), rows]).astype(np.float32),
        [*LABELS[:2], *(_label(2 + k, BLANK) for k in range(3))],
        SCALE,
        None,
        ClassifyConfig(),
    )
    np.testing.assert_allclose(clf.blank_scores(_emb(0.0, 0.0, 0.0, 1.0)), [1.0], atol=1e-5)
    np.testing.assert_allclose(clf.blank_scores(_emb(1.0, 0.0, 0.0, 1.0)), [0.5], atol=1e-5)


def test_bundle_without_background_rows_is_unchanged():
    labels = LABELS[:2]
    clf = Classifier(np.eye(2, 4, dtype=np.float32), labels, SCALE, None, ClassifyConfig())
    assert clf.blank_labels == []
    e = _emb(0.0, 0.0, 1.0, 0.0)  # nothing like either species: they tie, the genus holds all
    assert clf.probabilities(e).shape == (1, 2)
    (d,) = clf(e)
    assert (d.rank, d.name, d.score) == ("genus", "Rubra", pytest.approx(1.0))


# --- a real bundle with a background row --------------------------------------------------------

BLACK = (0, 0, 0)
GPS = (51.18, 5.65, 30.0)


def _black_embedding(bundle_dir) -> np.ndarray:
    """The colour tower's embedding of a black photo, through ONNX Runtime."""
    b = load(bundle_dir)
    sess = ort.InferenceSession(str(b.image_tower("fp32")), providers=["CPUExecutionProvider"])
    return sess.run(["embedding"], {"image": solid(BLACK, (32, 32))[None]})[0]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """The colour bundle with a classifier graph, then one background row: 'black is empty'."""
    from lit_edge.export.head import add_scores_head

    folder = make_bundle(tmp_path_factory.mktemp("blank") / "bundle")
    b = load(folder)
    add_scores_head(folder / "image_fp32.onnx", folder / "classifier_fp32.onnx", b.text_embeddings, 30.0)
    m = Manifest.from_dict(json.loads((folder / "manifest.json").read_text()), folder)
    m.classifiers = {"fp32": "classifier_fp32.onnx"}
    write_manifest(folder, m)
    row = Label(0, BLANK, "no animal: darkness", tuple((r, "") for r in RANKS))
    set_background(folder, [row], _black_embedding(folder), {"recipe": "test"})
    return folder


def test_set_background_appends_rows_after_the_species_and_rewrites_the_graphs(bundle):
    b = load(bundle)  # verifies every checksum
    assert [(lab.id, lab.scientific_name) for lab in b.labels] == [
        *((i, n) for i, n in enumerate(COLOURS)),
        (4, "blank"),
    ]
    assert b.labels[4].is_blank and not b.labels[0].is_blank
    assert b.manifest.num_classes == 5 and b.manifest.extra["background"] == {"recipe": "test", "rows": 1}
    sess = ort.InferenceSession(str(bundle / "classifier_fp32.onnx"), providers=["CPUExecutionProvider"])
    (scores,) = sess.run(["scores"], {"image": solid(BLACK, (32, 32))[None]})
    assert scores.shape == (1, 5)
    np.testing.assert_allclose(scores, 30.0 * _black_embedding(bundle) @ b.text_embeddings.T, atol=1e-4)
    assert int(np.argmax(scores)) == 4


def test_bundle_info_and_verify_count_background_rows_apart_from_species(bundle):
    for cmd in ("info", "verify"):
        r = runner.invoke(app, ["bundle", cmd, str(bundle)])
        assert r.exit_code == 0, r.output
        assert "4 species + 1 background rows" in " ".join(r.output.split())


def test_set_background_replaces_and_removes_rows(tmp_path):
    folder = make_bundle(tmp_path / "b")
    species = load(folder).text_embeddings.copy()
    empty = tuple((r, "") for r in RANKS)
    rows = [Label(0, BLANK, f"no animal: {n}", empty) for n in ("a", "b")]
    set_background(folder, rows, np.eye(2, species.shape[1], dtype=np.float32), {"recipe": 1})
    set_background(folder, rows[:1], np.eye(1, species.shape[1], dtype=np.float32), {"recipe": 2})
    b = load(folder)
    assert [lab.scientific_name for lab in b.labels].count(BLANK) == 1
    assert b.manifest.extra["background"] == {"recipe": 2, "rows": 1}
    np.testing.assert_array_equal(b.text_embeddings[:4], species)  # species rows bit-identical
    set_background(folder, [], np.zeros((0, 0), np.float32), {})
    b = load(folder)
    assert len(b.labels) == 4 and "background" not in b.manifest.extra
    assert not (tmp_path / "b.background").exists() and not (tmp_path / "b.old").exists()


def test_tag_decides_blank_and_field_data_says_so(bundle, tmp_path):
    photos = tmp_path / "card"
    photos.mkdir()
    jpeg_with_exif(photos / "empty.jpg", solid(BLACK), when="2024:05:01 06:30:00", gps=GPS)
    jpeg_with_exif(photos / "rose.jpg", solid(COLOURS["Rubra rosea"]), when="2024:05:01 08:00:00", gps=GPS)
    db = tmp_path / "tags.db"
    r = runner.invoke(app, ["tag", str(photos), "--bundle", str(bundle), "--db", str(db), "--no-progress"])
    assert r.exit_code == 0, r.output

    con = sqlite3.connect(db)
    media = {
        p.rsplit("/", 1)[-1]: (name, rank, label, mid)
        for p, name, rank, label, mid in con.execute(
            "SELECT path, top_name, top_rank, top_label_id, id FROM media"
        )
    }
    assert media["empty.jpg"][:3] == ("blank", "blank", None)
    assert media["rose.jpg"][:3] == ("Rubra rosea", "species", 0)
    preds = [
        n
        for (n,) in con.execute(
            "SELECT scientific_name FROM predictions WHERE media_id = ?", (media["empty.jpg"][3],)
        )
    ]
    con.close()
    assert preds and BLANK not in preds  # the top-k lists species only

    r = runner.invoke(app, ["db", "summary", str(db)])
    assert r.exit_code == 0, r.output
    assert "2 media, 2 classified (1 blank), 0 failed" in r.output

    out = tmp_path / "dp"
    r = runner.invoke(app, ["db", "export", str(db), "--format", "camtrap-dp", "-o", str(out)])
    assert r.exit_code == 0, r.output
    with open(out / "observations.csv", newline="", encoding="utf-8") as f:
        obs = list(csv.DictReader(f))
    media_obs = {o["mediaID"]: o for o in obs if o["observationLevel"] == "media"}
    by_file = {}
    with open(out / "media.csv", newline="", encoding="utf-8") as f:
        for m in csv.DictReader(f):
            by_file[m["fileName"]] = media_obs[m["mediaID"]]
    assert (by_file["empty.jpg"]["observationType"], by_file["empty.jpg"]["scientificName"]) == ("blank", "")
    assert (by_file["rose.jpg"]["observationType"], by_file["rose.jpg"]["scientificName"]) == (
        "animal",
        "Rubra rosea",
    )

    html = tmp_path / "report.html"
    r = runner.invoke(app, ["report", str(db), "-o", str(html)])
    assert r.exit_code == 0, r.output
    text = html.read_text(encoding="utf-8")
    assert "2 classified (1 blank)" in text and "Blank (no animal): 1 photos" in text

    xmp = tmp_path / "xmp"
    r = runner.invoke(app, ["db", "export", str(db), "--format", "xmp", "-o", str(xmp)])
    assert r.exit_code == 0 and "wrote 2 XMP sidecar(s)" in r.output, r.output
    empty = (xmp / "empty.jpg.xmp").read_text(encoding="utf-8")
    assert "<rdf:li>blank</rdf:li>" in empty and "Rubra" not in empty


# --- the starter's background rows (real WordNet 3.0, as the starter itself needs) --------------


def test_blank_threshold_flag_reaches_the_decision(bundle, tmp_path):
    photos = tmp_path / "card"
    photos.mkdir()
    jpeg_with_exif(photos / "rose.jpg", solid(COLOURS["Rubra rosea"]), when="2024:05:01 08:00:00", gps=GPS)
    ranks = {}
    for value in ("0.5", "0"):  # 0: any share of background evidence is enough
        db = tmp_path / f"tags-{value}.db"
        args = ["tag", str(photos), "--bundle", str(bundle), "--db", str(db), "--no-progress"]
        r = runner.invoke(app, [*args, "--blank-threshold", value])
        assert r.exit_code == 0, r.output
        with sqlite3.connect(db) as con:
            ranks[value] = con.execute("SELECT top_rank FROM media").fetchone()[0]
    assert ranks == {"0.5": "species", "0": "blank"}
    r = runner.invoke(app, ["tag", str(photos), "--bundle", str(bundle), "--blank-threshold", "2"])
    assert r.exit_code == 2


def test_starter_background_rows_are_the_non_animal_classes_not_claimed_by_a_species(tmp_path):
    from lit_edge.export.starter import _background, add_background
    from lit_edge.starter import blank

    animals = blank.animal_classes()
    assert len(animals) == 398  # ImageNet-1k's animals: everything below animal.n.01

    folder = make_bundle(tmp_path / "b", dim=1000)
    b = load(folder)
    species = b.text_embeddings.copy()
    species[0] = 0.0
    species[0, 996] = 1.0  # a species that is the hen-of-the-woods class: claims it
    np.save(folder / "text_embeddings.npy", species)
    write_manifest(folder, Manifest.from_dict(json.loads((folder / "manifest.json").read_text()), folder))
    recipe = {
        "recipe": blank.RECIPE_VERSION,
        "max_group": 20,
        "claim_share": blank.CLAIM_SHARE,
        "scoring": "class_mass",
        "framing": {"resize_mode": "letterbox"},
    }
    add_background(folder, recipe)
    assert _background(folder) == recipe

    b = load(folder)
    assert (b.manifest.scoring.kind, b.manifest.preprocess.resize_mode) == ("class_mass", "letterbox")
    rows = [i for i, lab in enumerate(b.labels) if lab.outcome]
    kinds = [b.labels[i].outcome for i in rows]
    assert kinds.count("human") == 59 and kinds.count("vehicle") == 79  # WordNet's people and vehicles
    assert kinds == sorted(kinds, key=["human", "vehicle", "blank"].index)
    assert rows == list(range(4, len(b.labels))) and b.manifest.extra["background"]["rows"] == len(rows)
    m = b.text_embeddings[rows]
    np.testing.assert_allclose(np.linalg.norm(m, axis=1), 1.0, atol=1e-6)
    used = m > 0
    assert not used[:, sorted(animals)].any() and not used[:, 996].any()
    singles = {int(np.flatnonzero(r)[0]) for r in used if r.sum() == 1}
    assert singles == set(range(1000)) - animals - {996}
    assert 1 < used.sum(axis=1).max() <= 20  # the WordNet groups, no larger than asked

    add_background(folder, {**recipe, "max_group": 0})  # a new recipe replaces the rows
    assert len(load(folder).labels) == 4 + len(singles)
    add_background(folder, None)  # and a model without the class space has none
    assert len(load(folder).labels) == 4


def test_a_list_of_background_rows_only_is_one_clear_error():
    from lit_edge.errors import UserError

    with pytest.raises(UserError, match="only background"):
        _clf(LABELS[2:])
