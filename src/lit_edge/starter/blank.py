"""The starter's outcome rows: one row per non-animal ImageNet class, named ``human`` (the class
is evidence of a person), ``vehicle`` (of a vehicle) or ``blank`` (of neither: "no animal here");
and one ``animal`` row per animal class that no species of the list covers.

People and vehicles (:data:`HUMAN_SYNSETS`, :data:`VEHICLE_SYNSETS`): ImageNet-1k has no person
class, so the evidence for a person is what its photos of people are labelled with: the three
classes below ``person`` (groom, ballplayer, scuba diver), everything below ``clothing`` (jersey,
suit, military uniform, crash helmet ...), footwear and face masks; 59 classes. A vehicle is
everything below ``conveyance`` (cars, trucks, bicycles, boats, aircraft, sleds: 72 classes) and
the classes that WordNet names as a part of one (car wheel, grille, car mirror, disk brake,
odometer, wing). Being WordNet groups, not picks from any photo set, these are what a reader can
check; how well they find people and vehicles is measured in ``docs/starter-model.md``.

Camera traps make thousands of empty frames, and a list of species alone makes every one of them
some animal: on a photo with no animal the locked head spreads its mass over mugs, rockets and
flowers, and the broadest species name (``Canis familiaris``, 118 dog classes) collects the diffuse
rest and wins. The runtime says ``blank`` when the photo's embedding lies mostly in the span of the
bundle's background rows (:data:`lit_edge.bundle.BLANK`, :mod:`lit_edge.device.classify`).

The starter's embedding is ``sqrt(p)`` over the locked head's 1,000 classes, so with one row per
non-animal class (the unit vector on that class) the share of the embedding in their span is
``sum of p`` over those classes: the head's own probability that the photo shows no animal. Rows
over groups of classes (``container``, ``structure``: :func:`background_sets` with ``max_group``)
add nothing to that span; they only mattered for the softmax rule that ``bench/bench_blank.py``
compares and that was not chosen.

Which classes are animals comes from WordNet (everything below ``animal.n.01``): an animal class
that no species of the list covers (a pelican, a flatworm, a sea slug) gets no background row, so
such a photo rolls up or is ``animal`` instead of becoming ``blank``. A non-animal class that a
species of the list claims (the starter's hen-of-the-woods fungus and lady's slipper orchid) gets
none either.

Animals the list does not hold (:func:`unlisted_animal_rows`): each such class gets an ``animal``
row carrying only the phylum and class it belongs to (:data:`UNLISTED_TAXA`), never a species, a
genus or a family. Their mass then counts towards the roll-ups at those ranks, so a night heron
frame on which the head sees black stork, pelican, little blue heron and goose (storks and herons
in the list, pelicans and geese not) is decided ``Aves``, true and as far as the head's evidence
goes, instead of "animal". They carry no kingdom: "some animal" stays the ``animal`` outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from lit_edge.bundle import BLANK, RANKS, Label
from lit_edge.outcomes import ANIMAL, HUMAN, VEHICLE
from lit_edge.starter.hierarchy import imagenet_synsets, leaf_cover
from lit_edge.starter.wordnet import WordNet, load_wordnet

#: WordNet 3.0 ``animal, animate being, beast, brute, creature, fauna``.
ANIMAL_SYNSET = "n00015388"
#: Bumped when the rows change, so that a bundle made by an older recipe is redone
#: (4: ``animal`` rows for the animal classes no species covers).
RECIPE_VERSION = 4
#: WordNet 3.0 groups -> (phylum, class) of the animals below them, most specific first. Only
#: ranks that have not moved since WordNet was written, spelled as the starter's checklists
#: (Catalogue of Life, the Reptile Database, Eschmeyer's Catalog of Fishes) spell them; a class
#: left empty is a group no single class holds (crustaceans, worms).
UNLISTED_TAXA = (
    ("mammal", "Chordata", "Mammalia"),
    ("bird", "Chordata", "Aves"),
    ("reptile", "Chordata", "Reptilia"),
    ("amphibian", "Chordata", "Amphibia"),
    ("bony fish", "Chordata", "Actinopterygii"),
    ("elasmobranch", "Chordata", "Elasmobranchii"),
    ("chordate", "Chordata", ""),
    ("insect", "Arthropoda", "Insecta"),
    ("arachnid", "Arthropoda", "Arachnida"),
    ("arthropod", "Arthropoda", ""),
    ("mollusk", "Mollusca", ""),
    ("coelenterate", "Cnidaria", ""),
    ("echinoderm", "Echinodermata", ""),
)
#: A class that the species rows cover this much (``row_cover``, summed) is theirs: no ``animal`` row.
COVERED = 0.5
#: WordNet 3.0: ``person``; ``clothing``; ``footwear`` (both senses); ``mask`` (worn over the face).
HUMAN_SYNSETS = ("n00007846", "n03051540", "n03380867", "n03381126", "n03725035")
#: WordNet 3.0: ``conveyance, transport`` (vehicles, craft, sleds ...).
VEHICLE_SYNSETS = ("n03100490",)
#: A species row that puts this share of its distribution on a class claims it (no background row).
CLAIM_SHARE = 0.1
#: Largest WordNet group (in classes) that gets a background row of its own (0: none; the span,
#: and so the blank score, is the same with or without them; see the bench).
MAX_GROUP = 0


@dataclass(frozen=True)
class BackgroundRows:
    """The rows to append to a species list: labels (ids from ``first_id``) and their unit vectors."""

    labels: tuple[Label, ...]
    matrix: np.ndarray  # [rows, D] float32, L2-normalised
    classes: tuple[frozenset[int], ...]  # the ImageNet classes each row spreads over


@lru_cache(maxsize=1)
def _cover(wn_path: str) -> dict[str, frozenset[int]]:
    return leaf_cover(load_wordnet(wn_path), imagenet_synsets())


def animal_classes(wn: WordNet | None = None) -> frozenset[int]:
    """Indices of the 1,000 ImageNet classes below ``animal.n.01`` in WordNet."""
    wn = wn or load_wordnet()
    return _cover(str(wn.path)).get(ANIMAL_SYNSET, frozenset())


def _below(synsets: tuple[str, ...], wn: WordNet, parts: bool = False) -> frozenset[int]:
    """Classes below any of ``synsets``; with ``parts``, also the classes that are themselves a
    part (WordNet's part holonym, one step) of something below them (a car wheel of a car)."""
    cover = _cover(str(wn.path))
    below = frozenset(i for s in synsets for i in cover.get(s, ()))
    if not parts:
        return below
    inside = {sid for sid, classes in cover.items() if classes and classes <= below} | set(synsets)
    names = imagenet_synsets()
    return below | frozenset(
        i
        for i, sid in enumerate(names)
        if any(h in inside or _is_below(h, synsets, wn) for h in wn[sid].part_holonyms)
    )


def _above(sid: str, wn: WordNet) -> set[str]:
    """``sid`` and every synset above it (its hypernyms, all the way up)."""
    stack, seen = [sid], set()
    while stack:
        s = stack.pop()
        if s not in seen and s in wn:
            seen.add(s)
            stack.extend(wn[s].hypernyms)
    return seen


def _is_below(sid: str, roots: tuple[str, ...], wn: WordNet) -> bool:
    return not _above(sid, wn).isdisjoint(roots)


def human_classes(wn: WordNet | None = None) -> frozenset[int]:
    """The ImageNet classes that are evidence of a person (:data:`HUMAN_SYNSETS`)."""
    return _below(HUMAN_SYNSETS, wn or load_wordnet())


def vehicle_classes(wn: WordNet | None = None) -> frozenset[int]:
    """The ImageNet classes that are evidence of a vehicle (:data:`VEHICLE_SYNSETS` and their parts)."""
    return _below(VEHICLE_SYNSETS, wn or load_wordnet(), parts=True)


def covered_classes(synsets: list[str], wn: WordNet | None = None) -> frozenset[int]:
    """ImageNet classes that at least one of ``synsets`` (a species list's WordNet ids) covers."""
    wn = wn or load_wordnet()
    cover = _cover(str(wn.path))
    return frozenset(i for s in synsets for i in cover.get(s, ()))


def claimed_classes(species_matrix: np.ndarray, share: float = CLAIM_SHARE) -> frozenset[int]:
    """Classes on which some species row puts at least ``share`` of its distribution (``row**2``).

    Read from the species matrix itself, so it works for any species list in the class space:
    the starter's fungus and orchid (non-animal classes that are species of the list) are claimed
    and get no background row; a broad row (``Canis familiaris``, 1/118 per breed) claims nothing.
    """
    q = np.square(np.asarray(species_matrix, dtype=np.float64))
    return frozenset(int(i) for i in np.flatnonzero((q >= share).any(axis=0)))


def background_sets(
    exclude: frozenset[int] = frozenset(), max_group: int = 0, wn: WordNet | None = None
) -> list[tuple[str, frozenset[int]]]:
    """The class sets of the background rows: every non-animal class not in ``exclude``, alone;
    then (``max_group`` > 1) every WordNet synset whose classes are all background, at most
    ``max_group`` of them (``container``, ``vehicle``, ``structure`` ...), one row per distinct set.
    """
    wn = wn or load_wordnet()
    synsets = imagenet_synsets()
    animals = animal_classes(wn)
    background = frozenset(i for i in range(len(synsets)) if i not in animals and i not in exclude)
    out = [(wn[synsets[i]].name, frozenset([i])) for i in sorted(background)]
    if max_group > 1:
        seen: set[frozenset[int]] = set()
        for sid, classes in sorted(_cover(str(wn.path)).items()):
            if 2 <= len(classes) <= max_group and classes <= background and classes not in seen:
                seen.add(classes)
                out.append((wn[sid].name, classes))
    return out


def unlisted_taxon(class_index: int, wn: WordNet | None = None) -> tuple[str, str]:
    """(phylum, class) of ImageNet animal class ``class_index``: the first group of
    :data:`UNLISTED_TAXA` (most specific first) above it, ``("", "")`` where none is."""
    wn = wn or load_wordnet()
    above = {wn[s].name for s in _above(imagenet_synsets()[class_index], wn)}
    return next(((phylum, cls) for group, phylum, cls in UNLISTED_TAXA if group in above), ("", ""))


def covered_by(species_matrix: np.ndarray, share: float = COVERED) -> frozenset[int]:
    """Classes the species rows cover (:func:`lit_edge.device.classify.row_cover` summed over the
    rows reaches ``share``): every breed of the 118-breed dog row, a heron row's guessed classes."""
    from lit_edge.device.classify import row_cover

    if not len(species_matrix):
        return frozenset()
    return frozenset(int(i) for i in np.flatnonzero(row_cover(species_matrix).sum(axis=0) >= share))


def unlisted_animal_rows(
    covered: frozenset[int], wn: WordNet | None = None
) -> list[tuple[str, frozenset[int], dict]]:
    """``(text, classes, ranks)`` of an ``animal`` row for every animal class not in ``covered``:
    the evidence for an animal the list does not hold, with its phylum and class."""
    wn = wn or load_wordnet()
    names = imagenet_synsets()
    out = []
    for i in sorted(animal_classes(wn) - covered):
        phylum, cls = unlisted_taxon(i, wn)
        out.append(
            (f"not in the list: {wn[names[i]].name}", frozenset([i]), {"phylum": phylum, "class": cls})
        )
    return out


def background_rows(
    first_id: int,
    dim: int = 1000,
    exclude: frozenset[int] = frozenset(),
    max_group: int = MAX_GROUP,
    wn: WordNet | None = None,
    people_and_vehicles: bool = True,
    covered: frozenset[int] | None = None,
) -> BackgroundRows:
    """Outcome rows in the ``dim``-d class space: each the unit vector spread evenly over its set.

    With ``people_and_vehicles`` the person and vehicle classes get ``human`` and ``vehicle`` rows
    (before the ``blank`` rows) instead of ``blank`` ones. The common name says which class or
    group the row stands for (``no animal: coffee mug``, ``person: jersey``), so a reader of
    ``labels.csv`` sees why it is there. With ``covered`` (the animal classes the species rows
    cover), every other animal class gets an ``animal`` row last (:func:`unlisted_animal_rows`).
    """
    n = len(imagenet_synsets())
    if dim != n:
        raise ValueError(f"background rows need the {n}-d class space, not {dim}-d")
    wn = wn or load_wordnet()
    named: list[tuple[str, str, frozenset[int], dict]] = []
    if people_and_vehicles:
        people = human_classes(wn) - exclude
        vehicles = vehicle_classes(wn) - exclude - people
        for outcome, what, classes in ((HUMAN, "person", people), (VEHICLE, "vehicle", vehicles)):
            named += [
                (outcome, f"{what}: {wn[imagenet_synsets()[i]].name}", frozenset([i]), {})
                for i in sorted(classes)
            ]
        exclude = exclude | people | vehicles
    named += [
        (BLANK, f"no animal: {name}", classes, {})
        for name, classes in background_sets(exclude, max_group, wn)
    ]
    if covered is not None:
        named += [
            (ANIMAL, text, classes, ranks) for text, classes, ranks in unlisted_animal_rows(covered, wn)
        ]
    matrix = np.zeros((len(named), dim), dtype=np.float32)
    for k, (_, _, classes, _) in enumerate(named):
        matrix[k, sorted(classes)] = 1.0 / np.sqrt(len(classes))
    labels = tuple(
        Label(first_id + k, outcome, text, tuple((r, ranks.get(r, "")) for r in RANKS))
        for k, (outcome, text, _, ranks) in enumerate(named)
    )
    return BackgroundRows(labels=labels, matrix=matrix, classes=tuple(c for _, _, c, _ in named))
