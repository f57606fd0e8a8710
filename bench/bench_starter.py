"""Starter model: how good is each recipe, side by side, in one run (prints a table).

    python bench/bench_starter.py                 # the trainer's losses (distill vs contrastive)
    python bench/bench_starter.py --quick         # shipped recipe only
    python bench/bench_starter.py --variants distill,1k,heldout

Every variant is built by ``lit_edge.starter.build.train_starter``, i.e. by the LiT trainer with a
locked MiniLM and the trainer's text-feature cache, which the variants share: the phrasings are
encoded once (the *encode* line, the real first-build cost that the variants' seconds leave out).

- ``distill`` (shipped): the trainer's ``distill`` loss (soft cross-entropy to each target's class
  distribution), logit scale fixed at 50;
- ``contrastive``: the trainer's softmax loss with multi-positive pairs against the targets'
  ``sqrt(q)`` rows (plain LiT on the cache), logit scale fixed at 50; ``contrastive-learnt``: the
  scale learnt from 50; ``contrastive-slow``: learnt, at a tenth of the learning rate;
- ``1k``: distill without the synsets above the 1,000 classes (the issue's first try);
- ``heldout``: distill with 20 % of the classes' secondary names held out (``name top1``).

Columns: seconds (towers, WordNet, targets, training, held-out scoring; encoding excluded); steps;
text-to-class retrieval top-1 on held-out templates and on held-out names; agreement of zero-shot
top-1 (the 1,000 class names as labels) with the locked ImageNet head on real photos and crops; the
Felis catus contest on chelsea (+ crops) against a dozen species names: how often it wins, its
smallest margin (cosine units) and mean probability.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import torch

from lit_edge.model import build_classifier
from lit_edge.starter.build import train_starter
from lit_edge.starter.config import StarterConfig
from lit_edge.starter.evaluate import class_names, image_side, real_photos, species_contest, zero_shot_top1
from lit_edge.taxonomy import DEFAULT_TEMPLATE, TEMPLATES

SPECIES = [
    "Felis catus",
    "Canis lupus",
    "Canis familiaris",
    "Vulpes vulpes",
    "Panthera leo",
    "Panthera tigris",
    "Acinonyx jubatus",
    "Ursus arctos",
    "Procyon lotor",
    "Sus scrofa",
    "Danaus plexippus",
    "Haliaeetus leucocephalus",
    "Struthio camelus",
]


def evaluate(model, photos, emb, head_top1, chelsea, templates: tuple[str, ...]) -> dict:
    matrix = build_classifier(model, class_names(), templates=templates)
    agree = (zero_shot_top1(emb, matrix) == head_top1).float().mean().item()
    contest = species_contest(model, chelsea, SPECIES, expected="Felis catus")
    return {
        "agreement": agree,
        "cat_wins": sum(r.winner == "Felis catus" for r in contest) / len(contest),
        "cat_margin": min(r.margin for r in contest),
        "cat_prob": sum(r.probability for r in contest) / len(contest),
        "cat_runner_up": _runner_up(model, chelsea[0]),
    }


def _runner_up(model, photo) -> str:
    matrix = torch.from_numpy(build_classifier(model, SPECIES))
    emb, _ = image_side(model, [photo])
    order = (emb @ matrix.T)[0].argsort(descending=True)
    return SPECIES[int(order[1])]


def variants(shipped: StarterConfig) -> dict[str, tuple[str, StarterConfig]]:
    return {
        "distill": ("trainer, distill (shipped)", shipped),
        "contrastive": ("trainer, contrastive, scale 50", shipped.override(loss="contrastive")),
        "contrastive-learnt": (
            "trainer, contrastive, learnt",
            shipped.override(loss="contrastive", learn_logit_scale=True),
        ),
        "contrastive-slow": (
            "trainer, contrastive, learnt, lr 3e-4",
            shipped.override(loss="contrastive", learn_logit_scale=True, lr=3e-4),
        ),
        "1k": ("distill, 1k names only", shipped.override(max_cover=1)),
        "heldout": ("distill, 20% names held out", shipped.override(heldout_lemma_fraction=0.2)),
    }


def encode_once(cfg: StarterConfig, text_cache: Path) -> float:
    """Fill the shared text-feature cache with every phrasing of ``cfg``; returns the seconds."""
    from lit_edge.starter.hierarchy import imagenet_synsets, leaf_cover
    from lit_edge.starter.phrasings import build_phrasings
    from lit_edge.starter.species import species_rows
    from lit_edge.starter.wordnet import load_wordnet
    from lit_edge.train import distributed
    from lit_edge.train.text_cache import open_text_cache
    from lit_edge.train.trainer import build_model

    wn = load_wordnet()
    classes = imagenet_synsets()
    p = build_phrasings(cfg, wn, classes, leaf_cover(wn, classes), species_rows(wn, classes))
    texts = [t for target in p.targets for t in target.texts]
    from lit_edge.train.config import TextConfig, TrainConfig

    model = build_model(TrainConfig(model=cfg.model, text=TextConfig(lock_encoder=True)))
    t0 = time.perf_counter()
    open_text_cache(text_cache, model, texts, cfg.feature_batch_size, distributed.setup("cpu"))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the shipped recipe only")
    ap.add_argument("--variants", default="distill,contrastive,contrastive-learnt")
    ap.add_argument("--crops", type=int, default=16, help="random crops per sample photo")
    ap.add_argument("--all-templates", action="store_true", help="agreement with all 8 bundle templates")
    ap.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.manual_seed(0)

    shipped = StarterConfig()
    table = variants(shipped)
    chosen = ["distill"] if args.quick else [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(chosen) - set(table)
    if unknown:
        raise SystemExit(f"error: unknown variants {sorted(unknown)}; choose from {', '.join(table)}")
    templates = TEMPLATES if args.all_templates else (DEFAULT_TEMPLATE,)
    photos = real_photos(crops_per_photo=args.crops)
    chelsea = real_photos(crops_per_photo=8, seed=1, names=("chelsea",))
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-starter-"))
    text_cache = work / "text-features"
    encode_s = encode_once(shipped, text_cache)
    loads = [os.getloadavg()[0]]
    rows = []
    emb = head_top1 = None
    for key in chosen:
        name, cfg = table[key]
        t0 = time.perf_counter()
        model, _, m = train_starter(cfg, work / key, text_cache)
        seconds = time.perf_counter() - t0
        loads.append(os.getloadavg()[0])
        if emb is None:
            emb, head_top1 = image_side(model, photos)
        rows.append((name, seconds, m, evaluate(model, photos, emb, head_top1, chelsea, templates)))
    print(
        f"\nstarter recipes on {len(photos)} real photos and crops; load average {min(loads):.1f}-"
        f"{max(loads):.1f} on {os.cpu_count()} cores; encoding {_phrasings(rows)} phrasings once: {encode_s:.0f} s"
    )
    header = (
        f"{'variant':34} {'s':>5} {'x first':>7} {'steps':>5} {'tmpl top1':>9} {'name top1':>9} "
        f"{'agree':>6} {'cat wins':>8} {'cat margin':>10} {'cat p':>6} {'phrasings':>9}  runner-up"
    )
    print(header)
    print("-" * len(header))
    base = rows[0][1]
    for name, seconds, m, e in rows:
        name_top1 = m["heldout_name_top1"]
        print(
            f"{name:34} {seconds:5.0f} {seconds / base:7.2f} {m['steps']:5d} {100 * m['heldout_template_top1']:8.1f}% "
            f"{'—' if name_top1 is None else f'{100 * name_top1:.1f}%':>9} {100 * e['agreement']:5.1f}% "
            f"{100 * e['cat_wins']:7.0f}% {e['cat_margin']:10.3f} {e['cat_prob']:6.2f} {m['phrasings']:9d}  "
            f"{e['cat_runner_up']}"
        )


def _phrasings(rows) -> int:
    return rows[0][2]["phrasings"] if rows else 0


if __name__ == "__main__":
    main()
