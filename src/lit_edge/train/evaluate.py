"""Evaluators that plug in by name, each with ``run(model) -> metrics`` (big_vision's habit).

``zeroshot``: top-1/top-5 on a held-out split at every taxonomic rank. The classifier is the
template-ensembled text embedding of each class (:func:`lit_edge.model.classifier.build_classifier`);
class probabilities are summed within each genus, family, ... so that a rank's top-k is over that
rank's groups, not over species that happen to share it. Images whose true value at a rank is
unknown do not count at that rank. Because the image tower is locked, the images are read and
encoded once per evaluator; later runs only redo the (trainable) head and the classifier.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch

from lit_edge.bundle import RANKS
from lit_edge.data import load_dataset
from lit_edge.data.captions import to_taxon
from lit_edge.data.images import read_rgb
from lit_edge.train.config import EvalConfig
from lit_edge.train.towers import cache_stage, embed_cached, locked_features

log = logging.getLogger(__name__)

EVALUATORS: dict[str, Callable[..., object]] = {}


def register(name: str):
    def deco(cls):
        EVALUATORS[name] = cls
        return cls

    return deco


def make_evaluators(cfg: EvalConfig, device: torch.device) -> list:
    from lit_edge.errors import UserError

    out = []
    for name in cfg.evaluators:
        if name not in EVALUATORS:
            raise UserError(f"unknown evaluator {name!r} in eval.evaluators; known: {sorted(EVALUATORS)}")
        out.append(EVALUATORS[name](cfg, device))
    return out


def image_loader(paths, transform, batch_size: int, num_workers: int = 0):
    """Batches of (images, kept indices, failed (path, why)) with unreadable files skipped."""
    from PIL import Image

    class _Images(torch.utils.data.Dataset):
        def __len__(self):
            return len(paths)

        def __getitem__(self, i):
            rgb, why = read_rgb(paths[i])
            return (None if rgb is None else transform(Image.fromarray(rgb))), i, why

    def collate(items):
        ok = [(x, i) for x, i, _ in items if x is not None]
        failed = [(str(paths[i]), why) for x, i, why in items if x is None]
        images = torch.stack([x for x, _ in ok]) if ok else None
        return images, [i for _, i in ok], failed

    return torch.utils.data.DataLoader(
        _Images(), batch_size=batch_size, num_workers=num_workers, collate_fn=collate
    )


def rank_groups(taxa: list[dict[str, str]], rank: str) -> tuple[np.ndarray, int]:
    """Per class: its group index at ``rank`` (-1 = unknown), and the number of groups."""
    keys = [t["scientific_name"] if rank == "species" else t.get(rank, "").strip().casefold() for t in taxa]
    names = sorted({k for k in keys if k})
    index = {k: i for i, k in enumerate(names)}
    return np.array([index.get(k, -1) for k in keys]), len(names)


def topk_by_rank(probs: np.ndarray, labels: np.ndarray, taxa: list[dict[str, str]], ks=(1, 5)) -> dict:
    """Top-k accuracy at each rank, with class probabilities summed within each group."""
    out = {}
    for rank in RANKS:
        group, n_groups = rank_groups(taxa, rank)
        true = group[labels]
        valid = true >= 0
        if n_groups == 0 or not valid.any():
            continue
        onehot = np.zeros((len(taxa), n_groups))
        known = group >= 0
        onehot[np.flatnonzero(known), group[known]] = 1.0
        gp = probs[valid] @ onehot
        order = np.argsort(-gp, axis=1)
        for k in ks:
            hit = (order[:, : min(k, n_groups)] == true[valid][:, None]).any(axis=1)
            out[f"{rank}/top{k}"] = float(hit.mean())
    return out


@register("zeroshot")
class ZeroShotEvaluator:
    """Zero-shot top-1/top-5 per rank on ``cfg.data`` (a held-out split)."""

    name = "zeroshot"

    def __init__(self, cfg: EvalConfig, device: torch.device | str = "cpu"):
        self.cfg = cfg
        self.device = torch.device(device)
        self._features: torch.Tensor | None = None
        self._stage = ""
        data = load_dataset(cfg.data)
        if cfg.max_images and len(data) > cfg.max_images:  # an even spread over the split
            keep = np.linspace(0, len(data) - 1, cfg.max_images).round().astype(int)
            data.paths = [data.paths[i] for i in keep]
            data.labels = data.labels[keep]
        self.data = data
        self.labels = data.labels
        self.failed: list[tuple[str, str]] = []

    @torch.no_grad()
    def _encode_images(self, model) -> None:
        self._stage = cache_stage(model)
        transform = model.image_transform(train=False)
        chunks, kept = [], []
        for images, idx, failed in image_loader(self.data.paths, transform, self.cfg.batch_size):
            for path, why in failed:
                log.warning("eval: skipping %s (%s)", path, why)
            self.failed.extend(failed)
            if images is not None:
                chunks.append(locked_features(model, images.to(self.device), self._stage).float().cpu())
                kept.extend(idx)
        if not chunks:
            from lit_edge.errors import UserError

            raise UserError(f"eval: no readable image in {self.cfg.data.root}; check eval.data")
        self._features = torch.cat(chunks)
        self.labels = self.data.labels[kept]

    @torch.no_grad()
    def run(self, model) -> dict[str, float]:
        from lit_edge.model.classifier import build_classifier

        was_training = model.training
        model.eval()
        try:
            if self._features is None:
                self._encode_images(model)
            emb = embed_cached(model, self._features.to(self.device), self._stage)
            classifier = torch.from_numpy(build_classifier(model, [to_taxon(t) for t in self.data.taxa]))
            logits = model.logit_scale.exp().float() * emb @ classifier.to(self.device).T
            probs = torch.softmax(logits, dim=1).cpu().numpy().astype(np.float64)
        finally:
            model.train(was_training)
        metrics = {f"{self.name}/{k}": v for k, v in topk_by_rank(probs, self.labels, self.data.taxa).items()}
        metrics[f"{self.name}/images"] = float(len(self.labels))
        metrics[f"{self.name}/failed"] = float(len(self.failed))
        return metrics
