"""`lit-edge report`: a self-contained HTML report of a detection database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def report(
    db: Annotated[Path, typer.Argument(help="The detection database.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")] = Path("report.html"),
    min_score: Annotated[float, typer.Option(help="Decisions below this score count as 'unknown'.")] = 0.0,
) -> None:
    from lit_edge.db.reader import read_detections
    from lit_edge.fielddata.config import DecisionRule, FieldDataConfig
    from lit_edge.fielddata.report import write_report

    cfg = FieldDataConfig(rule=DecisionRule(min_score=min_score))
    typer.echo(f"wrote {write_report(read_detections(db), out, cfg)}")
