"""From embeddings to decisions: people first, then vehicles, blank, a species, a higher taxon,
"animal, not in the list", or uncertain; each with a score that says how likely it is.

A field user triages by score (accept what is sure, review the rest), so the score must be a
probability of something, and a decision must never be surer than the evidence. How a row's score
is computed depends on the model (the bundle's :class:`~lit_edge.bundle.Scoring`):

``class_mass`` (the starter): the embedding is ``sqrt(p)`` of the locked ImageNet head's softmax
``p`` over its 1,000 classes, and every row is ``sqrt`` of the class distribution it stands for
(``Felis catus``: the five cat classes; a background row: one non-animal class). A row's score is
``p`` summed over the classes it covers: **the locked head's own probability that the photo shows
one of the row's classes**, calibrated as well as that head is (nothing is fitted on top of it).
Scores of all rows add up to at most 1, so a broad row (``Canis familiaris``, 118 breeds) gets
what the head gives dogs and no more: on a diffuse photo it collects about its share of the
classes, far from a decision. A class that two rows claim (an added species whose text lands on
a class a listed species has) is shared between them, never counted twice. The classes no row
claims are animals the list does not hold: their mass is the evidence for "animal, not in the
list" (``animal``). The starter carries an ``animal`` row for each such class with the phylum and
class it belongs to (``lit_edge.starter.blank.unlisted_animal_rows``): its mass counts towards
those ranks' roll-ups, never towards a species, so a heron on which the head sees pelicans and
storks is ``Aves``, not "animal" and not the nearest listed bird.

``softmax`` (trained LiT models): ``softmax(logit_scale * cosine + bias)`` over the species rows
(and the ``human``/``vehicle`` rows, if the bundle has them), as the model was trained; background
rows give the blank score as the share of the embedding in their span, ``|P e|^2``.

The decision, in this order (``ClassifyConfig``):

1. ``human`` when the ``human`` rows' score reaches ``human_threshold`` (0.25: camera-trap projects
   rank people first, for privacy; a missed person costs more than a second look at a false one,
   so the bar is lower than "more likely than not"). A person beside a car is ``human``.
2. ``vehicle`` when the ``vehicle`` rows reach ``vehicle_threshold``.
3. ``blank`` when the background rows reach ``blank_threshold``.
4. the best species when it reaches ``threshold`` and leads the runner-up by ``margin``;
5. else the lowest rank (genus, family, ... kingdom) whose best taxon reaches ``threshold``
   (scores of a taxon's rows summed; in ``class_mass`` rows left out by ``--species`` still count
   towards their genus and family: the photo shows one, and that is what the user learns);
6. else ``animal`` (``class_mass`` only) when the head's animal classes together reach
   ``threshold``: an animal the kept rows do not explain;
7. else ``uncertain`` (score: the best species' score).

``--species`` keeps only the named rows at species rank (accepted names or synonyms); in
``softmax`` it renormalises the softmax over them, as if the others did not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lit_edge.bundle import RANKS, Label, NameIndex, Scoring
from lit_edge.device.config import ClassifyConfig
from lit_edge.errors import UserError
from lit_edge.outcomes import ANIMAL, BLANK, HUMAN, UNCERTAIN, VEHICLE

ROLLUP_RANKS = tuple(reversed(RANKS[:-1]))  # genus, family, order, class, phylum, kingdom


@dataclass(frozen=True)
class Prediction:
    label_id: int
    scientific_name: str
    common_name: str
    score: float


@dataclass(frozen=True)
class Decision:
    """The top-k species and the decided level (a taxon, or one of :mod:`lit_edge.outcomes`)."""

    top: tuple[Prediction, ...]
    label_id: int | None  # the class id when decided at species rank
    name: str  # scientific name, the rolled-up taxon's name, or human/vehicle/blank/animal/uncertain
    rank: str  # species | genus | ... | kingdom | human | vehicle | blank | animal | uncertain
    score: float  # probability of the decision (see the module doc for what it is a probability of)

    @property
    def named(self) -> bool:
        """A taxon was named (a species or a roll-up): not an outcome such as blank or animal."""
        return self.rank in RANKS


@dataclass
class Scores:
    """Per-embedding scores of a batch: the kept species and the outcomes (None: not available)."""

    species: np.ndarray  # [N, C] the kept species rows
    others: np.ndarray  # [N, U] species rows left out by --species (roll-ups only; class_mass)
    blank: np.ndarray | None
    human: np.ndarray | None
    vehicle: np.ndarray | None
    animal: np.ndarray | None  # the head's animal classes together (class_mass)
    unlisted: np.ndarray  # [N, A] the ``animal`` rows (roll-ups only; class_mass)


def read_species_file(path: Path, labels: list[Label]) -> np.ndarray:
    """Indices of ``labels`` named in ``path`` (one scientific name per line, '#' comments).

    A synonym (``Euarctos americanus``) finds the row of its accepted name (``Ursus americanus``).
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"cannot read species file {path}: {exc.strerror}; check the --species path") from exc
    wanted = [ln.split("#", 1)[0].split(",", 1)[0].strip() for ln in lines]
    wanted = [w for w in wanted if w and w.lower() not in ("scientific_name", BLANK)]
    index = NameIndex(labels)
    unknown = [w for w in wanted if index.get(w) is None]
    if unknown:
        shown = ", ".join(unknown[:10]) + (f" (and {len(unknown) - 10} more)" if len(unknown) > 10 else "")
        raise UserError(
            f"{path}: {len(unknown)} name(s) not in the bundle's species list: {shown}; "
            "fix the spelling or re-export the bundle with them"
        )
    if not wanted:
        raise UserError(f"{path}: no species names in it; put one scientific name per line")
    return np.array(sorted({index.get(w) for w in wanted}), dtype=np.int64)


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


def row_cover(rows: np.ndarray) -> np.ndarray:
    """``[R, D]`` weights in [0, 1]: how much of each class each row (``sqrt`` of a distribution)
    covers, before classes covered by more than one row are shared out (:func:`class_cover`).

    A row spread evenly over k classes covers each of them fully (its perplexity is k, so
    ``q * perplexity`` is 1 there) and the text tower's small leaks barely at all; a row the text
    tower guessed (``Ardea cinerea``: 0.52 little blue heron, 0.31 American egret, 0.17 bittern)
    covers its classes in proportion.
    """
    q = np.square(np.asarray(rows, dtype=np.float64))
    q /= np.maximum(q.sum(axis=1, keepdims=True), 1e-12)
    entropy = -(q * np.log(np.where(q > 0, q, 1.0))).sum(axis=1, keepdims=True)
    return np.minimum(1.0, q * np.exp(entropy))


def class_cover(rows: np.ndarray, others: np.ndarray | None = None) -> np.ndarray:
    """``[R, D]`` :func:`row_cover` of ``rows`` with a class covered more than once in all shared
    out, so that the rows' masses never add up to more than the head's. ``others``: the summed
    ``row_cover`` (``[D]``) of further rows of the same bundle that share the classes (``learn``
    scores candidate species rows against the bundle's fixed outcome rows this way)."""
    w = row_cover(rows)
    total = w.sum(axis=0) if others is None else w.sum(axis=0) + others
    return (w / np.maximum(total, 1.0)).astype(np.float32)


def head_distribution(emb: np.ndarray) -> np.ndarray:
    """The class distribution ``p`` a ``class_mass`` embedding (``sqrt(p)``) stands for; an INT8
    tower's small errors are renormalised away."""
    p = np.square(np.asarray(emb, dtype=np.float32))
    p /= np.maximum(p.sum(axis=1, keepdims=True), 1e-12)
    return p


class Classifier:
    """Embeddings -> :class:`Decision` s for one bundle's rows (see the module doc)."""

    def __init__(
        self,
        text_embeddings: np.ndarray,
        labels: list[Label],
        logit_scale: float,
        logit_bias: float | None,
        config: ClassifyConfig,
        scoring: Scoring = Scoring(),
    ):
        self.config = config
        self.scoring = scoring
        outcome = {
            k: [i for i, lab in enumerate(labels) if lab.outcome == k] for k in (BLANK, HUMAN, VEHICLE)
        }
        all_species = [i for i, lab in enumerate(labels) if not lab.outcome]
        species = all_species
        if config.species_file:
            species = [int(i) for i in read_species_file(config.species_file, labels)]
        if not species:
            raise UserError(
                "the bundle's species list holds only background (blank) or other outcome rows (human, vehicle); re-export it"
            )
        class_mass = scoring.kind == "class_mass"
        others = [i for i in all_species if i not in set(species)] if class_mass else []
        unlisted = [i for i, lab in enumerate(labels) if lab.outcome == ANIMAL] if class_mass else []
        self.labels = [labels[i] for i in species]
        self.other_labels = [labels[i] for i in others]
        self.unlisted_labels = [labels[i] for i in unlisted]
        self.blank_labels = [labels[i] for i in outcome[BLANK]]
        emb = np.asarray(text_embeddings, dtype=np.float32)
        self.logit_scale = float(logit_scale)
        self.logit_bias = 0.0 if logit_bias is None else float(logit_bias)
        if scoring.kind == "class_mass":
            cover = class_cover(emb)  # every row, kept or not, so that --species changes no row's cover
            self._cover_t = {
                "species": np.ascontiguousarray(cover[species].T),
                "others": np.ascontiguousarray(cover[others].T),
                "unlisted": np.ascontiguousarray(cover[unlisted].T),
                **{k: cover[v].sum(axis=0) if v else None for k, v in outcome.items()},
            }
            plants = [i for i in all_species if labels[i].rank("kingdom") not in ("", "Animalia")]
            self._not_animal = cover[[i for v in outcome.values() for i in v] + plants].sum(axis=0)
        else:
            rows = species + outcome[HUMAN] + outcome[VEHICLE]
            self.matrix_t = np.ascontiguousarray(emb[rows].T)  # D x (C + H + V)
            self._n_human = len(outcome[HUMAN])
            self._n_vehicle = len(outcome[VEHICLE])
            self.background_t = background_basis(emb[outcome[BLANK]]).T if outcome[BLANK] else None
        self._groups = self._rollup_groups()

    def _rollup_groups(self) -> list[tuple[str, list[str], np.ndarray]]:
        """Per rank: the taxa and a one-hot [kept + other + animal rows, taxa] matrix that sums rows
        into them (an ``animal`` row has only a phylum and a class)."""
        rows = self.labels + self.other_labels + self.unlisted_labels
        groups = []
        for rank in ROLLUP_RANKS:
            names = [lab.rank(rank) for lab in rows]
            taxa = sorted({n for n in names if n})
            if not taxa:
                continue
            onehot = np.zeros((len(rows), len(taxa)), dtype=np.float32)
            index = {t: j for j, t in enumerate(taxa)}
            for i, n in enumerate(names):
                if n:
                    onehot[i, index[n]] = 1.0
            groups.append((rank, taxa, onehot))
        return groups

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def scores(self, embeddings: np.ndarray) -> Scores:
        emb = np.asarray(embeddings, dtype=np.float32)
        if self.scoring.kind == "class_mass":
            return self._class_mass(emb)
        return self._softmax(emb)

    def _class_mass(self, emb: np.ndarray) -> Scores:
        p = head_distribution(emb)
        c = self._cover_t

        def outcome(key: str) -> np.ndarray | None:
            return None if c[key] is None else np.clip(p @ c[key], 0.0, 1.0)

        return Scores(
            species=p @ c["species"],
            others=p @ c["others"],
            blank=outcome(BLANK),
            human=outcome(HUMAN),
            vehicle=outcome(VEHICLE),
            animal=np.clip(1.0 - p @ self._not_animal, 0.0, 1.0),
            unlisted=p @ c["unlisted"],
        )

    def _softmax(self, emb: np.ndarray) -> Scores:
        logits = self.logit_scale * (emb @ self.matrix_t) + self.logit_bias
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        c, h = len(self.labels), self._n_human
        blank = None
        if self.background_t is not None:
            proj = emb @ self.background_t
            blank = np.einsum("nb,nb->n", proj, proj)
        return Scores(
            species=logits[:, :c],
            others=np.zeros((len(emb), 0), np.float32),
            unlisted=np.zeros((len(emb), 0), np.float32),
            blank=blank,
            human=logits[:, c : c + h].sum(axis=1) if h else None,
            vehicle=logits[:, c + h :].sum(axis=1) if self._n_vehicle else None,
            animal=None,
        )

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """``[N, C]`` scores of the kept species rows (what the top-k lists)."""
        return self.scores(embeddings).species

    def blank_scores(self, embeddings: np.ndarray) -> np.ndarray | None:
        """The background rows' score per embedding (None without background rows)."""
        return self.scores(embeddings).blank

    def __call__(self, embeddings: np.ndarray) -> list[Decision]:
        s = self.scores(embeddings)
        probs = s.species
        k = min(self.config.top_k, probs.shape[1])
        order = np.argsort(-probs, axis=1, kind="stable")[:, : max(k, 2)]
        both = np.concatenate([probs, s.others, s.unlisted], axis=1)
        rolled = [(rank, taxa, both @ onehot) for rank, taxa, onehot in self._groups]
        cfg = self.config
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
            for kind, values, bar in (
                (HUMAN, s.human, cfg.human_threshold),
                (VEHICLE, s.vehicle, cfg.vehicle_threshold),
                (BLANK, s.blank, cfg.blank_threshold),
            ):
                if values is not None and values[i] >= bar:
                    out.append(Decision(top, None, kind, kind, float(values[i])))
                    break
            else:
                animal = None if s.animal is None else float(s.animal[i])
                out.append(self._decide(i, top, probs[i, order[i]], rolled, animal))
        return out

    def _decide(
        self, i: int, top: tuple[Prediction, ...], sorted_probs: np.ndarray, rolled, animal: float | None
    ) -> Decision:
        best = float(sorted_probs[0])
        second = float(sorted_probs[1]) if len(sorted_probs) > 1 else 0.0
        cfg = self.config
        if best >= cfg.threshold and best - second >= cfg.margin:
            return Decision(top, top[0].label_id, top[0].scientific_name, "species", best)
        for rank, taxa, sums in rolled:
            j = int(np.argmax(sums[i]))
            if sums[i, j] >= cfg.threshold:
                return Decision(top, None, taxa[j], rank, float(sums[i, j]))
        if animal is not None and animal >= cfg.threshold:
            return Decision(top, None, ANIMAL, ANIMAL, animal)
        return Decision(top, None, UNCERTAIN, UNCERTAIN, best)
