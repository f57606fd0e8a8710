"""The frozen species matrix: a species list encoded once by the text tower (C x D, L2-normalised).

Adding a species to the field kit needs only its name: re-encode the list with the template
ensemble (no images, no retraining; seconds on a laptop), and the bundle's ``labels.csv``, matrix,
classifier graphs and checksums are rewritten together (:func:`lit_edge.export.writer.set_species`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from lit_edge.bundle import BLANK, RANKS, SYNONYM_SEP, Label, NameIndex, split_synonyms, write_labels
from lit_edge.errors import UserError
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
                synonyms=split_synonyms(t.synonyms),
            )
        )
    return out


def taxon_of(label: Label) -> Taxon:
    """A ``labels.csv`` row back as a :class:`Taxon` (ranks, common name, synonyms); a row written
    by hand with only a scientific name gets its genus and epithet from the name."""
    r = dict(label.ranks)
    t = Taxon(
        kingdom=r.get("kingdom", ""),
        phylum=r.get("phylum", ""),
        class_=r.get("class", ""),
        order=r.get("order", ""),
        family=r.get("family", ""),
        genus=r.get("genus", ""),
        species=r.get("species", ""),
        common_name=label.common_name,
        synonyms=SYNONYM_SEP.join(label.synonyms),
    )
    if not t.genus:
        t = Taxon.from_name(label.scientific_name, common_name=label.common_name, synonyms=t.synonyms)
    return t


def _accepted(lab: Label, common_name: str, old_names: Sequence[str]) -> Taxon:
    """``lab``'s taxon (the checklist's accepted row) with ``common_name`` if given, and every
    other name (``old_names``, ``lab``'s synonyms) kept as a synonym."""
    names = [*old_names, *lab.synonyms]
    synonyms = SYNONYM_SEP.join(dict.fromkeys(n for n in names if n != lab.scientific_name))
    return replace(taxon_of(lab), common_name=common_name or lab.common_name, synonyms=synonyms)


def _checklist() -> list[Label]:
    """The names lit-edge knows the current form of: the starter's checked species list."""
    from lit_edge.bundle import read_labels
    from lit_edge.starter import species_list_path

    return read_labels(species_list_path())


def current_taxa(taxa: Sequence[Taxon]) -> list[Taxon]:
    """``taxa`` with every name that the starter's checklist knows as a synonym replaced by its
    accepted name and ranks (the old name kept as a synonym); other rows as they are."""
    known = _checklist()
    index = NameIndex(known)
    out = []
    for t in taxa:
        hit = index.get(t.scientific_name)
        lab = known[hit] if hit is not None else None
        if lab is None or lab.scientific_name == t.scientific_name:
            out.append(t)
            continue
        out.append(_accepted(lab, t.common_name, [*split_synonyms(t.synonyms), t.scientific_name]))
    return out


def taxon_for_name(raw: str, labels: list[Label], where: object = "the bundle") -> Taxon:
    """The taxon to add for ``'Genus epithet[, Common name]'`` to a list that holds ``labels``.

    A name (or a synonym) already in ``labels`` is refused, saying under which name it is there. A
    synonym the starter's checklist knows (``Thalarctos maritimus``) is written under its accepted
    name, with its ranks and the old name as a synonym. Otherwise the ranks above the genus are
    borrowed from a row of the same genus (``Ardea cinerea`` next to ``Ardea alba`` joins Ardeidae,
    Pelecaniformes, Aves), so that roll-ups and exports place the new row.
    """
    sci, _, common = raw.partition(",")
    t = Taxon.from_name(sci.strip(), common_name=common.strip())
    if not t.scientific_name:
        raise UserError(f"species name {raw!r} is empty; write 'Genus epithet[, Common name]'")
    have = NameIndex(labels).get(t.scientific_name)
    if have is not None:
        raise UserError(
            f"{where}: {t.scientific_name!r} is already in the bundle"
            + (
                f" as {labels[have].scientific_name!r}"
                if labels[have].scientific_name != t.scientific_name
                else ""
            )
        )
    known = _checklist()
    hit = NameIndex(known).get(t.scientific_name)
    if hit is not None:
        lab = known[hit]
        if NameIndex(labels).get(lab.scientific_name) is not None:
            raise UserError(
                f"{where}: {t.scientific_name!r} is already in the bundle as {lab.scientific_name!r}"
            )
        return _accepted(lab, t.common_name, [t.scientific_name])
    kin = next((lab for lab in [*labels, *known] if t.genus and lab.rank("genus") == t.genus), None)
    if kin is None:
        return t
    above = {r.rstrip("_"): r for r in ("kingdom", "phylum", "class_", "order", "family")}
    return replace(t, **{field: kin.rank(rank) for rank, field in above.items()})


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
    taxa = current_taxa(read_species_list(species_file))
    matrix = encode(model, taxa, cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.save(out_dir / MATRIX, matrix, allow_pickle=False)
    write_labels(out_dir / LABELS, labels_for(taxa))
    log.info("encoded %d species into %s (%d-d)", len(taxa), out_dir, matrix.shape[1])
    return matrix, labels_for(taxa)


def set_background(
    bundle_dir: Path,
    labels: Sequence[Label],
    matrix: np.ndarray,
    info: dict,
    *,
    species_matrix: np.ndarray | None = None,
    scoring=None,
    preprocess=None,
) -> Path:
    """Replace the bundle's outcome rows (``blank``, ``human``, ``vehicle``) with ``labels``/``matrix``.

    ``species_matrix`` (optional) replaces the species rows' vectors (the starter's exact class
    distributions), ``scoring`` and ``preprocess`` the manifest's (a :class:`~lit_edge.bundle.Scoring`
    and a :class:`~lit_edge.bundle.Preprocess`); otherwise the species rows stay bit-identical.

    The species rows stay bit-identical and keep their ids; the new rows follow them. One staged
    edit (:func:`lit_edge.bundle.edit`) rewrites ``labels.csv``, the matrix, the classifier graphs
    and the checksums. ``info`` goes into the manifest's ``extra["background"]`` (what made the
    rows, so a stale recipe is noticed). An empty ``labels`` removes the background rows.
    """
    from lit_edge import bundle as bf

    with bf.edit(bundle_dir) as staged:
        keep = [i for i, lab in enumerate(staged.labels) if not lab.outcome]
        species = [staged.labels[i] for i in keep]
        rows = [Label(0, lab.outcome or BLANK, lab.common_name, lab.ranks) for lab in labels]
        dim = staged.matrix.shape[1]
        extra = (
            np.asarray(matrix, np.float32).reshape(len(rows), -1) if rows else np.zeros((0, dim), np.float32)
        )
        if extra.shape[1] != dim:
            raise ValueError(f"background rows are {extra.shape[1]}-d, the bundle's matrix {dim}-d")
        kept = staged.matrix[keep] if species_matrix is None else np.asarray(species_matrix, np.float32)
        if kept.shape != (len(keep), dim):
            raise ValueError(f"species rows are {kept.shape}, the bundle has {(len(keep), dim)}")
        staged.set_rows([*species, *rows], np.concatenate([kept, extra]))
        if scoring is not None:
            staged.manifest.scoring = scoring
        if preprocess is not None:
            staged.manifest.preprocess = preprocess
        if rows:
            staged.manifest.extra["background"] = {**info, "rows": len(rows)}
        else:
            staged.manifest.extra.pop("background", None)
    log.info("%s: %d outcome rows after %d species", staged.target, len(rows), len(species))
    return staged.target
