"""The starter bundle: one command from a clean clone to the bundle the runtime uses by default.

Takes the starter checkpoint (built on first use by :mod:`lit_edge.starter`, or any checkpoint
folder given), the starter species list, and calibration photos (a folder, or crops of the sample
photos that ship with scikit-image/scikit-learn), and writes the default bundle. An up-to-date bundle
(same fingerprint of every input) is reused, so running it again costs a checksum pass.

The starter bundle also carries background rows (``blank``, :mod:`lit_edge.starter.blank`) so that
an empty frame is reported as blank instead of the nearest animal. They are recorded apart from the
bundle's fingerprint (``extra["background"]``): a bundle made before them, or by an older recipe,
gets them added or replaced in seconds, without re-exporting or re-quantizing its towers.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lit_edge import paths
from lit_edge.errors import UserError
from lit_edge.export.writer import BundleConfig, build_bundle, fingerprint, is_up_to_date

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StarterBundleConfig:
    """Inputs of the starter bundle; ``None`` means the starter's own."""

    checkpoint: Path | None = None
    species: Path | None = None
    calib: Path | None = None
    out: Path | None = None
    calib_images: int = 256
    bundle: BundleConfig = field(default_factory=BundleConfig)
    blank: bool = True  # add the background rows (the starter's class space only)
    tower: str = "lite0"  # the starter's image tower (lit_edge.starter.config.TOWERS): lite0 | lite2


def starter_checkpoint(checkpoint: Path | None, tower: str = "lite0") -> Path:
    if checkpoint is not None:
        if not Path(checkpoint).is_dir():
            raise UserError(f"checkpoint folder not found: {checkpoint}; pass --checkpoint DIR")
        return Path(checkpoint)
    try:
        from lit_edge.starter.build import ensure_starter_checkpoint
    except ImportError as exc:
        raise UserError("the starter model builder is not available; pass --checkpoint DIR") from exc
    return ensure_starter_checkpoint(tower=tower)


def starter_species(species: Path | None) -> Path:
    if species is not None:
        return Path(species)
    try:
        from lit_edge.starter import species_list_path
    except ImportError as exc:
        raise UserError("the starter species list is not available; pass --species FILE") from exc
    return species_list_path()


def ensure_starter_bundle(cfg: StarterBundleConfig = StarterBundleConfig(), force: bool = False) -> Path:
    """The default bundle, built if missing or stale; returns its folder."""
    from dataclasses import replace

    if cfg.out:
        out = Path(cfg.out)
    else:
        from lit_edge.starter.config import tower_folder

        out = paths.starter_bundle_dir(tower_folder(cfg.tower))
    ckpt = starter_checkpoint(cfg.checkpoint, cfg.tower)
    species = starter_species(cfg.species)
    bcfg = replace(cfg.bundle, calib_images=cfg.calib_images)
    fp = fingerprint(ckpt, species, cfg.calib, bcfg)
    blank = background_recipe(ckpt) if cfg.blank else None
    if force or not is_up_to_date(out, fp):
        from lit_edge.model import load_checkpoint

        build_bundle(load_checkpoint(ckpt), species, out, cfg.calib, bcfg, checkpoint=ckpt)
    elif _background(out) == blank:
        log.info("starter bundle is up to date: %s", out)
        return out
    add_background(out, blank, species)
    return out


def background_recipe(checkpoint: Path) -> dict | None:
    """What the background rows of a bundle from ``checkpoint`` are made by; None when the model's
    embedding is not the starter's class space (a trained LiT model has no ImageNet classes)."""
    try:
        image = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))["model"]["image"]
    except (OSError, KeyError, TypeError, json.JSONDecodeError):
        return None
    if image.get("embed") != "class_dist" or int(image.get("num_classes", 0)) != 1000:
        return None
    from lit_edge.starter import blank

    return {
        "recipe": blank.RECIPE_VERSION,
        "kind": "imagenet-non-animal",
        "outcomes": ["human", "vehicle", "blank", "animal"],
        "max_group": blank.MAX_GROUP,
        "claim_share": blank.CLAIM_SHARE,
        "scoring": "class_mass",
        "framing": dict(FRAMING),
    }


#: How the starter frames a photo for its tower (the bundle's ``Preprocess``; the runtime follows
#: it). Measured on the fieldset with ``bench/bench_fieldset.py --framing``: see docs/starter-model.md.
FRAMING = {"resize_mode": "center_crop", "crop_pct": 0.875}


def _background(out: Path) -> dict | None:
    from lit_edge import bundle as bf

    b = bf.load(out, verify=False)
    info = dict(b.manifest.extra.get("background") or {})
    if info.pop("rows", None) != sum(bool(lab.outcome) for lab in b.labels):
        return None  # rows lost since (a full species replacement): make them again
    return info or None


def add_background(out: Path, recipe: dict | None, species_csv: Path | None = None) -> Path:
    """Write (or, with ``recipe`` None, remove) the starter's outcome rows in bundle ``out``.

    With a recipe, the bundle also becomes the starter's class space in full: the species rows
    whose WordNet synset ``species_csv`` names are set to the exact distribution they were taught
    (:func:`lit_edge.starter.species.class_targets`), the scoring to ``class_mass``, and the
    framing to :data:`FRAMING`.
    """
    from dataclasses import replace

    from lit_edge import bundle as bf
    from lit_edge.bundle import Scoring
    from lit_edge.export.species import set_background

    if recipe is None:
        if _background(out) is not None:
            set_background(out, [], np.zeros((0, 0), np.float32), {})
        return out
    from lit_edge.starter.blank import background_rows, claimed_classes, covered_by
    from lit_edge.starter.species import class_targets

    b = bf.load(out)
    labels = [lab for lab in b.labels if not lab.outcome]
    species = b.text_embeddings[[i for i, lab in enumerate(b.labels) if not lab.outcome]]
    species = class_targets(labels, species, species_csv or starter_species(None))
    unlisted = "animal" in recipe.get("outcomes", ())
    rows = background_rows(
        0,
        species.shape[1],
        claimed_classes(species, recipe["claim_share"]),
        recipe["max_group"],
        covered=covered_by(species) if unlisted else None,
    )
    framing = replace(b.manifest.preprocess, **recipe.get("framing", {}))
    return set_background(
        out,
        rows.labels,
        rows.matrix,
        recipe,
        species_matrix=species,
        scoring=Scoring(kind=recipe.get("scoring", "softmax")),
        preprocess=framing,
    )
