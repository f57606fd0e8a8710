"""Captions per training sample: the text type drawn from a configured mix, seeded and reproducible.

Each batch gets its own generator, seeded from ``(seed, epoch, step)``, and draws the captions of the
whole *global* batch before a rank takes its slice. So a caption depends only on where the sample sits
in the run, never on how many ranks there are or whether the run was resumed: 1 rank and 2 ranks see
the same texts, and a resumed run continues with the texts it would have drawn.

When a feature cache carries ``captions.jsonl``, the per-class texts there replace the taxonomy mix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from lit_edge.errors import UserError
from lit_edge.taxonomy import DEFAULT_TEMPLATE, Taxon, TextType, caption


def to_taxon(record: Mapping[str, str]) -> Taxon:
    """A taxon record (labels.csv / taxa.csv columns) as the taxonomy module's :class:`Taxon`."""
    row = dict(record)
    sci = row.get("scientific_name", "")
    genus = row.get("genus", "")
    # taxa.csv keeps the specific epithet in 'species'; fill it from the binomial when absent.
    if not row.get("species") and genus and sci.startswith(genus + " "):
        row["species"] = sci[len(genus) + 1 :]
    return Taxon.from_dict(row)


class CaptionSampler:
    """Draws one caption per sample: a text type from ``text_mix`` or a text from ``class_texts``."""

    def __init__(
        self,
        taxa: Sequence[Mapping[str, str]],
        text_mix: Mapping[str, float],
        seed: int = 0,
        class_texts: Mapping[int, Sequence[str]] | None = None,
        template: str = DEFAULT_TEMPLATE,
    ):
        self.taxa = [to_taxon(t) for t in taxa]
        self.seed = seed
        self.template = template
        self.class_texts = {int(k): list(v) for k, v in class_texts.items()} if class_texts else None
        valid = [t.value for t in TextType]
        unknown = sorted(set(text_mix) - set(valid))
        if unknown:
            raise UserError(f"data.text_mix: unknown text types {unknown}; use any of {valid}")
        weights = np.array([float(text_mix.get(t, 0.0)) for t in valid])
        if (weights < 0).any() or weights.sum() <= 0:
            raise UserError("data.text_mix: weights must be >= 0 and not all zero")
        self.types = valid
        self.probs = weights / weights.sum()

    def draw(self, labels: np.ndarray, epoch: int, step: int) -> list[str]:
        """Captions for the global batch ``labels`` at (``epoch``, ``step``)."""
        rng = np.random.default_rng([self.seed, epoch, step])
        if self.class_texts is not None:
            out = []
            for y in np.asarray(labels).tolist():
                texts = self.class_texts[y]
                out.append(texts[int(rng.integers(len(texts)))])
            return out
        kinds = rng.choice(len(self.types), size=len(labels), p=self.probs)
        return [
            caption(self.taxa[y], self.types[k], self.template)
            for y, k in zip(np.asarray(labels).tolist(), kinds.tolist(), strict=True)
        ]
