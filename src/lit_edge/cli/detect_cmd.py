"""`lit-edge detect`: live classification of a camera, stream or video.

Headless: it prints a line per detection and a periodic status line, and runs until stopped
(SIGINT/SIGTERM finish the batch, flush the database and exit 0), until ``--duration`` passes, or
until a video file ends. ``--config device.toml`` supplies defaults for any option not given on the
command line (see ``device/example.toml``), which is how the systemd unit runs it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from lit_edge.cli.device_opts import (
    BackendOpt,
    BlankOpt,
    BundleOpt,
    MarginOpt,
    PrecisionOpt,
    SpeciesOpt,
    ThreadsOpt,
    ThresholdOpt,
    TopKOpt,
    engine_config,
)
from lit_edge.errors import UserError


def detect(
    ctx: typer.Context,
    source: Annotated[
        str | None,
        typer.Argument(
            help="csi://0, v4l2:///dev/video0, /dev/video0, 0, rtsp://..., http://..., a video file."
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="TOML or JSON file of option defaults (device config)."),
    ] = None,
    db: Annotated[Path, typer.Option("--db", help="SQLite database to log to.")] = Path("detections.db"),
    bundle: BundleOpt = None,
    backend: BackendOpt = "auto",
    precision: PrecisionOpt = None,
    threads: ThreadsOpt = 0,
    top_k: TopKOpt = 5,
    threshold: ThresholdOpt = 0.5,
    margin: MarginOpt = 0.1,
    blank_threshold: BlankOpt = 0.5,
    species: SpeciesOpt = None,
    fps: Annotated[
        float, typer.Option("--fps", min=0, help="Classify at most this many frames/s (0 = all).")
    ] = 0.0,
    every: Annotated[int, typer.Option("--every", min=1, help="Classify every Nth frame.")] = 1,
    motion: Annotated[
        float,
        typer.Option("--motion", min=0, max=1, help="Skip frames where less than this fraction changed."),
    ] = 0.0,
    duration: Annotated[float, typer.Option("--duration", min=0, help="Stop after this many seconds.")] = 0.0,
    width: Annotated[int, typer.Option("--width", help="Capture width (CSI/V4L2).")] = 1280,
    height: Annotated[int, typer.Option("--height", help="Capture height (CSI/V4L2).")] = 720,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Most frames per inference.")] = 2,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help="Inference workers, batches side by side on cores / workers threads each "
            "(1 = lowest latency; more may help a video file on a many-core CPU).",
        ),
    ] = 1,
    reconnect: Annotated[
        bool, typer.Option("--reconnect/--no-reconnect", help="Reopen a live source that drops.")
    ] = True,
    max_reconnects: Annotated[
        int, typer.Option("--max-reconnects", help="Give up after N (-1 = never).")
    ] = -1,
    status_every: Annotated[
        float, typer.Option("--status-every", help="Seconds between status lines.")
    ] = 10.0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No line per detection.")] = False,
    headless: Annotated[
        bool,
        typer.Option(
            "--headless/--display", help="No window (default); --display shows frames (GUI OpenCV)."
        ),
    ] = True,
    save_frames: Annotated[
        Path | None, typer.Option("--save-frames", help="Save confident frames as JPEG in this folder.")
    ] = None,
    save_min_score: Annotated[
        float, typer.Option("--save-min-score", help="Score a saved frame needs.")
    ] = 0.8,
    save_quota_mb: Annotated[
        float, typer.Option("--save-quota-mb", help="Disk quota of saved frames.")
    ] = 500.0,
) -> None:
    opts = dict(locals())
    opts.pop("ctx")
    if config is not None:
        opts.update(_from_config(ctx, config, opts))
    if not opts["source"]:
        raise UserError("no source given; pass SOURCE (e.g. csi://0 or a video file) or 'source' in --config")

    from lit_edge.db.summary import summary_lines
    from lit_edge.device.live import DetectConfig, run_detect
    from lit_edge.device.sources import CaptureConfig
    from lit_edge.device.tagger import GracefulStop

    o = opts
    cfg = DetectConfig(
        source=str(o["source"]),
        db=Path(o["db"]),
        engine=engine_config(
            _path(o["bundle"]),
            o["backend"],
            o["precision"],
            int(o["threads"]),
            int(o["top_k"]),
            float(o["threshold"]),
            float(o["margin"]),
            _path(o["species"]),
            float(o["blank_threshold"]),
        ),
        capture=CaptureConfig(
            width=int(o["width"]),
            height=int(o["height"]),
            fps=float(o["fps"]),
            every=int(o["every"]),
            motion=float(o["motion"]),
            reconnect=bool(o["reconnect"]),
            max_reconnects=int(o["max_reconnects"]),
        ),
        batch_size=int(o["batch_size"]),
        workers=int(o["workers"]),
        duration_s=float(o["duration"]),
        status_every_s=float(o["status_every"]),
        print_detections=not o["quiet"],
        display=not o["headless"],
        save_frames=_path(o["save_frames"]),
        save_min_score=float(o["save_min_score"]),
        save_quota_mb=float(o["save_quota_mb"]),
    )
    with GracefulStop() as stop:
        result = run_detect(cfg, stop=stop, echo=typer.echo)
    typer.echo(
        f"detect: {result.frames} frame(s) in {result.seconds:.1f} s, {result.detections} detection(s), "
        f"{result.reconnects} reconnect(s), {result.dropped} dropped; database {cfg.db}"
    )
    for line in summary_lines(result.summary)[1:]:  # the run's counts, after the line above
        typer.echo(line)
    if result.source_error:  # non-zero, so that systemd's Restart=on-failure starts it again
        raise UserError(f"{result.source_error}; detections so far are in {cfg.db}")


def _path(v) -> Path | None:
    return Path(v).expanduser() if v not in (None, "") else None


def _from_config(ctx: typer.Context, path: Path, opts: dict) -> dict:
    """Values from the config file for the options the command line left at their defaults."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read config {path}: {exc.strerror}; check --config") from exc
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import tomllib

            data = tomllib.loads(text)
    except ValueError as exc:
        raise UserError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'} ({exc})") from exc
    data = data.get("detect", data)
    out = {}
    unknown = []
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in opts or name == "config":
            unknown.append(key)
            continue
        given = ctx.get_parameter_source(name)  # compared by name: typer may vendor its own click
        if given is not None and given.name in ("COMMANDLINE", "ENVIRONMENT"):
            continue
        out[name] = value
    if unknown:
        raise UserError(
            f"{path}: unknown option(s) {', '.join(sorted(unknown))}; see 'lit-edge detect --help'"
        )
    return out
