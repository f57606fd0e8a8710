"""`lit-edge detect`: live classification of a camera, stream or video."""

from __future__ import annotations

import typer

from lit_edge.errors import UserError


def detect(
    source: str = typer.Argument(..., help="csi://0, v4l2:///dev/video0, rtsp://..., a video file."),
) -> None:
    raise UserError("detect is not implemented yet")
