"""What the feature cache stores for a model, and how training turns cached rows into embeddings.

The cache must hold exactly the *locked* part of the image tower. With ``embed='proj'`` and a
trainable projection (``lock_proj=False``) that is the backbone's pooled features (``stage='trunk'``),
and training applies the projection; when nothing in the image tower trains (``lock_proj`` or
``class_dist``) the cache holds the tower's final embedding (``stage='embedding'``).
This is the trainer's only knowledge of the tower's inside (``image_tower.trunk`` / ``.proj``).
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
    """L2-normalised image embeddings from cached rows (the projection runs here when it trains)."""
    x = model.image_tower.proj(features) if stage == TRUNK else features
    return F.normalize(x.float(), dim=-1)


def tower_hash(model, stage: str) -> str:
    """Identifies the locked computation a cache came from: the image config and the stage."""
    doc = json.dumps({"image": model.config.to_dict()["image"], "stage": stage}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


# The text side, split where a locked encoder ends: pooled features (cacheable) -> head -> embedding.
# Mirrors ``TextTower.forward``; the trainer needs the pieces, not the whole.
def pooled_text(model, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
    """The text encoder's pooled features (the head's input) for a token dict."""
    encoder = model.text_tower.encoder
    device = encoder.transformer.get_input_embeddings().weight.device
    ids, mask = tokens["input_ids"].to(device), tokens["attention_mask"].to(device)
    out = encoder.transformer(input_ids=ids, attention_mask=mask)
    return encoder.pooler(out, mask)


def text_head(model, pooled: torch.Tensor) -> torch.Tensor:
    """The head's output: logits over the image classes for ``sqrt_softmax`` towers."""
    return model.text_tower.head(pooled)


def text_embedding(model, head_out: torch.Tensor) -> torch.Tensor:
    """L2-normalised text embeddings from the head's output (what ``encode_text`` returns)."""
    x = head_out
    if model.text_tower.cfg.output == "sqrt_softmax":
        # exp(log_softmax / 2), not softmax().sqrt(): a class whose probability underflows to 0
        # would get sqrt's infinite slope there, and 0 * inf turns the whole gradient into NaN
        x = torch.exp(0.5 * F.log_softmax(x.float(), dim=-1))
    return F.normalize(x, dim=-1)
