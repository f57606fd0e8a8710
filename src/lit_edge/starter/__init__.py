"""The starter model: the LiT model that ships, built offline from the packaged towers.

No image data set is available offline, but the locked EfficientNet-Lite0 carries one through its
ImageNet head: the starter's embedding space is a distribution over that head's 1,000 classes
(image side ``sqrt(softmax(logits))``), and its MiniLM text tower is taught to put every WordNet
name of a class, and of the synsets above the classes (``Felis catus`` above the cat breeds), on
the distribution of the classes it covers. See ``docs/starter-model.md``.

Importing this package does not import torch; :func:`lit_edge.starter.build.ensure_starter_checkpoint`
does, when called.
"""

from __future__ import annotations

from pathlib import Path

from lit_edge.starter.config import StarterConfig, smoke_config

__all__ = ["StarterConfig", "smoke_config", "species_list_path"]


def species_list_path() -> Path:
    """The starter's species list: a labels.csv-style CSV (bundle ``LABEL_COLUMNS`` + ``wordnet_synset``)."""
    return Path(__file__).with_name("species.csv")
