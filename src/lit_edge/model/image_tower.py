"""The image tower: a timm backbone (locked in LiT) plus the embedding it hands to the contrastive loss.

Two kinds of embedding (``ImageTowerConfig.embed``):

- ``proj``: pooled backbone features through a linear projection to ``embed_dim``;
- ``class_dist``: ``sqrt(softmax(ImageNet logits))``, a unit vector over the backbone's own classes,
  so that a text tower can learn to point at classes the locked tower already recognises.

Locking keeps BatchNorm *as it is* in eval mode (``train()`` is overridden). open_clip's
``freeze_bn_stats=True`` instead swaps timm's ``BatchNormAct2d`` for ``FrozenBatchNorm2d``, which
drops the fused activation, and the features explode; this tower never does that.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from lit_edge.errors import UserError
from lit_edge.model import sources
from lit_edge.model.backbones import build_backbone
from lit_edge.model.config import ImageTowerConfig

log = logging.getLogger(__name__)


class ImageTower(nn.Module):
    """Float NCHW images, already normalised with the config's mean/std -> embedding (not yet L2-normalised)."""

    def __init__(self, cfg: ImageTowerConfig, embed_dim: int, pretrained: bool = True):
        super().__init__()
        self.cfg = cfg
        self.locked = False
        if cfg.embed not in ("proj", "class_dist"):
            raise UserError(f"image tower: unknown embed {cfg.embed!r}; use 'proj' or 'class_dist'")
        if pretrained:
            _check_source(cfg)  # fail before building a large backbone for nothing
        backbone = build_backbone(cfg)
        self.trunk = backbone.module
        self._backbone = backbone
        if cfg.embed == "class_dist":
            if embed_dim != cfg.num_classes:
                raise UserError(
                    f"image tower: embed 'class_dist' gives {cfg.num_classes}-d vectors, "
                    f"but the model's embed_dim is {embed_dim}; make them equal in the config"
                )
            self.proj = nn.Identity()
        else:
            width = backbone.num_features
            self.proj = nn.Linear(width, embed_dim, bias=False)
            nn.init.normal_(self.proj.weight, std=width**-0.5)
        if pretrained:
            self.load_weights(cfg.weights)

    # weights ---------------------------------------------------------------------------------
    def load_weights(self, source: str) -> None:
        """Load backbone weights from a ``package:`` source or a local safetensors file."""
        if source in sources.RANDOM_INIT:
            return
        _check_source(replace(self.cfg, weights=source))
        if sources.is_package(source):
            from lit_edge.model.effnet_lite import read_legacy_state_dict

            depths = tuple(len(stage) for stage in self.trunk.blocks)
            state = read_legacy_state_dict(sources.resolve_package(source), depths)
        else:
            from safetensors.torch import load_file

            state = load_file(str(sources.resolve_file(source, f"image tower {self._backbone.name}")))
            state = _strip_prefixes(state, self._backbone.key_prefixes)
        self._load_trunk_state(state, source)

    def _load_trunk_state(self, state: dict[str, torch.Tensor], source: str) -> None:
        own = self.trunk.state_dict()
        head = self._backbone.head
        if head:  # no classifier in the trunk: drop the head's weights
            state = {k: v for k, v in state.items() if not (k == head or k.startswith(head + "."))}
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
        if missing or unexpected or wrong:
            detail = "; ".join(
                f"{label}: {keys[:3]}{' ...' if len(keys) > 3 else ''}"
                for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
                if keys
            )
            raise UserError(
                f"image tower: weights {source} do not fit {self._backbone.name} ({detail}); "
                "check the config's model name and timm_kwargs"
            )
        self.trunk.load_state_dict(state, strict=True)
        log.info("image tower %s: loaded %d tensors from %s", self._backbone.name, len(state), source)

    # locking ---------------------------------------------------------------------------------
    def lock(self, lock_proj: bool = False) -> None:
        """Freeze the backbone: no gradients, BatchNorm statistics fixed, dropout off, for good."""
        self.locked = True
        for p in self.trunk.parameters():
            p.requires_grad = False
        if lock_proj:
            for p in self.proj.parameters():
                p.requires_grad = False
        self.trunk.eval()

    def train(self, mode: bool = True) -> ImageTower:
        super().train(mode)
        if self.locked:
            self.trunk.eval()  # a locked tower is a fixed function: its BN never sees a batch statistic
        return self

    # forward ---------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed_from_trunk(self.trunk(x))

    def embed_from_trunk(self, features: torch.Tensor) -> torch.Tensor:
        """The embedding from the trunk's output (what a feature cache of the trunk stores): the
        projection for ``proj``, ``sqrt(softmax)`` of the ImageNet logits for ``class_dist``."""
        if self.cfg.embed == "class_dist":
            return F.softmax(features.float(), dim=-1).sqrt()
        return self.proj(features)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's own classifier logits (``class_dist`` towers only)."""
        if self.cfg.embed != "class_dist":
            raise UserError("image tower: only a 'class_dist' tower keeps its ImageNet classifier")
        return self.trunk(x)


def _check_source(cfg: ImageTowerConfig) -> None:
    source = cfg.weights
    if source in sources.RANDOM_INIT:
        return
    if source == sources.USER_SUPPLIED:
        raise UserError(
            f"image tower {cfg.open_clip_model or cfg.timm_name}: this model needs your own checkpoint; "
            "pass image_checkpoint='/path/to/weights.safetensors' (CLI: --image-checkpoint)"
        )
    if sources.is_package(source):
        if sources.package_name(source) not in sources.IMAGE_PACKAGES:
            raise UserError(f"image tower: {source!r} is not an image weight package")
        sources.resolve_package(source)
    else:
        sources.resolve_file(source, f"image tower {cfg.open_clip_model or cfg.timm_name}")


def _strip_prefixes(state: dict[str, torch.Tensor], prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Accept a bare backbone state dict, or one saved from a wrapper (DDP, a whole open_clip model).

    A ``visual.`` prefix selects the image part of a whole CLIP checkpoint (its text keys are dropped).
    """
    for prefix in prefixes:
        inside = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if inside and (len(inside) == len(state) or prefix.startswith("visual.")):
            state = inside
    return state
