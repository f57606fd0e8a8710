"""Where lit-edge keeps what it builds: the starter model, bundles, engines and example photos.

Everything lives under one home folder, ``$LIT_EDGE_HOME`` or ``~/.cache/lit-edge``, so that a
clean clone never holds build outputs and a device can point the home at an SD card.
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The lit-edge home folder (created on demand by the code that writes into it)."""
    env = os.environ.get("LIT_EDGE_HOME")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "lit-edge"


def starter_checkpoint_dir(folder: str = "starter") -> Path:
    """The starter LiT checkpoint (safetensors + JSON) built from the packaged towers
    (``folder``: ``starter``, or ``starter-lite2`` for the second starter)."""
    return home() / "models" / folder


def starter_bundle_dir(folder: str = "starter") -> Path:
    """Where ``export starter`` writes a starter's bundle (the default bundle for ``starter``)."""
    return default_bundle_dir() if folder == "starter" else home() / "bundles" / folder


def default_bundle_dir() -> Path:
    """The bundle the runtime uses when none is named (the starter bundle unless overridden)."""
    env = os.environ.get("LIT_EDGE_BUNDLE")
    if env:
        return Path(env).expanduser()
    return home() / "bundles" / "starter"


def examples_dir() -> Path:
    """Example photos written from scikit-image / scikit-learn samples for the demo."""
    return home() / "examples"
