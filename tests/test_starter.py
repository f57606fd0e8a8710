"""The starter model: real WordNet 3.0 + timm data, and a real (few-class) build with the packaged towers
through the LiT trainer (locked MiniLM, text-feature cache, distill loss).

Needs WordNet 3.0's noun database (``apt-get install wordnet-base``); without it these tests fail with
the one-line instruction, on purpose, since the starter cannot be built either.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lit_edge.bundle import LABEL_COLUMNS
from lit_edge.errors import UserError
from lit_edge.starter import smoke_config, species_list_path
from lit_edge.starter.config import StarterConfig
from lit_edge.starter.hierarchy import imagenet_synsets, leaf_cover
from lit_edge.starter.phrasings import HELDOUT_TEMPLATES, build_phrasings
from lit_edge.starter.species import (
    SOURCES,
    current_names,
    read_checklist,
    read_species_csv,
    species_rows,
    to_csv,
)
from lit_edge.starter.trainer_cache import write_trainer_cache
from lit_edge.starter.wordnet import load_wordnet, parse_line, read_wordnet

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wn():
    return load_wordnet()


@pytest.fixture(scope="module")
def cover(wn):
    return leaf_cover(wn, imagenet_synsets())


def _synset(wn, lemma: str) -> str:
    return next(s.id for s in wn.synsets.values() if lemma in s.lemmas)


# WordNet and the tree above ImageNet ----------------------------------------------------------------
def test_parse_line_reads_lemmas_and_links():
    line = (
        "02119022 05 n 02 red_fox 0 Vulpes_vulpes 0 004 @ 02118333 n 0000 #m 02118854 n 0000 "
        "~ 02119247 n 0000 + 01234567 a 0101 | the common Old World fox  "
    )
    s = parse_line(line)
    assert s.id == "n02119022"
    assert s.lemmas == ["red fox", "Vulpes vulpes"]
    assert s.hypernyms == ["n02118333"] and s.member_holonyms == ["n02118854"]
    assert s.hyponyms == ["n02119247"]  # the adjective pointer is not a noun link
    assert s.gloss == "the common Old World fox"


def test_unreadable_wordnet_is_one_clear_error(tmp_path):
    bad = tmp_path / "data.noun"
    bad.write_text("00001740 03 n zz entity 0 | broken\n")
    with pytest.raises(UserError, match="cannot read the WordNet noun database.*wordnet-base"):
        read_wordnet(bad)


def test_imagenet_classes_are_wordnet_synsets(wn):
    classes = imagenet_synsets()
    assert len(classes) == 1000 and all(c in wn for c in classes)
    assert wn[classes[281]].lemmas[0] == "tabby"


def test_domestic_cat_covers_the_five_cat_classes(wn, cover):
    assert wn["n02121808"].lemmas[-1] == "Felis catus"
    assert sorted(cover["n02121808"]) == [281, 282, 283, 284, 285]


def test_fox_and_genus_covers(wn, cover):
    assert sorted(cover[_synset(wn, "fox")]) == [277, 278, 279, 280]  # red, kit, Arctic, grey fox
    assert sorted(cover[_synset(wn, "genus Vulpes")]) == [277, 278]  # members, not hyponyms
    felidae = sorted(cover[_synset(wn, "family Felidae")])
    assert felidae == list(range(281, 294))  # domestic cats + cougar, lynx and the big cats
    assert len(cover[_synset(wn, "dog")]) == 118
    assert len(cover[_synset(wn, "entity")]) == 1000


# species list ----------------------------------------------------------------------------------------
def test_committed_species_list_is_up_to_date(wn):
    assert species_list_path().read_text(encoding="utf-8") == to_csv(current_names(species_rows(wn)))


def test_species_list_has_current_names_with_wordnets_as_synonyms():
    from lit_edge.bundle import NameIndex, read_labels

    labels = read_labels(species_list_path())
    rows = {r["scientific_name"]: r for r in read_species_csv(species_list_path())}
    index = NameIndex(labels)
    for old, new, family in (
        ("Euarctos americanus", "Ursus americanus", "Ursidae"),
        ("Thalarctos maritimus", "Ursus maritimus", "Ursidae"),
        ("Alopex lagopus", "Vulpes lagopus", "Canidae"),
        ("Egretta albus", "Ardea alba", "Ardeidae"),
    ):
        assert labels[index.get(old)].scientific_name == new  # the old name finds the new row
        assert (rows[new]["family"], rows[new]["synonyms"], rows[new]["status"]) == (family, old, "renamed")
        assert old not in rows
    assert rows["Ailuropoda melanoleuca"]["family"] == "Ursidae"  # not WordNet's Procyonidae
    assert rows["Ardea alba"]["order"] == "Pelecaniformes"
    # every row cites a checklist; the unchecked ones say so
    assert all(r["source"] in SOURCES for r in rows.values())
    assert {r["status"] for r in rows.values()} <= {"accepted", "renamed", "unverified"}
    assert "Luscinia megarhynchos" not in rows  # its ImageNet class shows bulbuls: excluded


def test_checklist_covers_every_wordnet_row_once(wn):
    checklist = read_checklist()
    names = {r.row["scientific_name"] for r in species_rows(wn)}
    assert set(checklist) == names
    accepted = [r["scientific_name"] for r in checklist.values() if r["status"] != "excluded"]
    assert len(accepted) == len(set(accepted))  # two WordNet rows never become one name


def test_species_list_has_ranks_and_parents():
    rows = {r["scientific_name"]: r for r in read_species_csv(species_list_path())}
    assert list(next(iter(rows.values())))[: len(LABEL_COLUMNS)] == list(LABEL_COLUMNS)
    cat = rows["Felis catus"]
    assert (cat["kingdom"], cat["class"], cat["order"], cat["family"], cat["genus"], cat["species"]) == (
        "Animalia",
        "Mammalia",
        "Carnivora",
        "Felidae",
        "Felis",
        "catus",
    )
    assert rows["Danaus plexippus"]["order"] == "Lepidoptera"
    for name in ("Vulpes vulpes", "Haliaeetus leucocephalus", "Canis familiaris", "Canis lupus"):
        assert name in rows
    # breeds such as "Welsh terrier" look like binomials but are not species
    assert not any(n.split()[0] in {"Welsh", "Belgian", "Spanish"} for n in rows)
    assert sorted(int(r["id"]) for r in rows.values()) == list(range(len(rows)))


def test_species_list_reads_as_taxa():
    from lit_edge.taxonomy import read_species_list

    taxa = read_species_list(species_list_path())
    assert len(taxa) > 100
    assert any(t.scientific_name == "Felis catus" and t.family == "Felidae" for t in taxa)


# phrasings and loss ------------------------------------------------------------------------------
def test_heldout_templates_and_names_never_reach_training(wn, cover):
    cfg = StarterConfig(heldout_lemma_fraction=0.5)
    p = build_phrasings(cfg, wn, imagenet_synsets(), cover, species_rows(wn))
    trained = {t for target in p.targets for t in target.texts}
    assert not trained & set(p.eval_texts)
    assert not any(h.format("").strip(" .") in t for t in trained for h in HELDOUT_TEMPLATES[:2])
    held = [t for t, h in zip(p.eval_texts, p.eval_heldout_name, strict=True) if h]
    assert held, "half of the secondary names should be held out"
    cat = next(t for t in p.targets if t.synset == "n02121808")
    assert cat.classes == (281, 282, 283, 284, 285) and "Felis catus" in cat.texts


# a real build -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The smoke recipe built by the config file's real entry point, in a subprocess."""
    out = tmp_path_factory.mktemp("starter") / "ckpt"
    cmd = [sys.executable, str(ROOT / "train" / "starter.py"), "--smoke", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out, cmd, env


@pytest.mark.slow
def test_build_writes_a_loadable_checkpoint(built):
    from lit_edge.model import load_checkpoint

    out, _, _ = built
    doc = json.loads((out / "config.json").read_text())
    starter = doc["extra"]["starter"]
    assert starter["config"]["classes"] == list(smoke_config().classes)
    metrics = starter["metrics"]
    # the trainer ran: epochs x (phrasings // batch) steps, and the held-out phrasings were scored
    assert metrics["steps"] == smoke_config().epochs * (metrics["phrasings"] // smoke_config().batch_size)
    assert metrics["heldout_texts"] > 0 and metrics["heldout_template_top1"] >= 0.9
    assert not out.with_name(out.name + ".work").exists()  # the trainer's work folder is cleaned up
    model = load_checkpoint(out)
    assert model.config.text.output == "sqrt_softmax" and model.config.text.lock_layers == -1
    assert float(model.logit_scale.detach().exp()) == pytest.approx(smoke_config().logit_scale)  # kept fixed
    emb = model.encode_text(model.tokenize(["red fox"]))
    assert emb.shape == (1, 1000) and torch.allclose(emb.norm(dim=-1), torch.ones(1))
    assert int(emb.argmax()) == 277  # red fox


@pytest.mark.slow
def test_built_starter_exports_to_a_bundle_that_finds_the_cat(built, tmp_path):
    """The trainer-built checkpoint through the real exporter (fp32 ONNX), scored with ONNX Runtime."""
    import onnxruntime as ort

    from lit_edge import bundle as bf
    from lit_edge.export.calib import fit
    from lit_edge.export.writer import BundleConfig, build_bundle
    from lit_edge.model import load_checkpoint
    from lit_edge.starter.evaluate import real_photos

    species = tmp_path / "species.csv"
    species.write_text(
        "scientific_name,common_name,kingdom,class,family,genus,species\n"
        "Felis catus,Domestic cat,Animalia,Mammalia,Felidae,Felis,catus\n"
        "Vulpes vulpes,Red fox,Animalia,Mammalia,Canidae,Vulpes,vulpes\n"
        "Haliaeetus leucocephalus,Bald eagle,Animalia,Aves,Accipitridae,Haliaeetus,leucocephalus\n"
        "Danaus plexippus,Monarch,Animalia,Insecta,Nymphalidae,Danaus,plexippus\n",
        encoding="utf-8",
    )
    cfg = BundleConfig(flavours=("fp32",), classifiers=False)
    out = build_bundle(load_checkpoint(built[0]), species, tmp_path / "bundle", cfg=cfg, checkpoint=built[0])
    b = bf.load(out)
    (cat,) = real_photos(names=("chelsea",))
    image = fit(cat.pixels, b.manifest.preprocess)[None]
    sess = ort.InferenceSession(str(b.image_tower("fp32")), providers=["CPUExecutionProvider"])
    scores = sess.run(None, {"image": image})[0] @ b.text_embeddings.T
    assert b.labels[int(scores.argmax())].scientific_name == "Felis catus"


@pytest.mark.slow
def test_second_build_reuses_and_a_changed_recipe_rebuilds(built, tmp_path):
    out, cmd, env = built
    before = (out / "model.safetensors").stat().st_mtime_ns
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0 and "reusing" in again.stderr
    assert (out / "model.safetensors").stat().st_mtime_ns == before
    copy = tmp_path / "ckpt"
    shutil.copytree(out, copy)
    cmd = [*cmd[:-1], str(copy), "--set", "epochs=2"]
    changed = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert changed.returncode == 0 and "reusing" not in changed.stderr
    assert json.loads((copy / "config.json").read_text())["extra"]["starter"]["config"]["epochs"] == 2
    assert not (tmp_path / "ckpt.building").exists()


@pytest.mark.slow
def test_built_starter_knows_felis_catus_on_chelsea(built):
    """Scientific names as the only labels: the cat photo (and crops of it) picks Felis catus."""
    from lit_edge.model import load_checkpoint
    from lit_edge.starter.evaluate import real_photos, species_contest

    model = load_checkpoint(built[0])
    names = [
        "Felis catus",
        "Canis lupus",
        "Vulpes vulpes",
        "Panthera leo",
        "Danaus plexippus",
        "Haliaeetus leucocephalus",
    ]
    photos = real_photos(crops_per_photo=3, names=("chelsea",))
    results = species_contest(model, photos, names, expected="Felis catus")
    assert [r.winner for r in results] == ["Felis catus"] * len(photos)
    assert min(r.margin for r in results) > 0.1


def test_unknown_override_is_refused():
    with pytest.raises(ValueError, match="unknown starter config keys"):
        StarterConfig().override(epoch=3)


def test_config_file_matches_library_defaults():
    sys.path.insert(0, str(ROOT / "train"))
    try:
        import starter as recipe
    finally:
        sys.path.pop(0)
    assert recipe.get_config() == StarterConfig()
    assert recipe.get_config("smoke") == smoke_config()


def test_targets_as_a_trainer_feature_cache(tmp_path):
    """The targets open in the trainer's FeatureCache: a row per phrasing, sqrt(q) of its target."""
    from lit_edge.train.cache import FeatureCache

    cache = FeatureCache(write_trainer_cache(tmp_path / "cache", smoke_config()))
    assert cache.dim == 1000 and len(cache.taxa) == len(cache.captions)
    assert len(cache) == sum(len(texts) for texts in cache.captions.values())
    assert np.bincount(cache.labels).tolist() == [len(cache.captions[i]) for i in range(len(cache.taxa))]
    rows = cache.features(np.arange(len(cache)))
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-3)
    cat = next(i for i, t in enumerate(cache.taxa) if t["scientific_name"] == "Felis catus")
    for row in rows[cache.labels == cat]:
        assert np.flatnonzero(row).tolist() == [281, 282, 285]  # the smoke recipe's cat classes
    assert "Felis catus" in cache.captions[cat]


def test_cli_build_reuses_an_up_to_date_starter(tmp_path, monkeypatch):
    """The CLI entry prints the starter folder; with a matching fingerprint nothing is rebuilt."""
    import typer
    from typer.testing import CliRunner

    from lit_edge import paths
    from lit_edge.starter.build import fingerprint
    from lit_edge.starter.cli import build

    monkeypatch.setenv("LIT_EDGE_HOME", str(tmp_path))
    folder = paths.starter_checkpoint_dir()
    folder.mkdir(parents=True)
    doc = {"extra": {"starter": {"fingerprint": fingerprint(StarterConfig())}}}
    (folder / "config.json").write_text(json.dumps(doc))
    app = typer.Typer()
    app.command()(build)
    result = CliRunner().invoke(app, [])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json"]


def test_starter_towers_have_their_own_folders_and_an_unknown_one_is_one_line(tmp_path, monkeypatch):
    """``--tower lite2`` builds beside the default starter, never over it; a typo is one error line."""
    from typer.testing import CliRunner

    from lit_edge import paths
    from lit_edge.cli.app import app
    from lit_edge.starter.config import TOWERS, tower_folder

    monkeypatch.setenv("LIT_EDGE_HOME", str(tmp_path))
    monkeypatch.delenv("LIT_EDGE_BUNDLE", raising=False)
    assert paths.starter_checkpoint_dir(tower_folder("lite0")) == tmp_path / "models" / "starter"
    assert paths.starter_bundle_dir(tower_folder("lite0")) == paths.default_bundle_dir()
    assert paths.starter_bundle_dir(tower_folder("lite2")) == tmp_path / "bundles" / "starter-lite2"
    assert TOWERS["lite2"] == "lit-effnetlite2-minilm-classdist"
    for args in (["train", "starter", "--tower", "lite3"], ["export", "starter", "--tower", "lite3"]):
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 2, res.output
        assert res.output.strip().startswith("error: unknown starter tower 'lite3'")
        assert "\n" not in res.output.strip()
    assert not (tmp_path / "models").exists()


def test_animals_no_species_covers_get_a_row_with_their_phylum_and_class(wn):
    """WordNet's groups give each unlisted ImageNet animal its current phylum and class, nothing
    finer; every animal class the species rows do not cover gets exactly one such row."""
    from lit_edge.starter.blank import animal_classes, background_rows, unlisted_taxon
    from lit_edge.starter.hierarchy import imagenet_synsets

    index = {s: i for i, s in enumerate(imagenet_synsets())}
    expect = {
        "n02051845": ("Chordata", "Aves"),  # pelican
        "n02397096": ("Chordata", "Mammalia"),  # warthog
        "n01440764": ("Chordata", "Actinopterygii"),  # tench
        "n01484850": ("Chordata", "Elasmobranchii"),  # great white shark
        "n01910747": ("Cnidaria", ""),  # jellyfish
        "n02165456": ("Arthropoda", "Insecta"),  # ladybug
    }
    assert {s: unlisted_taxon(index[s], wn) for s in expect} == expect
    animals = animal_classes(wn)
    covered = frozenset(sorted(animals)[:300])
    rows = background_rows(0, 1000, covered=covered, wn=wn)
    unlisted = [(lab, c) for lab, c in zip(rows.labels, rows.classes, strict=True) if lab.outcome == "animal"]
    assert sorted(i for _, c in unlisted for i in c) == sorted(animals - covered)
    assert all(lab.rank("genus") == lab.rank("family") == lab.rank("kingdom") == "" for lab, _ in unlisted)
    assert sum(bool(lab.rank("class")) for lab, _ in unlisted) >= len(unlisted) * 0.8
    assert not any(lab.outcome == "animal" for lab in background_rows(0, 1000, wn=wn).labels)
