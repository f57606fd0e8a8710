"""The LiT training loop: locked image tower, trainable text tower, contrastive loss, many ranks.

One function, :func:`train`, runs a :class:`~lit_edge.train.config.TrainConfig` in this process
(joining torchrun's process group when there is one). With ``cache.dir`` set the locked tower runs
once (:mod:`lit_edge.train.featurize`) and steps read its features; without, images go through the
tower every step, with augmentation.

Every step is a pure function of ``(weights, optimiser state, seed, step)``: batches, captions and
dropout masks are seeded by the step. So ``--resume`` from a checkpoint at step ``s`` continues with
exactly the updates an uninterrupted run would have made, and a killed run loses only the steps
since its last checkpoint.

With ``text.lock_encoder`` only the text head trains; with ``text.feature_cache`` too, the locked
encoder's pooled features of every caption are computed once (:mod:`lit_edge.train.text_cache`), so
a step runs the head alone. ``loss.kind='distill'`` fits each caption to its image's class
distribution (``class_dist`` models; the starter model is built this way).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lit_edge.data import load_dataset
from lit_edge.data.captions import CaptionSampler
from lit_edge.errors import UserError
from lit_edge.train import checkpointing, distributed
from lit_edge.train.batches import CachedSource, EpochSampler, OnlineSource
from lit_edge.train.cache import FeatureCache
from lit_edge.train.config import OptimConfig, TrainConfig
from lit_edge.train.evaluate import make_evaluators
from lit_edge.train.loss import Loss, LossInputs, create_loss
from lit_edge.train.metrics import MetricsWriter
from lit_edge.train.progress import progress_bar
from lit_edge.train.text_cache import TextFeatureCache, all_captions, open_text_cache
from lit_edge.train.towers import cache_stage, embed_cached, tower_hash

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    step: int
    out_dir: Path
    checkpoint: Path | None
    metrics: dict[str, float] = field(default_factory=dict)
    failed_images: int = 0
    model: object = None  # the trained LiTModel (this rank's copy)


def build_model(cfg: TrainConfig):
    """The model a config names (a registry name or a model config JSON), same weights on every rank.

    ``text.lock_encoder`` is written into the model config (``text.lock_layers=-1``), so checkpoints
    say which part trained, and ``loss.learn_logit_scale=False`` freezes the logit scale and bias.
    """
    from dataclasses import replace

    from lit_edge.model import LiTConfig, create_model, get_config

    torch.manual_seed(cfg.seed)
    path = Path(cfg.model)
    if cfg.model.endswith(".json"):
        if not path.is_file():
            raise UserError(f"model config {path} not found; give a registered name or a JSON file")
        import json

        config = LiTConfig.from_dict(json.loads(path.read_text(encoding="utf-8")))
    else:
        config = get_config(cfg.model)
    if cfg.text.lock_encoder:
        config = replace(config, text=replace(config.text, lock_layers=-1))
    _check_options(cfg, config)
    model = create_model(config, image_checkpoint=cfg.image_checkpoint or None)
    if not cfg.loss.learn_logit_scale:
        for p in (model.logit_scale, model.logit_bias):
            if p is not None:
                p.requires_grad_(False)
    return model


def _check_options(cfg: TrainConfig, config) -> None:
    """Combinations that cannot work, refused before anything is built."""
    if cfg.text.feature_cache and not cfg.text.lock_encoder:
        raise UserError(
            "text.feature_cache needs text.lock_encoder=true: a trained encoder's features change every step"
        )
    if cfg.loss.kind == "distill" and (
        config.image.embed != "class_dist" or config.text.output != "sqrt_softmax"
    ):
        raise UserError(
            f"loss.kind=distill needs a class-distribution model (image embed 'class_dist', text output "
            f"'sqrt_softmax'); {config.name} is not one: use loss.kind=softmax or sigmoid"
        )


def make_optimizer(model, cfg: OptimConfig) -> tuple[torch.optim.Optimizer, list[torch.nn.Parameter]]:
    """AdamW over the trainable parameters; no weight decay on biases, norms and the logit scale/bias."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or name.startswith("logit_") else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # fused: one kernel for all parameters (about 10x faster than the default on CPU, where the
    # optimiser step over MiniLM's 12M-row embedding table otherwise rivals the text tower's step)
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, fused=True)
    return opt, decay + no_decay


def learning_rate(cfg: OptimConfig, step: int, total: int) -> float:
    """Linear warmup over ``warmup_steps``, then cosine to ``min_lr_ratio * lr`` (or constant)."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule != "cosine":
        raise UserError(f"unknown optim.schedule {cfg.schedule!r}; use 'cosine' or 'constant'")
    span = max(1, total - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def _train_mode(model, cfg: TrainConfig) -> None:
    """Train mode, or eval mode when ``dropout`` is off: the only train-time behaviour of the trainable
    part is dropout (the locked tower keeps its BatchNorm fixed), and HF attention applies dropout
    functionally, so switching modules' mode is the one switch that turns all of it off."""
    model.train(cfg.dropout)
    if cfg.text.lock_encoder:  # a locked encoder is a fixed function (and its features cacheable)
        model.text_tower.encoder.eval()


def _source(cfg: TrainConfig, model, ctx: distributed.DistContext):
    """``(batch source, sampler, caption sampler, cache stage)``; stage None = online (tower in the loop)."""
    if cfg.cache.dir:
        if not (Path(cfg.cache.dir) / "meta.json").is_file() and not cfg.data.root:
            raise UserError(f"no feature cache at {cfg.cache.dir} and no data.root to build one from")
        from lit_edge.train.featurize import build_feature_cache, dataset_fingerprint

        data = load_dataset(cfg.data) if cfg.data.root else None
        if data is not None and not (Path(cfg.cache.dir) / "meta.json").is_file():
            build_feature_cache(model, data, cfg.cache, cfg.data.root, ctx)
        cache = FeatureCache(cfg.cache.dir)
        if data is not None:  # a cache of other images would train silently on the wrong data
            cache.check(fingerprint=dataset_fingerprint(data, cfg.data.root))
        stage = cache_stage(model)
        if cache.meta.get("stage", "embedding") != stage:
            raise UserError(
                f"cache {cfg.cache.dir} holds '{cache.meta.get('stage')}' features but model {cfg.model} "
                f"trains from '{stage}' features; rebuild the cache for this model"
            )
        cache.check(model_hash=tower_hash(model, stage))
        sampler = EpochSampler(len(cache), cfg.global_batch, cfg.seed)
        captions = CaptionSampler(cache.taxa, cfg.data.text_mix, cfg.seed, cache.captions)
        return CachedSource(cache, sampler, captions, ctx.rank, ctx.world), sampler, captions, stage
    from PIL import Image

    data = load_dataset(cfg.data)
    sampler = EpochSampler(len(data), cfg.global_batch, cfg.seed)
    captions = CaptionSampler(data.taxa, cfg.data.text_mix, cfg.seed)
    tf = model.image_transform(train=cfg.augment)

    def transform(rgb):
        return tf(Image.fromarray(rgb))

    src = OnlineSource(
        data, sampler, captions, transform, ctx.rank, ctx.world, cfg.seed, cfg.data.num_workers
    )
    return src, sampler, captions, None


def _loss(
    model,
    loss: Loss,
    batch,
    stage,
    cfg: TrainConfig,
    ctx: distributed.DistContext,
    texts_cache: TextFeatureCache | None,
) -> torch.Tensor:
    """One step's loss: the model's own forward pieces on this rank's rows, then the configured loss."""
    inputs, labels, texts = batch.inputs, batch.labels, batch.texts
    if stage is None and ctx.world > 1:  # online: unreadable images dropped; ranks need equal rows
        n = distributed.min_int(len(labels), ctx.device)
        inputs, labels, texts = inputs[:n], labels[:n], texts[:n]
    if len(labels) == 0:
        raise UserError(f"step {batch.step}: no readable image in the batch; check the dataset's files")
    inputs = inputs.to(ctx.device)
    image = embed_cached(model, inputs, stage) if stage else model.encode_image(inputs, normalize=True)
    if texts_cache is not None:
        pooled = texts_cache.lookup(texts).to(ctx.device)
    else:
        with torch.set_grad_enabled(not cfg.text.lock_encoder):
            pooled = model.encode_text_pooled(model.tokenize(texts))
    head = model.text_head(pooled)
    return loss(
        LossInputs(
            image=image,
            text=model.text_from_head(head, normalize=True),
            text_head=head,
            logit_scale=model.logit_scale.exp(),
            logit_bias=model.logit_bias,
            labels=labels.to(ctx.device),
        )
    )


def train(cfg: TrainConfig, resume: bool = False) -> TrainResult:
    """Run ``cfg`` to its last step (or continue it from its latest checkpoint with ``resume``)."""
    ctx = distributed.setup(cfg.device)
    ok = False
    try:
        result = _train(cfg, resume, ctx)
        ok = True
        return result
    finally:
        distributed.teardown(ok)


def _train(cfg: TrainConfig, resume: bool, ctx: distributed.DistContext) -> TrainResult:
    out_dir = Path(cfg.out_dir)
    model = build_model(cfg).to(ctx.device)
    if cfg.loss.kind == "sigmoid" and model.logit_bias is None:
        log.warning("sigmoid loss with no logit bias in model %s: set init_logit_bias (e.g. -10)", cfg.model)
    distributed.broadcast_parameters(model)
    source, sampler, captions, stage = _source(cfg, model, ctx)  # may build the cache (in eval mode)
    texts_cache = None
    if cfg.text.feature_cache:
        texts_cache = open_text_cache(
            cfg.text.feature_cache, model, all_captions(captions), cfg.text.batch_size, ctx
        )
    _train_mode(model, cfg)
    total = cfg.max_steps or cfg.epochs * sampler.steps_per_epoch
    optimizer, params = make_optimizer(model, cfg.optim)
    loss_fn = create_loss(cfg.loss)

    start = 0
    existing = checkpointing.latest_checkpoint(out_dir)
    if resume and existing is not None:
        extra = checkpointing.load_into(existing, model, optimizer)
        start = int(extra["step"])
        log.info("resuming from %s at step %d of %d", existing, start, total)
    elif existing is not None and not resume:
        raise UserError(
            f"{out_dir} already has checkpoints (latest {existing.name}); pass --resume to continue "
            "or choose another out_dir with --set out_dir=..."
        )
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "train_config.json").write_text(_config_json(cfg), encoding="utf-8")
    metrics = MetricsWriter(out_dir, enabled=ctx.is_main)
    evaluators = []
    if ctx.is_main and cfg.eval.evaluators:
        if not cfg.eval.data.root and cfg.data.format != "inat":
            log.warning(
                "eval.data.root is not set and %s data has no held-out split: evaluating on the "
                "training images; set eval.data.root to held-out data",
                cfg.data.format,
            )
        evaluators = make_evaluators(cfg.eval_config(), ctx.device)
    local_batch = cfg.global_batch // ctx.world
    log.info(
        "training %s: %d steps (%d per epoch), global batch %d over %d rank(s), %s mode",
        cfg.model,
        total,
        sampler.steps_per_epoch,
        cfg.global_batch,
        ctx.world,
        "cached-feature" if stage else "online",
    )

    result = TrainResult(step=start, out_dir=out_dir, checkpoint=existing if resume else None)
    last_time, last_step = time.perf_counter(), start
    window_loss: list[float] = []
    end = min(total, cfg.stop_at) if cfg.stop_at else total
    with progress_bar(ctx.is_main, "training", total=total, completed=start, loss="-", samples_s="-") as bar:
        for batch in source.batches(start, end):
            step = batch.step
            for path, why in batch.failed:
                log.warning("step %d: skipping image %s (%s)", step, path, why)
            result.failed_images += len(batch.failed)
            lr = learning_rate(cfg.optim, step, total)
            for g in optimizer.param_groups:
                g["lr"] = lr
            torch.manual_seed((cfg.seed * 1_000_003 + step * 101 + ctx.rank) & 0x7FFFFFFF)  # dropout
            loss = _loss(model, loss_fn, batch, stage, cfg, ctx, texts_cache)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            distributed.average_gradients(params)
            if cfg.optim.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip)
            optimizer.step()
            window_loss.append(float(loss.detach()))
            done = step + 1
            result.step = done

            if done % cfg.log_every == 0 or done == end:
                now = time.perf_counter()
                sps = (done - last_step) * cfg.global_batch / max(now - last_time, 1e-9)
                mean_loss = distributed.mean_scalar(float(np.mean(window_loss)), ctx.device)
                metrics.write(
                    done,
                    {
                        "train/loss": mean_loss,
                        "train/lr": lr,
                        "train/samples_per_s": sps,
                        "train/logit_scale": float(model.logit_scale.detach().exp()),
                    },
                )
                bar.advance(0, loss=f"{mean_loss:.4f}", samples_s=f"{sps:.0f}")
                last_time, last_step, window_loss = now, done, []
            bar.advance(1)

            if done % cfg.checkpoint_every == 0 or done == end:
                if ctx.is_main:
                    result.checkpoint = checkpointing.save(
                        out_dir,
                        done,
                        model,
                        optimizer,
                        {
                            "sampler": {
                                "seed": cfg.seed,
                                "epoch": sampler.position(done)[0],
                                "batch": sampler.position(done)[1],
                                "global_batch": cfg.global_batch,
                                "local_batch": local_batch,
                            },
                            "train_config": cfg.to_dict(),
                        },
                        keep=cfg.keep_checkpoints,
                    )
                distributed.barrier()
            if cfg.eval.every_steps and done % cfg.eval.every_steps == 0 and done != total:
                if evaluators:  # rank 0 evaluates while the others wait
                    result.metrics = _evaluate(evaluators, model, metrics, done)
                distributed.barrier()
    if evaluators and result.step == total:
        result.metrics = _evaluate(evaluators, model, metrics, result.step)
    distributed.barrier()
    metrics.close()
    result.model = model
    return result


def _evaluate(evaluators, model, writer: MetricsWriter, step: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for ev in evaluators:
        out.update(ev.run(model))  # evaluators restore the mode they found
    writer.write(step, out)
    log.info("step %d eval: %s", step, ", ".join(f"{k}={v:.3f}" for k, v in sorted(out.items())))
    return out


def _config_json(cfg: TrainConfig) -> str:
    import json

    return json.dumps(cfg.to_dict(), indent=2)
