"""Write a bundle from a LiT model: towers (fp32, INT8 cpu, INT8 tensorrt), classifiers, species, manifest.

The bundle is built in a sibling ``.building`` folder and swapped in only when complete and
verified, so an interrupted export never leaves a half bundle where the runtime looks. A fingerprint
of everything the bundle depends on (checkpoint files, species list, calibration images, settings,
lit-edge version) is stored in the manifest; :func:`is_up_to_date` lets ``export starter`` reuse an
existing bundle instead of rebuilding it.

Species changes (:func:`set_species`, :func:`add_species`) rewrite ``labels.csv``, the matrix, the
classifier graphs and the manifest checksums in place, without touching the image towers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lit_edge import __version__
from lit_edge import bundle as bf
from lit_edge.errors import UserError
from lit_edge.export import calib, head
from lit_edge.export.quantize import QuantConfig
from lit_edge.export.species import LABELS, MATRIX, SpeciesConfig, labels_for
from lit_edge.taxonomy import Taxon, read_species_list

log = logging.getLogger(__name__)

TOWER_FILES = {
    "fp32": "image_fp32.onnx",
    "int8_cpu": "image_int8_cpu.onnx",
    "int8_tensorrt": "image_int8_tensorrt.onnx",
}
QUANT_FLAVOUR = {"int8_cpu": "cpu", "int8_tensorrt": "tensorrt"}


def classifier_file(flavour: str) -> str:
    return f"classifier_{flavour}.onnx"


@dataclass(frozen=True)
class BundleConfig:
    """What goes into a bundle and how the INT8 towers are calibrated."""

    flavours: tuple[str, ...] = ("fp32", "int8_cpu", "int8_tensorrt")
    classifiers: bool = True  # one graph per flavour with the species matrix folded in (output scores)
    calib_images: int = 256
    calib_seed: int = 0
    quant_cpu: QuantConfig = field(default_factory=lambda: QuantConfig(target="cpu"))
    quant_tensorrt: QuantConfig = field(default_factory=lambda: QuantConfig(target="tensorrt"))
    species: SpeciesConfig = field(default_factory=SpeciesConfig)

    def __post_init__(self):
        bad = set(self.flavours) - set(TOWER_FILES)
        if bad or "fp32" not in self.flavours:
            raise UserError(f"bundle flavours must include fp32 and come from {sorted(TOWER_FILES)}")

    def quant(self, flavour: str) -> QuantConfig:
        return self.quant_cpu if flavour == "int8_cpu" else self.quant_tensorrt


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
    taxa = read_species_list(species_file)
    pre = model.preprocess_config()
    work = out_dir.with_name(out_dir.name + ".building")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    model = model.eval()
    steps = 3 + len(cfg.flavours) + (len(cfg.flavours) if cfg.classifiers else 0)
    t0 = time.perf_counter()
    extra: dict = {"fingerprint": fp, "species_config": asdict(cfg.species), "quantization": {}}
    with _progress() as progress, torch.inference_mode(False), torch.no_grad():
        task = progress.add_task(f"bundle {out_dir.name}", total=steps)

        matrix = encode(model, taxa, cfg.species)
        np.save(work / MATRIX, matrix, allow_pickle=False)
        bf.write_labels(work / LABELS, labels_for(taxa))
        progress.advance(task)

        graph = ox.ImageGraph(model.image_tower, pre)  # = encode_image(normalize=False), then L2
        fp32 = ox.export(graph, work / TOWER_FILES["fp32"], pre)
        real = np.stack([calib.fit(img, pre) for _, img in calib.sample_photos()])
        parity = ox.check(fp32, graph, real)
        extra["parity_fp32"] = asdict(parity)
        progress.advance(task)

        images = calib.calibration_set(pre, calib_dir, cfg.calib_images, cfg.calib_seed)
        extra["calibration"] = {
            "source": str(calib_dir) if calib_dir else "sample photos",
            "images": len(images),
        }
        progress.advance(task)
        towers = {"fp32": TOWER_FILES["fp32"]}
        for flavour in cfg.flavours:
            if flavour == "fp32":
                progress.advance(task)
                continue
            qcfg = cfg.quant(flavour)
            quantize(fp32, work / TOWER_FILES[flavour], images, qcfg)
            towers[flavour] = TOWER_FILES[flavour]
            extra["quantization"][flavour] = asdict(qcfg)
            progress.advance(task)

        info = model_info(model)
        classifiers = {}
        if cfg.classifiers:
            for flavour, name in towers.items():
                head.add_scores_head(
                    work / name, work / classifier_file(flavour), matrix, info.logit_scale, info.logit_bias
                )
                classifiers[flavour] = classifier_file(flavour)
                progress.advance(task)

    manifest = bf.Manifest(
        model=info,
        preprocess=pre,
        image_towers=towers,
        classifiers=classifiers,
        num_classes=len(taxa),
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        lit_edge_version=__version__,
        extra=extra,
    )
    bf.write_manifest(work, manifest)
    bf.load(work)  # verify what was written before it replaces anything
    if out_dir.exists():
        shutil.rmtree(out_dir)
    work.replace(out_dir)
    log.info("bundle written: %s (%d species, %.0f s)", out_dir, len(taxa), time.perf_counter() - t0)
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


def _taxon(label: bf.Label) -> Taxon:
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
    )
    if not t.genus:  # labels written by hand: only the scientific name is known
        t = Taxon.from_name(label.scientific_name, common_name=label.common_name)
    return t


def _open_for_species(bundle_dir: Path, model) -> bf.Bundle:
    b = bf.load(bundle_dir)
    if b.manifest.model.name != model.config.name:
        raise UserError(
            f"{bundle_dir}: bundle was made with model {b.manifest.model.name!r}, not {model.config.name!r}; "
            "encode species with the bundle's own checkpoint"
        )
    return b


def _species_config(b: bf.Bundle) -> SpeciesConfig:
    """The text type and templates the bundle's matrix was made with (so new rows match old ones)."""
    saved = b.manifest.extra.get("species_config")
    if not saved:
        return SpeciesConfig()
    return SpeciesConfig(**{**saved, "templates": tuple(saved["templates"])})


def _rewrite(b: bf.Bundle, taxa: Sequence[Taxon], matrix: np.ndarray) -> bf.Bundle:
    """Replace labels, matrix and classifier graphs of ``b`` and re-checksum its manifest."""
    root, m = b.root, b.manifest
    tmp = root / (MATRIX + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(matrix, np.float32), allow_pickle=False)
    tmp.replace(root / m.text_embeddings)
    bf.write_labels(root / m.labels, labels_for(taxa))
    for flavour, name in m.classifiers.items():
        out = root / (name + ".tmp")
        head.add_scores_head(
            root / m.image_towers[flavour], out, matrix, m.model.logit_scale, m.model.logit_bias
        )
        out.replace(root / name)
    m.num_classes = len(taxa)
    bf.write_manifest(root, m)
    return bf.load(root)


def set_species(bundle_dir: Path, model, species_file: Path, cfg: SpeciesConfig | None = None) -> bf.Bundle:
    """Re-encode the bundle's species from ``species_file`` (a full replacement)."""
    from lit_edge.export.species import encode

    b = _open_for_species(bundle_dir, model)
    cfg = cfg or _species_config(b)
    taxa = read_species_list(species_file)
    return _rewrite_species(b, taxa, encode(model, taxa, cfg))


def add_species(bundle_dir: Path, model, names: Sequence[str], cfg: SpeciesConfig | None = None) -> bf.Bundle:
    """Append species by name ('Genus epithet[, Common name]'): only the new rows are encoded, the
    existing rows of the matrix stay bit-identical. A name already in the bundle is refused."""
    from lit_edge.export.species import encode

    b = _open_for_species(bundle_dir, model)
    cfg = cfg or _species_config(b)
    species = [i for i, lab in enumerate(b.labels) if not lab.is_blank]
    have = [_taxon(b.labels[i]) for i in species]
    known = {t.scientific_name.casefold() for t in have}
    new = []
    for raw in names:
        sci, _, common = raw.partition(",")
        t = Taxon.from_name(sci.strip(), common_name=common.strip())
        if not t.scientific_name:
            raise UserError(f"species name {raw!r} is empty; write 'Genus epithet[, Common name]'")
        if t.scientific_name.casefold() in known:
            raise UserError(f"{bundle_dir}: {t.scientific_name!r} is already in the bundle")
        known.add(t.scientific_name.casefold())
        new.append(t)
    matrix = np.concatenate([b.text_embeddings[species], encode(model, new, cfg)])
    return _rewrite_species(b, [*have, *new], matrix)


def _rewrite_species(b: bf.Bundle, taxa: Sequence[Taxon], matrix: np.ndarray) -> bf.Bundle:
    """Background rows (``blank``) are not species: a species edit rewrites the species alone, then
    puts the same background rows back after them (their ids follow the new species)."""
    from lit_edge.export.species import set_background

    rows = [i for i, lab in enumerate(b.labels) if lab.is_blank]
    labels = [b.labels[i] for i in rows]
    background = b.text_embeddings[rows]
    info = {k: v for k, v in b.manifest.extra.get("background", {}).items() if k != "rows"}
    out = _rewrite(b, taxa, matrix)
    if not rows:
        return out
    set_background(b.root, labels, background, info)
    return bf.load(b.root)
