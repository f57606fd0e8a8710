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
from dataclasses import dataclass

import numpy as np

from lit_edge.learn import folds as folds_mod

TEXT = "text"
KAPPAS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, math.inf)
LAMBDAS = (1.0, 4.0, 16.0, 64.0, 256.0)
PROBE_STEPS = 60


@dataclass(frozen=True)
class Candidate:
    """One setting, scored on held-out photos."""

    method: str  # text (the bundle's rows untouched; prototypes for added species) | prototype | probe
    param: float  # kappa (prototype) or lam (probe)
    right: int  # held-out photos whose own species scored highest
    margin: float  # mean held-out (own species' cosine - best other's)
    without_scene: bool = False  # prototypes of the photos' part outside the background span

    def key(self) -> tuple[int, float]:
        return (self.right, self.margin)

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
    heldout: np.ndarray  # [n, C] held-out cosines of the chosen setting (for calibration)


def normalise(rows: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.divide(rows, norm, out=np.zeros_like(rows), where=norm > 1e-12)


def class_sums(emb: np.ndarray, y: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray]:
    sums = np.zeros((classes, emb.shape[1]), dtype=np.float64)
    np.add.at(sums, y, emb)
    return sums, np.bincount(y, minlength=classes)


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


def without_scene(emb: np.ndarray, scene: np.ndarray | None) -> np.ndarray:
    """Each photo's part outside the scene span (``scene``: orthonormal [B, D], the bundle's
    background basis), re-normalised: what is left when the scene is taken out."""
    if scene is None or not len(scene):
        return emb
    rest = emb - (emb @ scene.T) @ scene
    return normalise(rest).astype(np.float32)


def fit(
    emb: np.ndarray,
    y: np.ndarray,
    text: np.ndarray,
    *,
    method: str = "prototype",
    scale: float = 1.0,
    fold_of: np.ndarray | None = None,
    scene: np.ndarray | None = None,
    kappas: tuple[float, ...] = KAPPAS,
    lambdas: tuple[float, ...] = LAMBDAS,
) -> RowsFit:
    """Cross-validate the candidates of ``method`` (and the text rows), refit the best on all photos.

    ``emb`` [n, D] unit embeddings, ``y`` [n] row index of each photo's species in ``text`` [C, D].
    ``method``: ``prototype``, ``probe``, or ``auto`` (both; the better held-out score wins, ties
    go to the prototype: closed form, cheaper, no iterations). ``scale`` is the logit scale the
    probe trains at (the bundle's). ``scene`` (the bundle's background basis, orthonormal
    [B, D]) adds prototype candidates made of the photos' part outside it: a species row should
    describe the animal, and photos of one camera share its scene (night infrared, the same
    vegetation), which a raw prototype would learn too; CV decides which serves better.
    """
    if method not in ("prototype", "probe", "auto"):
        raise ValueError(f"unknown method {method!r}")
    emb = np.asarray(emb, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    text = np.asarray(text, dtype=np.float32)
    fold_of = folds_mod.assign(y) if fold_of is None else fold_of
    views = {False: emb}
    if scene is not None and len(scene):
        views[True] = without_scene(emb, np.asarray(scene, np.float32))
    grid = [(TEXT, math.inf, False)]
    if method in ("prototype", "auto"):
        grid += [("prototype", k, v) for v in views for k in kappas if (k, v) != (math.inf, False)]
    if method in ("probe", "auto"):
        grid += [("probe", lam, False) for lam in lambdas]
    heldout = {g: np.zeros((len(y), len(text)), dtype=np.float32) for g in grid}
    for f in range(folds_mod.count(fold_of)):
        test = fold_of == f
        train = ~test
        f_sums = {v: class_sums(views[v][train], y[train], len(text))[0] for v in views}
        for g in grid:
            kind, param, v = g
            if kind == "probe":
                rows = probe(emb[train], y[train], blend(text, f_sums[v], math.inf), scale, param)
            else:
                rows = blend(text, f_sums[v], param)
            heldout[g][test] = emb[test] @ rows.T
    cands = []
    for g in grid:
        right, margin = _score(heldout[g], y)
        cands.append(Candidate(g[0], g[1], right, margin, g[2]))
    text_cand = cands[0]
    # the best held-out score; on equal scores the earlier candidate (prototypes before the probe:
    # closed form, cheaper) -- and the text rows ("no change") must be beaten outright
    best = max(cands, key=lambda c: (c.key(), c.method != "probe"))
    if best.key() <= text_cand.key():
        best = text_cand
    sums = class_sums(views[best.without_scene], y, len(text))[0]
    if best.method == "probe":
        rows = probe(emb, y, blend(text, sums, math.inf), scale, best.param)
    else:
        rows = blend(text, sums, best.param)
    return RowsFit(
        rows, best, text_cand, tuple(cands), heldout[(best.method, best.param, best.without_scene)]
    )
