"""The text-feature cache: a locked text encoder's pooled features of every caption, computed once.

With ``text.lock_encoder`` only the text head trains, so the encoder's output for a caption never
changes during training, exactly like the locked image tower's output for an image. And the captions
a run can draw are a finite set (every text of a ``captions.jsonl``, or every taxon in every text
type of the mix), so they can all be encoded once before the first step; an epoch then costs only
the head. On a laptop CPU that turns an hour of MiniLM forward passes into seconds per epoch.

A cache is a folder, keyed by the caption string::

    meta.json       {"format": "lit-edge-text-feature-cache", "version": 1, "encoder": hash,
                     "count": N, "dim": W}
    features.npy    float32 [N, W], the encoder's pooled features (float32: a cached run must match
                    an uncached one to rounding, and N x W is small next to image caches)
    texts.json      the N captions, in row order

It grows: a run that needs captions the cache lacks encodes only those and rewrites the folder
(files written under temporary names, ``meta.json`` last), so runs that share a folder (the starter's
bench variants) encode each caption once. The encoder hash is a digest of the encoder's weights: a
cache of another encoder is refused rather than silently used. Rank 0 encodes; the others wait at a
barrier and read the result.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch

from lit_edge.data.captions import CaptionSampler
from lit_edge.errors import UserError
from lit_edge.taxonomy import caption
from lit_edge.train import distributed
from lit_edge.train.progress import progress_bar

log = logging.getLogger(__name__)

FORMAT = "lit-edge-text-feature-cache"
VERSION = 1


def all_captions(sampler: CaptionSampler) -> list[str]:
    """Every caption ``sampler`` can draw (each once, in a stable order)."""
    if sampler.class_texts is not None:
        texts = (t for cls in sorted(sampler.class_texts) for t in sampler.class_texts[cls])
    else:
        kinds = [k for k, p in zip(sampler.types, sampler.probs, strict=True) if p > 0]
        texts = (caption(taxon, k, sampler.template) for taxon in sampler.taxa for k in kinds)
    return list(dict.fromkeys(texts))


def encoder_hash(model) -> str:
    """A digest of the text encoder's weights (names, shapes and bytes): what the features depend on."""
    h = hashlib.sha256()
    for name, t in model.text_tower.encoder.state_dict().items():
        h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def encode_texts(model, texts: list[str], batch_size: int, bar=None) -> np.ndarray:
    """Pooled features ``[N, W]`` float32; texts are sorted by length so batches pad little.

    Dynamic padding is exact: the attention mask hides padding and mean pooling is masked.
    """
    width = model.text_tower.width
    out = np.empty((len(texts), width), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    was_training = model.text_tower.encoder.training
    model.text_tower.encoder.eval()
    try:
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            enc = model.tokenizer(
                [texts[j] for j in idx],
                padding=True,
                truncation=True,
                max_length=model.config.text.context_length,
                return_tensors="pt",
            )
            tokens = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
            out[idx] = model.encode_text_pooled(tokens).float().cpu().numpy()
            if bar is not None:
                bar.advance(len(idx))
    finally:
        model.text_tower.encoder.train(was_training)
    return out


class TextFeatureCache:
    """Pooled features by caption string, in memory."""

    def __init__(self, texts: list[str], features: np.ndarray):
        self.texts = texts
        self.features = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
        self.index = {t: i for i, t in enumerate(texts)}

    def __len__(self) -> int:
        return len(self.texts)

    def lookup(self, texts: list[str]) -> torch.Tensor:
        """``[n, W]`` features of ``texts``; a caption missing from the cache is a bug, not bad input."""
        try:
            rows = [self.index[t] for t in texts]
        except KeyError as exc:
            raise RuntimeError(f"caption {exc.args[0]!r} is not in the text-feature cache") from None
        return self.features[rows]


def _read(folder: Path) -> tuple[dict, list[str], np.ndarray] | None:
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise UserError(f"{meta_path} is not a lit-edge text-feature cache v{VERSION}; delete it and rerun")
    texts = json.loads((folder / "texts.json").read_text(encoding="utf-8"))
    features = np.load(folder / "features.npy", allow_pickle=False)
    if len(texts) != meta["count"] or features.shape != (meta["count"], meta["dim"]):
        raise UserError(f"text-feature cache {folder} is inconsistent (sizes differ); delete it and rerun")
    return meta, texts, features


def _write(folder: Path, encoder: str, texts: list[str], features: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.json").unlink(missing_ok=True)  # no meta = incomplete, whatever else is there
    tmp = folder / "features.npy.tmp"
    with open(tmp, "wb") as f:
        np.save(f, features.astype(np.float32), allow_pickle=False)
    os.replace(tmp, folder / "features.npy")
    (folder / "texts.json.tmp").write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    os.replace(folder / "texts.json.tmp", folder / "texts.json")
    meta = {"format": FORMAT, "version": VERSION, "encoder": encoder, "count": len(texts)}
    meta["dim"] = int(features.shape[1])
    (folder / "meta.json.tmp").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    os.replace(folder / "meta.json.tmp", folder / "meta.json")


def open_text_cache(
    folder: str | Path, model, texts: list[str], batch_size: int, ctx: distributed.DistContext
) -> TextFeatureCache:
    """The cache at ``folder`` holding at least ``texts``; rank 0 encodes the missing ones first."""
    folder = Path(folder)
    digest = encoder_hash(model)
    if ctx.is_main:
        found = _read(folder)
        old_texts, old_feats = ([], np.zeros((0, model.text_tower.width), np.float32))
        if found is not None:
            meta, old_texts, old_feats = found
            if meta["encoder"] != digest:
                raise UserError(
                    f"text-feature cache {folder} was built by another text encoder; "
                    "delete it or point text.feature_cache elsewhere"
                )
        known = set(old_texts)
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if missing:
            t0 = time.perf_counter()
            with progress_bar(True, "encoding captions", total=len(missing), unit="captions") as bar:
                feats = encode_texts(model, missing, batch_size, bar)
            log.info(
                "text-feature cache: encoded %d captions in %.0f s", len(missing), time.perf_counter() - t0
            )
            _write(folder, digest, old_texts + missing, np.concatenate([old_feats, feats]))
    distributed.barrier()
    meta, all_texts, features = _read(folder) or ({}, [], np.zeros((0, 1), np.float32))
    return TextFeatureCache(all_texts, features)
