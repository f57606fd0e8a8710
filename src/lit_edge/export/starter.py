"""The starter bundle: one command from a clean clone to the bundle the runtime uses by default.

Takes the starter checkpoint (built on first use by :mod:`lit_edge.starter`, or any checkpoint
folder given), the starter species list, and calibration photos (a folder, or crops of the sample
photos that ship with scikit-image/scikit-learn), and writes the default bundle. An up-to-date bundle
(same fingerprint of every input) is reused, so running it again costs a checksum pass.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

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


def starter_checkpoint(checkpoint: Path | None) -> Path:
    if checkpoint is not None:
        if not Path(checkpoint).is_dir():
            raise UserError(f"checkpoint folder not found: {checkpoint}; pass --checkpoint DIR")
        return Path(checkpoint)
    try:
        from lit_edge.starter.build import ensure_starter_checkpoint
    except ImportError as exc:
        raise UserError("the starter model builder is not available; pass --checkpoint DIR") from exc
    return ensure_starter_checkpoint()


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

    out = Path(cfg.out) if cfg.out else paths.default_bundle_dir()
    ckpt = starter_checkpoint(cfg.checkpoint)
    species = starter_species(cfg.species)
    bcfg = replace(cfg.bundle, calib_images=cfg.calib_images)
    fp = fingerprint(ckpt, species, cfg.calib, bcfg)
    if not force and is_up_to_date(out, fp):
        log.info("starter bundle is up to date: %s", out)
        return out
    from lit_edge.model import load_checkpoint

    model = load_checkpoint(ckpt)
    return build_bundle(model, species, out, cfg.calib, bcfg, checkpoint=ckpt)
