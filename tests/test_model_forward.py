"""The model owns its forward: the pieces the trainer composes from cached features are exactly the
model's own ``encode_text`` / ``encode_image``. A real (tiny, random) LiT model, the real
text-feature cache encoder (dynamic padding, length-sorted batches) and the real image cache stages."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from lit_edge.model import create_model, get_config
from lit_edge.train.text_cache import encode_texts
from lit_edge.train.towers import EMBEDDING, TRUNK, cache_stage, embed_cached, locked_features

torch.set_num_threads(1)

TEXTS = [
    "Vulpes vulpes",
    "a photo of a Red Fox, a kind of canid seen at night on a camera trap",
    "Danaus plexippus with common name Monarch",
    "Animalia Arthropoda Insecta Lepidoptera Nymphalidae Danaus plexippus",
]


def _model(text_output: str = "l2", lock_proj: bool = False):
    cfg = get_config("lit-tiny-test")
    cfg = replace(
        cfg,
        text=replace(cfg.text, output=text_output, lock_layers=-1),
        image=replace(cfg.image, lock_proj=lock_proj),
    )
    torch.manual_seed(0)
    return create_model(cfg).eval()


@pytest.mark.parametrize("text_output", ["l2", "sqrt_softmax"])
def test_cached_text_features_through_the_head_equal_encode_text(text_output):
    model = _model(text_output)
    with torch.no_grad():
        want = model.encode_text(model.tokenize(TEXTS))
        pooled = torch.from_numpy(encode_texts(model, TEXTS, batch_size=3))  # what the cache stores
        head = model.text_head(pooled)
        got = model.text_from_head(head)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(got.norm(dim=1), torch.ones(len(TEXTS)))
    if text_output == "sqrt_softmax":  # the embedding is sqrt(softmax) of the head's output
        torch.testing.assert_close(got, torch.softmax(head, dim=1).sqrt(), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(("lock_proj", "stage"), [(False, TRUNK), (True, EMBEDDING)])
def test_cached_image_features_give_encode_image(lock_proj, stage):
    model = _model(lock_proj=lock_proj)
    assert cache_stage(model) == stage
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model.encode_image(x)
        got = embed_cached(model, locked_features(model, x, stage), stage)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
