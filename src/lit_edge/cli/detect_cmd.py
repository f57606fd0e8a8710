"""`lit-edge detect`: live classification of a camera, stream or video.

Headless: it prints a line per detection and a periodic status line, and runs until stopped
(SIGINT/SIGTERM finish the batch, flush the database and exit 0), until ``--duration`` passes, or
until a video file ends. ``--config device.toml`` supplies defaults for any option not given on the
command line (see ``device/example.toml``), which is how the systemd unit runs it.

How the config file works: its values become click's ``default_map`` (read by an eager option
before the others are parsed), so each value is converted and checked by the very option it sets
(``motion = 2`` is refused like ``--motion 2``), and the command line still wins. The defaults
themselves come from the runtime's config dataclasses, one source for the CLI and the library.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from lit_edge.cli.device_opts import (
    ENGINE,
    BackendOpt,
    BlankOpt,
    BundleOpt,
    EmbeddingsOpt,
    MarginOpt,
    PrecisionOpt,
    SpeciesOpt,
    ThreadsOpt,
    ThresholdOpt,
    TopKOpt,
    engine_config,
)
from lit_edge.device.config import CaptureConfig, DetectConfig
from lit_edge.errors import UserError

_DETECT = DetectConfig(source="")  # the defaults
_CAPTURE = CaptureConfig()


def read_config_file(path: Path) -> dict[str, Any]:
    """A device config (TOML, or JSON by suffix) as ``{option name: value}``; its ``[detect]``
    table if it has one. Keys are option names with dashes or underscores."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read config {path}: {exc.strerror}; check --config") from exc
    is_json = path.suffix.lower() == ".json"
    try:
        if is_json:
            data = json.loads(text)
        else:
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10 (JetPack 6): the same parser, from PyPI
                import tomli as tomllib
            data = tomllib.loads(text)
    except ValueError as exc:  # json.JSONDecodeError and tomllib.TOMLDecodeError both are
        first = str(exc).splitlines()[0]
        raise UserError(f"{path}: not valid {'JSON' if is_json else 'TOML'} ({first}); fix the file") from exc
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a table of option = value; see device/example.toml")
    data = data.get("detect", data)
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def _config_defaults(ctx: typer.Context, path: Path | None) -> Path | None:
    """Eager ``--config`` callback: check the file's values with the options' own types and
    ranges, then make them the defaults of this invocation (``ctx.default_map``)."""
    if path is None:
        return None
    values = read_config_file(path)
    params = {p.name: p for p in ctx.command.params if p.name != "config"}
    unknown = sorted(k.replace("_", "-") for k in values if k not in params)
    if unknown:
        raise UserError(f"{path}: unknown option(s) {', '.join(unknown)}; see 'lit-edge detect --help'")
    for name, value in values.items():
        try:
            params[name].process_value(ctx, value)
        except typer.BadParameter as exc:
            raise UserError(
                f"{path}: {name.replace('_', '-')} = {value!r}: {exc.format_message()}; fix the config file"
            ) from None
    ctx.default_map = {**(ctx.default_map or {}), **values}
    return path


def detect(
    source: Annotated[
        str | None,
        typer.Argument(
            help="csi://0, v4l2:///dev/video0, /dev/video0, 0, rtsp://..., http://..., a video file."
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            is_eager=True,
            callback=_config_defaults,
            help="TOML or JSON file of option defaults (device config); the command line wins.",
        ),
    ] = None,
    db: Annotated[Path, typer.Option("--db", help="SQLite database to log to.")] = _DETECT.db,
    bundle: BundleOpt = ENGINE.bundle,
    backend: BackendOpt = ENGINE.backend.backend,
    precision: PrecisionOpt = ENGINE.backend.precision,
    threads: ThreadsOpt = ENGINE.backend.threads,
    top_k: TopKOpt = ENGINE.classify.top_k,
    threshold: ThresholdOpt = ENGINE.classify.threshold,
    margin: MarginOpt = ENGINE.classify.margin,
    blank_threshold: BlankOpt = ENGINE.classify.blank_threshold,
    species: SpeciesOpt = ENGINE.classify.species_file,
    fps: Annotated[
        float, typer.Option("--fps", min=0, help="Classify at most this many frames/s (0 = all).")
    ] = _CAPTURE.fps,
    every: Annotated[int, typer.Option("--every", min=1, help="Classify every Nth frame.")] = _CAPTURE.every,
    motion: Annotated[
        float,
        typer.Option("--motion", min=0, max=1, help="Skip frames where less than this fraction changed."),
    ] = _CAPTURE.motion,
    duration: Annotated[
        float, typer.Option("--duration", min=0, help="Stop after this many seconds.")
    ] = _DETECT.duration_s,
    width: Annotated[int, typer.Option("--width", min=1, help="Capture width (CSI/V4L2).")] = _CAPTURE.width,
    height: Annotated[
        int, typer.Option("--height", min=1, help="Capture height (CSI/V4L2).")
    ] = _CAPTURE.height,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Most frames per inference.")
    ] = _DETECT.batch_size,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help="Inference workers, batches side by side on cores / workers threads each "
            "(1 = lowest latency; more may help a video file on a many-core CPU).",
        ),
    ] = _DETECT.workers,
    embeddings: EmbeddingsOpt = _DETECT.embeddings,
    reconnect: Annotated[
        bool, typer.Option("--reconnect/--no-reconnect", help="Reopen a live source that drops.")
    ] = _CAPTURE.reconnect,
    max_reconnects: Annotated[
        int, typer.Option("--max-reconnects", min=-1, help="Give up after N (-1 = never).")
    ] = _CAPTURE.max_reconnects,
    status_every: Annotated[
        float, typer.Option("--status-every", min=0, help="Seconds between status lines (0 = none).")
    ] = _DETECT.status_every_s,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No line per detection.")
    ] = not _DETECT.print_detections,
    headless: Annotated[
        bool,
        typer.Option(
            "--headless/--display", help="No window (default); --display shows frames (GUI OpenCV)."
        ),
    ] = not _DETECT.display,
    save_frames: Annotated[
        Path | None, typer.Option("--save-frames", help="Save confident frames as JPEG in this folder.")
    ] = _DETECT.save_frames,
    save_min_score: Annotated[
        float, typer.Option("--save-min-score", min=0, max=1, help="Score a saved frame needs.")
    ] = _DETECT.save_min_score,
    save_quota_mb: Annotated[
        float, typer.Option("--save-quota-mb", min=0, help="Disk quota of saved frames.")
    ] = _DETECT.save_quota_mb,
) -> None:
    if not source:
        raise UserError("no source given; pass SOURCE (e.g. csi://0 or a video file) or 'source' in --config")

    from lit_edge.db.summary import summary_lines
    from lit_edge.device.live import run_detect
    from lit_edge.device.signals import GracefulStop

    cfg = DetectConfig(
        source=source,
        db=db,
        engine=engine_config(
            bundle=_path(bundle),
            backend=backend,
            precision=precision,
            threads=threads,
            top_k=top_k,
            threshold=threshold,
            margin=margin,
            species=_path(species),
            blank_threshold=blank_threshold,
        ),
        capture=CaptureConfig(
            width=width,
            height=height,
            fps=fps,
            every=every,
            motion=motion,
            reconnect=reconnect,
            max_reconnects=max_reconnects,
        ),
        batch_size=batch_size,
        workers=workers,
        embeddings=embeddings,
        duration_s=duration,
        status_every_s=status_every,
        print_detections=not quiet,
        display=not headless,
        save_frames=_path(save_frames),
        save_min_score=save_min_score,
        save_quota_mb=save_quota_mb,
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


def _path(v: Path | None) -> Path | None:
    """A path from the command line or a config file, with ``~`` expanded (a config's ``~/...``)."""
    return v.expanduser() if v is not None else None
