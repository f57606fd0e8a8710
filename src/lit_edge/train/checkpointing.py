"""Training checkpoints: atomic folders of the model checkpoint plus the trainer's own state.

``<out_dir>/checkpoints/step-00000100/`` is a normal model checkpoint (``lit_edge.model``:
``model.safetensors``, ``config.json``, ``optimizer.safetensors`` + ``optimizer.json``) whose
``extra`` holds the step, the sampler position and the training config. It is written under a
temporary name and renamed into place, so a run killed mid-write leaves either the previous
checkpoint or the new one, never half of one. ``checkpoints/last`` is a symbolic link to the newest
(``lit-edge train eval runs/NAME/checkpoints/last``), replaced atomically after each save. The sampler and RNG state are a pure function of
``(seed, step)`` (see :mod:`lit_edge.train.batches`), so the step is all that a resume needs.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

from lit_edge.errors import UserError

log = logging.getLogger(__name__)

_STEP_DIR = re.compile(r"^step-(\d{8})$")


def checkpoint_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / "checkpoints"


def list_checkpoints(out_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first."""
    root = checkpoint_dir(out_dir)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _STEP_DIR.match(p.name)
        if m and (p / "config.json").is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    found = list_checkpoints(out_dir)
    return found[-1][1] if found else None


def save(out_dir: str | Path, step: int, model, optimizer, extra: dict, keep: int = 2) -> Path:
    """Write the checkpoint of ``step`` atomically and keep only the newest ``keep``."""
    from lit_edge.model import save_checkpoint

    root = checkpoint_dir(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    save_checkpoint(model, tmp, extra={"step": step, **extra}, optimizer_state=optimizer.state_dict())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old_step, old in list_checkpoints(out_dir)[:-keep] if keep > 0 else []:
        log.debug("removing old checkpoint %s (step %d)", old, old_step)
        (old / "config.json").unlink(missing_ok=True)  # first: a half-deleted folder is never "complete"
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".tmp-step-*"):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    _point_last(root, final.name)
    return final


def _point_last(root: Path, name: str) -> None:
    """``root/last`` -> ``name`` (relative, so the run folder can move), swapped in atomically."""
    tmp = root / f".last-{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        os.symlink(name, tmp, target_is_directory=True)
        os.replace(tmp, root / "last")
    except OSError as exc:  # no symlinks here (some Windows setups): the step folders still work
        log.debug("no checkpoints/last link: %s", exc)


def load_into(folder: Path, model, optimizer) -> dict:
    """Load weights and optimiser state from ``folder`` into live objects; returns ``extra``."""
    from safetensors.torch import load_model

    from lit_edge.model.checkpoint import load_optimizer_state, read_checkpoint_config

    config, extra = read_checkpoint_config(folder)
    if config.to_dict() != model.config.to_dict():
        raise UserError(
            f"checkpoint {folder} is of model {config.name!r}, not the config's {model.config.name!r}; "
            "resume with the config it was trained with or choose another out_dir"
        )
    missing, unexpected = load_model(model, str(folder / "model.safetensors"), strict=False)
    if missing or unexpected:
        raise UserError(
            f"checkpoint {folder}: weights do not fit the model ({missing[:3]}, {unexpected[:3]})"
        )
    state = load_optimizer_state(folder)
    if state is None:
        raise UserError(f"checkpoint {folder} has no optimiser state; it cannot be resumed, only evaluated")
    optimizer.load_state_dict(state)
    return extra
