"""`lit-edge learn`: a new bundle from the photos people verified (torch-free, runs on the device)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lit_edge.cli.device_opts import BundleOpt


def learn(
    dbs: Annotated[
        list[Path], typer.Argument(help="Detection databases with verified photos ('lit-edge review').")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder of the new bundle (beside the old one).")],
    bundle: BundleOpt = None,
    method: Annotated[
        str,
        typer.Option(
            help="prototype: text rows blended with the verified photos' mean; probe: a linear probe "
            "started from the text rows; auto: both, the better on held-out photos wins."
        ),
    ] = "prototype",
    background: Annotated[
        bool, typer.Option(help="Verified blanks, people and vehicles add background rows.")
    ] = True,
    calibrate: Annotated[
        bool, typer.Option(help="Refit the logit scale on held-out verified photos.")
    ] = True,
) -> None:
    """Learn the site: blend each verified species' text row with its photos, add species the bundle
    lacks, strengthen the background, recalibrate; every choice by cross-validation."""
    from rich.console import Console
    from rich.table import Table

    from lit_edge.device.pipeline import open_bundle
    from lit_edge.learn import LearnConfig
    from lit_edge.learn import learn as fit
    from lit_edge.learn.verified import read_verified
    from lit_edge.learn.write import check_out, write

    cfg = LearnConfig(method=method, background=background, calibrate=calibrate)
    parent = open_bundle(bundle)
    check_out(parent, out)  # before any work: a wrong -o is a one-line error at once
    if "learn" in parent.manifest.extra:
        typer.echo(
            f"warning: {parent.root} is itself a learned bundle: its rows already hold the photos it "
            "learned; learn from the original bundle with all the databases to count each photo once",
            err=True,
        )
    verified = read_verified(dbs, parent)
    new = write(parent, fit(parent, verified, cfg), out)
    p = new.manifest.extra["learn"]
    console = Console()
    t = Table(title=f"Verified photos ({sum(p['counts'].values())})")
    t.add_column("label")
    t.add_column("photos", justify="right")
    t.add_column("")
    for name, n in p["counts"].items():
        t.add_row(name, str(n), "added" if name in p["added_species"] else "")
    console.print(t)
    cv, cal, bg = p["cv"], p["calibration"], p["background"]
    typer.echo(
        f"species rows: {p['method']} ({cv['chosen']['param']}); held-out top-1 "
        f"{cv['text_rows']['right']} -> {cv['chosen']['right']} of {cv['species_photos']} "
        f"({cv['folds']}-fold cross-validation)"
    )
    typer.echo(
        f"background: {bg['rows_added']} rows added; logit scale {parent.manifest.model.logit_scale:.3g} -> "
        f"{new.manifest.model.logit_scale:.3g}{'' if cal['fitted'] else ' (kept)'}"
    )
    if p["skipped"]:
        typer.echo("skipped: " + ", ".join(f"{n} {k}" for k, n in p["skipped"].items()))
    typer.echo(
        f"wrote {new.root} ({p['seconds']:.1f} s); re-decide a database with: lit-edge db retag DB --bundle {new.root}"
    )
