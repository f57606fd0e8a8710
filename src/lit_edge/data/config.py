"""The data section of a training config (torch-free, so adapters and tools can share it)."""

from __future__ import annotations

from dataclasses import dataclass, field

#: The default caption mix: the text type of each sample is drawn with these weights.
DEFAULT_TEXT_MIX = {"scientific": 1.0, "common": 1.0, "taxonomic": 1.0, "scientific_common": 1.0}


@dataclass(frozen=True)
class DataConfig:
    """Where the (image, taxon) pairs come from.

    ``format`` is ``inat`` (``root`` holds ``<split>.json`` and the image folders), ``folder`` (``root``
    is a tree with one folder per species, optional ``taxonomy.csv``) or ``csv`` (``root`` is a manifest
    with a ``path`` column and taxonomy columns). ``max_per_class`` caps the images per class (0 = all).
    ``text_mix`` weighs the caption types (the taxonomy module's text types) drawn per sample.
    """

    format: str = "inat"
    root: str = ""
    split: str = "train"
    max_per_class: int = 0
    text_mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TEXT_MIX))
    num_workers: int = 0
