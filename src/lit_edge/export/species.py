"""The frozen species matrix: a species list encoded once by the text tower (C x D, L2-normalised).

Adding a species to the field kit needs only its name: re-encode the list with the template
ensemble (no images, no retraining; seconds on a laptop), and the bundle's ``labels.csv``, matrix,
classifier graphs and checksums are rewritten together (:func:`lit_edge.export.writer.set_species`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lit_edge.bundle import BLANK, RANKS, Label, write_labels
from lit_edge.taxonomy import TEMPLATES, Taxon, TextType, read_species_list

log = logging.getLogger(__name__)

MATRIX = "text_embeddings.npy"
LABELS = "labels.csv"


@dataclass(frozen=True)
class SpeciesConfig:
    """How names become class embeddings (averaged over ``templates``, then re-normalised)."""

    text_type: str = TextType.SCIENTIFIC_COMMON.value  # 'Danaus plexippus with common name Monarch'
    templates: tuple[str, ...] = TEMPLATES
    batch_size: int = 256


def labels_for(taxa: Sequence[Taxon]) -> list[Label]:
    """``labels.csv`` rows (ids in list order) for ``taxa``."""
    out = []
    for i, t in enumerate(taxa):
        ranks = t.ranks()
        out.append(
            Label(
                id=i,
                scientific_name=t.scientific_name,
                common_name=t.common_name,
                ranks=tuple((r, ranks.get(r, "")) for r in RANKS),
            )
        )
    return out


def encode(model, taxa: Sequence[Taxon], cfg: SpeciesConfig = SpeciesConfig()) -> np.ndarray:
    """``[C, D]`` float32 L2-normalised class embeddings of ``taxa`` with ``model``'s text tower."""
    import torch

    from lit_edge.model import build_classifier

    with torch.inference_mode():
        matrix = build_classifier(
            model,
            list(taxa),
            templates=cfg.templates,
            text_type=TextType(cfg.text_type),
            batch_size=cfg.batch_size,
        )
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    if not np.isfinite(matrix).all():
        raise ValueError("species matrix has non-finite values; the text tower is broken")
    return matrix


def write_species(model, species_file: Path, out_dir: Path, cfg: SpeciesConfig = SpeciesConfig()):
    """Encode the list in ``species_file`` into ``out_dir/text_embeddings.npy`` + ``labels.csv``."""
    taxa = read_species_list(species_file)
    matrix = encode(model, taxa, cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.save(out_dir / MATRIX, matrix, allow_pickle=False)
    write_labels(out_dir / LABELS, labels_for(taxa))
    log.info("encoded %d species into %s (%d-d)", len(taxa), out_dir, matrix.shape[1])
    return matrix, labels_for(taxa)


def set_background(bundle_dir: Path, labels: Sequence[Label], matrix: np.ndarray, info: dict) -> Path:
    """Replace the bundle's background rows (``blank``) with ``labels``/``matrix``; keep its species.

    The species rows stay bit-identical and keep their ids; the new rows follow them. One staged
    edit (:func:`lit_edge.bundle.edit`) rewrites ``labels.csv``, the matrix, the classifier graphs
    and the checksums. ``info`` goes into the manifest's ``extra["background"]`` (what made the
    rows, so a stale recipe is noticed). An empty ``labels`` removes the background rows.
    """
    from lit_edge import bundle as bf

    with bf.edit(bundle_dir) as staged:
        keep = [i for i, lab in enumerate(staged.labels) if not lab.is_blank]
        species = [staged.labels[i] for i in keep]
        rows = [Label(0, BLANK, lab.common_name, lab.ranks) for lab in labels]
        dim = staged.matrix.shape[1]
        extra = (
            np.asarray(matrix, np.float32).reshape(len(rows), -1) if rows else np.zeros((0, dim), np.float32)
        )
        if extra.shape[1] != dim:
            raise ValueError(f"background rows are {extra.shape[1]}-d, the bundle's matrix {dim}-d")
        staged.set_rows([*species, *rows], np.concatenate([staged.matrix[keep], extra]))
        if rows:
            staged.manifest.extra["background"] = {**info, "rows": len(rows)}
        else:
            staged.manifest.extra.pop("background", None)
    log.info("%s: %d background rows after %d species", staged.target, len(rows), len(species))
    return staged.target
