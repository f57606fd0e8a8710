"""`lit-edge export` commands: thin wrappers over :mod:`lit_edge.export` (torch is imported lazily)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True)

Checkpoint = Annotated[
    str,
    typer.Argument(help="Checkpoint folder (config.json + model.safetensors) or a registered model name."),
]
SpeciesFile = Annotated[
    Path | None,
    typer.Option("--species", "-s", help="Species list: CSV with taxonomy columns, or one name a line."),
]
CalibDir = Annotated[
    Path | None,
    typer.Option("--calib", help="Folder of real photos for INT8 calibration (default: sample photos)."),
]
Method = Annotated[
    str,
    typer.Option(
        "--method",
        help="INT8 calibration ranges: mixed (MinMax where never negative, Percentile elsewhere; default) | minmax | percentile | entropy.",
    ),
]
CalibImages = Annotated[int, typer.Option("--calib-images", help="Calibration images (photos plus crops).")]


def _model(checkpoint: str):
    """A checkpoint folder, a starter's name (``starter``, ``starter-lite2``: the checkpoint that
    ``lit-edge train starter`` built, so that adding a species to the starter bundle needs no
    path), or a registered model name (random text head: for trying the pipeline)."""
    from lit_edge.errors import UserError
    from lit_edge.model import create_model, list_models, load_checkpoint
    from lit_edge.paths import starter_checkpoint_dir
    from lit_edge.starter.config import TOWERS, tower_folder

    path = Path(checkpoint).expanduser()
    if path.is_dir():
        return load_checkpoint(path), path
    starters = {tower_folder(t): t for t in TOWERS}
    if checkpoint in starters:
        path = starter_checkpoint_dir(checkpoint)
        if (path / "config.json").is_file():
            return load_checkpoint(path), path
        tower = "" if checkpoint == "starter" else f" --tower {starters[checkpoint]}"
        raise UserError(
            f"the {checkpoint} model is not built yet ({path}); build it with `lit-edge train starter{tower}`"
        )
    if checkpoint in list_models():
        return create_model(checkpoint), None
    raise UserError(
        f"checkpoint not found: {checkpoint}; pass a checkpoint folder, {' or '.join(starters)}, "
        f"or one of: {', '.join(list_models())}"
    )


Flavours = Annotated[
    str,
    typer.Option(
        "--flavours",
        help="Image towers to write, comma-separated: int8_cpu (ONNX Runtime on a CPU), int8_tensorrt "
        "(TensorRT); fp32 is always written. Each INT8 tower is most of an export's time.",
    ),
]


def _bundle_config(method: str, calib_images: int, classifiers: bool, flavours: str = ""):
    from dataclasses import replace

    from lit_edge.export.writer import BundleConfig

    names = tuple(f.strip() for f in flavours.split(",") if f.strip())
    cfg = BundleConfig(calib_images=calib_images, classifiers=classifiers)
    if names:
        cfg = replace(cfg, flavours=names)
    return replace(
        cfg,
        quant_cpu=replace(cfg.quant_cpu, method=method),
        quant_tensorrt=replace(cfg.quant_tensorrt, method=method),
    )


@app.command("species")
def species(
    checkpoint: Checkpoint,
    species_file: SpeciesFile = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write labels.csv + text_embeddings.npy here.")
    ] = None,
    bundle: Annotated[
        Path | None, typer.Option("--bundle", "-b", help="Rewrite this bundle's species in place.")
    ] = None,
    add: Annotated[
        list[str] | None,
        typer.Option("--add", help="Add a species by name to --bundle: 'Genus epithet[, Common]'."),
    ] = None,
) -> None:
    """Encode a species list into the frozen species matrix (no images, no retraining)."""
    from lit_edge.errors import UserError
    from lit_edge.export import species as sp
    from lit_edge.export import writer

    if (out is None) == (bundle is None):
        raise UserError("export species: give exactly one of --out DIR or --bundle BUNDLE")
    if add and bundle is None:
        raise UserError("export species: --add needs --bundle BUNDLE (the bundle to add to)")
    if not add and species_file is None:
        raise UserError("export species: give --species FILE (or --add NAME with --bundle)")
    model, _ = _model(checkpoint)
    if out is not None:
        matrix, _ = sp.write_species(model, species_file, out)
        typer.echo(f"{out}: {matrix.shape[0]} species, {matrix.shape[1]}-d")
        return
    if species_file is not None:
        b = writer.set_species(bundle, model, species_file)
    else:
        b = writer.add_species(bundle, model, add or [])
    typer.echo(f"{b.root}: {len(b.labels)} species; checksums rewritten")


@app.command("bundle")
def bundle(
    checkpoint: Checkpoint,
    species_file: SpeciesFile = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Bundle folder to write.")] = Path("bundle"),
    calib: CalibDir = None,
    tar: Annotated[bool, typer.Option("--tar", help="Also write BUNDLE.tar.")] = False,
    method: Method = "mixed",
    calib_images: CalibImages = 256,
    classifiers: Annotated[bool, typer.Option(help="Also write classifier graphs (output scores).")] = True,
    flavours: Flavours = "fp32,int8_cpu,int8_tensorrt",
) -> None:
    """Write a bundle: fp32 + INT8 (cpu, tensorrt) image towers, classifiers, species, manifest."""
    from lit_edge.errors import UserError
    from lit_edge.export.writer import build_bundle

    if species_file is None:
        raise UserError("export bundle: --species FILE is required (a CSV or a text file of names)")
    model, ckpt = _model(checkpoint)
    cfg = _bundle_config(method, calib_images, classifiers, flavours)
    path = build_bundle(model, species_file, out, calib, cfg, checkpoint=ckpt, tar=tar)
    typer.echo(str(path))


@app.command("starter")
def starter(
    checkpoint: Annotated[
        Path | None,
        typer.Option("--checkpoint", help="Starter checkpoint folder (default: built on first use)."),
    ] = None,
    species_file: SpeciesFile = None,
    calib: CalibDir = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Bundle folder (default: the default bundle).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Rebuild even if an up-to-date bundle exists.")
    ] = False,
    calib_images: CalibImages = 256,
    flavours: Flavours = "fp32,int8_cpu,int8_tensorrt",
    tower: Annotated[
        str,
        typer.Option(
            "--tower",
            help="Starter image tower: lite0 (the default bundle) | lite2 (bundles/starter-lite2; stronger, about 2x slower).",
        ),
    ] = "lite0",
) -> None:
    """Build the default (starter) bundle the runtime uses when no bundle is named; reuses it if current."""
    from lit_edge.export.starter import StarterBundleConfig, ensure_starter_bundle

    cfg = StarterBundleConfig(
        checkpoint=checkpoint,
        species=species_file,
        calib=calib,
        out=out,
        calib_images=calib_images,
        bundle=_bundle_config("mixed", calib_images, True, flavours),
        tower=tower,
    )
    typer.echo(str(ensure_starter_bundle(cfg, force=force)))


@app.command("engine")
def engine(
    bundle: Annotated[
        Path | None, typer.Argument(help="Bundle folder (default: the default bundle).")
    ] = None,
    flavour: Annotated[
        str, typer.Option("--flavour", help="Image tower: int8_tensorrt | fp32.")
    ] = "int8_tensorrt",
    precision: Annotated[
        str | None,
        typer.Option("--precision", help="int8 | fp16 | fp32 (default: int8 for INT8 towers, else fp16)."),
    ] = None,
    max_batch: Annotated[int, typer.Option("--max-batch", help="Largest batch the engine accepts.")] = 16,
) -> None:
    """Build (or reuse) the TensorRT engine for a bundle on this device; prints its path."""
    from lit_edge import bundle as bf
    from lit_edge.device import engines

    b = bf.load(bundle or bf.default_path())
    cfg = engines.BuildConfig(
        precision=precision or engines.default_precision(flavour), max_batch=max_batch, opt_batch=1
    )
    typer.echo(str(engines.engine_for_bundle(b, flavour, cfg)))
