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
  must not be (they should roll up or stay uncertain). And *animal in a scene*: every covered
  animal class at 0.8 with one random non-animal class at 0.15 (a dog and its tennis ball), or at
  0.55 with the scene at 0.4 (a small animal in a big scene), and 0.05 noise: must not be blank.

Two rules. *softmax*: background rows share the species' softmax and their probabilities are summed
(blank when the sum reaches the threshold); rows: none (before), one row spread over all non-animal
classes, one per class, plus WordNet groups of up to 20/50/130 classes. *subspace* (shipped, see
``lit_edge.device.classify``): blank when the share of the embedding in the span of the rows (one
per non-animal class) reaches the threshold: 0.5 (shipped), 0.4, 0.6.

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


def photo_embeddings(engine: Engine, n_crops: int, seed: int = 0) -> dict[str, np.ndarray]:
    """name -> [1 + n_crops, D] embeddings of the photo and its crops ('china'/'flower' from sklearn)."""
    rng = np.random.default_rng(seed)
    out = {}
    for p in sample_photos(NON_ANIMAL + ANIMAL):
        px = p.rgb
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


def scene(classes: list[int], background: list[int], draws: int, animal: float, seed: int = 1) -> np.ndarray:
    """``sqrt(animal onehot + (0.95 - animal) onehot(a random background class) + 0.05 Dirichlet(1))``."""
    rng = np.random.default_rng(seed)
    cls = np.repeat(classes, draws)
    p = 0.05 * rng.dirichlet(np.ones(1000), size=len(cls))
    p[np.arange(len(cls)), cls] += animal
    p[np.arange(len(cls)), rng.choice(background, size=len(cls))] += 0.95 - animal
    return np.sqrt(p).astype(np.float32)


@dataclass(frozen=True)
class Variant:
    """A rule and its rows: ``decide(embeddings)`` -> (is blank, decided name) per embedding."""

    name: str
    rule: str  # softmax | subspace
    rows: np.ndarray  # [B, D] background rows
    threshold: float = 0.5


def decide(v: Variant, species: list[bf.Label], sp_matrix, scale, bias, emb) -> tuple[np.ndarray, list]:
    labels = species + [bf.Label(len(species) + k, bf.BLANK) for k in range(len(v.rows))]
    clf = Classifier(
        np.concatenate([sp_matrix, v.rows]), labels, scale, bias, ClassifyConfig(blank_threshold=v.threshold)
    )
    decisions = clf(emb) if v.rule == "subspace" or not len(v.rows) else None
    if decisions is not None:
        return np.array([d.rank == bf.BLANK for d in decisions]), [d.name for d in decisions]
    logits = scale * (emb @ np.concatenate([sp_matrix, v.rows]).T) + (bias or 0.0)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    blank = probs[:, len(species) :].sum(axis=1) >= v.threshold
    names = [d.name for d in Classifier(sp_matrix, species, scale, bias, ClassifyConfig())(emb)]
    return blank, [bf.BLANK if b else n for b, n in zip(blank, names, strict=True)]


def variants(sp_matrix: np.ndarray, dim: int) -> list[Variant]:
    claimed = claimed_classes(sp_matrix)
    per_class = background_rows(0, dim, claimed, max_group=0, people_and_vehicles=False).matrix
    uniform = per_class.sum(axis=0, keepdims=True)
    uniform /= np.linalg.norm(uniform)
    out = [
        Variant("no background rows (before)", "softmax", np.zeros((0, dim), np.float32)),
        Variant(f"softmax: 1 row uniform over {len(per_class)}", "softmax", uniform),
        Variant(f"softmax: {len(per_class)} rows, one per class", "softmax", per_class),
    ]
    for g in (20, 50, 130):
        rows = background_rows(0, dim, claimed, max_group=g, people_and_vehicles=False).matrix
        out.append(Variant(f"softmax: {len(rows)} rows, per class + groups <= {g}", "softmax", rows))
    for thr in (0.5, 0.4, 0.6):
        shipped = " (shipped)" if thr == 0.5 and MAX_GROUP == 0 else ""
        out.append(
            Variant(f"subspace: {len(per_class)} rows, thr {thr}{shipped}", "subspace", per_class, thr)
        )
    return out


def per_image_us(clf: Classifier, batch: np.ndarray, repeats: int = 20) -> float:
    """Best-of-``repeats`` time of ``clf`` (scores, softmax, top-k, roll-up, blank) per image."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        clf(batch)
        best = min(best, time.perf_counter() - t0)
    return 1e6 * best / len(batch)


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
    covered_animals = sorted(animals & covered)
    background = sorted(set(range(dim)) - animals)
    in_scene = scene(covered_animals, background, args.draws, 0.8)
    in_big_scene = scene(covered_animals, background, args.draws, 0.55)

    print(
        f"load average {os.getloadavg()[0]:.1f}; backend {engine.backend.name}/{engine.backend.flavour}; "
        f"{len(species)} species; {len(non_animal)} non-animal photos+crops "
        f"({len(photos) - len(ANIMAL)} photos), {len(animal)} cat photos+crops; synthetic: "
        + ", ".join(f"{k} {int(v.sum())}" for k, v in groups.items())
        + f", animal in a scene {len(in_scene)}"
    )
    print()
    print(
        "| variant | blank: non-animal photos | blank: cat photos | Felis catus: cat photos "
        "| blank: synth non-animal | blank: synth covered | blank: synth uncovered animal "
        "| blank: synth animal 0.8 + scene 0.15 | blank: synth animal 0.55 + scene 0.4 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    results = {}
    for v in variants(sp_matrix, dim):

        def run(emb, v=v):
            return decide(v, species, sp_matrix, scale, bias, emb)

        (na, _), (an, an_names), (sy, _) = run(non_animal), run(animal), run(syn)
        (sc, _), (big, _) = run(in_scene), run(in_big_scene)
        cells = [
            100 * na.mean(),
            100 * an.mean(),
            100 * np.mean([n == "Felis catus" for n in an_names]),
            *(100 * sy[g].mean() for g in groups.values()),
            100 * sc.mean(),
            100 * big.mean(),
        ]
        print(f"| {v.name} | " + " | ".join(f"{c:.1f} %" for c in cells) + " |")
        results[v.name] = v
    shipped_v = next(v for v in results.values() if "shipped" in v.name)
    before = Classifier(sp_matrix, species, scale, bias, ClassifyConfig())
    blank_labels = [bf.Label(len(species) + k, bf.BLANK) for k in range(len(shipped_v.rows))]
    shipped = Classifier(
        np.concatenate([sp_matrix, shipped_v.rows]), species + blank_labels, scale, bias, ClassifyConfig()
    )
    print()
    batch = np.concatenate([non_animal, animal])[:64]
    cost = {name: per_image_us(c, batch) for name, c in (("before", before), ("shipped", shipped))}
    print(
        f"decision cost per image (batch {len(batch)}, {len(before.labels)} species, "
        f"+{len(shipped.blank_labels)} background rows): before {cost['before']:.1f} us, "
        f"shipped {cost['shipped']:.1f} us ({cost['shipped'] / cost['before']:.1f}x; the INT8 tower "
        "takes ~2,000 us)"
    )
    print()
    print("| photo | before: decision (p) | shipped: decision (p) | shipped: blank of photo+crops |")
    print("|---|---|---|---:|")
    for name, emb in photos.items():
        (b0,), (s0,) = before(emb[:1]), shipped(emb[:1])
        all_blank = sum(1 for d in shipped(emb) if d.rank == bf.BLANK)
        print(
            f"| {name} | {b0.name} ({b0.score:.2f}) | {s0.name} ({s0.score:.2f}) | {all_blank}/{len(emb)} |"
        )


if __name__ == "__main__":
    main()
