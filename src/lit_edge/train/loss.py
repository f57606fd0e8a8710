"""Contrastive losses for LiT: softmax (CLIP) and sigmoid (SigLIP), correct across ranks.

Both losses are written so that the *global* loss is the mean over every row of the global batch,
whatever the number of ranks. Each rank gathers the other ranks' features **with gradient**
(``torch.distributed.nn.functional.all_gather``), scores its own rows against all columns, and
averages over its own rows. The gather's backward sums the gradients that the other ranks' losses
put on this rank's features; averaging the parameter gradients over ranks afterwards (the trainer
does it) then gives exactly the gradient of the single-process loss on the concatenated batch.

``multi_positive`` treats every pair of the same class as a positive: long-tailed data (many images
of one species in a batch) otherwise pushes apart captions that are correct. For the softmax loss the
target of a row is uniform over its positives; for the sigmoid loss every same-class pair is labelled
+1. Without ``labels`` (or with all labels distinct) both reduce to the usual diagonal targets.

``distill`` is for models whose locked image tower embeds a class distribution (``embed='class_dist'``:
the image embedding is ``sqrt(q)``) and whose text tower outputs ``sqrt(softmax(z))``. Each text is
fitted to its own image's distribution with a soft cross-entropy ``H(q, softmax(z))``: its optimum is
``softmax(z) = q`` exactly, where a contrastive loss only pushes the text towards ``sqrt(q)``
relative to the other rows of the batch, so overlapping targets (a genus and its species; a cat
breed and "domestic cat") are not pushed apart as negatives. It needs no other rank's rows: the
mean of the ranks' losses is already the global-batch loss.

:func:`create_loss` is the one place a :class:`~lit_edge.train.config.LossConfig` becomes a loss
(open_clip's ``create_loss``): every loss takes the same :class:`LossInputs` and uses what it needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class LossInputs:
    """What a training step hands to the loss: this rank's rows (row ``i`` of each is a pair)."""

    image: torch.Tensor  # [n, D] L2-normalised image embeddings
    text: torch.Tensor  # [n, D] L2-normalised text embeddings
    text_head: torch.Tensor  # [n, D] the text head's output (class logits for sqrt_softmax towers)
    logit_scale: torch.Tensor  # already exponentiated
    logit_bias: torch.Tensor | None = None
    labels: torch.Tensor | None = None  # class indices [n] (multi_positive needs them)


Loss = Callable[[LossInputs], torch.Tensor]


def _world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_features(x: torch.Tensor) -> torch.Tensor:
    """All ranks' rows concatenated in rank order; gradients flow back to the owning rank."""
    _, world = _world()
    if world == 1:
        return x
    import warnings

    import torch.distributed as dist
    import torch.distributed.nn.functional as dist_fn

    with warnings.catch_warnings():  # deprecated in favour of a private API; still the public one
        warnings.simplefilter("ignore", FutureWarning)
        # The group is passed explicitly: the default argument is bound once at import, and goes
        # stale when a process runs a second process group (two trainings in one interpreter).
        return torch.cat(dist_fn.all_gather(x, group=dist.group.WORLD), dim=0)


def gather_labels(y: torch.Tensor) -> torch.Tensor:
    """All ranks' labels (no gradient) concatenated in rank order."""
    _, world = _world()
    if world == 1:
        return y
    import torch.distributed as dist

    out = [torch.empty_like(y) for _ in range(world)]
    dist.all_gather(out, y.contiguous())
    return torch.cat(out, dim=0)


def _targets(
    local_labels: torch.Tensor | None, all_labels: torch.Tensor | None, n: int, offset: int, total: int
) -> torch.Tensor:
    """``[n, total]`` 0/1 matrix of positives for the local rows against all columns."""
    if local_labels is None or all_labels is None:
        t = torch.zeros(n, total)
        t[torch.arange(n), offset + torch.arange(n)] = 1.0
        return t
    return (local_labels[:, None] == all_labels[None, :]).float()


def contrastive_loss(
    image: torch.Tensor,
    text: torch.Tensor,
    logit_scale: torch.Tensor,
    logit_bias: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    kind: str = "softmax",
    multi_positive: bool = False,
) -> torch.Tensor:
    """The loss of this rank's rows; its mean over ranks is the global-batch loss.

    ``kind`` is ``softmax`` (CLIP) or ``sigmoid`` (SigLIP). ``image``/``text`` are this rank's
    L2-normalised embeddings ``[n, D]`` (row i of each is a pair), ``logit_scale`` is already
    exponentiated, ``labels`` are class indices ``[n]`` (needed for ``multi_positive``).
    """
    if kind not in ("softmax", "sigmoid"):
        raise ValueError(f"contrastive loss kind {kind!r}: use 'softmax' or 'sigmoid'")
    rank, _ = _world()
    n = image.shape[0]
    all_image = gather_features(image)
    all_text = gather_features(text)
    use_labels = multi_positive and labels is not None
    local_labels = labels if use_labels else None
    all_labels = gather_labels(labels) if use_labels else None
    targets = _targets(local_labels, all_labels, n, rank * n, all_image.shape[0]).to(image.device)

    logits_i2t = logit_scale * image @ all_text.T  # local images vs all texts
    if kind == "softmax":
        logits_t2i = logit_scale * text @ all_image.T  # local texts vs all images
        soft = targets / targets.sum(dim=1, keepdim=True)
        loss_i = -(soft * F.log_softmax(logits_i2t, dim=1)).sum(dim=1).mean()
        loss_t = -(soft * F.log_softmax(logits_t2i, dim=1)).sum(dim=1).mean()
        return (loss_i + loss_t) / 2
    # SigLIP scores every (image, text) pair once; local rows x all columns covers each pair
    # exactly once over the ranks. Normalised by the number of images, as in the paper.
    bias = logit_bias if logit_bias is not None else torch.zeros((), device=image.device)
    signs = 2.0 * targets - 1.0
    return -F.logsigmoid(signs * (logits_i2t + bias)).sum() / n


def distillation_loss(image: torch.Tensor, text_logits: torch.Tensor) -> torch.Tensor:
    """Mean over this rank's rows of ``H(q, softmax(text_logits))`` with ``q = image ** 2``.

    ``image`` rows are the locked tower's ``sqrt(q)`` embeddings (unit norm, so ``q`` sums to one;
    renormalised here against float16 cache rounding); ``text_logits`` are the text head's outputs
    before ``sqrt(softmax)``. Row ``i`` of each is a pair.
    """
    q = image.float().square()
    q = q / q.sum(dim=1, keepdim=True).clamp_min(1e-12)
    return -(q * F.log_softmax(text_logits.float(), dim=1)).sum(dim=1).mean()


def create_loss(cfg) -> Loss:
    """The loss a :class:`~lit_edge.train.config.LossConfig` names, as ``loss(LossInputs) -> scalar``."""
    return LOSSES[cfg.kind](cfg)


def _softmax(cfg) -> Loss:
    def loss(x: LossInputs) -> torch.Tensor:
        return contrastive_loss(x.image, x.text, x.logit_scale, None, x.labels, "softmax", cfg.multi_positive)

    return loss


def _sigmoid(cfg) -> Loss:
    def loss(x: LossInputs) -> torch.Tensor:
        return contrastive_loss(
            x.image, x.text, x.logit_scale, x.logit_bias, x.labels, "sigmoid", cfg.multi_positive
        )

    return loss


def _distill(cfg) -> Loss:
    def loss(x: LossInputs) -> torch.Tensor:
        return distillation_loss(x.image, x.text_head)

    return loss


#: ``loss.kind`` -> factory. A new loss is one function here (and nothing else to change).
LOSSES: dict[str, Callable[..., Loss]] = {"softmax": _softmax, "sigmoid": _sigmoid, "distill": _distill}
