"""`lit-edge review`: verify a database's decisions in a local web page (127.0.0.1, no network)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def review(
    db: Annotated[Path, typer.Argument(help="The detection database ('lit-edge tag --db' wrote it).")],
    bundle: Annotated[
        Path | None,
        typer.Option(
            help="Bundle whose species (and synonyms) the name search offers. Default: the runs' bundle."
        ),
    ] = None,
    reviewer: Annotated[
        str,
        typer.Option(
            help="Your name, written on every annotation (the page can change it). Default: your login."
        ),
    ] = "",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port on 127.0.0.1 (0: any free port).")] = 0,
    open_browser: Annotated[
        bool, typer.Option("--browser/--no-browser", help="Open the page in the default browser.")
    ] = True,
    event_gap: Annotated[
        float,
        typer.Option(min=0, help="Seconds between photos that still belong to one event (as 'db export')."),
    ] = 60.0,
) -> None:
    """Verify the decisions in a local web page (people's labels go to 'annotations').

    Serves 127.0.0.1 until Ctrl-C, and opens the page in your browser.
    Keys: 1-9 take a suggestion, Enter accepts the machine's decision, b blank, h human, v vehicle,
    u unknown, / any name (or a new one: 'Genus species, common name'), z undo, f full photo.
    Every action is saved when it is made; people's labels never overwrite the machine's.
    """
    from lit_edge.errors import UserError
    from lit_edge.review.app import ReviewConfig
    from lit_edge.review.server import serve

    if not db.is_file():
        raise UserError(f"database not found: {db}; make one with 'lit-edge tag FOLDER --db {db}'")
    cfg = ReviewConfig(
        db=db, bundle=bundle, reviewer=reviewer, port=port, open_browser=open_browser, event_gap_s=event_gap
    )
    serve(cfg, ready=lambda url: typer.echo(f"lit-edge review: {url}  (Ctrl-C to stop)", err=False))
