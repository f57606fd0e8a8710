"""The starter's background rows: "no animal here", one row per non-animal ImageNet class.

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
that no species of the list covers (a flatworm, a sea slug) gets no background row, so such a
photo rolls up or stays uncertain instead of becoming ``blank``. A non-animal class that a species
of the list claims (the starter's hen-of-the-woods fungus and lady's slipper orchid) gets none
either.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from lit_edge.bundle import BLANK, RANKS, Label
from lit_edge.starter.hierarchy import imagenet_synsets, leaf_cover
from lit_edge.starter.wordnet import WordNet, load_wordnet

#: WordNet 3.0 ``animal, animate being, beast, brute, creature, fauna``.
ANIMAL_SYNSET = "n00015388"
#: Bumped when the rows change, so that a bundle made by an older recipe is redone.
RECIPE_VERSION = 2
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


def background_rows(
    first_id: int,
    dim: int = 1000,
    exclude: frozenset[int] = frozenset(),
    max_group: int = MAX_GROUP,
    wn: WordNet | None = None,
) -> BackgroundRows:
    """``blank`` rows in the ``dim``-d class space: each the unit vector spread evenly over its set.

    The common name says which class or group the row stands for (``no animal: coffee mug``), so
    a reader of ``labels.csv`` sees why it is there.
    """
    n = len(imagenet_synsets())
    if dim != n:
        raise ValueError(f"background rows need the {n}-d class space, not {dim}-d")
    sets = background_sets(exclude, max_group, wn)
    matrix = np.zeros((len(sets), dim), dtype=np.float32)
    for k, (_, classes) in enumerate(sets):
        matrix[k, sorted(classes)] = 1.0 / np.sqrt(len(classes))
    empty = tuple((r, "") for r in RANKS)
    labels = tuple(
        Label(first_id + k, BLANK, f"no animal: {name}", empty) for k, (name, _) in enumerate(sets)
    )
    return BackgroundRows(labels=labels, matrix=matrix, classes=tuple(c for _, c in sets))
