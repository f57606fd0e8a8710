"""The LiT model: a locked image tower and a trainable text tower, built on open_clip and timm.

Public API (the rest of the package uses only these names)::

    from lit_edge.model import LiTConfig, ImageTowerConfig, TextTowerConfig
    from lit_edge.model import list_models, get_config, create_model
    from lit_edge.model import save_checkpoint, load_checkpoint, LiTModel
    from lit_edge.model import build_classifier  # [C, D] zero-shot species matrix

Also: ``read_checkpoint_config`` (config + extra without building), ``load_optimizer_state``.

Importing this package imports torch: only ``train``/``export`` and CLI command bodies may do so.
"""

from lit_edge.model.checkpoint import (
    load_checkpoint,
    load_optimizer_state,
    read_checkpoint_config,
    save_checkpoint,
)
from lit_edge.model.classifier import build_classifier
from lit_edge.model.config import ImageTowerConfig, LiTConfig, TextTowerConfig
from lit_edge.model.lit import LiTModel
from lit_edge.model.registry import create_model, get_config, list_models, register_config

__all__ = [
    "ImageTowerConfig",
    "LiTConfig",
    "LiTModel",
    "TextTowerConfig",
    "build_classifier",
    "create_model",
    "get_config",
    "list_models",
    "load_checkpoint",
    "load_optimizer_state",
    "read_checkpoint_config",
    "register_config",
    "save_checkpoint",
]
