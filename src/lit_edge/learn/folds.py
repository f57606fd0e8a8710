"""Cross-validation folds over verified photos: every choice ``learn`` makes is scored on held-out photos.

Stratified: each label's photos are dealt round-robin over the folds (after a seeded shuffle), so
every fold holds a share of every label and a label with two photos is split between two folds.
With ten photos or fewer this is leave-one-out; above :data:`MANY`, five folds.
"""

from __future__ import annotations

import numpy as np

MAX_FOLDS = 10
#: Above this many photos, 5 folds: each fit still sees 80 % of them, at half the cost.
MANY = 1000


def assign(labels: np.ndarray, max_folds: int = MAX_FOLDS, seed: int = 0) -> np.ndarray:
    """Fold index (0 .. K-1) of every photo, K = min(max_folds, number of photos), 5 above :data:`MANY`."""
    labels = np.asarray(labels)
    n = len(labels)
    k = max(1, min(max_folds if n <= MANY else 5, n))
    rng = np.random.default_rng(seed)
    out = np.empty(n, dtype=np.int64)
    offset = 0
    for lab in np.unique(labels):
        idx = np.flatnonzero(labels == lab)
        rng.shuffle(idx)
        out[idx] = (offset + np.arange(len(idx))) % k
        offset += len(idx)
    return out


def count(fold_of: np.ndarray) -> int:
    return int(fold_of.max()) + 1 if len(fold_of) else 0
