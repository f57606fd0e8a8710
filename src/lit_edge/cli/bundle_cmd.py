"""`lit-edge bundle` commands: inspect, verify and calibrate bundles (torch-free)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lit_edge.cli.device_opts import BackendOpt, PrecisionOpt

app = typer.Typer(no_args_is_help=True)

BundleArg = Annotated[
    Path | None, typer.Argument(help="Bundle folder or .tar (default: the default bundle).")
]


@app.command("path")
def path() -> None:
    """Print the default bundle's folder (``$LIT_EDGE_BUNDLE`` or the starter bundle)."""
    from lit_edge import bundle as bf

    typer.echo(str(bf.default_path()))


@app.command("info")
def info(bundle: BundleArg = None) -> None:
    """Describe a bundle: model, species count, files, precision flavours."""
    from rich.console import Console
    from rich.table import Table

    from lit_edge import bundle as bf

    b = bf.load(bundle or bf.default_path())
    m = b.manifest
    console = Console()
    console.print(f"[bold]{b.root}[/bold]")
    console.print(
        f"model {m.model.name} ({m.model.embed_dim}-d, logit scale {m.model.logit_scale:g}), "
        f"{_classes(b)}, input {m.preprocess.input_size[0]}x{m.preprocess.input_size[1]} "
        f"{m.preprocess.colour_order} {m.preprocess.layout}, created {m.created or '?'}"
    )
    console.print(f"image towers: {', '.join(sorted(m.image_towers))}")
    console.print(f"classifiers: {', '.join(sorted(m.classifiers)) or 'none'}")
    learned = m.extra.get("learn")
    if learned:  # written by 'lit-edge learn': say where it came from
        cv = learned.get("cv", {})
        sources = ", ".join(s["path"] for s in learned.get("sources", [])) or "arrays"
        console.print(
            f"learned from {sum(learned.get('counts', {}).values())} verified photos ({sources}); "
            f"parent {learned.get('parent', {}).get('path', '?')}; method {learned.get('method')} "
            f"{learned.get('param')}; held-out top-1 {cv.get('text_rows', {}).get('right')} -> "
            f"{cv.get('chosen', {}).get('right')} of {cv.get('species_photos')}; "
            f"added: {', '.join(learned.get('added_species', [])) or 'none'}"
        )
    table = Table("file", "MB", "sha256")
    for name, meta in sorted(m.files.items()):
        table.add_row(name, f"{meta['bytes'] / 1e6:.2f}", meta["sha256"][:16])
    console.print(table)
    cal = m.extra.get("score_calibration")
    if cal:  # written by 'lit-edge bundle calibrate'
        console.print(
            f"scores calibrated on {cal.get('photos')} photos of {cal.get('species')} species "
            f"({cal.get('source')}, {cal.get('split')}): logit scale {cal.get('logit_scale_before'):g} -> "
            f"{cal.get('logit_scale'):g}; held-out ECE {cal['heldout_ece'][0]:.3f} -> {cal['heldout_ece'][1]:.3f}"
        )
    engines = sorted(b.engines_dir.glob("*.engine")) if b.engines_dir.is_dir() else []
    if engines:
        console.print("engines: " + ", ".join(e.name for e in engines))


@app.command("verify")
def verify(bundle: Annotated[Path, typer.Argument(help="Bundle folder or .tar.")]) -> None:
    """Check the format version and every file's size and sha256; exit 2 on the first problem."""
    from lit_edge import bundle as bf

    b = bf.load(bundle)
    _ = b.text_embeddings  # also checks the matrix against labels.csv
    typer.echo(f"ok: {b.root} ({len(b.manifest.files)} files, {_classes(b)})")


@app.command("calibrate")
def calibrate(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder of a trained LiT model (softmax scores).")],
    data: Annotated[
        str, typer.Option("--data", help="Labelled photos the model did not train on: a dataset root.")
    ],
    data_format: Annotated[
        str, typer.Option("--format", help="inat (train.json/val.json) | folder (one per species) | csv.")
    ] = "inat",
    split: Annotated[str, typer.Option("--split", help="The split of an inat root to fit on.")] = "val",
    max_per_class: Annotated[
        int, typer.Option("--max-per-class", min=0, help="At most this many photos per species (0 = all).")
    ] = 0,
    backend: BackendOpt = "auto",
    precision: PrecisionOpt = None,
) -> None:
    """Make the scores honest: fit the logit scale (a temperature) on labelled photos, in place.

    The fit runs the bundle's own tower (the one the device runs) and records the data and the
    held-out calibration error before and after in the manifest (see ``bundle info``).
    """
    from lit_edge.data import DataConfig
    from lit_edge.device.config import BackendConfig
    from lit_edge.learn.calibrate_bundle import BundleCalibrationConfig, calibrate_bundle

    cfg = BundleCalibrationConfig(
        bundle=bundle,
        data=DataConfig(format=data_format, root=data, split=split, max_per_class=max_per_class),
        backend=BackendConfig(backend=backend, precision=precision),
    )
    r = calibrate_bundle(cfg)
    typer.echo(
        f"calibrated {bundle}: logit scale {r.before:g} -> {r.after:.4g} on {r.photos} photos of "
        f"{r.species} species; held-out ECE {r.heldout_ece[0]:.3f} -> {r.heldout_ece[1]:.3f}, "
        f"NLL {r.heldout_nll[0]:.3f} -> {r.heldout_nll[1]:.3f}"
        + (f"; {r.unreadable} unreadable" if r.unreadable else "")
        + (f"; {r.not_in_bundle} classes not in the bundle (skipped)" if r.not_in_bundle else "")
    )


def _classes(b) -> str:
    """'725 species' or '124 species + 462 background rows + 59 human + 79 vehicle + 209 animal
    rows': outcome rows (blank, human, vehicle, animal) are not species."""
    from lit_edge.bundle import OUTCOME_ROWS

    count = {k: sum(lab.outcome == k for lab in b.labels) for k in OUTCOME_ROWS}
    text = f"{len(b.labels) - sum(count.values())} species"
    text += f" + {count['blank']} background rows" if count["blank"] else ""
    return text + "".join(f" + {n} {k} rows" for k, n in count.items() if k != "blank" and n)
