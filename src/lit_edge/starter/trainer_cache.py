"""The starter's targets as a feature cache for the LiT trainer: the data the starter is trained on.

One row per phrasing: its "image" embedding is ``sqrt(q)`` of its target (what the locked
``class_dist`` tower gives the images of those classes), its label the target's index, and the
targets' phrasings are the captions (``captions.jsonl``), so a row draws one of its target's
phrasings at random (seeded) each epoch. An epoch therefore visits as many captions as there are
phrasings, weighted as in the phrasing list. :mod:`lit_edge.starter.build` writes it and trains on it;
it also serves ``lit-edge train run`` directly, e.g. to tune the whole text tower on a bigger machine::

    python -c "from lit_edge.starter.trainer_cache import write_trainer_cache; write_trainer_cache('cache')"
    lit-edge train run train/laptop.py --set model=lit-effnetlite0-minilm-classdist \\
        --set cache.dir=cache --set loss.kind=distill
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lit_edge.bundle import LABEL_COLUMNS
from lit_edge.starter.config import StarterConfig
from lit_edge.starter.hierarchy import imagenet_synsets, leaf_cover
from lit_edge.starter.phrasings import Phrasings, build_phrasings
from lit_edge.starter.species import SpeciesRow, species_rows
from lit_edge.starter.wordnet import WordNet, load_wordnet


def write_targets_cache(
    folder: str | Path,
    phrasings: Phrasings,
    wn: WordNet,
    species: list[SpeciesRow],
    model_name: str,
    num_classes: int = 1000,
) -> Path:
    """Write ``phrasings``' targets with the trainer's ``write_cache`` (one row per phrasing)."""
    from lit_edge.train.cache import write_cache

    by_synset = {s.synset: s.row for s in species}
    targets = np.zeros((len(phrasings.targets), num_classes), dtype=np.float32)
    taxa = []
    for i, t in enumerate(phrasings.targets):
        targets[i, list(t.classes)] = np.sqrt(1.0 / len(t.classes))
        row = by_synset.get(t.synset) or {c: "" for c in LABEL_COLUMNS}
        taxa.append({**row, "common_name": row.get("common_name") or wn[t.synset].lemmas[0]})
    captions = {i: t.texts for i, t in enumerate(phrasings.targets)}
    labels = np.repeat(np.arange(len(phrasings.targets)), [len(t.texts) for t in phrasings.targets])
    return write_cache(
        folder, targets[labels], labels, taxa, captions, model_name=model_name, stage="embedding"
    )


def write_trainer_cache(
    folder: str | Path, cfg: StarterConfig | None = None, num_classes: int = 1000
) -> Path:
    """The targets of ``cfg`` (default: the shipped recipe) as a trainer feature cache in ``folder``."""
    cfg = cfg or StarterConfig()
    wn = load_wordnet()
    classes = imagenet_synsets()
    species = species_rows(wn, classes)
    phrasings = build_phrasings(cfg, wn, classes, leaf_cover(wn, classes), species)
    return write_targets_cache(folder, phrasings, wn, species, cfg.model, num_classes)
