"""Dataset adapters: iNat-2021 JSON, class folders, CSV manifests -> (image path, class, taxa).

``load_dataset(DataConfig)`` is the one entry point; every adapter returns
:class:`~lit_edge.data.records.LabelledImages`. Nothing here imports torch.
"""

from __future__ import annotations

from lit_edge.data.config import DEFAULT_TEXT_MIX, DataConfig
from lit_edge.data.records import TAXON_FIELDS, LabelledImages, taxon_record
from lit_edge.errors import UserError

FORMATS = ("inat", "folder", "csv")


def load_dataset(cfg: DataConfig) -> LabelledImages:
    """Read the dataset a config names; unknown formats and missing roots are one-line errors."""
    if not cfg.root:
        raise UserError("data.root is empty; set it with --set data.root=/path/to/dataset")
    if cfg.format == "inat":
        from lit_edge.data.inat import load_inat

        data = load_inat(cfg.root, cfg.split)
    elif cfg.format == "folder":
        from lit_edge.data.folder import load_folder

        data = load_folder(cfg.root)
    elif cfg.format == "csv":
        from lit_edge.data.csv_manifest import load_csv

        data = load_csv(cfg.root)
    else:
        raise UserError(f"unknown data.format {cfg.format!r}; use one of: {', '.join(FORMATS)}")
    if len(data) == 0:
        raise UserError(f"dataset {cfg.root} ({cfg.format}) has no images; check data.root and data.split")
    return data.cap_per_class(cfg.max_per_class)


__all__ = [
    "DEFAULT_TEXT_MIX",
    "FORMATS",
    "TAXON_FIELDS",
    "DataConfig",
    "LabelledImages",
    "load_dataset",
    "taxon_record",
]
