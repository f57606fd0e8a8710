"""The ``lit-edge`` typer app: wires the command groups together and turns user errors into one line.

Command modules import only typer and the runtime at import time; anything that needs torch is
imported inside the command body, so ``lit-edge --help`` and ``lit-edge tag --help`` stay torch-free.
Only typer, never click directly: recent typer vendors its own click and no longer installs it, so
an ``import click`` here fails on a fresh install (tests/test_jetson_image.py scans for it).
"""

from __future__ import annotations

import logging
import sys

import typer
from typer.core import TyperGroup

from lit_edge import __version__
from lit_edge.cli import (
    bundle_cmd,
    db_cmd,
    demo_cmd,
    detect_cmd,
    export_cmd,
    learn_cmd,
    report_cmd,
    review_cmd,
    tag_cmd,
    train_cmd,
)
from lit_edge.errors import UserError


class _Group(TyperGroup):
    """Prints a :class:`UserError` as ``error: <message>`` on one line and exits with its code."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=exc.exit_code) from None


app = typer.Typer(
    name="lit-edge",
    cls=_Group,
    help="Offline zero-shot species detection: train (LiT), export (ONNX/INT8/TensorRT), detect and tag.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lit-edge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages."),
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


app.add_typer(train_cmd.app, name="train", help="Train a LiT model (needs the train extra).")
app.add_typer(export_cmd.app, name="export", help="Export a checkpoint to ONNX / INT8 / a bundle.")
app.add_typer(bundle_cmd.app, name="bundle", help="Inspect and verify bundles.")
app.add_typer(db_cmd.app, name="db", help="Summarise and export detection databases.")
app.command("detect", help="Classify frames from a live source and log detections to SQLite.")(
    detect_cmd.detect
)
app.command("tag", help="Tag a folder of photos and video clips offline, resumably, into SQLite.")(
    tag_cmd.tag
)
app.command(
    "demo", help="Build the starter bundle once and tag the example photos (the README's first command)."
)(demo_cmd.demo)
app.command("report", help="Write a self-contained HTML report of a detection database.")(report_cmd.report)
app.command("review")(review_cmd.review)  # its help is its docstring: the keys
app.command("learn", help="A new bundle that has learned the site from the photos people verified.")(
    learn_cmd.learn
)


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
