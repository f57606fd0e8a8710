"""Every registered model builds, embeds, and describes its preprocessing consistently (timm's habit:
a new config is tested by being registered)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from lit_edge.errors import UserError
from lit_edge.model import LiTConfig, create_model, get_config, list_models, register_config

#: Shrinks a config whose real size is too big for a unit test (architecture kept, depth/width cut).
TINY_IMAGE = {"lit-vit-l16-minilm": {"depth": 1, "embed_dim": 64, "num_heads": 2, "img_size": 32}}


def _buildable(name: str) -> LiTConfig:
    cfg = get_config(name)
    if name in TINY_IMAGE:
        image = replace(cfg.image, timm_kwargs=TINY_IMAGE[name], image_size=32, weights="")
        cfg = replace(cfg, image=image)
    return cfg


def test_registry_lists_the_promised_models():
    assert {
        "lit-effnetlite0-minilm",
        "lit-effnetlite0-minilm-classdist",
        "lit-tiny-test",
        "lit-vit-l16-minilm",
    } <= set(list_models())


@pytest.mark.parametrize("name", list_models())
def test_config_is_portable_data(name):
    cfg = get_config(name)
    assert LiTConfig.from_dict(json.loads(cfg.to_json())) == cfg
    # No machine-specific paths: weights are named by source, resolved at run time.
    for source in (cfg.image.weights, cfg.text.hf_model):
        assert source in ("", "user", "timm") or source.startswith("package:"), source
    assert "site-packages" not in cfg.to_json()


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models())
def test_model_embeds_images_and_text(name):
    torch.manual_seed(0)
    cfg = _buildable(name)
    model = create_model(cfg).eval()
    size = cfg.image.image_size
    images = torch.randn(2, 3, size, size)
    tokens = model.tokenize(["a photo of Danaus plexippus.", "a photo of Felis catus."])
    with torch.no_grad():
        out = model(images, tokens)
    assert out["image_features"].shape == (2, cfg.embed_dim)
    assert out["text_features"].shape == (2, cfg.embed_dim)
    for key in ("image_features", "text_features"):
        norms = out[key].norm(dim=-1)
        torch.testing.assert_close(norms, torch.ones(2))
    assert float(out["logit_scale"]) == pytest.approx(np.exp(cfg.init_logit_scale), rel=1e-5)
    assert model.image_tower.locked is cfg.image.lock

    pre = model.preprocess_config()
    assert pre.input_size == (size, size)
    assert pre.mean == tuple(cfg.image.mean) and pre.std == tuple(cfg.image.std)
    assert pre.crop_pct == cfg.image.crop_pct and pre.interpolation == cfg.image.interpolation


@pytest.mark.slow
def test_image_transform_matches_the_preprocess_config():
    from PIL import Image

    model = create_model("lit-tiny-test")
    pre = model.preprocess_config()
    rgb = np.zeros((90, 150, 3), np.uint8)
    rgb[:, :75] = (255, 0, 40)  # left half coloured, right half black: the centre crop keeps both
    x = model.image_transform(train=False)(Image.fromarray(rgb))
    assert x.shape == (3, *pre.input_size) and x.dtype == torch.float32
    mean, std = np.array(pre.mean), np.array(pre.std)
    expected_left = (np.array([1.0, 0.0, 40 / 255]) - mean) / std
    np.testing.assert_allclose(x[:, pre.input_size[0] // 2, 1].numpy(), expected_left, atol=1e-2)
    np.testing.assert_allclose(x[:, pre.input_size[0] // 2, -2].numpy(), -mean / std, atol=1e-2)
    xt = model.image_transform(train=True)(Image.fromarray(rgb))
    assert xt.shape == x.shape


def test_unknown_model_is_a_user_error():
    with pytest.raises(UserError, match="unknown model 'no-such-model'.*lit-tiny-test"):
        get_config("no-such-model")


def test_register_config_adds_a_model():
    cfg = replace(get_config("lit-tiny-test"), name="lit-tiny-test-registered", embed_dim=16)
    register_config(cfg)
    assert "lit-tiny-test-registered" in list_models()
    assert get_config("lit-tiny-test-registered").embed_dim == 16
    with pytest.raises(ValueError, match="already registered"):
        register_config(replace(cfg, embed_dim=8))


def test_bad_configs_fail_with_one_clear_line():
    cfg = get_config("lit-tiny-test")
    with pytest.raises(ValueError, match="unknown ImageTowerConfig keys"):
        LiTConfig.from_dict({**cfg.to_dict(), "image": {"timm_nam": "resnet18"}})
    with pytest.raises(UserError, match="timm"):
        create_model(replace(cfg, image=replace(cfg.image, timm_name="no_such_net")))
    with pytest.raises(UserError, match="class_dist"):
        create_model(replace(cfg, image=replace(cfg.image, embed="class_dist")))  # 1000 != embed_dim
    with pytest.raises(UserError, match="not a local Hugging Face model folder"):
        create_model(replace(cfg, text=replace(cfg.text, hf_model="sentence-transformers/all-MiniLM-L6-v2")))
