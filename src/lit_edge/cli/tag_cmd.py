"""`lit-edge tag`: tag a folder of photos into SQLite, resumably."""

from __future__ import annotations

import typer

from lit_edge.errors import UserError


def tag(
    folder: str = typer.Argument(..., help="A folder (recursive), an image file or a quoted glob."),
) -> None:
    raise UserError("tag is not implemented yet")
