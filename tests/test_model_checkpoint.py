"""Checkpoints: safetensors + JSON, round-trip exactly, refuse pickles and damaged folders."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file, save_file

from lit_edge.errors import UserError
from lit_edge.model import (
    create_model,
    get_config,
    load_checkpoint,
    load_optimizer_state,
    read_checkpoint_config,
    save_checkpoint,
)


@pytest.fixture
def trained(tmp_path):
    """A tiny model after two optimiser steps (so weights differ from any fresh init), and its optimiser."""
    torch.manual_seed(0)
    model = create_model("lit-tiny-test")
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    images = torch.randn(4, 3, 64, 64)
    tokens = model.tokenize(["Danaus plexippus", "Felis catus", "Apis mellifera", "Quercus robur"])
    for _ in range(2):
        out = model(images, tokens)
        logits = out["logit_scale"] * out["image_features"] @ out["text_features"].T
        loss = torch.nn.functional.cross_entropy(logits, torch.arange(4))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), opt, images, tokens


def test_round_trip_gives_equal_outputs(trained, tmp_path):
    model, _, images, tokens = trained
    save_checkpoint(model, tmp_path / "ck", extra={"step": 2, "metrics": {"top1": 0.5}})
    loaded = load_checkpoint(tmp_path / "ck").eval()
    with torch.no_grad():
        a, b = model(images, tokens), loaded(images, tokens)
        fresh = create_model("lit-tiny-test").eval()(images, tokens)
    for key in ("image_features", "text_features", "logit_scale"):
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert not torch.allclose(a["text_features"], fresh["text_features"])  # loading did the work
    assert loaded.config == model.config
    assert loaded.image_tower.locked and not any(
        p.requires_grad for p in loaded.image_tower.trunk.parameters()
    )
    cfg, extra = read_checkpoint_config(tmp_path / "ck")
    assert cfg == model.config and extra == {"step": 2, "metrics": {"top1": 0.5}}


def test_nothing_is_pickled(trained, tmp_path):
    model, opt, _, _ = trained
    folder = save_checkpoint(model, tmp_path / "ck", optimizer_state=opt.state_dict())
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "model.safetensors",
        "optimizer.json",
        "optimizer.safetensors",
    ]
    state = load_file(str(folder / "model.safetensors"))
    assert set(state) == set(model.state_dict())
    doc = json.loads((folder / "config.json").read_text())
    assert doc["format"] == "lit-edge-checkpoint" and doc["model"]["name"] == "lit-tiny-test"


def test_optimizer_state_round_trip_resumes_identically(trained, tmp_path):
    model, opt, images, tokens = trained
    save_checkpoint(model, tmp_path / "ck", optimizer_state=opt.state_dict())
    loaded = load_checkpoint(tmp_path / "ck")
    opt2 = torch.optim.AdamW([p for p in loaded.parameters() if p.requires_grad], lr=1e-2)
    opt2.load_state_dict(load_optimizer_state(tmp_path / "ck"))
    assert load_optimizer_state(tmp_path / "nothing-here") is None
    # One more identical step on both: the weights stay bit-identical only if Adam's moments came back.
    for m, o in ((model, opt), (loaded, opt2)):
        m.train()
        torch.manual_seed(1)  # the same dropout masks for both
        out = m(images, tokens)
        loss = (out["image_features"] @ out["text_features"].T).diagonal().sum()
        o.zero_grad()
        loss.backward()
        o.step()
    for (k, v), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2
        torch.testing.assert_close(v, v2, rtol=0, atol=0, msg=k)


def test_damaged_checkpoints_are_refused_with_a_clear_line(trained, tmp_path):
    model, _, _, _ = trained
    folder = save_checkpoint(model, tmp_path / "ck")
    with pytest.raises(UserError, match="no config.json"):
        load_checkpoint(tmp_path)
    (folder / "model.safetensors").rename(folder / "moved.safetensors")
    with pytest.raises(UserError, match="model.safetensors is missing"):
        load_checkpoint(folder)
    (folder / "moved.safetensors").rename(folder / "model.safetensors")

    doc = json.loads((folder / "config.json").read_text())
    doc["model"]["embed_dim"] = 16  # architecture no longer matches the tensors
    (folder / "config.json").write_text(json.dumps(doc))
    with pytest.raises(UserError, match="cannot be loaded|does not match"):
        load_checkpoint(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        load_checkpoint(folder)


def test_local_image_checkpoint_for_a_registered_vit(tmp_path):
    """The ViT-L/16 config takes the user's safetensors file; shrunk here to keep the test fast."""
    import timm

    cfg = get_config("lit-vit-l16-minilm")
    with pytest.raises(UserError, match="needs your own checkpoint"):
        create_model(replace(cfg, text=get_config("lit-tiny-test").text, embed_dim=32))
    tiny = {"depth": 1, "embed_dim": 64, "num_heads": 2, "img_size": 32}
    cfg = replace(
        cfg,
        embed_dim=32,
        image=replace(cfg.image, timm_kwargs=tiny, image_size=32),
        text=get_config("lit-tiny-test").text,
    )
    source = timm.create_model(cfg.image.timm_name, pretrained=False, **tiny)
    # Saved as a trainer would (DDP prefix, classifier head included): both are handled.
    path = tmp_path / "vit.safetensors"
    save_file({f"module.{k}": v.contiguous() for k, v in source.state_dict().items()}, str(path))
    model = create_model(cfg, image_checkpoint=str(path))
    trunk = model.image_tower.trunk.state_dict()
    for k, v in source.state_dict().items():
        if not k.startswith("head."):
            assert torch.equal(trunk[k], v), k

    pickled = tmp_path / "vit.pth"
    torch.save(source.state_dict(), pickled)
    with pytest.raises(UserError, match="never unpickles"):
        create_model(cfg, image_checkpoint=str(pickled))
    with pytest.raises(UserError, match="not found"):
        create_model(cfg, image_checkpoint=str(tmp_path / "missing.safetensors"))
    bigger = timm.create_model(cfg.image.timm_name, pretrained=False, **{**tiny, "embed_dim": 96})
    wrong = tmp_path / "wrong.safetensors"
    save_file({k: v.contiguous() for k, v in bigger.state_dict().items()}, str(wrong))
    with pytest.raises(UserError, match="do not fit timm 'vit_large_patch16_224'.*wrong shape"):
        create_model(cfg, image_checkpoint=str(wrong))


def test_open_clip_visual_tower_from_a_whole_clip_checkpoint(tmp_path):
    """Any open_clip architecture by name: its visual tower, weights from a local CLIP safetensors file."""
    import open_clip

    tiny = {
        "embed_dim": 24,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
        "text_cfg": {"context_length": 8, "vocab_size": 100, "width": 16, "heads": 2, "layers": 1},
    }
    clip = open_clip.create_model("ViT-B-32", pretrained=None, **tiny).eval()
    path = tmp_path / "clip.safetensors"
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(path))  # text keys included

    base = get_config("lit-tiny-test")
    image = replace(base.image, open_clip_model="ViT-B-32", timm_kwargs=tiny, image_size=32)
    model = create_model(replace(base, image=image), image_checkpoint=str(path)).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.image_tower.trunk(x), clip.encode_image(x))
        assert model.encode_image(x).shape == (2, base.embed_dim)
    assert model.image_tower.locked and not any(p.requires_grad for p in model.image_tower.trunk.parameters())

    with pytest.raises(UserError, match="unknown open_clip model"):
        create_model(replace(base, image=replace(image, open_clip_model="No-Such-CLIP")))


def test_a_model_built_from_the_packaged_weights_round_trips(tmp_path):
    """Pretrained towers (MiniLM ships no pooler weights) must save and rebuild from their config."""
    model = create_model("lit-effnetlite0-minilm-classdist").eval()
    save_checkpoint(model, tmp_path / "ckpt")
    loaded = load_checkpoint(tmp_path / "ckpt").eval()
    tokens = model.tokenize(["Felis catus", "a photo of a red fox."])
    images = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(model.encode_text(tokens), loaded.encode_text(tokens), atol=1e-6)
        assert torch.allclose(model.encode_image(images), loaded.encode_image(images), atol=1e-6)
