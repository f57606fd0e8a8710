"""The CLI entry for building the starter (wired by the lead as ``lit-edge train starter``).

Thin: it parses nothing itself beyond ``--force`` and calls the library; torch is imported only
when the command runs.
"""

from __future__ import annotations

import typer


def build(
    force: bool = typer.Option(False, "--force", help="Rebuild even if an up-to-date starter exists."),
    tower: str = typer.Option(
        "lite0", "--tower", help="Image tower: lite0 (default) | lite2 (stronger, about 2x slower per photo)."
    ),
) -> None:
    """Build the starter model once (a few minutes on a laptop CPU) and print where it is."""
    from lit_edge.starter.build import ensure_starter_checkpoint

    typer.echo(str(ensure_starter_checkpoint(force=force, tower=tower)))
