"""Training configs as code: typed dataclasses, loaded from ``train/*.py`` and overridden by ``--set``.

A run is a small Python file with ``get_config() -> TrainConfig`` (big_vision's habit). The file is
imported by path with :mod:`importlib` (never ``exec`` of a string), and any field can then be
overridden from the command line with dotted keys, parsed to the field's type::

    lit-edge train run train/laptop.py --set optim.lr=1e-4 --set loss.kind=sigmoid

An unknown key or a value of the wrong type is a :class:`~lit_edge.errors.UserError` naming the key
and the closest valid ones, so a typo never silently trains the wrong thing.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from lit_edge.data.config import DataConfig
from lit_edge.errors import UserError


@dataclass(frozen=True)
class LossConfig:
    """Which loss to train with (:func:`lit_edge.train.loss.create_loss` builds it).

    ``kind`` is ``softmax`` (CLIP), ``sigmoid`` (SigLIP; uses the model's logit bias) or
    ``distill`` (soft cross-entropy to the locked tower's class distribution; ``class_dist`` models).
    ``multi_positive`` counts every same-class pair of a batch as a positive (contrastive kinds).
    ``learn_logit_scale`` off keeps the model's logit scale (and bias) at their initial values, e.g.
    a scale chosen for scoring that the loss should not move.
    """

    kind: str = "softmax"
    multi_positive: bool = False
    learn_logit_scale: bool = True

    def __post_init__(self) -> None:
        from lit_edge.train.loss import LOSSES

        if self.kind not in LOSSES:
            raise UserError(f"unknown loss.kind {self.kind!r}; use one of {', '.join(LOSSES)}")


@dataclass(frozen=True)
class CacheConfig:
    """The feature cache of the locked image tower. ``dir`` empty = online mode (tower in the loop)."""

    dir: str = ""
    shard_size: int = 2048
    batch_size: int = 64


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warmup then cosine (or constant) decay, per step."""

    lr: float = 5e-4
    weight_decay: float = 0.1
    warmup_steps: int = 500
    schedule: str = "cosine"  # cosine | constant
    min_lr_ratio: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    grad_clip: float = 1.0  # 0 = off


@dataclass(frozen=True)
class TextConfig:
    """How the text tower trains.

    ``lock_encoder`` freezes the whole text encoder (and runs it without dropout, as a fixed
    function, like the locked image tower) so that only the head (the projection) trains: on a
    laptop CPU that is the difference between minutes and hours. With it, ``feature_cache`` (a
    folder) stores the encoder's pooled features of every caption the run can draw, computed once
    (the caption set is finite), so an epoch costs only the head. Empty = encode every step.
    """

    lock_encoder: bool = False
    feature_cache: str = ""  # needs lock_encoder
    batch_size: int = 256  # captions per encoder call while building the feature cache


@dataclass(frozen=True)
class EvalConfig:
    """Evaluators run by name every ``every_steps`` (0 = only at the end) on a held-out split.

    ``data.root`` empty (the default) follows the training data: the same root and format, with
    ``data.split`` (``val``) as the held-out split. Set it to evaluate on other data.
    """

    evaluators: tuple[str, ...] = ("zeroshot",)
    every_steps: int = 0
    data: DataConfig = field(default_factory=lambda: DataConfig(split="val"))
    batch_size: int = 64
    max_images: int = 0  # 0 = the whole split


@dataclass(frozen=True)
class TrainConfig:
    """One training run. ``global_batch`` is split evenly over the ranks."""

    name: str = "run"
    model: str = "lit-tiny-test"  # a registry name or a path to a model config JSON
    image_checkpoint: str = ""  # local .safetensors for image towers whose weights are "user" (ViT-L/16)
    data: DataConfig = field(default_factory=DataConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    text: TextConfig = field(default_factory=TextConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    global_batch: int = 32
    epochs: int = 1
    max_steps: int = 0  # 0 = as many as ``epochs`` take
    stop_at: int = 0  # checkpoint and stop at this step, schedule unchanged (time-limited jobs); 0 = off
    seed: int = 0
    out_dir: str = "runs/run"
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    log_every: int = 10
    augment: bool = True  # online mode only: random crop + flip
    dropout: bool = True  # False runs the text tower without dropout (exact 1-vs-N rank comparisons)
    device: str = "auto"  # auto | cpu | cuda

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def eval_config(self) -> EvalConfig:
        """``eval`` with its data resolved: an empty ``eval.data.root`` follows ``data`` (root, format)."""
        if self.eval.data.root:
            return self.eval
        data = dataclasses.replace(self.eval.data, root=self.data.root, format=self.data.format)
        return dataclasses.replace(self.eval, data=data)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        return _from_dict(cls, d, "")


def load_config(path: str | Path, overrides: typing.Sequence[str] = ()) -> TrainConfig:
    """Import ``path`` (a ``train/*.py`` file), call its ``get_config()``, apply ``key=value`` overrides."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}; pass a train/*.py config such as train/smoke.py")
    spec = importlib.util.spec_from_file_location(f"lit_edge_user_config_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise UserError(f"cannot import config {path}; it must be a Python file with get_config()")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    get_config = getattr(module, "get_config", None)
    if get_config is None:
        raise UserError(f"config {path} has no get_config(); define one returning a TrainConfig")
    config = get_config()
    if not isinstance(config, TrainConfig):
        raise UserError(f"get_config() in {path} returned {type(config).__name__}, not a TrainConfig")
    return apply_overrides(config, overrides)


def apply_overrides(config, overrides: typing.Sequence[str]):
    """Return ``config`` with each ``dotted.key=value`` applied, values parsed to the field's type."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"bad --set {item!r}; write it as key=value, e.g. --set optim.lr=1e-4")
        config = _set(config, key.strip().split("."), raw.strip(), key.strip())
    return config


def _set(obj, parts: list[str], raw: str, full_key: str):
    hints = typing.get_type_hints(type(obj))
    name = parts[0]
    if name not in hints:
        close = difflib.get_close_matches(name, list(hints), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; valid keys: {', '.join(hints)}"
        raise UserError(f"unknown config key {full_key!r} (no {name!r} in {type(obj).__name__}){hint}")
    if len(parts) > 1:
        child = getattr(obj, name)
        if not dataclasses.is_dataclass(child):
            raise UserError(f"config key {full_key!r}: {name!r} is a value, not a section")
        return dataclasses.replace(obj, **{name: _set(child, parts[1:], raw, full_key)})
    return dataclasses.replace(obj, **{name: parse_value(raw, hints[name], full_key)})


def parse_value(raw: str, tp, key: str = "value"):
    """Parse a command-line string into ``tp`` (int, float, bool, str, tuple, dict, optional)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if raw.lower() in ("none", "null", "") and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            return parse_value(raw, a, key)
    try:
        if tp is bool:
            low = raw.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if tp is int:
            return int(raw)
        if tp is float:
            return float(raw)
        if tp is str:
            return raw
        if origin is tuple:
            items = json.loads(raw) if raw.startswith("[") else [s for s in raw.split(",") if s.strip()]
            inner = args[0] if args else str
            return tuple(parse_value(str(v).strip(), inner, key) for v in items)
        if origin is dict:
            value = json.loads(raw)
            if not isinstance(value, dict):
                raise ValueError(raw)
            return {str(k): float(v) for k, v in value.items()}
        if dataclasses.is_dataclass(tp):
            value = json.loads(raw)
            if not isinstance(value, dict):
                raise ValueError(raw)
            return _from_dict(tp, value, key + ".")
    except (ValueError, TypeError, AttributeError, json.JSONDecodeError):
        pass
    else:
        raise UserError(f"config key {key!r} has an unsupported type {tp}")
    name = getattr(tp, "__name__", str(tp))
    raise UserError(f"bad value {raw!r} for config key {key!r}: expected {name}")


def _from_dict(cls, d: dict, prefix: str):
    """Rebuild a (nested) config dataclass from ``to_dict()`` output, e.g. a checkpoint's JSON."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for k, v in d.items():
        if k not in hints:
            raise UserError(
                f"unknown config key {prefix + k!r} in saved config; was it written by another version?"
            )
        tp = hints[k]
        if dataclasses.is_dataclass(tp) and isinstance(v, dict):
            kwargs[k] = _from_dict(tp, v, prefix + k + ".")
        elif typing.get_origin(tp) is tuple and isinstance(v, list):
            kwargs[k] = tuple(v)
        else:
            kwargs[k] = v
    return cls(**kwargs)
