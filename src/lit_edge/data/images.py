"""Decoding images with OpenCV, turning a bad file into a reason instead of an exception.

A training run over millions of files must not die on one truncated JPEG: :func:`read_rgb` returns
``(None, reason)`` for a missing or undecodable file, and the loaders count, log and skip it.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def read_rgb(path: str | Path) -> tuple[np.ndarray | None, str]:
    """``(HxWx3 uint8 RGB, "")`` or ``(None, why)`` for a missing/unreadable image."""
    path = Path(path)
    if not path.is_file():
        return None, "missing file"
    try:
        data = np.fromfile(path, dtype=np.uint8)
        img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except (OSError, cv2.error) as exc:
        return None, f"unreadable ({exc})"
    if img is None:
        return None, "not a decodable image"
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB), ""
