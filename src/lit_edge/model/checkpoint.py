"""Checkpoints: ``model.safetensors`` + ``config.json``, and optionally the optimiser's state. Nothing pickled.

A checkpoint folder holds::

    config.json             {"format", "version", "model": LiTConfig, "extra": {...}}
    model.safetensors       the whole model's state dict
    optimizer.safetensors   (optional) the optimiser's tensors, flattened to "state.<param>.<key>"
    optimizer.json          (optional) the rest of the optimiser's state (param groups, scalars)

Loading rebuilds the architecture from the config without reading the towers' pretrained weights
(the checkpoint already holds them), so a checkpoint is self-contained apart from the tokenizer folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model

from lit_edge.errors import UserError
from lit_edge.model.config import LiTConfig

FORMAT = "lit-edge-checkpoint"
VERSION = 1
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
OPT_TENSORS = "optimizer.safetensors"
OPT_META = "optimizer.json"


def save_checkpoint(
    model, folder: Path | str, extra: dict | None = None, optimizer_state: dict | None = None
) -> Path:
    """Write ``model`` (a LiTModel) into ``folder``; ``extra`` must be JSON-serialisable (step, metrics)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # Each file is written aside and renamed into place, weights first and config last, so a run
    # killed mid-save leaves the previous checkpoint (or none), never a torn one.
    _atomic(folder / WEIGHTS, lambda p: save_model(model, str(p), metadata={"format": FORMAT}))
    if optimizer_state is not None:
        tensors, meta = _flatten_optimizer(optimizer_state)
        _atomic(folder / OPT_TENSORS, lambda p: save_file(tensors, str(p)))
        _atomic(
            folder / OPT_META, lambda p: p.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        )
    doc = {"format": FORMAT, "version": VERSION, "model": model.config.to_dict(), "extra": extra or {}}
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    _atomic(folder / CONFIG, lambda p: p.write_text(text, encoding="utf-8"))
    return folder


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    tmp.replace(path)


def read_checkpoint_config(folder: Path | str) -> tuple[LiTConfig, dict]:
    """The model config and the ``extra`` dict of a checkpoint, without building the model."""
    path = Path(folder) / CONFIG
    if not path.is_file():
        raise UserError(f"{folder}: no {CONFIG} here; is this a lit-edge checkpoint folder?")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); the checkpoint is damaged") from exc
    if doc.get("format") != FORMAT:
        raise UserError(f"{path}: not a lit-edge checkpoint config (format={doc.get('format')!r})")
    if doc.get("version") != VERSION:
        raise UserError(
            f"{path}: checkpoint version {doc.get('version')} is not supported (expects {VERSION})"
        )
    try:
        config = LiTConfig.from_dict(doc["model"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path}: model config is malformed ({exc})") from exc
    return config, dict(doc.get("extra", {}))


def load_checkpoint(folder: Path | str):
    """Rebuild the LiTModel saved in ``folder`` (strict: every tensor must be present and fit)."""
    from lit_edge.model.lit import LiTModel

    folder = Path(folder)
    config, _ = read_checkpoint_config(folder)
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise UserError(f"{folder}: {WEIGHTS} is missing; the checkpoint is incomplete")
    model = LiTModel(config, pretrained=False)
    try:
        missing, unexpected = load_model(model, str(weights), strict=False)
    except (SafetensorError, RuntimeError) as exc:
        raise UserError(f"{weights}: cannot be loaded into {config.name} ({exc})") from exc
    if missing or unexpected:
        raise UserError(
            f"{weights}: does not match the config's architecture "
            f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )
    return model


def load_optimizer_state(folder: Path | str) -> dict | None:
    """The optimiser state saved with the checkpoint, ready for ``optimizer.load_state_dict``."""
    folder = Path(folder)
    if not (folder / OPT_META).is_file():
        return None
    meta = json.loads((folder / OPT_META).read_text(encoding="utf-8"))
    tensors = load_file(str(folder / OPT_TENSORS))
    state: dict = {}
    for pid, entries in meta["state"].items():
        state[int(pid)] = {
            k: tensors[v["tensor"]] if isinstance(v, dict) and "tensor" in v else v
            for k, v in entries.items()
        }
    return {"state": state, "param_groups": meta["param_groups"]}


def _flatten_optimizer(opt_state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    state_meta: dict[str, dict] = {}
    for pid, entries in opt_state.get("state", {}).items():
        state_meta[str(pid)] = {}
        for k, v in entries.items():
            if isinstance(v, torch.Tensor):
                name = f"state.{pid}.{k}"
                tensors[name] = v.detach().contiguous().cpu()
                state_meta[str(pid)][k] = {"tensor": name}
            else:
                state_meta[str(pid)][k] = v
    return tensors, {"state": state_meta, "param_groups": opt_state.get("param_groups", [])}
