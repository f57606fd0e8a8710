"""From embeddings to decisions: top-k species, and roll-up to a higher rank when unsure.

A field classifier should say "a *Quercus*" rather than guess the wrong oak: when the best species
is below ``threshold`` or not ``margin`` ahead of the runner-up, the probabilities are summed per
taxon at each higher rank (genus, family, ...) and the lowest rank whose best taxon clears the
threshold is the decision; if none does, the decision is ``uncertain``. Restricting the list
(``--species``) renormalises the softmax over the kept classes only, as if the others did not exist.

Background rows (``labels.csv`` rows named ``blank``, see :data:`lit_edge.bundle.BLANK`) span the
bundle's *background subspace* of the embedding space. A photo's blank score is the share of its
(unit) embedding that lies in that subspace, ``|P e|^2`` in [0, 1]; at ``blank_threshold`` or above
(default one half) the decision is ``blank``. In the starter's space (``sqrt`` of the ImageNet head's
probabilities, one row per non-animal class) that share is exactly the head's probability that the
photo shows no animal class, so the test asks the locked head "animal or not?" directly, whatever
the breadth of the species rows. Background rows never enter the species softmax: the top-k, the
roll-up and a non-blank decision are exactly what they are without them, and ``--species`` keeps
them.

Why not a softmax over species and background rows together: a broad species row such as the
starter's ``Canis familiaris`` (spread over 118 breeds) scores far below any narrow background row,
so a dog photo with 5 % of its mass on a tennis ball came out blank (``bench/bench_blank.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lit_edge.bundle import RANKS, Label
from lit_edge.device.config import ClassifyConfig
from lit_edge.errors import UserError
from lit_edge.outcomes import BLANK, UNCERTAIN

ROLLUP_RANKS = tuple(reversed(RANKS[:-1]))  # genus, family, order, class, phylum, kingdom


@dataclass(frozen=True)
class Prediction:
    label_id: int
    scientific_name: str
    common_name: str
    score: float


@dataclass(frozen=True)
class Decision:
    """The top-k species and the decided taxon (a species, a rolled-up taxon, or uncertain)."""

    top: tuple[Prediction, ...]
    label_id: int | None  # the class id when decided at species rank
    name: str  # scientific name, the rolled-up taxon's name, 'uncertain' or 'blank'
    rank: str  # species | genus | ... | uncertain | blank
    score: float  # probability of the decision (for blank: the blank score, see the module doc)

    @property
    def named(self) -> bool:
        """A taxon was named (a species or a roll-up): not ``uncertain``, not ``blank``."""
        return self.rank not in (UNCERTAIN, BLANK)


def read_species_file(path: Path, labels: list[Label]) -> np.ndarray:
    """Indices of ``labels`` named in ``path`` (one scientific name per line, '#' comments)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"cannot read species file {path}: {exc.strerror}; check the --species path") from exc
    wanted = [ln.split("#", 1)[0].strip() for ln in lines]
    wanted = [w for w in wanted if w and w.lower() not in ("scientific_name", BLANK)]
    by_name = {lab.scientific_name.lower(): i for i, lab in enumerate(labels)}
    unknown = [w for w in wanted if w.lower() not in by_name]
    if unknown:
        shown = ", ".join(unknown[:10]) + (f" (and {len(unknown) - 10} more)" if len(unknown) > 10 else "")
        raise UserError(
            f"{path}: {len(unknown)} name(s) not in the bundle's species list: {shown}; "
            "fix the spelling or re-export the bundle with them"
        )
    if not wanted:
        raise UserError(f"{path}: no species names in it; put one scientific name per line")
    return np.array(sorted({by_name[w.lower()] for w in wanted}), dtype=np.int64)


def background_basis(rows: np.ndarray) -> np.ndarray:
    """An orthonormal basis (``[r, D]``) of the span of the background rows.

    Rows that are already orthonormal (the starter's one-hot class rows) are their own basis; any
    others (overlapping groups, prompt embeddings) are orthonormalised by an SVD, dropping
    directions they do not really span.
    """
    rows = np.asarray(rows, dtype=np.float64)
    if np.allclose(rows @ rows.T, np.eye(len(rows)), atol=1e-4):
        return np.ascontiguousarray(rows, dtype=np.float32)
    _, sv, vt = np.linalg.svd(rows, full_matrices=False)
    return np.ascontiguousarray(vt[sv > 1e-6 * sv.max()], dtype=np.float32)


class Classifier:
    """Scores ``logit_scale * emb @ M.T (+ bias)`` over the (restricted) species list; and, when the
    bundle has background rows (``blank_labels``), the blank score of every embedding."""

    def __init__(
        self,
        text_embeddings: np.ndarray,
        labels: list[Label],
        logit_scale: float,
        logit_bias: float | None,
        config: ClassifyConfig,
    ):
        self.config = config
        blank = [i for i, lab in enumerate(labels) if lab.is_blank]
        species = [i for i, lab in enumerate(labels) if not lab.is_blank]
        if config.species_file:
            species = [int(i) for i in read_species_file(config.species_file, labels) if i not in blank]
        if not species:
            raise UserError("the bundle's species list holds only background (blank) rows; re-export it")
        self.labels = [labels[i] for i in species]
        self.blank_labels = [labels[i] for i in blank]
        self.matrix_t = np.ascontiguousarray(text_embeddings[species].T, dtype=np.float32)  # D x C
        self.background_t = background_basis(text_embeddings[blank]).T if blank else None  # D x B
        self.logit_scale = float(logit_scale)
        self.logit_bias = 0.0 if logit_bias is None else float(logit_bias)
        self._groups: list[tuple[str, list[str], np.ndarray]] = []
        for rank in ROLLUP_RANKS:
            names = [lab.rank(rank) for lab in self.labels]
            taxa = sorted({n for n in names if n})
            if not taxa:
                continue
            onehot = np.zeros((len(self.labels), len(taxa)), dtype=np.float32)
            index = {t: j for j, t in enumerate(taxa)}
            for i, n in enumerate(names):
                if n:
                    onehot[i, index[n]] = 1.0
            self._groups.append((rank, taxa, onehot))

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        logits = self.logit_scale * (embeddings.astype(np.float32, copy=False) @ self.matrix_t)
        logits += self.logit_bias
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        return logits

    def blank_scores(self, embeddings: np.ndarray) -> np.ndarray | None:
        """``|P e|^2`` per embedding: its share in the background subspace (None without rows)."""
        if self.background_t is None:
            return None
        proj = embeddings.astype(np.float32, copy=False) @ self.background_t
        return np.einsum("nb,nb->n", proj, proj)

    def __call__(self, embeddings: np.ndarray) -> list[Decision]:
        probs = self.probabilities(embeddings)
        blank = self.blank_scores(embeddings)
        k = min(self.config.top_k, probs.shape[1])
        order = np.argsort(-probs, axis=1, kind="stable")[:, : max(k, 2)]
        rolled = [(rank, taxa, probs @ onehot) for rank, taxa, onehot in self._groups]
        out = []
        for i in range(probs.shape[0]):
            top = tuple(
                Prediction(
                    label_id=self.labels[j].id,
                    scientific_name=self.labels[j].scientific_name,
                    common_name=self.labels[j].common_name,
                    score=float(probs[i, j]),
                )
                for j in order[i, :k]
            )
            if blank is not None and blank[i] >= self.config.blank_threshold:
                out.append(Decision(top, None, BLANK, BLANK, float(blank[i])))
            else:
                out.append(self._decide(i, top, probs[i, order[i]], rolled))
        return out

    def _decide(self, i: int, top: tuple[Prediction, ...], sorted_probs: np.ndarray, rolled) -> Decision:
        best = float(sorted_probs[0])
        second = float(sorted_probs[1]) if len(sorted_probs) > 1 else 0.0
        cfg = self.config
        if best >= cfg.threshold and best - second >= cfg.margin:
            return Decision(top, top[0].label_id, top[0].scientific_name, "species", best)
        for rank, taxa, sums in rolled:
            j = int(np.argmax(sums[i]))
            if sums[i, j] >= cfg.threshold:
                return Decision(top, None, taxa[j], rank, float(sums[i, j]))
        return Decision(top, None, UNCERTAIN, UNCERTAIN, best)
