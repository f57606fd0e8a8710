"""Verified blanks strengthen the background: new background rows where the old ones missed.

The runtime's blank score is the share of a photo's embedding in the span of the background rows,
``|P e|^2`` (:mod:`lit_edge.device.classify`). A verified blank that the bundle missed has most of
its embedding *outside* that span. The new rows are the main directions of those remainders: the
top ``r`` right singular vectors of ``(I - P) E_blank``, orthogonal to the old span, so adding
them raises the blank score of photos like the verified blanks and leaves every other photo's
score as it was, except for the part that lies along those directions.

``r`` is chosen by cross-validation from :data:`RANKS` on all verified photos: a held-out blank
should score at least the threshold, a held-out animal below it; the score is balanced accuracy
(a missed animal weighs as much as a missed blank however many of each were verified), ties go to
fewer rows, and ``r = 0`` (no change) must be beaten outright.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from lit_edge.device.classify import background_basis
from lit_edge.learn import folds as folds_mod

RANKS = (0, 1, 2, 4, 8, 16, 32)


@dataclass(frozen=True)
class BackgroundFit:
    rows: np.ndarray  # [r, D] new background rows (orthonormal, orthogonal to the old span)
    cv: dict[int, float]  # r -> held-out balanced accuracy
    before: float  # held-out balanced accuracy with the old rows (r = 0)
    after: float


def directions(emb: np.ndarray, basis: np.ndarray | None, r: int, seed: int = 0) -> np.ndarray:
    """Top ``r`` directions of what the old span misses of ``emb`` ([<=r, D], orthonormal).

    Up to 512 photos: the exact eigenvectors of their ``n x n`` Gram matrix. More: a randomized
    subspace iteration on the ``D x D`` one (a few ``D x D x (r + 8)`` products instead of an
    SVD per fold): the top few directions converge in a handful of iterations.
    """
    if r == 0 or len(emb) == 0:
        return np.zeros((0, emb.shape[1]), np.float32)
    rest = np.asarray(emb, np.float32)
    if basis is not None and len(basis):
        b32 = np.asarray(basis, np.float32)
        rest = rest - (rest @ b32.T) @ b32
    rest = rest.astype(np.float64)
    with threadpool_limits(1, user_api="blas"):  # 17 ms instead of 750 on 2 busy cores (spinning threads)
        return _top(rest, r, seed)


def _top(rest: np.ndarray, r: int, seed: int) -> np.ndarray:
    if len(rest) <= 512:  # few photos: the exact eigenvectors of their n x n Gram matrix
        ev, u = np.linalg.eigh(rest @ rest.T)
        order = np.argsort(ev)[::-1]
        sv = np.sqrt(np.clip(ev[order], 0, None))
        vt = (u[:, order].T @ rest) / np.maximum(sv, 1e-12)[:, None]
    else:
        gram = rest.T @ rest
        q = np.random.default_rng(seed).normal(size=(gram.shape[0], min(r + 8, gram.shape[0])))
        for _ in range(6):
            q, _ = np.linalg.qr(gram @ q)
        ev, u = np.linalg.eigh(q.T @ gram @ q)
        order = np.argsort(ev)[::-1]
        sv, vt = np.sqrt(np.clip(ev[order], 0, None)), (q @ u[:, order]).T
    keep = sv > 1e-6 * max(float(sv.max()), 1e-12)
    return np.ascontiguousarray(vt[keep][:r], dtype=np.float32)


def _balanced(score: np.ndarray, is_blank: np.ndarray, threshold: float) -> float:
    said = score >= threshold
    parts = [np.mean(said[is_blank])] if is_blank.any() else []
    parts += [np.mean(~said[~is_blank])] if (~is_blank).any() else []
    return float(np.mean(parts)) if parts else 0.0


def fit(
    emb: np.ndarray,
    is_blank: np.ndarray,
    old_rows: np.ndarray,
    threshold: float,
    *,
    fold_of: np.ndarray | None = None,
    share: np.ndarray | None = None,
    ranks: tuple[int, ...] = RANKS,
) -> BackgroundFit:
    """New background rows from the verified photos ``emb`` ([n, D]; ``is_blank`` marks the no-animal
    ones) given the bundle's ``old_rows``; :data:`RANKS` scored by held-out balanced accuracy.
    ``share``: each photo's blank score with the old rows, when the caller has it already."""
    emb = np.asarray(emb, np.float32)
    is_blank = np.asarray(is_blank, bool)
    basis = background_basis(old_rows).astype(np.float64) if len(old_rows) else None
    if share is None:
        proj = emb @ basis.T.astype(np.float32) if basis is not None else np.zeros((len(emb), 0), np.float32)
        share = np.einsum("nb,nb->n", proj, proj)
    old = share.astype(np.float64)
    ranks = tuple(r for r in ranks if r <= max(int(is_blank.sum()) - 1, 0)) or (0,)
    fold_of = folds_mod.assign(is_blank) if fold_of is None else fold_of
    heldout = {r: old.copy() for r in ranks}
    blanks = emb[is_blank]
    if basis is not None and len(blanks):  # their part off the old span, once for every fold
        b32 = basis.astype(np.float32)
        blanks = blanks - (blanks @ b32.T) @ b32
    blank_fold = fold_of[is_blank]
    for f in range(folds_mod.count(fold_of)):
        test = fold_of == f
        top = directions(blanks[blank_fold != f], None, max(ranks))
        extra = (emb[test] @ top.T) ** 2
        for r in ranks:
            heldout[r][test] = old[test] + extra[:, :r].sum(axis=1)
    cv = {r: _balanced(heldout[r], is_blank, threshold) for r in ranks}
    best = max(ranks, key=lambda r: (cv[r], -r))
    if cv[best] <= cv[0]:
        best = 0
    return BackgroundFit(directions(blanks, None, best), cv, cv[0], cv[best])
