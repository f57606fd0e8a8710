"""Build the feature cache from a dataset: the locked image tower run once, sharded over ranks.

Each rank encodes its own shards (:class:`~lit_edge.train.cache.ShardPlan`), skipping shards that a
previous (killed) run finished; rank 0 then writes ``meta.json``. Unreadable images are logged with
their path, recorded in ``meta.json`` under ``failed`` and left out of the cache.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from lit_edge.data.records import LabelledImages
from lit_edge.train import distributed
from lit_edge.train.cache import FeatureCache, ShardPlan, build_shards, finalize, fingerprint
from lit_edge.train.config import CacheConfig
from lit_edge.train.evaluate import image_loader
from lit_edge.train.progress import progress_bar
from lit_edge.train.towers import cache_stage, locked_features, tower_hash

log = logging.getLogger(__name__)


def dataset_fingerprint(data: LabelledImages, root: str) -> str:
    base = Path(root)
    base = base if base.is_dir() else base.parent
    return fingerprint(data.relative_items(base), data.taxa)


def build_feature_cache(
    model, data: LabelledImages, cfg: CacheConfig, root: str, ctx: distributed.DistContext
) -> FeatureCache:
    """Encode ``data`` into ``cfg.dir`` (resumable); every rank returns the opened cache."""
    folder = Path(cfg.dir)
    stage = cache_stage(model)
    mhash = tower_hash(model, stage)
    fp = dataset_fingerprint(data, root)
    if (folder / "meta.json").is_file():
        cache = FeatureCache(folder)
        cache.check(model_hash=mhash, fingerprint=fp)
        if cache.meta.get("stage", stage) == stage:
            log.info("feature cache %s is complete (%d rows); reusing it", folder, len(cache))
            return cache
    plan = ShardPlan(total=len(data), shard_size=cfg.shard_size)
    transform = model.image_transform(train=False)
    model.eval()

    def encode(rows: range):
        paths = [data.paths[r] for r in rows]
        feats, kept, failed = [], [], []
        for images, idx, bad in image_loader(paths, transform, cfg.batch_size):
            for path, why in bad:
                log.warning("cache: skipping %s (%s)", path, why)
            failed.extend(bad)
            if images is not None:
                feats.append(locked_features(model, images.to(ctx.device), stage).float().cpu().numpy())
                kept.extend(rows[i] for i in idx)
        return (np.concatenate(feats) if feats else np.zeros((0, 0), np.float32)), kept, failed

    mine = sum(len(plan.rows(s)) for s in plan.mine(ctx.rank, ctx.world))
    with progress_bar(ctx.is_main, "caching features", total=mine, unit="img") as bar:
        build_shards(folder, plan, data.labels, encode, ctx.rank, ctx.world, on_shard=bar.advance)
    distributed.barrier()
    if ctx.is_main:
        finalize(folder, plan, data.taxa, model.config.name, mhash, fp, extra={"stage": stage})
    distributed.barrier()
    return FeatureCache(folder)
