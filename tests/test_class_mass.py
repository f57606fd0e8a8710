"""Decisions a field user can trust, in a class space (the starter's ``class_mass`` scoring).

A tiny class space of 10 "ImageNet" classes, rows exactly as the starter bundle writes them
(``sqrt`` of the distribution a row covers; one-hot human, vehicle and blank rows), and photos as
head distributions ``p`` (embedding ``sqrt(p)``), so every expected score is a sum of ``p``.

    class: 0 1 2 3 | 4 5        | 6       | 7      | 8       | 9
    row:   Canis familiaris (4) | Vulpes  | (none: | human   | vehicle | blank
                                | lagopus,| animal |         |
                                | vulpes  | no row)|         |
"""

from __future__ import annotations

import numpy as np
import pytest

from lit_edge.bundle import BLANK, RANKS, Label, Scoring
from lit_edge.device.classify import Classifier, ClassifyConfig, class_cover
from lit_edge.outcomes import ANIMAL, HUMAN, UNCERTAIN, VEHICLE

D = 10


def _label(i, name, genus="", family="", synonyms=()):
    ranks = dict.fromkeys(RANKS, "")
    if genus:
        ranks.update(kingdom="Animalia", family=family, genus=genus, species=name.split(" ")[1])
    return Label(i, name, "", tuple(ranks.items()), tuple(synonyms))


def _row(*classes):
    v = np.zeros(D, np.float32)
    v[list(classes)] = 1.0 / np.sqrt(len(classes))
    return v


LABELS = [
    _label(0, "Canis familiaris", "Canis", "Canidae"),
    _label(1, "Vulpes lagopus", "Vulpes", "Canidae", synonyms=("Alopex lagopus",)),
    _label(2, "Vulpes vulpes", "Vulpes", "Canidae"),
    _label(3, HUMAN),
    _label(4, VEHICLE),
    _label(5, BLANK),
]
MATRIX = np.stack([_row(0, 1, 2, 3), _row(4), _row(5), _row(7), _row(8), _row(9)])


def _clf(labels=LABELS, matrix=MATRIX, **kw) -> Classifier:
    return Classifier(matrix, labels, 50.0, None, ClassifyConfig(**kw), Scoring("class_mass"))


def _photo(**mass: float) -> np.ndarray:
    """An embedding sqrt(p) from class masses given as c0=..., c9=... (the rest spread evenly)."""
    p = np.zeros(D)
    for k, v in mass.items():
        p[int(k[1:])] = v
    rest = [i for i in range(D) if f"c{i}" not in mass]
    p[rest] = (1.0 - p.sum()) / len(rest)
    return np.sqrt(p)[None, :].astype(np.float32)


def test_a_rows_score_is_the_heads_mass_on_its_classes():
    (d,) = _clf()(_photo(c4=0.7, c5=0.1))
    assert (d.rank, d.name) == ("species", "Vulpes lagopus")
    assert d.score == pytest.approx(0.7, abs=1e-5)  # the head's mass on its one class
    assert sum(p.score for p in d.top) <= 1.0 + 1e-6


def test_a_broad_row_gets_its_classes_mass_and_no_more_on_a_diffuse_photo():
    # softmax over cosines would give the 4-class dog row the win; here it gets 4/10 of the mass
    (d,) = _clf()(_photo())
    assert d.top[0].scientific_name == "Canis familiaris"
    assert d.top[0].score == pytest.approx(0.4, abs=1e-5)
    assert d.rank not in ("species",)  # 0.4 < 0.5: not named
    (d,) = _clf()(_photo(c0=0.3, c1=0.3))  # mass concentrated on dog classes: the head says dog
    assert (d.rank, d.name) == ("species", "Canis familiaris")


def test_an_animal_no_row_explains_is_animal_not_the_nearest_species():
    (d,) = _clf()(_photo(c6=0.8))
    assert (d.rank, d.name, d.label_id) == (ANIMAL, ANIMAL, None)
    assert d.score == pytest.approx(0.8 + 0.2 * 6 / 9, abs=1e-5)  # every animal class: 0-6


def test_between_two_species_of_a_genus_rolls_up_with_the_summed_mass():
    (d,) = _clf()(_photo(c4=0.35, c5=0.35))
    assert (d.rank, d.name) == ("genus", "Vulpes")
    assert d.score == pytest.approx(0.7, abs=1e-5)


def test_people_rank_first_then_vehicles_then_blank():
    (d,) = _clf()(_photo(c7=0.3, c8=0.6))  # a person beside a car
    assert (d.rank, d.name, d.score) == (HUMAN, HUMAN, pytest.approx(0.3, abs=1e-5))
    (d,) = _clf()(_photo(c7=0.1, c8=0.6))
    assert (d.rank, d.score) == (VEHICLE, pytest.approx(0.6, abs=1e-5))
    (d,) = _clf()(_photo(c9=0.8))
    assert d.rank == BLANK
    (d,) = _clf(human_threshold=0.5)(_photo(c7=0.3, c8=0.6))
    assert d.rank == VEHICLE


def test_species_file_keeps_rows_by_either_name_and_left_out_rows_still_roll_up(tmp_path):
    f = tmp_path / "keep.txt"
    f.write_text("Alopex lagopus\nCanis familiaris\n", encoding="utf-8")
    clf = _clf(species_file=f)
    assert [lab.scientific_name for lab in clf.labels] == ["Canis familiaris", "Vulpes lagopus"]
    (d,) = clf(_photo(c5=0.8))  # a red fox, not kept: never named, but its genus is
    assert (d.rank, d.name) == ("genus", "Vulpes")
    assert all(p.scientific_name != "Vulpes vulpes" for p in d.top)


def test_a_guessed_row_shares_the_classes_it_overlaps_and_masses_never_exceed_one():
    guess = np.sqrt(np.array([0, 0, 0, 0, 0.6, 0.4, 0, 0, 0, 0], np.float32))  # text tower's guess
    labels = [*LABELS, _label(6, "Vulpes corsac", "Vulpes", "Canidae")]
    matrix = np.vstack([MATRIX, guess])
    cover = class_cover(matrix)
    assert (cover.sum(axis=0) <= 1.0 + 1e-6).all()  # a class is never counted twice
    assert 0.3 < cover[1, 4] < 0.7 and 0.3 < cover[6, 4] < 0.7  # lagopus and the guess share class 4
    (d,) = _clf(labels, matrix)(_photo(c4=0.9))
    total = sum(p.score for p in d.top)
    assert total <= 1.0 + 1e-6
    assert d.rank == "genus" and d.name == "Vulpes"  # lagopus and corsac share class 4


def test_softmax_bundles_keep_their_behaviour_and_human_rows_join_the_softmax():
    labels = [_label(0, "Rubra rosea", "Rubra"), _label(1, "Rubra alba", "Rubra"), _label(2, HUMAN)]
    clf = Classifier(np.eye(3, 4, dtype=np.float32), labels, 10.0, None, ClassifyConfig())
    (d,) = clf(np.array([[1.0, 0, 0, 0]], np.float32))
    assert (d.rank, d.name) == ("species", "Rubra rosea")
    (d,) = clf(np.array([[0, 0, 1.0, 0]], np.float32))
    assert d.rank == HUMAN and d.score > 0.9
    (d,) = clf(np.array([[0, 0, 0, 1.0]], np.float32))  # nothing near: the softmax is flat
    assert d.rank in (UNCERTAIN, HUMAN)


def test_adding_a_species_by_an_old_name_writes_the_accepted_one_and_kin_give_its_ranks():
    from lit_edge.bundle import read_labels
    from lit_edge.errors import UserError
    from lit_edge.export.species import taxon_for_name
    from lit_edge.starter import species_list_path

    starter = read_labels(species_list_path())
    without = [lab for lab in starter if lab.scientific_name != "Ursus maritimus"]
    t = taxon_for_name("Thalarctos maritimus, Ice bear", without)
    assert (t.scientific_name, t.family, t.order, t.synonyms) == (
        "Ursus maritimus",
        "Ursidae",
        "Carnivora",
        "Thalarctos maritimus",
    )
    with pytest.raises(UserError, match="already in the bundle as 'Ursus americanus'"):
        taxon_for_name("Euarctos americanus", starter)
    heron = taxon_for_name("Ardea cinerea, Grey heron", starter)  # Ardea alba is its kin
    assert (heron.family, heron.order, heron.class_, heron.common_name) == (
        "Ardeidae",
        "Pelecaniformes",
        "Aves",
        "Grey heron",
    )


def test_animals_the_list_does_not_hold_roll_up_to_the_class_their_rows_carry():
    """``animal`` rows (one head class each, a phylum and a class, no species): their mass joins
    the roll-ups at those ranks and is never a species; alone, they leave "animal"."""

    def bird(i, name, genus, family):
        lab = _label(i, name, genus, family)
        return Label(i, name, "", tuple((r, "Aves" if r == "class" else v) for r, v in lab.ranks))

    def unlisted(i, cls):
        ranks = {r: "" for r in RANKS} | {"phylum": "Chordata", "class": cls}
        return Label(i, ANIMAL, f"not in the list: {cls}", tuple(ranks.items()))

    labels = [
        bird(0, "Ciconia nigra", "Ciconia", "Ciconiidae"),
        bird(1, "Egretta caerulea", "Egretta", "Ardeidae"),
        unlisted(2, "Aves"),  # pelican
        unlisted(3, "Aves"),  # goose
        unlisted(4, "Mammalia"),
        _label(5, BLANK),
    ]
    matrix = np.stack([_row(0), _row(1), _row(2), _row(3), _row(4), _row(9)])
    clf = _clf(labels, matrix)
    assert [lab.scientific_name for lab in clf.labels] == ["Ciconia nigra", "Egretta caerulea"]
    (d,) = clf(_photo(c0=0.2, c1=0.15, c2=0.2, c3=0.05, c9=0.05))  # a heron the head half-knows
    assert (d.rank, d.name) == ("class", "Aves")
    assert d.score == pytest.approx(0.6, abs=1e-5)  # the birds' mass; the rest is on c4-c8
    assert [p.scientific_name for p in d.top] == ["Ciconia nigra", "Egretta caerulea"]
    (d,) = clf(_photo(c2=0.45, c3=0.4))  # all on birds the list lacks: still never a species
    assert (d.rank, d.name) == ("class", "Aves")
    (d,) = clf(_photo(c2=0.3, c4=0.3, c9=0.05))  # a bird or a mammal: the phylum both share
    assert (d.rank, d.name) == ("phylum", "Chordata")
    (d,) = _clf(labels[:2] + labels[5:], matrix[[0, 1, 5]])(_photo(c0=0.2, c1=0.15, c2=0.2, c3=0.05))
    assert d.rank == ANIMAL  # without the rows: as before
