"""Starter model: how good is each recipe, side by side, in one run (prints a table).

    python bench/bench_starter.py            # all variants (~15-20 min on 2 busy cores)
    python bench/bench_starter.py --quick    # shipped recipe only

Variants (the same frozen MiniLM features are shared by the ``head`` variants):

- ``head`` (shipped): MLP head on frozen MiniLM features, every WordNet synset above the classes;
- ``head, 1k names only``: the same without the synsets above the 1,000 classes (the issue's first try);
- ``head, names held out``: 20 % of the classes' secondary names left out of training, to measure
  retrieval of names never seen (the shipped model trains on all names);
- ``full tower``: MiniLM tuned too, within the same time budget as the shipped build.

Build seconds: the first row encodes every phrasing (the real cost of a build, minus loading the
towers); the other head rows reuse those features, so their seconds are training only.

Columns: build seconds; text-to-class retrieval top-1 on held-out templates and on held-out names;
agreement of zero-shot top-1 (the 1,000 class names as labels) with the locked ImageNet head on
real photos and crops; the Felis catus contest on chelsea (+ crops) against a dozen species names:
how often it wins and its smallest margin (cosine units) and mean probability.
"""

from __future__ import annotations

import argparse
import logging
import os
import time

import torch

from lit_edge.model import build_classifier, create_model
from lit_edge.starter.build import train_starter
from lit_edge.starter.config import StarterConfig
from lit_edge.starter.evaluate import class_names, image_side, real_photos, species_contest, zero_shot_top1
from lit_edge.starter.fit import encode_features, progress_bar
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


class FeatureStore:
    """Frozen pooled features by text, so head variants encode each phrasing once."""

    def __init__(self, model, batch_size: int, progress):
        self.model, self.batch_size, self.progress = model, batch_size, progress
        self.cache: dict[str, torch.Tensor] = {}

    def __call__(self, texts: list[str]) -> torch.Tensor:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            feats = encode_features(self.model, missing, self.batch_size, self.progress)
            self.cache.update(zip(missing, feats, strict=True))
        return torch.stack([self.cache[t] for t in texts])


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the shipped recipe only")
    ap.add_argument("--crops", type=int, default=16, help="random crops per sample photo")
    ap.add_argument("--all-templates", action="store_true", help="agreement with all 8 bundle templates")
    ap.add_argument("--full-budget", type=float, default=0.0, help="seconds for the full-tower variant")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.manual_seed(0)

    shipped = StarterConfig()
    variants = [("head (shipped)", shipped)]
    if not args.quick:
        variants += [
            ("head, 40 epochs", shipped.override(epochs=40)),
            ("head, 1k names only", shipped.override(max_cover=1)),
            ("head, 20% names held out", shipped.override(heldout_lemma_fraction=0.2)),
            ("full tower, same budget", shipped.override(mode="full", epochs=1, batch_size=64)),
        ]
    templates = TEMPLATES if args.all_templates else (DEFAULT_TEMPLATE,)
    photos = real_photos(crops_per_photo=args.crops)
    chelsea = real_photos(crops_per_photo=8, seed=1, names=("chelsea",))
    rows = []
    head_build = 0.0
    with progress_bar() as progress:
        store = FeatureStore(create_model(shipped.model), shipped.feature_batch_size, progress)
        for name, cfg in variants:
            if cfg.mode == "full":
                budget = args.full_budget or head_build
                cfg = cfg.override(time_budget_s=max(30.0, budget - 20.0))
            t0 = time.perf_counter()
            model, _, m = train_starter(cfg, progress, features=store)
            seconds = time.perf_counter() - t0
            head_build = head_build or seconds
            if not rows:
                emb, head_top1 = image_side(model, photos)
            rows.append((name, seconds, m, evaluate(model, photos, emb, head_top1, chelsea, templates)))
    load = os.getloadavg()[0]
    print(
        f"\nstarter recipes on {len(photos)} real photos and crops; load average {load:.1f} on {os.cpu_count()} cores"
    )
    header = (
        f"{'variant':28} {'build s':>8} {'x shipped':>9} {'tmpl top1':>9} {'name top1':>9} "
        f"{'agree':>6} {'cat wins':>8} {'cat margin':>10} {'cat p':>6} {'phrasings':>9}  runner-up"
    )
    print(header)
    print("-" * len(header))
    base = rows[0][1]
    for name, seconds, m, e in rows:
        name_top1 = m["heldout_name_top1"]
        print(
            f"{name:28} {seconds:8.0f} {seconds / base:9.2f} {100 * m['heldout_template_top1']:8.1f}% "
            f"{'—' if name_top1 is None else f'{100 * name_top1:.1f}%':>9} {100 * e['agreement']:5.1f}% "
            f"{100 * e['cat_wins']:7.0f}% {e['cat_margin']:10.3f} {e['cat_prob']:6.2f} {m['phrasings']:9d}  "
            f"{e['cat_runner_up']}"
        )


if __name__ == "__main__":
    main()
