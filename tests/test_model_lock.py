"""Locking the image tower: features unchanged, and nothing locked moves during training.

open_clip's ``lock_image_tower(freeze_bn_stats=True)`` replaces timm's ``BatchNormAct2d`` by
``FrozenBatchNorm2d`` and loses the fused ReLU6; these tests pin that our lock keeps the original
function exactly while the model is in train mode and an optimiser steps.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lit_edge.model import create_model, get_config
from lit_edge.model.image_tower import ImageTower

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def images():
    from PIL import Image
    from skimage.data import astronaut, chelsea, coffee

    model_cfg = get_config("lit-effnetlite0-minilm")
    from torchvision.transforms import v2 as T

    size = model_cfg.image.image_size
    t = T.Compose(
        [
            T.ToImage(),
            T.Resize(size),
            T.CenterCrop(size),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(model_cfg.image.mean, model_cfg.image.std),
        ]
    )
    return torch.stack([t(Image.fromarray(a())) for a in (chelsea, astronaut, coffee)])


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_locked_features_equal_the_original(images):
    cfg = get_config("lit-effnetlite0-minilm")
    torch.manual_seed(0)
    model = create_model(cfg)
    reference = ImageTower(cfg.image, cfg.embed_dim, pretrained=True).eval()  # never locked
    reference.proj.load_state_dict(model.image_tower.proj.state_dict())
    model.train()  # what a training loop does; the locked backbone must not notice
    assert model.image_tower.trunk.training is False
    assert model.image_tower.training is True
    with torch.no_grad():
        ours = model.image_tower.trunk(images)
        ref = reference.trunk(images)
        torch.testing.assert_close(ours, ref)
        torch.testing.assert_close(model.encode_image(images), F.normalize(reference(images), dim=-1))
    # In train mode an unlocked tower's BatchNorm would use batch statistics: different features.
    with torch.no_grad():
        assert (reference.train().trunk(images) - ref).abs().max() > 1e-2


def test_optimizer_step_changes_nothing_locked(images):
    torch.manual_seed(0)
    model = create_model("lit-effnetlite0-minilm")
    model.train()
    trunk_before = _snapshot(model.image_tower.trunk)
    proj_before = model.image_tower.proj.weight.detach().clone()
    head_before = model.text_tower.head.weight.detach().clone()
    assert any("running_mean" in k for k in trunk_before) and any(
        "num_batches_tracked" in k for k in trunk_before
    )

    # Every parameter goes to the optimiser, with weight decay: the lock alone must keep the trunk still.
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    texts = ["a photo of a cat.", "a photo of an astronaut.", "a photo of a cup of coffee."]
    for _ in range(2):
        out = model(images, model.tokenize(texts))
        logits = out["logit_scale"] * out["image_features"] @ out["text_features"].T
        target = torch.arange(len(texts))
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        opt.zero_grad()
        loss.backward()
        opt.step()

    for k, v in model.image_tower.trunk.state_dict().items():
        assert torch.equal(v, trunk_before[k]), f"locked tensor {k} changed"
    assert all(not p.requires_grad for p in model.image_tower.trunk.parameters())
    # The trainable parts did learn, so the step really happened.
    assert not torch.equal(model.image_tower.proj.weight, proj_before)
    assert not torch.equal(model.text_tower.head.weight, head_before)


def test_lock_proj_freezes_the_projection_too():
    from dataclasses import replace

    cfg = get_config("lit-tiny-test")
    model = create_model(replace(cfg, image=replace(cfg.image, lock_proj=True)))
    assert not any(p.requires_grad for p in model.image_tower.parameters())
    unlocked = create_model(replace(cfg, image=replace(cfg.image, lock=False)))
    assert all(p.requires_grad for p in unlocked.image_tower.parameters())
    assert unlocked.train().image_tower.trunk.training is True
