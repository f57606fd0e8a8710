"""The packaged EfficientNet-Lite0 weights, mapped into timm, compute what the original network computes.

The reference below is an independent, functional EfficientNet-Lite0 that reads the ORIGINAL legacy
keys (``_conv_stem``, ``_blocks.N``...) directly, with TensorFlow "same" padding. If the key mapping,
the timm architecture choice or the padding were wrong, the logits would differ.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lit_edge.model import create_model, get_config
from lit_edge.model.effnet_lite import STAGE_DEPTHS, map_legacy_key, read_legacy_state_dict
from lit_edge.model.sources import resolve_package

pytestmark = pytest.mark.slow

# (expand ratio, kernel, stride, out channels, repeats): EfficientNet-Lite0 (no SE, ReLU6, fixed stem/head).
LITE0 = [
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
]
CAT_CLASSES = {281, 282, 285}  # tabby, tiger cat, Egyptian cat


def _conv(x, w, stride=1, groups=1, tf_same=True):
    k = w.shape[-1]
    if tf_same:  # TF "SAME": total pad so that out = ceil(in / stride), extra pixel on the bottom/right
        pads = []
        for size in (x.shape[-1], x.shape[-2]):
            total = max((math.ceil(size / stride) - 1) * stride + k - size, 0)
            pads += [total // 2, total - total // 2]
        x = F.pad(x, pads)
        return F.conv2d(x, w, stride=stride, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=k // 2, groups=groups)


def _bn(x, sd, name):
    return F.batch_norm(
        x,
        sd[f"{name}.running_mean"],
        sd[f"{name}.running_var"],
        sd[f"{name}.weight"],
        sd[f"{name}.bias"],
        training=False,
        eps=1e-3,
    )


def reference_lite0(sd: dict, x: torch.Tensor, tf_same: bool = True) -> torch.Tensor:
    """EfficientNet-Lite0 logits from the legacy state dict, written from the paper's block table."""
    x = F.relu6(_bn(_conv(x, sd["_conv_stem.weight"], 2, tf_same=tf_same), sd, "_bn0"))
    i = 0
    for expand, _k, stride, _out, repeats in LITE0:
        for r in range(repeats):
            p = f"_blocks.{i}"
            s = stride if r == 0 else 1
            inp = x
            if expand != 1:
                x = F.relu6(_bn(_conv(x, sd[f"{p}._expand_conv.weight"], tf_same=tf_same), sd, f"{p}._bn0"))
            dw = sd[f"{p}._depthwise_conv.weight"]
            x = F.relu6(_bn(_conv(x, dw, s, groups=dw.shape[0], tf_same=tf_same), sd, f"{p}._bn1"))
            x = _bn(_conv(x, sd[f"{p}._project_conv.weight"], tf_same=tf_same), sd, f"{p}._bn2")
            if s == 1 and inp.shape[1] == x.shape[1]:
                x = x + inp
            i += 1
    x = F.relu6(_bn(_conv(x, sd["_conv_head.weight"], tf_same=tf_same), sd, "_bn1"))
    return F.linear(x.mean(dim=(2, 3)), sd["_fc.weight"], sd["_fc.bias"])


@pytest.fixture(scope="module")
def legacy():
    path = resolve_package("package:efficientnet_lite0")
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("lit-effnetlite0-minilm-classdist").eval()


@pytest.fixture(scope="module")
def chelsea(model):
    from PIL import Image
    from skimage.data import chelsea

    return model.image_transform(train=False)(Image.fromarray(chelsea())).unsqueeze(0)


def test_every_legacy_key_maps_onto_timm(legacy):
    import timm

    timm_keys = set(timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict())
    mapped = {map_legacy_key(k) for k in legacy}
    assert len(mapped) == len(legacy) == len(timm_keys)
    assert mapped == timm_keys
    assert sum(STAGE_DEPTHS) == 1 + max(int(k.split(".")[1]) for k in legacy if k.startswith("_blocks."))


@torch.no_grad()
def test_timm_logits_equal_reference_architecture(model, legacy, chelsea):
    x = torch.cat([chelsea, torch.randn(1, *chelsea.shape[1:], generator=torch.Generator().manual_seed(1))])
    ours = model.image_tower.classify(x)
    ref = reference_lite0(legacy, x)
    assert ours.shape == (2, 1000)
    torch.testing.assert_close(ours, ref, atol=2e-4, rtol=1e-4)
    # The reference is sensitive to what the issue warns about: symmetric padding moves the logits.
    assert (reference_lite0(legacy, x, tf_same=False) - ref).abs().max() > 0.5


@torch.no_grad()
def test_efficientnet_lite0_symmetric_padding_is_the_wrong_target(legacy, chelsea):
    import timm

    right = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    wrong = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    state = {map_legacy_key(k): v for k, v in legacy.items()}
    right.load_state_dict(state)
    wrong.load_state_dict(state)
    assert (right(chelsea) - wrong(chelsea)).abs().max() > 0.5


@torch.no_grad()
def test_chelsea_is_a_cat(model, chelsea):
    logits = model.image_tower.classify(chelsea)[0]
    assert int(logits.argmax()) in CAT_CLASSES
    top5 = set(logits.topk(5).indices.tolist())
    assert len(top5 & CAT_CLASSES) >= 2


@torch.no_grad()
def test_class_dist_embedding_is_sqrt_softmax(model, chelsea):
    emb = model.encode_image(chelsea, normalize=False)
    probs = F.softmax(model.image_tower.classify(chelsea), dim=-1)
    torch.testing.assert_close(emb, probs.sqrt())
    assert float(emb.norm(dim=-1)) == pytest.approx(1.0, abs=1e-5)
    assert emb.shape[-1] == get_config("lit-effnetlite0-minilm-classdist").embed_dim


def test_mapped_state_dict_is_tensors_only(legacy):
    state = read_legacy_state_dict(resolve_package("package:efficientnet_lite0"))
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert np.allclose(state["classifier.weight"].numpy(), legacy["_fc.weight"].numpy())


@torch.no_grad()
def test_device_preprocessing_agrees_with_the_training_transform(model, chelsea):
    """The runtime's OpenCV crop/resize of ``preprocess_config()`` feeds the tower what training fed it."""
    from skimage.data import chelsea as chelsea_rgb

    from lit_edge.device.preprocess import prepare

    pre = model.preprocess_config()
    u8 = prepare(chelsea_rgb(), pre)
    assert u8.shape == (*pre.input_size, 3) and u8.dtype == np.uint8
    mean = torch.tensor(pre.mean).view(3, 1, 1)
    std = torch.tensor(pre.std).view(3, 1, 1)
    device_x = ((torch.from_numpy(u8).permute(2, 0, 1).float() / 255 - mean) / std).unsqueeze(0)
    assert (device_x - chelsea).abs().mean() < 0.05  # a few grey levels: OpenCV area vs PIL antialias
    cos = float((model.encode_image(device_x) * model.encode_image(chelsea)).sum())
    assert cos > 0.99
    assert int(model.image_tower.classify(device_x).argmax()) in CAT_CLASSES


# The second starter's tower: EfficientNet-Lite2 from its own wheel (deeper middle stages, 260 px).
LITE2_DEPTHS = (1, 3, 3, 4, 4, 5, 1)


@torch.no_grad()
def test_lite2_package_maps_onto_timm_and_sees_the_cat():
    import timm
    from PIL import Image
    from skimage.data import chelsea

    path = resolve_package("package:efficientnet_lite2")
    timm_keys = set(timm.create_model("tf_efficientnet_lite2", pretrained=False).state_dict())
    assert set(read_legacy_state_dict(path, LITE2_DEPTHS)) == timm_keys
    with pytest.raises(ValueError, match="21 blocks"):  # Lite2's file into Lite0's layout
        read_legacy_state_dict(path)

    model = create_model("lit-effnetlite2-minilm-classdist").eval()
    assert tuple(len(s) for s in model.image_tower.trunk.blocks) == LITE2_DEPTHS
    assert model.preprocess_config().input_size == (260, 260)
    x = model.image_transform(train=False)(Image.fromarray(chelsea())).unsqueeze(0)
    logits = model.image_tower.classify(x)[0]
    assert int(logits.argmax()) in CAT_CLASSES
    assert len(set(logits.topk(5).indices.tolist()) & CAT_CLASSES) >= 2
