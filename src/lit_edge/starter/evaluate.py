"""How good is a starter model on real photos? Agreement with the locked head, and species margins.

No labelled images exist offline, but the locked ImageNet head is the teacher: a starter whose
zero-shot top-1 with the 1,000 class names as labels agrees with the head's own top-1 on real
photos (the scikit-image / scikit-learn samples and random crops of them) has learnt to put the
names where the images are. Species names are checked the way a user will use them: a handful of
scientific names as the label set, one photo, who wins and by how much.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lit_edge.examples import crops, sample_photos

#: Sample photos that are not photographs of a scene (a logo) are left out.
NOT_PHOTOS = ("logo",)


@dataclass(frozen=True)
class Photo:
    name: str
    pixels: np.ndarray  # uint8 RGB HxWx3


def real_photos(crops_per_photo: int = 0, seed: int = 0, names: tuple[str, ...] = ()) -> list[Photo]:
    """The offline sample photos (optionally only ``names``) as RGB, each followed by random crops."""
    rng = np.random.default_rng(seed)
    out = []
    for p in sample_photos():
        if p.name in NOT_PHOTOS or (names and p.name not in names):
            continue
        px = p.rgb
        out.append(Photo(p.name, px))
        out.extend(Photo(f"{p.name}_crop{i}", c) for i, c in enumerate(crops(px, crops_per_photo, rng)))
    return out


@torch.no_grad()
def image_batch(model, photos: list[Photo]) -> torch.Tensor:
    """The model's eval transform (resize, centre crop, normalise) applied to each photo."""
    from PIL import Image

    tf = model.image_transform(train=False)
    return torch.stack([tf(Image.fromarray(np.ascontiguousarray(p.pixels))) for p in photos])


@torch.no_grad()
def image_side(model, photos: list[Photo], batch_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """``(embeddings [N, D], head top-1 [N])``: the starter's image embedding and the locked head's class."""
    model.eval()
    embs, tops = [], []
    for i in range(0, len(photos), batch_size):
        x = image_batch(model, photos[i : i + batch_size])
        embs.append(model.encode_image(x))
        tops.append(model.image_tower.classify(x).argmax(dim=-1))
    return torch.cat(embs), torch.cat(tops)


def class_names() -> list[str]:
    """The 1,000 ImageNet class names as a user would type them: the first WordNet lemma."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo("imagenet-1k")
    return [info.index_to_description(i).split(",")[0].strip() for i in range(info.num_classes())]


def zero_shot_top1(image_embeddings: torch.Tensor, matrix: np.ndarray) -> torch.Tensor:
    """Top-1 class of each image against a ``[C, D]`` classifier (the bundle's text_embeddings)."""
    return (image_embeddings @ torch.from_numpy(matrix).T).argmax(dim=-1)


@dataclass(frozen=True)
class SpeciesResult:
    """One photo against a set of species names: the winner and the margin of ``expected``."""

    photo: str
    expected: str
    winner: str
    margin: float  # expected's score minus the best other's (cosine units); > 0 when it wins
    probability: float  # expected's softmax probability with the model's logit scale


@torch.no_grad()
def species_contest(model, photos: list[Photo], names: list[str], expected: str) -> list[SpeciesResult]:
    """Zero-shot with ``names`` (scientific names, the bundle's templates) as the only labels."""
    from lit_edge.model import build_classifier

    matrix = torch.from_numpy(build_classifier(model, names))
    emb, _ = image_side(model, photos)
    scores = emb @ matrix.T
    probs = (model.logit_scale.exp() * scores).softmax(dim=-1)
    k = names.index(expected)
    out = []
    for p, s, pr in zip(photos, scores, probs, strict=True):
        others = torch.cat([s[:k], s[k + 1 :]])
        out.append(
            SpeciesResult(p.name, expected, names[int(s.argmax())], float(s[k] - others.max()), float(pr[k]))
        )
    return out


@torch.no_grad()
def text_top1(model, texts: list[str], labels: list[int], batch_size: int = 256) -> torch.Tensor:
    """Per text: did its embedding's largest coordinate (its nearest ImageNet class) hit the label?"""
    model.eval()
    hits = []
    for i in range(0, len(texts), batch_size):
        emb = model.encode_text(model.tokenize(texts[i : i + batch_size]))
        hits.append(emb.argmax(dim=-1).cpu() == torch.tensor(labels[i : i + batch_size]))
    return torch.cat(hits) if hits else torch.zeros(0, dtype=torch.bool)
