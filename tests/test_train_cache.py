"""The feature cache format: write from arrays, build in resumable shards, read memory-mapped."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lit_edge.train.cache import (
    CacheError,
    FeatureCache,
    ShardPlan,
    build_shards,
    finalize,
    write_cache,
)

TAXA = [
    {"scientific_name": "Vulpes vulpes", "common_name": "red fox", "genus": "Vulpes", "species": "vulpes"},
    {"scientific_name": "Felis catus", "common_name": "cat", "genus": "Felis", "species": "catus"},
    {"scientific_name": "Danaus plexippus", "common_name": "monarch", "genus": "Danaus"},
]


def test_write_cache_round_trip_with_captions(tmp_path):
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(7, 5)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2, 0])
    captions = {0: ["red fox", "Vulpes vulpes"], 1: ["cat"], 2: ["monarch butterfly"]}
    write_cache(tmp_path / "c", feats, labels, TAXA, captions, model_name="m", model_hash="h")

    cache = FeatureCache(tmp_path / "c")
    assert len(cache) == 7 and cache.dim == 5
    assert cache.meta["dtype"] == "float16"
    assert np.load(tmp_path / "c" / "features.npy", allow_pickle=False).dtype == np.float16
    np.testing.assert_array_equal(cache.labels, labels)
    np.testing.assert_allclose(cache.features(np.array([6, 0, 3])), feats[[6, 0, 3]], atol=2e-3)
    assert cache.captions == captions
    assert [t["scientific_name"] for t in cache.taxa] == [t["scientific_name"] for t in TAXA]
    assert cache.taxa[1]["id"] == "1" and cache.taxa[2]["species"] == ""
    cache.check(model_hash="h")
    with pytest.raises(CacheError, match="another image tower"):
        cache.check(model_hash="other")


def test_captions_must_cover_every_class_with_rows(tmp_path):
    write_cache(tmp_path, np.zeros((2, 3)), np.array([0, 2]), TAXA, {0: ["fox"]})
    with pytest.raises(CacheError, match=r"classes \[2\]"):
        FeatureCache(tmp_path)


def test_incomplete_cache_is_refused_with_a_hint(tmp_path):
    with pytest.raises(CacheError, match="cache-features"):
        FeatureCache(tmp_path)


def test_sharded_build_is_resumable_and_split_over_ranks(tmp_path):
    n, d = 10, 4
    labels = np.arange(n) % 3
    truth = np.arange(n * d, dtype=np.float32).reshape(n, d) / 100
    calls = []

    def encode(rows):
        calls.append(list(rows))
        kept = [r for r in rows if r != 7]  # row 7 is an unreadable image
        return truth[kept], kept, [(f"img{r}.jpg", "unreadable") for r in rows if r == 7]

    plan = ShardPlan(total=n, shard_size=3)  # 4 shards
    assert plan.num_shards == 4 and plan.mine(0, 2) == [0, 2] and plan.mine(1, 2) == [1, 3]
    assert build_shards(tmp_path, plan, labels, encode, rank=0, world=2) == [0, 2]
    with pytest.raises(CacheError, match="shard 1 is not done"):
        finalize(tmp_path, plan, TAXA, "m", "h", "fp")
    # A killed rank left a temporary file behind: the rerun ignores it and rebuilds that shard.
    (tmp_path / "shard-00001.features.npy.tmp").write_bytes(b"partial")
    calls.clear()
    assert build_shards(tmp_path, plan, labels, encode, rank=0, world=1) == [1, 3]
    assert calls == [[3, 4, 5], [9]]
    finalize(tmp_path, plan, TAXA, "m", "h", "fp")

    cache = FeatureCache(tmp_path)
    keep = [r for r in range(n) if r != 7]
    assert len(cache) == n - 1
    np.testing.assert_array_equal(cache.labels, labels[keep])
    np.testing.assert_allclose(cache.features(np.arange(n - 1)), truth[keep], atol=1e-3)
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["failed"] == [["img7.jpg", "unreadable"]]
    assert [s["count"] for s in meta["shards"]] == [3, 3, 2, 1]
