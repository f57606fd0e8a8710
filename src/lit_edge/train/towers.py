"""What the feature cache stores for a model, and how training turns cached rows into embeddings.

The cache must hold exactly the *locked* part of the image tower. With ``embed='proj'`` and a
trainable projection (``lock_proj=False``) that is the backbone's pooled features (``stage='trunk'``),
and training applies the projection; when nothing in the image tower trains (``lock_proj`` or
``class_dist``) the cache holds the tower's final embedding (``stage='embedding'``).
This is the trainer's only knowledge of the tower's inside: ``image_tower.trunk`` and
``image_tower.embed_from_trunk``, whose composition is the tower's forward.
"""

from __future__ import annotations

import hashlib
import json

import torch
import torch.nn.functional as F

TRUNK = "trunk"
EMBEDDING = "embedding"


def cache_stage(model) -> str:
    """``trunk`` when the image projection trains, else ``embedding``."""
    proj = getattr(model.image_tower, "proj", None)
    trainable = proj is not None and any(p.requires_grad for p in proj.parameters())
    return TRUNK if trainable else EMBEDDING


@torch.no_grad()
def locked_features(model, images: torch.Tensor, stage: str) -> torch.Tensor:
    """What the cache stores for a batch of preprocessed images."""
    tower = model.image_tower
    return tower.trunk(images) if stage == TRUNK else tower(images)


def embed_cached(model, features: torch.Tensor, stage: str) -> torch.Tensor:
    """L2-normalised image embeddings from cached rows (the tower's own tail runs here when the
    cache holds trunk features): equal to ``model.encode_image`` of the images."""
    x = model.image_tower.embed_from_trunk(features) if stage == TRUNK else features
    return F.normalize(x.float(), dim=-1)


def tower_hash(model, stage: str) -> str:
    """Identifies the locked computation a cache came from: the image config and the stage."""
    doc = json.dumps({"image": model.config.to_dict()["image"], "stage": stage}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]
