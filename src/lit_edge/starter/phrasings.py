"""What the starter's text tower is taught: phrasings of each synset, and where each should land.

A *target* is one WordNet synset that covers some of the locked head's ImageNet classes; its
distribution is uniform over those classes (one class for an ImageNet class, five for ``domestic
cat``, the four foxes for ``fox``...). Its phrasings are its names (WordNet lemmas; ``genus Vulpes``
and ``Vulpes``), templated captions, the definition, and for species the caption kinds the trainer
and the zero-shot classifier use (``taxonomic``, ``scientific with common name``...).

Evaluation phrasings use templates that are never trained on (and optionally whole names held
out), so retrieval on them measures generalisation to new wordings, not memory.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from lit_edge.starter.config import StarterConfig
from lit_edge.starter.hierarchy import TAXON_GROUP
from lit_edge.starter.species import SpeciesRow
from lit_edge.starter.wordnet import WordNet
from lit_edge.taxonomy import TEMPLATES, Taxon, TextType, name_for

#: Trained on: the zero-shot classifier's templates (so bundles built from them fit) and a few more.
TRAIN_TEMPLATES: tuple[str, ...] = (
    *TEMPLATES,
    "a photo of a {}.",
    "a picture of the {}.",
    "an image of a {}.",
    "a good photo of the {}.",
    "a cropped photo of a {}.",
    "{} in its habitat.",
)
#: Never trained on: used only to measure retrieval on unseen wordings.
HELDOUT_TEMPLATES: tuple[str, ...] = (
    "a low resolution photo of a {}.",
    "there is a {} in this picture.",
    "a snapshot of the {}.",
    "an example of a {}.",
    "a jpeg of a {}.",
)
_SPECIES_KINDS = (TextType.TAXONOMIC, TextType.SCIENTIFIC_COMMON, TextType.TAXONOMIC_COMMON)


@dataclass
class Target:
    """One synset to be taught: the classes it covers and its training phrasings."""

    synset: str
    classes: tuple[int, ...]
    texts: list[str] = field(default_factory=list)
    is_class: bool = False  # an ImageNet class itself


@dataclass
class Phrasings:
    """Everything to train and evaluate on. ``eval_texts[i]`` should retrieve class ``eval_labels[i]``."""

    targets: list[Target]
    eval_texts: list[str]
    eval_labels: list[int]
    eval_heldout_name: list[bool]  # True where the whole name was held out of training

    @property
    def num_texts(self) -> int:
        return sum(len(t.texts) for t in self.targets)


def _pick(key: str, items: tuple[str, ...], k: int) -> list[str]:
    """``k`` items chosen by a stable hash of ``key`` (reproducible across runs and machines)."""
    if k <= 0:
        return []
    start = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16)
    return [items[(start + i) % len(items)] for i in range(min(k, len(items)))]


def _held_out(key: str, fraction: float) -> bool:
    return (
        fraction > 0 and int(hashlib.sha1(("holdout:" + key).encode()).hexdigest()[:8], 16) < fraction * 2**32
    )


def names_of(wn: WordNet, synset_id: str) -> list[str]:
    """The lemmas, with ``genus Vulpes`` also given as ``Vulpes``; duplicates removed, order kept."""
    out: list[str] = []
    for lemma in wn[synset_id].lemmas:
        out.append(lemma)
        if TAXON_GROUP.match(lemma):
            out.append(lemma.split(" ", 1)[1])
    return list(dict.fromkeys(out))


def build_phrasings(
    cfg: StarterConfig,
    wn: WordNet,
    classes: tuple[str, ...],
    cover: dict[str, frozenset[int]],
    species: list[SpeciesRow],
) -> Phrasings:
    """Targets for every synset that covers at most ``cfg.max_cover`` of the chosen classes."""
    chosen = set(cfg.classes) if cfg.classes else set(range(len(classes)))
    class_ids = {classes[i]: i for i in chosen}
    by_synset = {s.synset: s for s in species}
    targets: list[Target] = []
    eval_texts: list[str] = []
    eval_labels: list[int] = []
    eval_heldout: list[bool] = []
    for sid in sorted(cover):
        covered = tuple(sorted(set(cover[sid]) & chosen))
        if not covered or len(covered) > cfg.max_cover:
            continue
        is_class = sid in class_ids
        sp = by_synset.get(sid)
        k = cfg.class_templates if (is_class or sp) else cfg.parent_templates
        target = Target(sid, covered, is_class=is_class)
        for name in names_of(wn, sid):
            held = (
                is_class and name != wn[sid].lemmas[0] and _held_out(sid + name, cfg.heldout_lemma_fraction)
            )
            if is_class:
                for template in _pick("eval" + sid + name, HELDOUT_TEMPLATES, 1):
                    eval_texts.append(template.format(name))
                    eval_labels.append(class_ids[sid])
                    eval_heldout.append(held)
            if held:
                continue
            target.texts.append(name)
            target.texts.extend(t.format(name) for t in _pick(sid + name, TRAIN_TEMPLATES, k))
        if cfg.glosses and (is_class or sp) and wn[sid].gloss:
            gloss = wn[sid].gloss.split(";")[0].strip()
            target.texts.append(gloss)
            target.texts.append(f"{wn[sid].lemmas[0]}, {gloss}")
        if sp is not None:
            taxon = Taxon.from_dict(sp.row)
            for kind in _SPECIES_KINDS:
                text = name_for(taxon, kind)
                target.texts.append(text)
                target.texts.extend(t.format(text) for t in _pick(sid + kind.value, TEMPLATES, 1))
        target.texts = list(dict.fromkeys(target.texts))
        if target.texts:
            targets.append(target)
    return Phrasings(targets, eval_texts, eval_labels, eval_heldout)
