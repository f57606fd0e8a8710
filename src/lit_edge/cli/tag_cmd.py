"""`lit-edge tag`: tag a folder of photos into SQLite, resumably.

The database defaults to ``FOLDER/lit-edge.db``: results travel with the card or folder they
describe, and re-running the same command resumes where the last run stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
from lit_edge.device.config import TagConfig

_TAG = TagConfig(source="", db=Path())  # the defaults


def tag(
    folder: Annotated[str, typer.Argument(help="A folder (recursive), an image file or a quoted glob.")],
    db: Annotated[
        Path | None,
        typer.Option("--db", help="SQLite database. Default: FOLDER/lit-edge.db (./lit-edge.db for a glob)."),
    ] = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Also redo photos that failed in an earlier run.")
    ] = _TAG.retry_failed,
    bundle: BundleOpt = ENGINE.bundle,
    backend: BackendOpt = ENGINE.backend.backend,
    precision: PrecisionOpt = ENGINE.backend.precision,
    threads: ThreadsOpt = ENGINE.backend.threads,
    top_k: TopKOpt = ENGINE.classify.top_k,
    threshold: ThresholdOpt = ENGINE.classify.threshold,
    margin: MarginOpt = ENGINE.classify.margin,
    blank_threshold: BlankOpt = ENGINE.classify.blank_threshold,
    species: SpeciesOpt = ENGINE.classify.species_file,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=0, help="Photos per inference (0 = 2 on CPU, 16 on GPU).")
    ] = _TAG.batch_size,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=0,
            help="Inference workers, each running the model on its own batches "
            "(0 = one per core up to 4 on CPU, 1 on GPU). --workers 1 --threads N is one N-thread session.",
        ),
    ] = _TAG.workers,
    embeddings: EmbeddingsOpt = _TAG.embeddings,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    from lit_edge.db.summary import summary_lines
    from lit_edge.device.signals import GracefulStop
    from lit_edge.device.tagger import default_db, run_tag

    config = TagConfig(
        source=folder,
        db=db or default_db(folder),
        engine=engine_config(
            bundle=bundle,
            backend=backend,
            precision=precision,
            threads=threads,
            top_k=top_k,
            threshold=threshold,
            margin=margin,
            species=species,
            blank_threshold=blank_threshold,
        ),
        retry_failed=retry_failed,
        batch_size=batch_size,
        workers=workers,
        embeddings=embeddings,
    )
    with GracefulStop() as stop, _progress(progress) as update:
        result = run_tag(config, progress=update, stop=stop)
    s = result.summary
    typer.echo(
        f"tagged {result.processed} photo(s) in {result.seconds:.1f} s "
        f"({result.processed / max(result.seconds, 1e-9):.0f}/s); {result.skipped} already done; "
        f"{result.failed} failed; database {config.db}"
    )
    for line in summary_lines(s):
        typer.echo(line)
    if result.interrupted:
        typer.echo("interrupted: run the same command again to resume")
        raise typer.Exit(130)


class _progress:
    """A rich progress bar (files/s, ETA) on stderr, started once the work is known, or nothing.

    Starting lazily keeps the terminal clean when the run fails early (bad bundle, bad folder):
    the user then sees only the one-line error.
    """

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._bar = None
        self._task = None

    def _start(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("tagging"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._bar.start()
        self._task = self._bar.add_task("tag", total=None, rate="")

    def _update(self, done: int, total: int) -> None:
        if self._bar is None:
            self._start()
        speed = self._bar.tasks[0].speed
        self._bar.update(
            self._task, completed=done, total=total, rate=f"{speed:.0f} files/s" if speed else ""
        )

    def __enter__(self):
        return self._update if self.enabled else None

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.stop()
