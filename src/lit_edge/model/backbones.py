"""Image backbones by name: a timm model, or the visual encoder of an open_clip architecture.

The backbone is what LiT locks. It is built with random init here; weights come from
:mod:`lit_edge.model.image_tower` (a packaged file or a local safetensors checkpoint), never from a hub.
``ImageTowerConfig.timm_kwargs`` go to the constructor (``timm.create_model`` or
``open_clip.create_model``), e.g. to shrink an architecture for a test.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from lit_edge.errors import UserError
from lit_edge.model.config import ImageTowerConfig


@dataclass
class Backbone:
    module: nn.Module
    num_features: int  # width of what ``module(x)`` returns
    head: str  # state-dict prefix of a classifier to drop when there is none ("" = nothing to drop)
    key_prefixes: tuple[str, ...]  # wrappers to peel off checkpoint keys, outermost first
    name: str  # for messages


def build_backbone(cfg: ImageTowerConfig) -> Backbone:
    if cfg.open_clip_model:
        return _open_clip(cfg)
    return _timm(cfg)


def _timm(cfg: ImageTowerConfig) -> Backbone:
    import timm

    num_classes = cfg.num_classes if cfg.embed == "class_dist" else 0
    try:
        model = timm.create_model(cfg.timm_name, pretrained=False, num_classes=num_classes, **cfg.timm_kwargs)
    except RuntimeError as exc:  # timm raises RuntimeError for unknown names
        raise UserError(f"image tower: {exc}; list names with timm.list_models()") from exc
    return Backbone(
        module=model,
        num_features=model.num_features if num_classes == 0 else num_classes,
        head="" if num_classes else model.pretrained_cfg.get("classifier", "classifier"),
        # DDP, open_clip's TimmModel ("visual.trunk."), other trainers' wrappers
        key_prefixes=("module.", "visual.trunk.", "trunk.", "model.", "backbone."),
        name=f"timm '{cfg.timm_name}'",
    )


def _open_clip(cfg: ImageTowerConfig) -> Backbone:
    import open_clip

    name = cfg.open_clip_model
    if cfg.embed == "class_dist":
        raise UserError(f"image tower: open_clip '{name}' has no classifier; use embed 'proj'")
    base = open_clip.get_model_config(name)
    if base is None:
        raise UserError(
            f"image tower: unknown open_clip model {name!r}; list names with open_clip.list_models()"
        )
    clip = open_clip.create_model(name, pretrained=None, **cfg.timm_kwargs)
    return Backbone(
        module=clip.visual,  # the text tower built alongside is dropped here
        num_features=int(cfg.timm_kwargs.get("embed_dim", base["embed_dim"])),
        head="",
        key_prefixes=("module.", "visual."),
        name=f"open_clip '{name}'",
    )
