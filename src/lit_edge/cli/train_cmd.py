"""`lit-edge train` commands: thin wrappers over :mod:`lit_edge.train` (torch imported in the bodies).

Run under torchrun for several processes or nodes; see ``lit_edge/train/distributed.py``::

    torchrun --standalone --nproc_per_node=2 -m lit_edge.train run train/smoke.py --set data.root=...
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True)

ConfigArg = Annotated[Path, typer.Argument(help="A config file in train/, e.g. train/smoke.py.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a config field: dotted.key=value (repeatable)."),
]


@app.command("run")
def run(
    config: ConfigArg,
    set_: SetOpt = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the latest checkpoint.")] = False,
) -> None:
    """Train a LiT model (locked image tower, text tower tuned) from a config."""
    from lit_edge.train.config import load_config
    from lit_edge.train.trainer import train

    cfg = load_config(config, set_ or [])
    result = train(cfg, resume=resume)
    if result.checkpoint is not None:
        typer.echo(f"step {result.step}: checkpoint {result.checkpoint}")
    for k, v in sorted(result.metrics.items()):
        typer.echo(f"{k}\t{v:.4f}")


@app.command("cache-features")
def cache_features(config: ConfigArg, set_: SetOpt = None) -> None:
    """Encode the config's dataset with the locked image tower into cache.dir (resumable, sharded)."""
    from lit_edge.errors import UserError
    from lit_edge.train import distributed
    from lit_edge.train.config import load_config
    from lit_edge.train.featurize import build_feature_cache
    from lit_edge.train.trainer import build_model

    cfg = load_config(config, set_ or [])
    if not cfg.cache.dir:
        raise UserError("cache.dir is empty; set it with --set cache.dir=/path/to/cache")
    from lit_edge.data import load_dataset

    ctx = distributed.setup(cfg.device)
    try:
        model = build_model(cfg).to(ctx.device)
        cache = build_feature_cache(model, load_dataset(cfg.data), cfg.cache, cfg.data.root, ctx)
    finally:
        distributed.teardown()
    if ctx.is_main:
        typer.echo(f"{cache.folder}: {len(cache)} rows x {cache.dim}, {len(cache.meta['failed'])} failed")


@app.command("eval")
def evaluate(
    checkpoint: Annotated[
        Path, typer.Argument(help="A checkpoint folder (model.safetensors + config.json).")
    ],
    data: Annotated[str, typer.Option("--data", help="The held-out data: iNat root, class folder or CSV.")],
    format: Annotated[str, typer.Option("--format", help="inat | folder | csv")] = "inat",
    split: Annotated[str, typer.Option("--split", help="iNat split file (val, train_mini, ...).")] = "val",
    max_images: Annotated[
        int, typer.Option(help="Evaluate an even spread of at most N images (0 = all).")
    ] = 0,
    batch_size: Annotated[int, typer.Option(help="Images per batch.")] = 64,
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the metrics to this JSON file.")
    ] = None,
) -> None:
    """Zero-shot top-1/top-5 of a checkpoint at every taxonomic rank."""
    from lit_edge.data import DataConfig
    from lit_edge.model import load_checkpoint
    from lit_edge.train.config import EvalConfig
    from lit_edge.train.evaluate import make_evaluators

    cfg = EvalConfig(
        evaluators=("zeroshot",),
        data=DataConfig(format=format, root=data, split=split),
        batch_size=batch_size,
        max_images=max_images,
    )
    model = load_checkpoint(checkpoint)
    metrics: dict[str, float] = {}
    for ev in make_evaluators(cfg, "cpu"):
        metrics.update(ev.run(model))
    for k, v in sorted(metrics.items()):
        typer.echo(f"{k}\t{v:.4f}")
    if out is not None:
        out.write_text(json.dumps(metrics, indent=2), encoding="utf-8")


def _register_starter() -> None:
    """`lit-edge train starter`: the default model, built from the packaged towers (see docs/starter-model.md)."""
    from lit_edge.starter.cli import build

    app.command("starter")(build)


_register_starter()
