"""`lit-edge report`: a self-contained HTML report of a detection database."""

from __future__ import annotations

import typer

from lit_edge.errors import UserError


def report(db: str = typer.Argument(..., help="The detection database.")) -> None:
    raise UserError("report is not implemented yet")
