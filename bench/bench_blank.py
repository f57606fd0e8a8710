"""The starter's "blank / no animal" outcome: which background rows and which rule, measured.

Side by side in one run, on the starter bundle's image tower and species rows (the default
bundle, or ``--bundle``):

- *real non-animal photos*: the scikit-image / scikit-learn samples that show no animal
  (astronaut, coffee, rocket, Hubble, logo, flower, temple, grass, gravel, brick, moon, ...) and
  ``--crops`` random crops of each: how many come out ``blank`` (want: all);
- *real animal photos*: scikit-image's cat (chelsea) and its crops: how many come out ``blank``
  (want: none) and how many stay ``Felis catus``;
- *synthetic*, in the embedding space ``sqrt(p)``: for every ImageNet class, ``--draws`` times,
  ``p = 0.6 * onehot + 0.4 * Dirichlet(1)`` noise. Classes covered by the species list must not be
  blank; non-animal classes must be; animal classes that no species covers (flatworm, sea slug)
  must not be (they should roll up or stay uncertain).

Variants: no background rows (before); one row spread uniformly over the non-animal classes
(the obvious design, diluted the way ``Canis familiaris`` is); one row per non-animal class (the
shipped design) with the blank threshold at 0.5 (shipped), 0.3 and 0.8.

    .venv/bin/python bench/bench_blank.py [--bundle DIR] [--crops 8] [--draws 3]
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass

import numpy as np

from lit_edge import bundle as bf
from lit_edge.device.classify import Classifier, ClassifyConfig
from lit_edge.device.pipeline import Engine, EngineConfig
from lit_edge.examples import crops, sample_photos
from lit_edge.starter import species_list_path
from lit_edge.starter.blank import (
    MAX_GROUP,
    animal_classes,
    background_rows,
    claimed_classes,
    covered_classes,
)
from lit_edge.starter.species import read_species_csv

NON_ANIMAL = (
    "astronaut", "coffee", "rocket", "hubble_deep_field", "camera", "logo", "grass", "gravel",
    "brick", "moon", "clock", "coins", "page", "colorwheel", "stereo_motorcycle",
    "immunohistochemistry", "retina",
)  # fmt: skip
ANIMAL = ("chelsea",)


def rgb(px: np.ndarray) -> np.ndarray:
    """Greyscale, boolean, RGBA or stereo pairs -> H x W x 3 uint8 (what the decoder hands over)."""
    if isinstance(px, tuple):
        px = px[0]
    px = np.asarray(px)
    if px.dtype == bool:
        px = px.astype(np.uint8) * 255
    if px.ndim == 2:
        px = np.repeat(px[:, :, None], 3, axis=2)
    return np.ascontiguousarray(px[:, :, :3])


def photo_embeddings(engine: Engine, n_crops: int, seed: int = 0) -> dict[str, np.ndarray]:
    """name -> [1 + n_crops, D] embeddings of the photo and its crops ('china'/'flower' from sklearn)."""
    rng = np.random.default_rng(seed)
    out = {}
    for p in sample_photos(NON_ANIMAL + ANIMAL):
        px = rgb(p.pixels)
        items = [px, *crops(px, n_crops, rng)]
        batch = np.stack([engine.prepare(np.ascontiguousarray(x)) for x in items])
        out[p.name] = engine.backend.embed(batch)
    return out


def synthetic(n_classes: int, draws: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``sqrt(0.6 onehot + 0.4 Dirichlet(1))`` for every class, ``draws`` times; and each row's class."""
    rng = np.random.default_rng(seed)
    cls = np.repeat(np.arange(n_classes), draws)
    p = 0.4 * rng.dirichlet(np.ones(n_classes), size=len(cls))
    p[np.arange(len(cls)), cls] += 0.6
    return np.sqrt(p).astype(np.float32), cls


@dataclass(frozen=True)
class Variant:
    name: str
    matrix: np.ndarray
    labels: list[bf.Label]
    blank_threshold: float = 0.5


def variants(species: list[bf.Label], sp_matrix: np.ndarray, dim: int) -> list[Variant]:
    claimed = claimed_classes(sp_matrix)
    rows = background_rows(len(species), dim, claimed, max_group=0)
    uniform = rows.matrix.sum(axis=0, keepdims=True)
    uniform /= np.linalg.norm(uniform)
    one = [bf.Label(len(species), bf.BLANK, "no animal")]

    def with_rows(max_group: int, threshold: float = 0.5, shipped: bool = False) -> Variant:
        r = background_rows(len(species), dim, claimed, max_group=max_group)
        name = f"{len(r.labels)} rows: per class" + (f" + groups <= {max_group}" if max_group else "")
        name += f", thr {threshold}" + (" (shipped)" if shipped else "")
        return Variant(name, np.concatenate([sp_matrix, r.matrix]), species + list(r.labels), threshold)

    return [
        Variant("no background rows (before)", sp_matrix, species),
        Variant(
            f"1 row uniform over {len(rows.labels)}", np.concatenate([sp_matrix, uniform]), species + one
        ),
        *(with_rows(g, shipped=g == MAX_GROUP) for g in (0, 20, 50)),
        with_rows(MAX_GROUP, 0.3),
        with_rows(MAX_GROUP, 0.8),
        *(with_rows(g, shipped=g == MAX_GROUP) for g in (130, 400)),
    ]


def per_image_us(clf: Classifier, batch: np.ndarray, repeats: int = 20) -> float:
    """Best-of-``repeats`` time of ``clf`` (scores, softmax, top-k, roll-up, blank) per image."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        clf(batch)
        best = min(best, time.perf_counter() - t0)
    return 1e6 * best / len(batch)


def rate(decisions, pred) -> float:
    return 100.0 * sum(1 for d in decisions if pred(d)) / max(1, len(decisions))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", default=None, help="bundle folder (default: the starter bundle)")
    ap.add_argument("--crops", type=int, default=8)
    ap.add_argument("--draws", type=int, default=3)
    args = ap.parse_args()

    engine = Engine(EngineConfig(bundle=args.bundle))
    b = engine.bundle
    keep = [i for i, lab in enumerate(b.labels) if not lab.is_blank]
    species = [b.labels[i] for i in keep]
    sp_matrix = b.text_embeddings[keep]
    dim = sp_matrix.shape[1]
    scale, bias = b.manifest.model.logit_scale, b.manifest.model.logit_bias

    photos = photo_embeddings(engine, args.crops)
    non_animal = np.concatenate([e for n, e in photos.items() if n not in ANIMAL])
    animal = np.concatenate([photos[n] for n in ANIMAL])
    syn, syn_cls = synthetic(dim, args.draws)
    animals = animal_classes()
    covered = covered_classes([r["wordnet_synset"] for r in read_species_csv(species_list_path())])
    groups = {  # the table's column order
        "non-animal": ~np.isin(syn_cls, list(animals | covered)),
        "covered": np.isin(syn_cls, list(covered)),
        "uncovered animal": np.isin(syn_cls, list(animals - covered)),
    }

    def is_blank(d) -> bool:
        return d.rank == bf.BLANK

    print(
        f"load average {os.getloadavg()[0]:.1f}; backend {engine.backend.name}/{engine.backend.flavour}; "
        f"{len(species)} species; {len(non_animal)} non-animal photos+crops "
        f"({len(photos) - len(ANIMAL)} photos), {len(animal)} cat photos+crops; synthetic: "
        + ", ".join(f"{k} {int(v.sum())}" for k, v in groups.items())
    )
    print()
    print(
        "| variant | blank: non-animal photos | blank: cat photos | Felis catus: cat photos "
        "| blank: synth non-animal | blank: synth covered | blank: synth uncovered animal |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    shipped = None
    for v in variants(species, sp_matrix, dim):
        clf = Classifier(v.matrix, v.labels, scale, bias, ClassifyConfig(blank_threshold=v.blank_threshold))
        na, an, sy = clf(non_animal), clf(animal), clf(syn)
        cells = [
            rate(na, is_blank),
            rate(an, is_blank),
            rate(an, lambda d: d.name == "Felis catus"),
            *(rate([sy[i] for i in np.flatnonzero(g)], is_blank) for g in groups.values()),
        ]
        print(f"| {v.name} | " + " | ".join(f"{c:.1f} %" for c in cells) + " |")
        if "shipped" in v.name:
            shipped = clf
        if v.name.endswith("(before)"):
            before = clf
    print()
    batch = np.concatenate([non_animal, animal])[:64]
    cost = {name: per_image_us(c, batch) for name, c in (("before", before), ("shipped", shipped))}
    print(
        f"decision cost per image (batch {len(batch)}, {len(before.labels)} vs "
        f"{len(shipped.labels) + len(shipped.blank_labels)} rows): before {cost['before']:.1f} us, "
        f"shipped {cost['shipped']:.1f} us ({cost['shipped'] / cost['before']:.1f}x; the INT8 tower "
        "takes ~2,000 us)"
    )
    print()
    print("| photo | before: decision (p) | shipped: decision (p) | shipped: blank of photo+crops |")
    print("|---|---|---|---:|")
    for name, emb in photos.items():
        (b0,), (s0,) = before(emb[:1]), shipped(emb[:1])
        all_blank = sum(1 for d in shipped(emb) if is_blank(d))
        print(
            f"| {name} | {b0.name} ({b0.score:.2f}) | {s0.name} ({s0.score:.2f}) | {all_blank}/{len(emb)} |"
        )


if __name__ == "__main__":
    main()
