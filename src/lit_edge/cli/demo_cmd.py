"""`lit-edge demo`: the main job on the built-in default model, from nothing.

Builds the starter model and bundle once (reused afterwards), writes real example photos from the
photos that ship inside scikit-image and scikit-learn, and tags them into SQLite exactly as a user
tags a memory card. It is what the README's first command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def demo(
    folder: Annotated[
        Path | None,
        typer.Option("--folder", help="Where to write the example photos (default: LIT_EDGE_HOME/examples)."),
    ] = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Rebuild the starter model and bundle.")] = False,
) -> None:
    from lit_edge.cli.tag_cmd import tag
    from lit_edge.examples import write_examples
    from lit_edge.export.starter import StarterBundleConfig, ensure_starter_bundle
    from lit_edge.paths import examples_dir

    if rebuild:
        from lit_edge.starter.build import ensure_starter_checkpoint

        ensure_starter_checkpoint(force=True)
    bundle = ensure_starter_bundle(StarterBundleConfig(), force=rebuild)
    typer.echo(f"starter bundle: {bundle}")
    folder = folder or examples_dir()
    photos = write_examples(folder)
    typer.echo(f"{len(photos)} example photos in {folder}")
    tag(folder=str(folder), db=folder / "lit-edge.db", bundle=bundle)
