"""The LiT model: a locked image tower, a trainable text tower, and a learnable temperature (and bias).

The API follows open_clip (``encode_image``, ``encode_text``, ``lock_image_tower``, ``forward`` returning
features plus the exp'd logit scale) so that the trainer, the exporter and the starter model need no
knowledge of how a tower is built. Preprocessing travels with the model (timm's habit):
:meth:`LiTModel.preprocess_config` is what the exporter writes into a bundle, and
:meth:`LiTModel.image_transform` is the same recipe in torchvision for training and evaluation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lit_edge.model.config import LiTConfig
from lit_edge.model.image_tower import ImageTower
from lit_edge.model.text_tower import TextTower, load_tokenizer


class LiTModel(nn.Module):
    """Build with :func:`lit_edge.model.create_model`; ``pretrained_image`` defaults to ``pretrained``."""

    def __init__(self, config: LiTConfig, pretrained: bool = True, pretrained_image: bool | None = None):
        super().__init__()
        self.config = config
        if pretrained_image is None:
            pretrained_image = pretrained
        self.image_tower = ImageTower(config.image, config.embed_dim, pretrained_image)
        self.text_tower = TextTower(config.text, config.embed_dim, pretrained)
        self.tokenizer = load_tokenizer(self.text_tower.folder)
        self.logit_scale = nn.Parameter(torch.tensor(float(config.init_logit_scale)))
        bias = config.init_logit_bias
        self.logit_bias = None if bias is None else nn.Parameter(torch.tensor(float(bias)))
        if config.image.lock:
            self.lock_image_tower()

    # towers ------------------------------------------------------------------------------------
    def lock_image_tower(self) -> None:
        """Freeze the image backbone for good (gradients off, BatchNorm kept in eval mode)."""
        self.image_tower.lock(lock_proj=self.config.image.lock_proj)

    def tokenize(self, texts: list[str] | str) -> dict[str, torch.Tensor]:
        """Texts -> ``input_ids`` and ``attention_mask`` padded (and truncated) to ``context_length``."""
        if isinstance(texts, str):
            texts = [texts]
        enc = self.tokenizer(
            list(texts),
            padding="max_length",
            truncation=True,
            max_length=self.config.text.context_length,
            return_tensors="pt",
        )
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def encode_image(self, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """``x``: float NCHW, already normalised with the config's mean/std."""
        feats = self.image_tower(x)
        return F.normalize(feats, dim=-1) if normalize else feats

    def encode_text(
        self, tokens: dict[str, torch.Tensor] | torch.Tensor, normalize: bool = True
    ) -> torch.Tensor:
        return self.text_from_head(self.text_head(self.encode_text_pooled(tokens)), normalize)

    # encode_text in the pieces the trainer needs (a locked encoder's features are cached; the
    # distill loss fits the head's output): encode_text == text_from_head(text_head(pooled))
    def encode_text_pooled(self, tokens: dict[str, torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """The text encoder's pooled features (the head's input; cacheable when the encoder is locked)."""
        return self.text_tower.encode_pooled(tokens)

    def text_head(self, pooled: torch.Tensor) -> torch.Tensor:
        """The text head's output: class logits for ``sqrt_softmax`` towers (what ``distill`` fits)."""
        return self.text_tower.head(pooled)

    def text_from_head(self, head_out: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """The text embedding from the head's output (``encode_text``'s last step)."""
        feats = self.text_tower.embed_from_head(head_out)
        return F.normalize(feats, dim=-1) if normalize else feats

    def forward(self, images: torch.Tensor | None = None, text=None) -> dict:
        return {
            "image_features": None if images is None else self.encode_image(images, normalize=True),
            "text_features": None if text is None else self.encode_text(text, normalize=True),
            "logit_scale": self.logit_scale.exp(),
            "logit_bias": self.logit_bias,
        }

    # preprocessing -----------------------------------------------------------------------------
    def preprocess_config(self):
        """What the bundle records: the runtime resizes/crops uint8 RGB to this; the graph normalises."""
        from lit_edge.bundle import Preprocess

        c = self.config.image
        return Preprocess(
            input_size=(c.image_size, c.image_size),
            mean=tuple(c.mean),
            std=tuple(c.std),
            crop_pct=c.crop_pct,
            interpolation=c.interpolation,
        )

    def image_transform(self, train: bool = False):
        """PIL image -> normalised float tensor, the torchvision twin of :meth:`preprocess_config`.

        Eval: resize the shorter side to ``size / crop_pct``, centre-crop ``size`` (the runtime's
        ``center_crop``). Train: a random resized crop and a flip around the same scale.
        """
        from torchvision.transforms import v2 as T

        c = self.config.image
        interp = T.InterpolationMode(c.interpolation)
        tail = [T.ToImage(), T.ToDtype(torch.float32, scale=True), T.Normalize(c.mean, c.std)]
        if train:
            return T.Compose(
                [
                    T.RandomResizedCrop(c.image_size, scale=(0.5, 1.0), interpolation=interp),
                    T.RandomHorizontalFlip(),
                    *tail,
                ]
            )
        scale = int(math.floor(c.image_size / c.crop_pct))
        return T.Compose([T.Resize(scale, interpolation=interp), T.CenterCrop(c.image_size), *tail])
