"""The verified photos of one or more databases, as arrays for :func:`lit_edge.learn.learn`.

Read through :mod:`lit_edge.db` (the one owner of the SQL): every media row's *current* annotation
(the newest that nothing replaces and that is not retracted; an undo leaves a photo unverified)
and its stored embedding. A verified photo without an embedding (tagged with ``--no-embeddings``)
is counted and left out: ``learn`` never decodes a photo.

Embeddings are only comparable with the tower that made them. Every run that made one of the
embeddings must have run the bundle's model (same model name and version; the learned bundles of
a model keep both, and its image towers), and the vectors must have the bundle's width: otherwise
``learn`` stops with one line naming the database and the run.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lit_edge.bundle import Bundle
from lit_edge.errors import UserError
from lit_edge.learn.core import Verified

log = logging.getLogger(__name__)


def check_run(db: Path, run, bundle: Bundle) -> None:
    model = bundle.manifest.model
    same = run.model_name == model.name and (run.model_version or "") == (model.version or "")
    if not same:
        made = f"{run.model_name} {run.model_version}".strip() or "an unknown model"
        raise UserError(
            f"{db}: run {run.id} stored embeddings from {made!r}, but {bundle.root} is "
            f"{f'{model.name} {model.version}'.strip()!r}; learn with a bundle of the model that tagged it"
        )


def read_verified(dbs: Sequence[Path], bundle: Bundle) -> Verified:
    """Current annotations + embeddings of every database in ``dbs``, checked against ``bundle``."""
    from lit_edge.db.reader import Reader

    dim = bundle.text_embeddings.shape[1]
    embs, labels, commons, sources = [], [], [], []
    for db in dbs:
        db = Path(db)
        if not db.is_file():
            raise UserError(f"database not found: {db}; pass the .db file that 'lit-edge tag' wrote")
        with Reader(db) as reader:
            current = reader.current_annotations()
            runs = {r.id: r for r in reader.runs()}
            run_of = {m.id: m.run_id for m in reader.iter_media(predictions=False) if m.id in current}
            ids, vectors = reader.load_embeddings(sorted(current), dtype=np.float32)
        if len(ids) and vectors.shape[1] != dim:
            raise UserError(
                f"{db}: its embeddings are {vectors.shape[1]}-d but {bundle.root} is {dim}-d: they come "
                "from another model; learn with a bundle of the model that tagged it"
            )
        for run_id in sorted({run_of.get(int(i)) for i in ids} - {None}):
            check_run(db, runs[run_id], bundle)
        if len(ids):  # float16 storage: back to unit length
            embs.append(vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-6))
        ann = [current[int(i)] for i in ids]
        labels += [a.label for a in ann]
        commons += [a.common_name for a in ann]
        counts = Counter(a.label for a in ann)
        sources.append(
            {
                "path": str(db.resolve()),
                "verified": len(current),
                "with_embedding": int(len(ids)),
                "labels": dict(sorted(counts.items())),
            }
        )
        if len(current) > len(ids):
            log.warning(
                "%s: %d verified photos have no stored embedding (tagged with --no-embeddings?); "
                "they are left out",
                db,
                len(current) - len(ids),
            )
    emb = np.concatenate(embs).astype(np.float32) if embs else np.zeros((0, dim), np.float32)
    return Verified(emb, tuple(labels), tuple(commons), tuple(sources))
