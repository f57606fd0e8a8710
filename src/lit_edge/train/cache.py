"""The feature cache: the locked image tower's embeddings, computed once, read memory-mapped.

Because LiT locks the image tower, its output for an image never changes during training. The
cache stores it once so that training runs only the text tower. A cache is a folder::

    meta.json           {"format": "lit-edge-feature-cache", "version": 1, "dim": D, "count": N,
                         "dtype": "float16", "stage": "embedding"|"trunk", "model": {"name", "hash"},
                         "dataset": {"fingerprint"},
                         "shards": [{"features": "...npy", "labels": "...npy", "count": n}, ...],
                         "failed": [[path, reason], ...]}
    features.npy        float16 [N, D]   (write_cache) -- or one file per shard:
    labels.npy          int64 [N], the class index of each row
    shard-00000.features.npy / shard-00000.labels.npy / shard-00000.done   (built from images)
    taxa.csv            one row per class: id (the class index) + scientific/common name + each rank
    captions.jsonl      optional: one JSON object per line, {"class": i, "texts": ["...", ...]}

``captions.jsonl``, when present, replaces the taxonomy captions: a sample of class ``i`` gets one of
``texts`` at random (seeded). This lets a cache carry *any* (embedding, text) pairs -- the starter
model uses it to train from synthetic "image" embeddings of classes that have no images here.

Building from images is sharded across ranks (shard ``s`` belongs to rank ``s % world``) and
resumable: each shard is written to a temporary name, renamed, then marked done; a rerun skips done
shards. ``meta.json`` is written last, by rank 0, so its presence means the cache is complete.
Everything is numpy (``allow_pickle=False``) and CSV/JSON: nothing in a cache is a pickle.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lit_edge.bundle import LABEL_COLUMNS
from lit_edge.errors import UserError

log = logging.getLogger(__name__)

FORMAT = "lit-edge-feature-cache"
VERSION = 1
META = "meta.json"
TAXA = "taxa.csv"
CAPTIONS = "captions.jsonl"
#: taxa.csv columns; ``id`` is the class index (the value stored in labels.npy).
TAXA_COLUMNS = LABEL_COLUMNS


class CacheError(UserError):
    """A cache that is missing, incomplete, or built for another model or dataset."""


def taxon_row(index: int, taxon) -> dict[str, str]:
    """One taxa.csv row from a mapping or an object with the column names as attributes."""
    row = {"id": str(index)}
    for col in TAXA_COLUMNS[1:]:
        value = taxon.get(col, "") if isinstance(taxon, Mapping) else getattr(taxon, col, "")
        row[col] = "" if value is None else str(value)
    return row


def write_taxa(folder: Path, taxa: Sequence) -> None:
    with open(folder / TAXA, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=TAXA_COLUMNS)
        w.writeheader()
        for i, t in enumerate(taxa):
            w.writerow(taxon_row(i, t))


def read_taxa(folder: Path) -> list[dict[str, str]]:
    with open(folder / TAXA, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for i, r in enumerate(rows):
        if int(r["id"]) != i:
            raise CacheError(f"{folder / TAXA}: row {i} has id {r['id']}; ids must be 0..C-1 in order")
    return rows


def write_captions(folder: Path, captions: Mapping[int, Sequence[str]]) -> None:
    with open(folder / CAPTIONS, "w", encoding="utf-8") as f:
        for cls in sorted(captions):
            f.write(json.dumps({"class": int(cls), "texts": list(captions[cls])}, ensure_ascii=False) + "\n")


def read_captions(path: Path) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                cls, texts = int(obj["class"]), [str(t) for t in obj["texts"]]
            except (ValueError, KeyError, TypeError) as exc:
                raise CacheError(
                    f'{path}:{lineno}: bad caption line ({exc}); write {{"class": i, "texts": [...]}}'
                ) from None
            if not texts:
                raise CacheError(f"{path}:{lineno}: class {cls} has no texts; give it at least one")
            out.setdefault(cls, []).extend(texts)
    return out


def _atomic_save(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_cache(
    folder: str | Path,
    features: np.ndarray,
    labels: np.ndarray,
    taxa: Sequence,
    captions: Mapping[int, Sequence[str]] | None = None,
    *,
    model_name: str = "",
    model_hash: str = "",
    dataset_fingerprint: str = "",
    stage: str = "embedding",
) -> Path:
    """Write a complete single-shard cache from arrays (e.g. synthetic class embeddings).

    ``features`` is ``[N, D]`` (stored as float16), ``labels`` ``[N]`` class indices into ``taxa``
    (mappings or objects with the taxa.csv column names), ``captions`` optional per-class texts.
    ``stage`` says what a row is: ``embedding`` (the image tower's final output, e.g. a class
    distribution for a ``class_dist`` tower) or ``trunk`` (pooled features before a trainable
    projection); training checks it against the model.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    features = np.asarray(features)
    labels = np.asarray(labels, dtype=np.int64)
    if features.ndim != 2 or labels.shape != (features.shape[0],):
        raise ValueError(f"features must be [N, D] and labels [N]; got {features.shape} and {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(taxa)):
        raise ValueError(f"labels must be in 0..{len(taxa) - 1}")
    (folder / META).unlink(missing_ok=True)
    _atomic_save(folder / "features.npy", features.astype(np.float16))
    _atomic_save(folder / "labels.npy", labels)
    write_taxa(folder, taxa)
    if captions is not None:
        write_captions(folder, captions)
    else:
        (folder / CAPTIONS).unlink(missing_ok=True)
    shards = [{"features": "features.npy", "labels": "labels.npy", "count": int(len(labels))}]
    _write_meta(
        folder, features.shape[1], shards, model_name, model_hash, dataset_fingerprint, [], {"stage": stage}
    )
    return folder


def _write_meta(folder, dim, shards, model_name, model_hash, fingerprint, failed, extra=None) -> None:
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "dim": int(dim),
        "count": int(sum(s["count"] for s in shards)),
        "dtype": "float16",
        "model": {"name": model_name, "hash": model_hash},
        "dataset": {"fingerprint": fingerprint},
        "shards": shards,
        "failed": failed,
        **(extra or {}),
    }
    _atomic_write_text(folder / META, json.dumps(meta, indent=2))


@dataclass(frozen=True)
class ShardPlan:
    """Which rows of the dataset each shard holds; shard ``s`` is built by rank ``s % world``."""

    total: int
    shard_size: int

    @property
    def num_shards(self) -> int:
        return max(1, -(-self.total // self.shard_size))

    def rows(self, shard: int) -> range:
        return range(shard * self.shard_size, min(self.total, (shard + 1) * self.shard_size))

    def mine(self, rank: int, world: int) -> list[int]:
        return [s for s in range(self.num_shards) if s % world == rank]


def shard_names(shard: int) -> tuple[str, str, str]:
    stem = f"shard-{shard:05d}"
    return f"{stem}.features.npy", f"{stem}.labels.npy", f"{stem}.done"


#: ``encode(rows) -> (features [k, D], kept_rows, failed [(path, reason)])`` for dataset rows.
EncodeFn = Callable[[range], tuple[np.ndarray, list[int], list[tuple[str, str]]]]


def build_shards(
    folder: str | Path,
    plan: ShardPlan,
    labels: np.ndarray,
    encode: EncodeFn,
    rank: int = 0,
    world: int = 1,
    on_shard: Callable[[int], None] | None = None,
) -> list[int]:
    """Build this rank's missing shards; return the shards it built (done ones are skipped)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    built = []
    for s in plan.mine(rank, world):
        feat_name, label_name, done_name = shard_names(s)
        if (folder / done_name).exists():
            log.info("shard %d already done, skipping", s)
            if on_shard:
                on_shard(len(plan.rows(s)))
            continue
        rows = plan.rows(s)
        feats, kept, failed = encode(rows)
        _atomic_save(folder / feat_name, np.asarray(feats, dtype=np.float16).reshape(len(kept), -1))
        _atomic_save(folder / label_name, np.asarray(labels[kept], dtype=np.int64))
        done = {
            "count": len(kept),
            "dim": int(np.asarray(feats).shape[-1]) if len(kept) else 0,
            "failed": failed,
        }
        _atomic_write_text(folder / done_name, json.dumps(done))
        built.append(s)
        if on_shard:
            on_shard(len(rows))
    return built


def finalize(
    folder: str | Path,
    plan: ShardPlan,
    taxa: Sequence,
    model_name: str,
    model_hash: str,
    fingerprint: str,
    extra: dict | None = None,
) -> Path:
    """Write taxa.csv and meta.json once every shard is done (rank 0, after a barrier)."""
    folder = Path(folder)
    shards, failed, dim = [], [], 0
    for s in range(plan.num_shards):
        feat_name, label_name, done_name = shard_names(s)
        if not (folder / done_name).exists():
            raise CacheError(f"cache {folder}: shard {s} is not done; rerun cache-features to finish it")
        done = json.loads((folder / done_name).read_text(encoding="utf-8"))
        dim = dim or done["dim"]
        failed.extend(done["failed"])
        shards.append({"features": feat_name, "labels": label_name, "count": done["count"]})
    write_taxa(folder, taxa)
    _write_meta(folder, dim, shards, model_name, model_hash, fingerprint, failed, extra)
    return folder


class FeatureCache:
    """A complete cache, opened read-only with memory-mapped shards."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        meta_path = self.folder / META
        if not meta_path.is_file():
            raise CacheError(
                f"no complete feature cache at {self.folder} (meta.json missing); "
                "build it with: lit-edge train cache-features CONFIG"
            )
        self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if self.meta.get("format") != FORMAT or self.meta.get("version") != VERSION:
            raise CacheError(f"{meta_path} is not a lit-edge feature cache v{VERSION}; rebuild it")
        self.dim = int(self.meta["dim"])
        self._features = []
        labels = []
        for s in self.meta["shards"]:
            if s["count"] == 0:
                continue
            self._features.append(np.load(self.folder / s["features"], mmap_mode="r", allow_pickle=False))
            labels.append(np.load(self.folder / s["labels"], allow_pickle=False))
        self.labels = np.concatenate(labels) if labels else np.zeros(0, np.int64)
        self._offsets = np.cumsum([0] + [len(f) for f in self._features])
        if self._offsets[-1] != self.meta["count"] or len(self.labels) != self.meta["count"]:
            raise CacheError(f"cache {self.folder}: shard sizes do not add up to meta count; rebuild it")
        self.taxa = read_taxa(self.folder)
        cap = self.folder / CAPTIONS
        self.captions = read_captions(cap) if cap.is_file() else None
        if self.captions is not None:
            missing = sorted(set(np.unique(self.labels).tolist()) - set(self.captions))
            if missing:
                raise CacheError(f"{cap}: classes {missing[:5]} have rows but no texts; add a line for each")

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def features(self, rows: np.ndarray) -> np.ndarray:
        """float32 ``[k, D]`` for global row indices ``rows`` (any order)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        shard = np.searchsorted(self._offsets, rows, side="right") - 1
        for s in np.unique(shard):
            m = shard == s
            out[m] = self._features[s][rows[m] - self._offsets[s]]
        return out

    def check(self, model_hash: str | None = None, fingerprint: str | None = None) -> None:
        """Refuse a cache built for another image tower or another dataset."""
        if model_hash and self.meta["model"].get("hash") and self.meta["model"]["hash"] != model_hash:
            raise CacheError(
                f"cache {self.folder} was built with another image tower ({self.meta['model']['name']}); "
                "delete it or point cache.dir elsewhere, then rerun cache-features"
            )
        fp = self.meta["dataset"].get("fingerprint")
        if fingerprint and fp and fp != fingerprint:
            raise CacheError(
                f"cache {self.folder} was built from different data; delete it or rerun cache-features"
            )


def fingerprint(items: Sequence[tuple[str, int]], taxa: Sequence) -> str:
    """A hash of the dataset (relative paths, class indices, taxa) that a cache is valid for."""
    h = hashlib.sha256()
    for path, label in items:
        h.update(f"{path}\t{label}\n".encode())
    for i, t in enumerate(taxa):
        h.update(json.dumps(taxon_row(i, t), sort_keys=True).encode())
    return h.hexdigest()[:16]
