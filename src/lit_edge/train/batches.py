"""Batches for a step: the sampler, the cached source, and the online (image tower in the loop) source.

The sampler is a pure function of ``(seed, step)``: epoch ``e`` is a permutation seeded by
``(seed, e)``, global batch ``i`` of it is split into equal per-rank slices, and its captions are drawn
for the whole global batch (:class:`~lit_edge.data.captions.CaptionSampler`). Resuming at step ``s``
therefore needs only ``s``, and any number of ranks sees the same global batches as one rank.
The last incomplete global batch of an epoch is dropped (every rank needs an equal share).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np
import torch

from lit_edge.data.captions import CaptionSampler
from lit_edge.data.images import read_rgb
from lit_edge.data.records import LabelledImages
from lit_edge.errors import UserError
from lit_edge.train.cache import FeatureCache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochSampler:
    count: int
    global_batch: int
    seed: int

    def __post_init__(self) -> None:
        if self.global_batch <= 0:
            raise UserError("global_batch must be positive")
        if self.count < self.global_batch:
            # An error, not a silent clamp: the global batch is the contrastive task itself (each
            # caption's negatives) and the learning rate was chosen for it; a run must train the
            # config it saves, so the user decides.
            raise UserError(
                f"the dataset has {self.count} samples, fewer than global_batch={self.global_batch}; "
                f"lower it with --set global_batch={self.count} (or less), or use more data"
            )

    @property
    def steps_per_epoch(self) -> int:
        return self.count // self.global_batch

    def position(self, step: int) -> tuple[int, int]:
        """(epoch, batch index within the epoch) of a global step."""
        return divmod(step, self.steps_per_epoch)

    def global_rows(self, step: int) -> np.ndarray:
        epoch, i = self.position(step)
        perm = _permutation(self.seed, epoch, self.count)
        return perm[i * self.global_batch : (i + 1) * self.global_batch]


@functools.lru_cache(maxsize=2)
def _permutation(seed: int, epoch: int, count: int) -> np.ndarray:
    """The epoch's order, computed once per epoch (millions of rows take tens of ms to shuffle)."""
    return np.random.default_rng([seed, epoch]).permutation(count)


def local_slice(n: int, rank: int, world: int) -> slice:
    if n % world:
        raise UserError(f"global_batch={n} does not split evenly over {world} ranks; make it a multiple")
    b = n // world
    return slice(rank * b, (rank + 1) * b)


@dataclass
class Batch:
    """This rank's share of one global batch."""

    step: int
    inputs: torch.Tensor  # cached features [b, F] or images [b, 3, H, W]
    labels: torch.Tensor  # [b] int64 class indices
    texts: list[str]
    failed: list[tuple[str, str]]


class CachedSource:
    """Batches from the feature cache (the locked tower never runs)."""

    def __init__(
        self, cache: FeatureCache, sampler: EpochSampler, captions: CaptionSampler, rank: int, world: int
    ):
        self.cache, self.sampler, self.captions = cache, sampler, captions
        self.rank, self.world = rank, world

    def batches(self, start: int, end: int):
        for step in range(start, end):
            rows = self.sampler.global_rows(step)
            labels = self.cache.labels[rows]
            texts = self.captions.draw(labels, *self.sampler.position(step))
            sl = local_slice(len(rows), self.rank, self.world)
            feats = torch.from_numpy(self.cache.features(rows[sl]))
            yield Batch(step, feats, torch.from_numpy(labels[sl]), texts[sl], [])


class _StepImages(torch.utils.data.Dataset):
    """Item ``s`` = this rank's decoded, transformed images of global step ``s`` (workers decode steps)."""

    def __init__(self, data, sampler, captions, transform, rank, world, seed):
        self.data, self.sampler, self.captions, self.transform = data, sampler, captions, transform
        self.rank, self.world, self.seed = rank, world, seed

    def __len__(self) -> int:
        return 1 << 62

    def __getitem__(self, step: int):
        rows = self.sampler.global_rows(step)
        labels = self.data.labels[rows]
        texts = self.captions.draw(labels, *self.sampler.position(step))
        sl = local_slice(len(rows), self.rank, self.world)
        torch.manual_seed(hash((self.seed, step, self.rank)) & 0x7FFFFFFF)  # augmentation, reproducible
        images, keep, failed = [], [], []
        for j, row in enumerate(rows[sl]):
            path = self.data.paths[row]
            rgb, why = read_rgb(path)
            if rgb is None:
                failed.append((str(path), why))
                continue
            images.append(self.transform(rgb))
            keep.append(j)
        inputs = torch.stack(images) if images else torch.zeros(0)
        lab = torch.from_numpy(labels[sl][keep])
        return Batch(step, inputs, lab, [texts[sl][j] for j in keep], failed)


class OnlineSource:
    """Batches of images through the (locked) image tower, decoded in DataLoader workers."""

    def __init__(self, data: LabelledImages, sampler, captions, transform, rank, world, seed, num_workers=0):
        self.dataset = _StepImages(data, sampler, captions, transform, rank, world, seed)
        self.num_workers = num_workers

    def batches(self, start: int, end: int):
        loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_size=None,
            sampler=range(start, end),
            num_workers=self.num_workers,
            collate_fn=lambda b: b,
        )
        yield from loader
