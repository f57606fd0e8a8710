"""Soft cross-entropy: the distillation loss that teaches a phrasing its target class distribution.

The trainer's contrastive losses (``lit_edge.train.loss``) compare a batch of texts with a batch of
images; here every "image" is a known distribution over the locked head's classes, so the text
tower can be fitted to it directly: ``H(q, softmax(z)) = -sum_c q_c log softmax(z)_c``. Its optimum
is ``softmax(z) = q`` exactly, so ``sqrt(softmax(z))`` (the text embedding) meets ``sqrt(q)`` (where
the images of those classes are), which a contrastive loss only approaches through its negatives.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Mean over the batch of ``-sum(target * log_softmax(logits))``; ``target`` rows sum to 1."""
    if label_smoothing:
        target = target * (1.0 - label_smoothing) + label_smoothing / target.shape[-1]
    return -(target * F.log_softmax(logits.float(), dim=-1)).sum(dim=-1).mean()
