"""Write a bundle from a LiT model: towers (fp32, INT8 cpu, INT8 tensorrt), classifiers, species, manifest.

Every write goes through the one staged bundle edit (:func:`lit_edge.bundle.edit`): the new bundle
is built aside, verified and swapped in, so an interrupted export never leaves a half bundle where
the runtime looks. A fingerprint of everything the bundle depends on (checkpoint files, species
list, calibration images, settings, lit-edge version) is stored in the manifest;
:func:`is_up_to_date` lets ``export starter`` reuse an existing bundle instead of rebuilding it.

Species changes (:func:`set_species`, :func:`add_species`) stage new rows (species first, the
bundle's background rows after them) in one edit: ``labels.csv``, the matrix, the classifier graphs
and the checksums change together; the image towers are carried over untouched.

Where an export's time goes is recorded in the manifest (``extra["export_seconds"]``) and logged:
on a CPU most of it is the INT8 towers (``--flavours`` writes fewer; see ``export/README.md``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lit_edge import __version__
from lit_edge import bundle as bf
from lit_edge.errors import UserError
from lit_edge.export import calib
from lit_edge.export.laps import Laps
from lit_edge.export.quantize import QuantConfig
from lit_edge.export.species import SpeciesConfig, current_taxa, labels_for, taxon_for_name
from lit_edge.export.species import taxon_of as _taxon
from lit_edge.taxonomy import Taxon, read_species_list

log = logging.getLogger(__name__)

#: The INT8 image tower flavours and the quantization target each is made for.
INT8_TARGETS = {"int8_cpu": "cpu", "int8_tensorrt": "tensorrt"}


@dataclass(frozen=True)
class BundleConfig:
    """What goes into a bundle and how the INT8 towers are calibrated.

    ``flavours``: the image towers to write. ``fp32`` is always written (the INT8 towers are made
    from it and checked against it); a CPU-only user needs only ``int8_cpu``.
    """

    flavours: tuple[str, ...] = ("fp32", "int8_cpu", "int8_tensorrt")
    classifiers: bool = True  # one graph per flavour with the species matrix folded in (output scores)
    calib_images: int = 256
    calib_seed: int = 0
    quant_cpu: QuantConfig = field(default_factory=lambda: QuantConfig(target="cpu"))
    quant_tensorrt: QuantConfig = field(default_factory=lambda: QuantConfig(target="tensorrt"))
    species: SpeciesConfig = field(default_factory=SpeciesConfig)

    def __post_init__(self):
        known = ("fp32", *INT8_TARGETS)
        bad = [f for f in self.flavours if f not in known]
        if bad:
            raise UserError(f"unknown image tower flavour(s) {bad}; choose from {', '.join(known)}")
        object.__setattr__(self, "flavours", ("fp32", *(f for f in known[1:] if f in self.flavours)))

    def quant(self, flavour: str) -> QuantConfig:
        return self.quant_cpu if INT8_TARGETS[flavour] == "cpu" else self.quant_tensorrt


def _files_sha256(paths: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode())
        h.update(bf.sha256_file(p).encode())
    return h.hexdigest()


def fingerprint(
    checkpoint: Path | None, species_file: Path, calib_dir: Path | None, cfg: BundleConfig
) -> str:
    """sha256 over every input of a bundle: checkpoint files, species list, calibration photos, settings."""
    h = hashlib.sha256()
    if checkpoint is not None and checkpoint.is_dir():
        h.update(_files_sha256([p for p in checkpoint.iterdir() if p.is_file()]).encode())
    h.update(bf.sha256_file(species_file).encode())
    if calib_dir is not None:
        files = [p for p in Path(calib_dir).rglob("*") if p.suffix.lower() in calib.IMAGE_SUFFIXES]
        h.update(_files_sha256(files).encode())
    h.update(json.dumps(asdict(cfg), sort_keys=True, default=str).encode())
    h.update(__version__.encode())
    return h.hexdigest()


def is_up_to_date(out_dir: Path, fp: str) -> bool:
    """True when ``out_dir`` holds an intact bundle built from the same inputs."""
    try:
        b = bf.load(out_dir)
    except UserError:
        return False
    return b.manifest.extra.get("fingerprint") == fp


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())


def build_bundle(
    model,
    species_file: Path,
    out_dir: Path,
    calib_dir: Path | None = None,
    cfg: BundleConfig = BundleConfig(),
    checkpoint: Path | None = None,
    tar: bool = False,
) -> Path:
    """Export ``model`` with the species in ``species_file`` into the bundle folder ``out_dir``."""
    import torch

    from lit_edge.export import onnx_export as ox
    from lit_edge.export.quantize import quantize
    from lit_edge.export.species import encode

    fp = fingerprint(checkpoint, species_file, calib_dir, cfg)
    taxa = current_taxa(read_species_list(species_file))
    pre = model.preprocess_config()
    model = model.eval()
    int8 = [f for f in cfg.flavours if f != "fp32"]
    laps = Laps()
    extra: dict = {"fingerprint": fp, "species_config": asdict(cfg.species), "quantization": {}}
    with bf.edit(out_dir, base=None) as staged:
        with _progress() as progress, torch.inference_mode(False), torch.no_grad():
            task = progress.add_task(f"bundle {out_dir.name}", total=4 + len(int8))
            staged.set_rows(labels_for(taxa), encode(model, taxa, cfg.species))
            laps.lap("species matrix")
            progress.advance(task)

            graph = ox.ImageGraph(model.image_tower, pre)  # = encode_image(normalize=False), then L2
            fp32 = ox.export(graph, staged.put_tower("fp32"), pre)
            laps.lap("fp32 tower")
            progress.advance(task)
            real = np.stack([calib.fit(img, pre) for _, img in calib.sample_photos()])
            extra["parity_fp32"] = asdict(ox.check(fp32, graph, real))
            laps.lap("parity check")
            progress.advance(task)

            if int8:
                images = calib.calibration_set(pre, calib_dir, cfg.calib_images, cfg.calib_seed)
                extra["calibration"] = {
                    "source": str(calib_dir) if calib_dir else "sample photos",
                    "images": len(images),
                }
                laps.lap("calibration images")
            progress.advance(task)
            for flavour in int8:
                qcfg = cfg.quant(flavour)
                steps: dict[str, float] = {}
                quantize(fp32, staged.put_tower(flavour), images, qcfg, timings=steps)
                laps.lap(f"{flavour} tower")
                extra["quantization"][flavour] = asdict(qcfg)
                extra.setdefault("export_steps", {})[flavour] = {k: round(v, 2) for k, v in steps.items()}
                progress.advance(task)
        staged.set_classifiers(cfg.flavours if cfg.classifiers else ())
        extra["export_seconds"] = {k: round(v, 2) for k, v in laps.seconds.items()}
        staged.manifest = bf.Manifest(
            model=model_info(model),
            preprocess=pre,
            image_towers={},
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            lit_edge_version=__version__,
            extra=extra,
        )
    laps.lap("classifier graphs, checksums, verify")
    log.info("bundle written: %s (%d species; %s)", out_dir, len(taxa), laps.summary())
    if tar:
        bf.pack(out_dir, out_dir.with_suffix(".tar"))
        log.info("bundle archive: %s", out_dir.with_suffix(".tar"))
    return out_dir


def model_info(model) -> bf.ModelInfo:
    c = model.config
    bias = None if model.logit_bias is None else float(model.logit_bias.detach())
    return bf.ModelInfo(
        name=c.name,
        embed_dim=int(c.embed_dim),
        logit_scale=float(math.exp(float(model.logit_scale.detach()))),
        logit_bias=bias,
        description=c.description,
    )


# species changes -------------------------------------------------------------------------------


def _check_model(b: bf.Bundle, model) -> None:
    if b.manifest.model.name != model.config.name:
        raise UserError(
            f"{b.root}: bundle was made with model {b.manifest.model.name!r}, not {model.config.name!r}; "
            "encode species with the bundle's own checkpoint"
        )


def _species_config(b: bf.Bundle) -> SpeciesConfig:
    """The text type and templates the bundle's matrix was made with (so new rows match old ones)."""
    saved = b.manifest.extra.get("species_config")
    if not saved:
        return SpeciesConfig()
    return SpeciesConfig(**{**saved, "templates": tuple(saved["templates"])})


def set_species(bundle_dir: Path, model, species_file: Path, cfg: SpeciesConfig | None = None) -> bf.Bundle:
    """Re-encode the bundle's species from ``species_file`` (a full replacement)."""
    from lit_edge.export.species import encode

    taxa = current_taxa(read_species_list(species_file))
    with bf.edit(bundle_dir) as staged:
        _check_model(staged.base, model)
        _put_species(staged, taxa, encode(model, taxa, cfg or _species_config(staged.base)))
    return staged.bundle


def add_species(bundle_dir: Path, model, names: Sequence[str], cfg: SpeciesConfig | None = None) -> bf.Bundle:
    """Append species by name ('Genus epithet[, Common name]'): only the new rows are encoded, the
    existing rows of the matrix stay bit-identical. A name already in the bundle is refused."""
    from lit_edge.export.species import encode

    with bf.edit(bundle_dir) as staged:
        b = staged.base
        _check_model(b, model)
        species = [i for i, lab in enumerate(b.labels) if not lab.outcome]
        have = [_taxon(b.labels[i]) for i in species]
        new: list[Taxon] = []
        for raw in names:
            new.append(
                taxon_for_name(raw, [*[b.labels[i] for i in species], *labels_for(new)], where=bundle_dir)
            )
        matrix = np.concatenate([b.text_embeddings[species], encode(model, new, cfg or _species_config(b))])
        _put_species(staged, [*have, *new], matrix)
    return staged.bundle


def _put_species(staged, taxa: Sequence[Taxon], matrix: np.ndarray) -> None:
    """Stage ``taxa`` as the species rows. Outcome rows (``blank``, ``human``, ``vehicle``) are not
    species: the same ones follow the new species (their ids after them), so one species edit writes
    the bundle once."""
    outcome = [i for i, lab in enumerate(staged.labels) if lab.outcome]
    labels = [*labels_for(taxa), *(staged.labels[i] for i in outcome)]
    staged.set_rows(labels, np.concatenate([np.asarray(matrix, np.float32), staged.matrix[outcome]]))
