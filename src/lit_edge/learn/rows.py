"""Species rows from verified photos: each text row blended with an image prototype, or a linear probe.

The image tower is locked, so a verified photo's stored embedding is a training example as it is.
Two ways to use them, both numpy only, both scored by cross-validation on the verified photos
(:mod:`lit_edge.learn.folds`) against the untouched text rows:

``prototype``  row_c = normalise(kappa * t_c + sum of c's verified embeddings). ``kappa`` is what the
               text row is worth in photos: with few photos the text row dominates, with many the
               photos do. One ``kappa`` for all species, chosen by CV from :data:`KAPPAS`
               (``inf`` = the text rows untouched). Closed form: seconds for 10,000 photos.
``probe``      a cosine softmax classifier started from the text rows and pulled back towards them
               (L2 weight ``lam``, chosen by CV from :data:`LAMBDAS`), trained by projected
               gradient descent with the rows kept unit length. Unlike a prototype it also moves
               rows of species nobody verified away from the verified photos they stole. Its cost
               grows with steps x folds x grid.

A species added from photos has no text row (its row in ``text`` is zero): its row is its
prototype in both methods. A row with no photos and no text scores 0 (a held-out fold can leave
a species added from one photo without any).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lit_edge.learn import folds as folds_mod

TEXT = "text"
KAPPAS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, math.inf)
LAMBDAS = (1.0, 4.0, 16.0, 64.0, 256.0)
PROBE_STEPS = 60

#: ``(rows [C, D], held-out embeddings [m, D]) -> [m, C]`` scores, as the runtime would rank them
RowScorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Candidate:
    """One setting, scored on held-out photos."""

    method: str  # text (the bundle's rows untouched; prototypes for added species) | prototype | probe
    param: float  # kappa (prototype) or lam (probe)
    right: int  # held-out photos whose own species scored highest
    margin: float  # mean held-out (own species' cosine - best other's): reported, not compared
    without_scene: bool = False  # prototypes of the photos' part outside the background span

    def key(self) -> tuple[int, float]:
        """Better = more held-out photos right; then the more cautious setting (the larger kappa
        or lam: closer to the text rows). Margins do not compare: a row made of photos scores
        photos higher than a text row does, right or wrong."""
        return (self.right, self.param)

    def as_dict(self) -> dict:
        p = "inf" if math.isinf(self.param) else self.param
        return {
            "method": self.method,
            "param": p,
            "without_scene": self.without_scene,
            "right": self.right,
            "margin": round(self.margin, 5),
        }


@dataclass(frozen=True)
class RowsFit:
    """The chosen rows and how every candidate did."""

    rows: np.ndarray  # [C, D] unit rows (zero where a row has neither text nor photos)
    chosen: Candidate
    text: Candidate  # the untouched rows, for comparison
    candidates: tuple[Candidate, ...]
    heldout: np.ndarray  # [n, C] held-out cosines (or ``score`` s) of the chosen setting (for calibration)


def normalise(rows: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.divide(rows, norm, out=np.zeros_like(rows), where=norm > 1e-12)


def class_sums(emb: np.ndarray, y: np.ndarray, classes: int, weights: np.ndarray | None = None) -> np.ndarray:
    """``[classes, D]`` sums of ``emb`` (times ``weights``) per class (a sort and ``add.reduceat``:
    ``np.add.at`` is a hundred times slower on 10,000 photos)."""
    sums = np.zeros((classes, emb.shape[1]), dtype=np.float64)
    if len(y) == 0:
        return sums
    order = np.argsort(y, kind="stable")
    ys = y[order]
    vals = emb[order] if weights is None else emb[order] * weights[order, None]
    starts = np.flatnonzero(np.r_[True, ys[1:] != ys[:-1]])
    sums[ys[starts]] = np.add.reduceat(vals.astype(np.float64), starts, axis=0)
    return sums


def blend(text: np.ndarray, sums: np.ndarray, kappa: float) -> np.ndarray:
    """``normalise(kappa * text + sums)`` where a row has photos, its text row where it has none;
    ``kappa = inf`` keeps every text row (prototypes only where a row has no text)."""
    has_text = np.abs(text).sum(axis=1) > 0
    has_photos = np.abs(sums).sum(axis=1) > 0
    if math.isinf(kappa):
        return normalise(np.where(has_text[:, None], text, sums)).astype(np.float32)
    return normalise(np.where(has_photos[:, None], kappa * text + sums, text)).astype(np.float32)


def probe(
    emb: np.ndarray, y: np.ndarray, init: np.ndarray, scale: float, lam: float, steps: int = PROBE_STEPS
) -> np.ndarray:
    """Cosine softmax rows trained on ``emb``/``y`` from ``init`` (unit rows), pulled towards ``init``.

    Projected Nesterov gradient descent: after each step the rows go back to unit length, as the
    bundle's contract wants them. Rows that start at zero (no text, no photo) stay zero. The step
    is 1/L for the loss's Lipschitz bound, so no learning rate needs tuning.
    """
    n = len(y)
    live = np.abs(init).sum(axis=1) > 0
    if n == 0:
        return init.astype(np.float32)
    onehot = np.zeros((n, len(init)), dtype=np.float32)
    onehot[np.arange(n), y] = 1.0
    gram_top = float(np.linalg.norm(emb, ord=2)) ** 2 / n  # largest eigenvalue of E^T E / n
    step = 1.0 / (scale * scale * gram_top + lam)
    w = init.astype(np.float32).copy()
    v = w.copy()
    for t in range(steps):
        logits = scale * (emb @ v.T)
        logits[:, ~live] = -np.inf
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        grad = (scale / n) * ((p - onehot).T @ emb) + lam * (v - init)
        nxt = normalise(v - step * grad)
        nxt[~live] = 0.0
        v = nxt + (t / (t + 3.0)) * (nxt - w)
        w = nxt
    return w


def _score(cos: np.ndarray, y: np.ndarray) -> tuple[int, float]:
    own = cos[np.arange(len(y)), y]
    other = cos.copy()
    other[np.arange(len(y)), y] = -np.inf
    best_other = other.max(axis=1) if cos.shape[1] > 1 else np.full(len(y), -1.0)
    return int((own > best_other).sum()), float(np.mean(own - best_other)) if len(y) else 0.0


def scene_share(emb: np.ndarray, scene: np.ndarray) -> np.ndarray:
    """``|P e|^2`` per photo: its share in the span of ``scene`` (orthonormal rows), the runtime's
    blank score. One ``n x D x B`` product, computed once and shared with the background fit."""
    proj = emb @ np.asarray(scene, np.float32).T
    return np.einsum("nb,nb->n", proj, proj)


def _scene_weights(share: np.ndarray) -> np.ndarray:
    """``1 / |(I - P) e|`` per photo (0 for a photo that is all scene): summing ``w e`` and then
    projecting the sum off the scene gives the sum of the photos' re-normalised scene-free parts,
    without an ``n x D`` copy of them."""
    rest = 1.0 - share.astype(np.float64)
    return np.where(rest > 1e-6, 1.0 / np.sqrt(np.maximum(rest, 1e-6)), 0.0)


def _off_scene(sums: np.ndarray, scene: np.ndarray | None) -> np.ndarray:
    return sums if scene is None else sums - (sums @ scene.T) @ scene


def _cosines(a: np.ndarray, b: np.ndarray, ts: np.ndarray, ss: np.ndarray, tt: np.ndarray, kappa: float):
    """Held-out cosines with ``blend(text, sums, kappa)`` from ``a = E T^T`` and ``b = E S^T``
    (one pair of products for every kappa: ``|kappa t + s|^2 = kappa^2 |t|^2 + 2 kappa t.s + |s|^2``)."""
    has_photos = ss > 1e-12
    has_text = tt > 1e-12
    text_cos = np.where(has_text, a / np.sqrt(np.maximum(tt, 1e-12)), 0.0)
    if math.isinf(kappa):
        proto = b / np.sqrt(np.maximum(ss, 1e-12))
        return np.where(has_text, text_cos, np.where(has_photos, proto, 0.0))
    norm = np.sqrt(np.maximum(kappa * kappa * tt + 2 * kappa * ts + ss, 1e-12))
    return np.where(has_photos, (kappa * a + b) / norm, text_cos)


def fit(
    emb: np.ndarray,
    y: np.ndarray,
    text: np.ndarray,
    *,
    method: str = "prototype",
    scale: float = 1.0,
    fold_of: np.ndarray | None = None,
    scene: np.ndarray | None = None,
    share: np.ndarray | None = None,
    kappas: tuple[float, ...] = KAPPAS,
    lambdas: tuple[float, ...] = LAMBDAS,
    score: RowScorer | None = None,
) -> RowsFit:
    """Cross-validate the candidates of ``method`` (and the text rows), refit the best on all photos.

    ``emb`` [n, D] unit embeddings, ``y`` [n] row index of each photo's species in ``text`` [C, D].
    ``method``: ``prototype``, ``probe``, or ``auto`` (both; the better held-out score wins, ties
    go to the prototype: closed form, cheaper, no iterations). ``scale`` is the logit scale the
    probe trains at (the bundle's). ``scene`` (the bundle's background basis, orthonormal
    [B, D]) adds prototype candidates made of the photos' part outside it: a species row should
    describe the animal, and photos of one camera share its scene (night infrared, the same
    vegetation), which a raw prototype would learn too; CV decides which serves better.
    ``share``: :func:`scene_share` of ``emb``, when the caller has it already.
    ``score``: how the runtime ranks the rows when that is not by cosine (a ``class_mass`` bundle:
    the head's probability mass each row covers, which depends on every row at once); held-out
    photos are then scored by it on each fold's rows. ``None``: cosines, in closed form (a softmax
    ranks as its cosines do).
    """
    if method not in ("prototype", "probe", "auto"):
        raise ValueError(f"unknown method {method!r}")
    emb = np.asarray(emb, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    text = np.asarray(text, dtype=np.float32)
    c = len(text)
    fold_of = folds_mod.assign(y) if fold_of is None else fold_of
    views: dict[bool, tuple[np.ndarray | None, np.ndarray | None]] = {False: (None, None)}
    if scene is not None and len(scene):
        share = scene_share(emb, scene) if share is None else share
        views[True] = (_scene_weights(share), np.asarray(scene, np.float64))
    grid = [(TEXT, math.inf, False)]
    if method in ("prototype", "auto"):
        grid += [("prototype", k, v) for v in views for k in kappas if (k, v) != (math.inf, False)]
    if method in ("probe", "auto"):
        grid += [("probe", lam, False) for lam in lambdas]
    heldout = {g: np.zeros((len(y), c), dtype=np.float32) for g in grid}
    tt = np.einsum("cd,cd->c", text, text).astype(np.float64)
    a_all = emb @ text.T
    totals = {v: class_sums(emb, y, c, w) for v, (w, _) in views.items()}
    for f in range(folds_mod.count(fold_of)):
        test = fold_of == f
        train = ~test
        a = a_all[test]
        for v, (w, basis) in views.items():
            sums = _off_scene(
                totals[v] - class_sums(emb[test], y[test], c, None if w is None else w[test]), basis
            )
            b = emb[test] @ sums.T.astype(np.float32)
            ts = np.einsum("cd,cd->c", text, sums)
            ss = np.einsum("cd,cd->c", sums, sums)
            for g in grid:
                if g[2] != v:
                    continue
                if g[0] == "probe":
                    rows = probe(emb[train], y[train], blend(text, sums, math.inf), scale, g[1])
                    heldout[g][test] = emb[test] @ rows.T if score is None else score(rows, emb[test])
                elif score is not None:
                    heldout[g][test] = score(blend(text, sums, g[1]), emb[test])
                else:
                    heldout[g][test] = _cosines(a, b, ts, ss, tt, g[1])
    cands = []
    for g in grid:
        right, margin = _score(heldout[g], y)
        cands.append(Candidate(g[0], g[1], right, margin, g[2]))
    text_cand = cands[0]
    # the most held-out photos right, the most cautious on a tie, prototypes before the probe
    # (closed form, cheaper); the text rows ("no change") must be beaten by more photos right
    best = max(cands, key=lambda cand: (cand.key(), cand.method != "probe"))
    if best.right <= text_cand.right:
        best = text_cand
    w, basis = views[best.without_scene]
    sums = _off_scene(totals[best.without_scene], basis)
    if best.method == "probe":
        rows = probe(emb, y, blend(text, sums, math.inf), scale, best.param)
    else:
        rows = blend(text, sums, best.param)
    return RowsFit(
        rows, best, text_cand, tuple(cands), heldout[(best.method, best.param, best.without_scene)]
    )
