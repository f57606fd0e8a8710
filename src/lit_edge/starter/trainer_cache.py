"""The starter's targets as a feature cache for the LiT trainer (``lit-edge train run``).

The shipped starter is fitted by :mod:`lit_edge.starter.fit` (a head on frozen MiniLM features with a
soft cross-entropy, which fits the 5-minute budget). The same data also fits the trainer's
feature-cache mode, for tuning the whole text tower with the contrastive loss on a bigger machine:
one row per target, its "image" embedding ``sqrt(q)`` (what the locked ``class_dist`` tower gives the
images of those classes), and the target's phrasings as its captions::

    python -c "from lit_edge.starter.trainer_cache import write_trainer_cache; write_trainer_cache('cache')"
    lit-edge train run train/laptop.py --set model=lit-effnetlite0-minilm-classdist --set cache.dir=cache

Use the trainer's multi-positive option: a genus row and its species rows overlap.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lit_edge.bundle import LABEL_COLUMNS
from lit_edge.starter.config import StarterConfig
from lit_edge.starter.hierarchy import imagenet_synsets, leaf_cover
from lit_edge.starter.phrasings import build_phrasings
from lit_edge.starter.species import species_rows
from lit_edge.starter.wordnet import load_wordnet


def write_trainer_cache(
    folder: str | Path, cfg: StarterConfig | None = None, num_classes: int = 1000
) -> Path:
    """Write the targets of ``cfg`` (default: the shipped recipe) with the trainer's ``write_cache``."""
    from lit_edge.train.cache import write_cache

    cfg = cfg or StarterConfig()
    wn = load_wordnet()
    classes = imagenet_synsets()
    species = species_rows(wn, classes)
    phrasings = build_phrasings(cfg, wn, classes, leaf_cover(wn, classes), species)
    by_synset = {s.synset: s.row for s in species}
    features = np.zeros((len(phrasings.targets), num_classes), dtype=np.float32)
    taxa = []
    for i, t in enumerate(phrasings.targets):
        features[i, list(t.classes)] = np.sqrt(1.0 / len(t.classes))
        row = by_synset.get(t.synset) or {c: "" for c in LABEL_COLUMNS}
        taxa.append({**row, "common_name": row.get("common_name") or wn[t.synset].lemmas[0]})
    captions = {i: t.texts for i, t in enumerate(phrasings.targets)}
    labels = np.arange(len(phrasings.targets))
    return write_cache(folder, features, labels, taxa, captions, model_name=cfg.model, stage="embedding")
