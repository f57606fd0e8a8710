"""Fitting the starter's text tower: frozen MiniLM features once, then a head (or the whole tower).

``head`` mode (the shipped route) encodes every phrasing once with the frozen encoder, then trains
only the MLP head for many epochs on those features, which costs seconds per epoch on a laptop CPU.
``full`` mode also tunes the encoder, which is ~5x slower per phrasing than a frozen forward pass,
so within the same budget it sees each phrasing only a few times (see ``bench/bench_starter.py``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lit_edge.starter.config import StarterConfig
from lit_edge.starter.loss import soft_cross_entropy
from lit_edge.starter.phrasings import Phrasings

log = logging.getLogger(__name__)


@dataclass
class TrainSet:
    """Every phrasing, the index of its target, and the targets' distributions (``[T, C]``)."""

    texts: list[str]
    target_index: torch.Tensor  # [N] long
    distributions: torch.Tensor  # [T, C] float, rows sum to 1

    @classmethod
    def from_phrasings(cls, phrasings: Phrasings, num_classes: int) -> TrainSet:
        texts: list[str] = []
        index: list[int] = []
        dist = torch.zeros(len(phrasings.targets), num_classes)
        for t, target in enumerate(phrasings.targets):
            dist[t, list(target.classes)] = 1.0 / len(target.classes)
            texts.extend(target.texts)
            index.extend([t] * len(target.texts))
        return cls(texts, torch.tensor(index, dtype=torch.long), dist)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
    )


def _tokens(model, texts: list[str]) -> dict[str, torch.Tensor]:
    """Dynamic padding: mean pooling is masked, so padding to the batch's longest equals padding to 32."""
    enc = model.tokenizer(
        texts, padding=True, truncation=True, max_length=model.config.text.context_length, return_tensors="pt"
    )
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def pooled(model, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
    """The text encoder's pooled features (the head's input)."""
    encoder = model.text_tower.encoder
    out = encoder.transformer(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
    return encoder.pooler(out, tokens["attention_mask"])


@torch.no_grad()
def encode_features(
    model, texts: list[str], batch_size: int, progress: Progress | None = None
) -> torch.Tensor:
    """Frozen pooled features of ``texts`` ([N, width]); texts are sorted by length to pad little."""
    t0 = time.perf_counter()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = torch.empty(len(texts), model.text_tower.width)
    task = progress.add_task("encoding phrasings", total=len(texts), info="") if progress else None
    model.text_tower.eval()
    for i in range(0, len(order), batch_size):
        idx = order[i : i + batch_size]
        out[idx] = pooled(model, _tokens(model, [texts[j] for j in idx])).float()
        if progress:
            progress.advance(task, len(idx))
    log.info("starter: encoded %d phrasings in %.0f s", len(texts), time.perf_counter() - t0)
    return out


def fit_text_tower(
    model,
    data: TrainSet,
    cfg: StarterConfig,
    progress: Progress | None = None,
    features: torch.Tensor | None = None,
) -> dict:
    """Train the head (``cfg.mode='head'``) or the whole text tower (``'full'``) with soft cross-entropy.

    Returns training metrics (final loss, steps, seconds). ``features`` may be passed in to reuse
    frozen features across runs (the bench does); in ``head`` mode they are computed if absent.
    """
    if cfg.mode not in ("head", "full"):
        raise ValueError(f"starter mode must be 'head' or 'full', not {cfg.mode!r}")
    gen = torch.Generator().manual_seed(cfg.seed)
    tower = model.text_tower
    head_params = list(tower.head.parameters())
    groups = [{"params": head_params, "lr": cfg.lr}]
    full = cfg.mode == "full"
    if full:
        for p in tower.encoder.parameters():
            p.requires_grad = True
        groups.append({"params": list(tower.encoder.transformer.parameters()), "lr": cfg.encoder_lr})
    elif features is None:
        features = encode_features(model, data.texts, cfg.feature_batch_size, progress)
    opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    n = len(data.texts)
    steps_per_epoch = max(1, (n + cfg.batch_size - 1) // cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=[g["lr"] for g in groups], total_steps=total, pct_start=0.1
    )
    task = progress.add_task(f"training text {cfg.mode}", total=total, info="") if progress else None
    tower.train(full)
    tower.head.train()
    start = time.perf_counter()
    step, loss_value, seen = 0, float("nan"), 0
    for epoch in range(cfg.epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            if full:
                x = pooled(model, _tokens(model, [data.texts[j] for j in idx.tolist()]))
            else:
                x = features[idx]
            loss = soft_cross_entropy(
                tower.head(x), data.distributions[data.target_index[idx]], cfg.label_smoothing
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            seen += len(idx)
            loss_value = float(loss.detach())
            if progress:
                progress.update(task, advance=1, info=f"loss {loss_value:.3f}")
            if cfg.time_budget_s and time.perf_counter() - start > cfg.time_budget_s:
                log.info("starter: time budget of %.0f s reached after %d steps", cfg.time_budget_s, step)
                break
        else:
            if (epoch + 1) % 10 == 0:
                log.info("starter: epoch %d/%d, loss %.3f", epoch + 1, cfg.epochs, loss_value)
            continue
        break
    tower.eval()
    return {"loss": loss_value, "steps": step, "samples": seen, "train_seconds": time.perf_counter() - start}


@torch.no_grad()
def text_top1(model, texts: list[str], labels: list[int], batch_size: int = 256) -> torch.Tensor:
    """Per text: did its embedding's largest coordinate (its nearest ImageNet class) hit the label?"""
    model.eval()
    hits = []
    for i in range(0, len(texts), batch_size):
        emb = model.encode_text(_tokens(model, texts[i : i + batch_size]))
        hits.append(emb.argmax(dim=-1) == torch.tensor(labels[i : i + batch_size]))
    return torch.cat(hits) if hits else torch.zeros(0, dtype=torch.bool)
