"""Scores to decisions on a real bundle's labels: top-k, roll-up, uncertain, species restriction."""

from __future__ import annotations

import numpy as np
import pytest

from bundle_factory import COLOURS, make_bundle, solid
from lit_edge.bundle import load
from lit_edge.device.classify import Classifier, ClassifyConfig
from lit_edge.device.pipeline import Engine, EngineConfig
from lit_edge.errors import UserError


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return load(make_bundle(tmp_path_factory.mktemp("b")))


def _classifier(bundle, **kw) -> Classifier:
    m = bundle.manifest.model
    return Classifier(
        bundle.text_embeddings, bundle.labels, m.logit_scale, m.logit_bias, ClassifyConfig(**kw)
    )


def _emb(bundle, weights: dict[int, float]) -> np.ndarray:
    """An embedding mixing class embeddings, renormalised (what a photo between classes looks like)."""
    e = sum(w * bundle.text_embeddings[i] for i, w in weights.items())
    return (e / np.linalg.norm(e))[None, :].astype(np.float32)


def test_clear_match_is_a_species_with_softmax_top_k(bundle):
    clf = _classifier(bundle, top_k=3)
    (d,) = clf(_emb(bundle, {2: 1.0}))
    assert (d.rank, d.name, d.label_id) == ("species", "Viridis silva", 2)
    assert len(d.top) == 3 and d.top[0].score > 0.99
    assert [p.score for p in d.top] == sorted((p.score for p in d.top), reverse=True)
    probs = clf.probabilities(_emb(bundle, {2: 1.0}))
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)


def test_between_two_species_of_a_genus_rolls_up_to_the_genus(bundle):
    (d,) = _classifier(bundle)(_emb(bundle, {0: 1.0, 1: 1.0}))
    assert (d.rank, d.name, d.label_id) == ("genus", "Rubra", None)
    assert d.score > 0.9 and d.top[0].scientific_name.startswith("Rubra")


def test_between_genera_of_a_family_rolls_up_further(bundle):
    (d,) = _classifier(bundle, threshold=0.6)(_emb(bundle, {0: 1.0, 2: 1.0}))  # red + green: ~0.5 each
    assert (d.rank, d.name) == ("family", "Chromidae")


def test_nothing_clears_the_threshold_is_uncertain(bundle):
    zero = np.zeros((1, bundle.text_embeddings.shape[1]), np.float32)  # all four classes equal
    (d,) = _classifier(bundle, threshold=0.7)(zero)
    assert (d.rank, d.name) == ("family", "Chromidae")  # the lowest rank holding 3 of 4: 0.75
    (d,) = _classifier(bundle, threshold=0.8)(zero)
    assert (d.rank, d.name, d.label_id) == ("uncertain", "uncertain", None)
    assert d.score == pytest.approx(0.25, abs=1e-4)


def test_margin_demands_a_lead(bundle):
    e = _emb(bundle, {0: 1.0, 1: 0.8})
    assert _classifier(bundle, margin=0.0, threshold=0.5)(e)[0].rank == "species"
    assert _classifier(bundle, margin=0.99, threshold=0.5)(e)[0].rank == "genus"


def test_species_file_restricts_and_renormalises(bundle, tmp_path):
    f = tmp_path / "keep.txt"
    f.write_text("# only these\nrubra ROSEA\nCaerulea mare\n", encoding="utf-8")
    clf = _classifier(bundle, species_file=f)
    assert [lab.scientific_name for lab in clf.labels] == ["Rubra rosea", "Caerulea mare"]
    (d,) = clf(_emb(bundle, {1: 1.0}))  # purple, but purple is not allowed: red is nearer than blue
    assert {p.scientific_name for p in d.top} <= {"Rubra rosea", "Caerulea mare"}
    assert sum(p.score for p in d.top) == pytest.approx(1.0, abs=1e-5)


def test_species_file_with_unknown_names_lists_them(bundle, tmp_path):
    f = tmp_path / "keep.txt"
    f.write_text("Rubra rosea\nPanthera leo\nUrsus arctos\n", encoding="utf-8")
    with pytest.raises(
        UserError, match=r"2 name\(s\) not in the bundle's species list: Panthera leo, Ursus arctos"
    ):
        _classifier(bundle, species_file=f)


def test_engine_classifies_colours_end_to_end(bundle):
    engine = Engine(EngineConfig(bundle=bundle.root))
    images = [engine.prepare(solid(rgb, (60, 80))) for rgb in COLOURS.values()]
    assert [d.name for d in engine.classify_prepared(images)] == list(COLOURS)


def test_tower_and_text_matrix_of_different_models_are_refused(tmp_path):
    import json

    from lit_edge.bundle import Manifest, write_manifest

    folder = make_bundle(tmp_path / "b", dim=16)
    np.save(folder / "text_embeddings.npy", np.eye(4, 8, dtype=np.float32))  # 8-d, tower gives 16-d
    m = Manifest.from_dict(json.loads((folder / "manifest.json").read_text()), folder)
    write_manifest(folder, m)  # checksums are right: only the shapes disagree
    with pytest.raises(UserError, match=r"outputs shape \[1, 16\].*text embeddings are 8-d"):
        Engine(EngineConfig(bundle=folder))
