"""The registry of model configs: JSON files in ``model/configs/`` plus any registered at run time.

``create_model(name)`` is the one way to build a model, so a new architecture is added by writing a
JSON file, and tests parametrised over :func:`list_models` cover it (timm's habit).
"""

from __future__ import annotations

import json
from dataclasses import replace
from importlib import resources

from lit_edge.errors import UserError
from lit_edge.model.config import LiTConfig

_REGISTRY: dict[str, LiTConfig] = {}


def _load_builtin() -> None:
    folder = resources.files("lit_edge.model") / "configs"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            data = json.loads(entry.read_text(encoding="utf-8"))
            data.setdefault("name", entry.name[: -len(".json")])
            register_config(LiTConfig.from_dict(data))


def register_config(config: LiTConfig, overwrite: bool = False) -> None:
    """Add a config under ``config.name`` (e.g. a user's own tower pairing)."""
    if config.name in _REGISTRY and not overwrite and _REGISTRY[config.name] != config:
        raise ValueError(f"model config {config.name!r} is already registered")
    _REGISTRY[config.name] = config


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def get_config(name: str) -> LiTConfig:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UserError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}") from None


def create_model(
    name_or_config: str | LiTConfig, pretrained: bool = True, image_checkpoint: str | None = None
):
    """Build a :class:`~lit_edge.model.lit.LiTModel` from a registered name or a config.

    ``pretrained`` loads the towers' weights named in the config; ``image_checkpoint`` overrides the
    image weights with a local ``.safetensors`` file (needed by configs whose weights are ``"user"``).
    The image tower is locked when ``config.image.lock`` is set.
    """
    from lit_edge.model.lit import LiTModel

    config = get_config(name_or_config) if isinstance(name_or_config, str) else name_or_config
    if image_checkpoint:
        config = replace(config, image=replace(config.image, weights=str(image_checkpoint)))
        pretrained_image = True
    else:
        pretrained_image = pretrained
    return LiTModel(config, pretrained=pretrained, pretrained_image=pretrained_image)


_load_builtin()
