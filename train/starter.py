"""The starter model's recipe, as a config file (big_vision's habit: ``get_config()``).

The recipe is trained by the LiT trainer (``lit_edge.train``): locked MiniLM with a text-feature
cache, the head fitted by the ``distill`` loss (see docs/starter-model.md). Build it (once; reused
after while the recipe and inputs are unchanged)::

    python train/starter.py                      # the shipped recipe, into $LIT_EDGE_HOME/models/starter
    python train/starter.py --smoke --out /tmp/s # a few classes and steps: the pipeline in seconds
    python train/starter.py --set loss=contrastive --out /tmp/contrastive

Needs WordNet 3.0 (``apt-get install wordnet-base``) and the train extra.
"""

from __future__ import annotations

import argparse
import ast
import logging
from pathlib import Path

from lit_edge.starter.config import StarterConfig, smoke_config


def get_config(arg: str = "") -> StarterConfig:
    """``""``: the shipped recipe; ``"smoke"``: the tests' few-class run."""
    if arg == "smoke":
        return smoke_config()
    return StarterConfig(
        model="lit-effnetlite0-minilm-classdist",
        max_cover=1000,  # every synset above the classes, up to "entity"
        class_templates=4,
        parent_templates=2,
        glosses=True,
        loss="distill",  # soft cross-entropy to each target's class distribution (bench/bench_starter.py)
        learn_logit_scale=False,
        epochs=12,
        batch_size=512,
        lr=3e-3,
        weight_decay=1e-4,
        logit_scale=50.0,
    )


def _parse_set(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="a few classes and steps")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a field")
    parser.add_argument("--out", type=Path, default=None, help="checkpoint folder (default: the starter dir)")
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from lit_edge.starter.build import ensure_starter_checkpoint

    cfg = get_config("smoke" if args.smoke else "").override(**_parse_set(args.set))
    print(ensure_starter_checkpoint(force=args.force, config=cfg, folder=args.out))


if __name__ == "__main__":
    main()
