"""`lit-edge db`: summarise a detection database, and export it to the formats field tools read.

Thin wrappers over ``lit_edge.fielddata``; torch-free like the runtime.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from lit_edge.cli.device_opts import BlankOpt, MarginOpt, ThresholdOpt
from lit_edge.errors import UserError

app = typer.Typer(no_args_is_help=True)

Db = Annotated[Path, typer.Argument(help="The detection database ('lit-edge tag --db' wrote it).")]


class Format(str, Enum):
    camtrap_dp = "camtrap-dp"
    megadetector = "megadetector"
    csv = "csv"
    xmp = "xmp"
    geojson = "geojson"


class XmpStyle(str, Enum):
    digikam = "digikam"
    lightroom = "lightroom"


@app.command("summary", help="Counts per species, blanks, per day, and failures by reason.")
def summary(db: Db) -> None:
    from rich.console import Console
    from rich.table import Table

    from lit_edge.db.summary import summarise

    s = summarise(db)
    console = Console()
    typer.echo(f"{db}: {s.total} media, {s.done} classified ({s.blank} blank), {s.failed} failed")
    if set(s.by_kind) - {"photo"}:
        typer.echo("rows: " + ", ".join(f"{n} {kind}" for kind, n in sorted(s.by_kind.items())))
    if s.verified:
        agreed = sum(a.agreed for a in s.agreement)
        typer.echo(f"verified by people: {s.verified}, of which {agreed} agree with the machine")
    t = Table(title="Per species")
    cols = ["species", "common name", "rank", "photos", "mean score"] + (["verified"] if s.verified else [])
    for col in cols:
        t.add_column(col, justify="right" if col in ("photos", "mean score", "verified") else "left")
    for sc in s.species:
        row = [sc.name, sc.common_name, sc.rank, str(sc.count), f"{sc.mean_score:.2f}"]
        t.add_row(*row, *([str(sc.verified)] if s.verified else []))
    console.print(t)
    if s.verified:
        t = Table(title="People vs machine (verified photos)")
        for col in ("machine said", "verified", "agreed", "agreement", "people said instead"):
            t.add_column(col, justify="right" if col in ("verified", "agreed", "agreement") else "left")
        for a in s.agreement:
            instead = ", ".join(f"{name} {n}" for name, n in a.instead[:4])
            t.add_row(a.machine, str(a.verified), str(a.agreed), f"{a.rate:.0%}", instead)
        console.print(t)
    t = Table(title="Per day")
    for col in ("day", "photos", "named", "blank"):
        t.add_column(col, justify="left" if col == "day" else "right")
    for day, n in s.per_day.items():
        t.add_row(day, str(n["media"]), str(n["named"]), str(n["blank"]))
    console.print(t)
    t = Table(title="Observation types")
    t.add_column("type")
    t.add_column("photos", justify="right")
    for kind, n in sorted(s.by_type.items()):
        t.add_row(kind, str(n))
    console.print(t)
    t = Table(title=f"Failures ({s.failed})")
    t.add_column("reason")
    t.add_column("photos", justify="right")
    for reason, n in s.failures.items():
        t.add_row(reason, str(n))
    console.print(t)


@app.command(
    "export",
    help="Export to Camtrap DP, MegaDetector JSON (Timelapse), CSV, XMP sidecars, or GeoJSON (maps).",
)
def export(
    db: Db,
    format: Annotated[Format, typer.Option("--format", "-f", help="Output format.")],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Output: a folder for camtrap-dp, a file for megadetector/csv/geojson; for xmp, a "
            "folder to mirror sidecars into (default: beside each photo).",
        ),
    ] = None,
    deployments: Annotated[
        Path | None,
        typer.Option(
            help="Deployment file (CSV/JSON: deploymentID, latitude, longitude, start, end, camera)."
        ),
    ] = None,
    event_gap: Annotated[
        float, typer.Option(help="Seconds between photos that still belong to one event.")
    ] = 60.0,
    utc_offset: Annotated[
        str, typer.Option(help="UTC offset of the cameras' clocks when a deployment gives none.")
    ] = "+00:00",
    min_score: Annotated[float, typer.Option(help="Decisions below this score become 'unknown'.")] = 0.0,
    xmp_style: Annotated[
        XmpStyle, typer.Option(help="digikam: photo.jpg.xmp (also darktable); lightroom: photo.xmp.")
    ] = XmpStyle.digikam,
    bundle: Annotated[
        Path | None, typer.Option(help="Bundle whose labels.csv gives the taxonomy (default: the run's).")
    ] = None,
    contributor: Annotated[str, typer.Option(help="Camtrap DP contributor (you or your organisation).")] = (
        "lit-edge user"
    ),
) -> None:
    from lit_edge.db.reader import read_detections
    from lit_edge.fielddata.config import DecisionRule, FieldDataConfig

    if event_gap < 0:
        raise UserError(f"--event-gap {event_gap}: must be 0 or more seconds")
    if out is None and format is not Format.xmp:
        raise UserError(f"--format {format.value} needs -o OUT (where to write it)")
    cfg = FieldDataConfig(
        event_gap_s=event_gap,
        deployments=deployments,
        utc_offset=utc_offset,
        rule=DecisionRule(min_score=min_score),
        bundle=bundle,
        contributor=contributor,
        xmp_style=xmp_style.value,
    )
    det = read_detections(db)
    if format is Format.camtrap_dp:
        from lit_edge.fielddata.camtrapdp import write_camtrap_dp

        typer.echo(f"wrote {write_camtrap_dp(det, out, cfg)}")
    elif format is Format.megadetector:
        from lit_edge.fielddata.megadetector import write_megadetector

        typer.echo(f"wrote {write_megadetector(det, out, cfg)}")
    elif format is Format.csv:
        from lit_edge.fielddata.csvout import write_csv

        typer.echo(f"wrote {write_csv(det, out, cfg)}")
    elif format is Format.geojson:
        from lit_edge.fielddata.geojson import write_geojson

        typer.echo(f"wrote {write_geojson(det, out, cfg)}")
    else:
        from lit_edge.fielddata.xmp import write_xmp

        written = write_xmp(det, out, cfg)
        typer.echo(f"wrote {len(written)} XMP sidecar(s)")


@app.command(
    "retag", help="Re-decide a database from its stored embeddings with another bundle (no decoding)."
)
def retag(
    db: Db,
    bundle: Annotated[
        Path, typer.Option("--bundle", "-b", help="The bundle to decide with (e.g. 'lit-edge learn -o').")
    ],
    threshold: ThresholdOpt = 0.5,
    margin: MarginOpt = 0.1,
    blank_threshold: BlankOpt = 0.5,
) -> None:
    from lit_edge.device.classify import ClassifyConfig
    from lit_edge.learn.retag import RetagConfig
    from lit_edge.learn.retag import retag as run

    cfg = RetagConfig(
        bundle, ClassifyConfig(threshold=threshold, margin=margin, blank_threshold=blank_threshold)
    )
    r = run(db, cfg)
    typer.echo(
        f"{db}: run {r.run_id} re-decided {r.retagged} media from their embeddings with {bundle}; "
        f"{r.changed} decisions changed; {r.kept} without an embedding kept their decision"
    )


@app.command("validate", help="Validate a Camtrap DP package offline (needs 'frictionless').")
def validate(
    package: Annotated[Path, typer.Argument(help="datapackage.json, or the folder holding it.")],
) -> None:
    from lit_edge.fielddata.validate import validate_package

    path = package / "datapackage.json" if package.is_dir() else package
    result = validate_package(path)
    if result.valid:
        typer.echo(f"{path}: valid Camtrap DP")
        return
    for line in result.errors:
        typer.echo(line, err=True)
    raise UserError(
        f"{path}: {len(result.errors)} Camtrap DP error(s), listed above; fix them and validate again"
    )


@app.command(
    "merge",
    help="Join the databases of a sharded job ('tag --shard', a Slurm array) into one: every photo once, "
    "runs kept. Safe to repeat, and to run again after more shards finish.",
)
def merge(
    out: Annotated[Path, typer.Argument(help="The merged database (created, or added to).")],
    shards: Annotated[list[Path], typer.Argument(help="Shard databases, e.g. dbs/lit-edge.shard-*.db.")],
    allow_mixed_bundles: Annotated[
        bool,
        typer.Option(
            "--allow-mixed-bundles",
            help="Merge shards tagged with different bundles (scores not comparable).",
        ),
    ] = False,
) -> None:
    from lit_edge.db import merge as merging

    def said(r) -> None:
        shards = ", ".join(sorted(set(r.shards), key=lambda s: [int(x) for x in s.split("/")])) or "no shard"
        typer.echo(
            f"{r.path}: {r.media} media ({shards}): {r.added} added, {r.replaced} replaced, "
            f"{r.kept} already there; {r.runs_added} run(s), {r.annotations_added} annotation(s) added"
        )
        if r.unfinished_runs:
            typer.echo(
                f"  note: {r.unfinished_runs} run(s) still marked running (killed, or still going); "
                "merge again once the shard is re-run or done"
            )

    merging.merge(merging.MergeConfig(out, tuple(shards), allow_mixed_bundles), on_shard=said)
    for line in merging.coverage(out):
        typer.echo(line)
