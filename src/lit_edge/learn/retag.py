"""Re-decide a database from its stored embeddings with another bundle, without decoding a photo.

After ``lit-edge learn`` (or a new species list, or other thresholds), ``lit-edge db retag DB
--bundle NEW`` gives every media row that kept its embedding the decision the new bundle makes,
as a new run of the database (``runs.command`` = ``retag``) through :class:`lit_edge.db.writer.Store`:
the media row keeps its id (so people's annotations stay attached), its predictions are replaced,
and its embedding is stored again under the new run, as the writer's contract wants. Rows without
an embedding (failures, ``--no-embeddings``) keep their old decision and are counted.

The bundle must embed like the runs that made the embeddings (the same model: see
:mod:`lit_edge.learn.verified`). A kill mid-way leaves some rows re-decided and the rest as they
were; running it again re-decides them all once more: nothing is duplicated or lost.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lit_edge.device.classify import Classifier, ClassifyConfig
from lit_edge.errors import UserError
from lit_edge.learn.verified import check_run

log = logging.getLogger(__name__)

CHUNK = 2048


@dataclass(frozen=True)
class RetagConfig:
    bundle: Path
    classify: ClassifyConfig = field(default_factory=ClassifyConfig)


@dataclass(frozen=True)
class RetagResult:
    run_id: int
    retagged: int
    changed: int  # rows whose decided name changed
    kept: int  # rows without an embedding: decision left as it was
    before: dict[str, int]  # decided name -> rows, before (retagged rows only)
    after: dict[str, int]


def _with_embeddings(reader) -> Iterator[tuple[list, np.ndarray]]:
    """(media rows, their embeddings) in chunks: media and embeddings walked side by side in id order."""
    media = reader.iter_media(predictions=False)
    row = next(media, None)
    for ids, vectors in reader.iter_embeddings(chunk=CHUNK, dtype=np.float32):
        rows, keep = [], []
        for j, media_id in enumerate(ids.tolist()):
            while row is not None and row.id < media_id:
                row = next(media, None)
            if row is not None and row.id == media_id:
                rows.append(row)
                keep.append(j)
        if rows:
            yield rows, vectors[keep]


#: What a retag copies of each media row: everything but the decision, which it makes anew.
_KEPT = (
    "path", "frame_index", "kind", "status", "error", "captured_at", "time_source", "latitude",
    "longitude", "altitude", "relative_altitude", "width", "height", "file_size", "offset_s",
    "duration_s", "saved_frame",
)  # fmt: skip


def _record(m, decision, vector):
    from lit_edge.db.writer import MediaRecord

    kept = {name: getattr(m, name) for name in _KEPT}
    return MediaRecord(**kept, source=m.source or "", decision=decision, embedding=vector)


def retag(db: Path, config: RetagConfig) -> RetagResult:
    """Write a ``retag`` run into ``db`` with ``config.bundle``'s decisions; see the module doc."""
    from lit_edge.db.reader import Reader
    from lit_edge.db.writer import RunInfo, Store
    from lit_edge.device.pipeline import open_bundle

    db = Path(db)
    if not db.is_file():
        raise UserError(f"database not found: {db}; pass the .db file that 'lit-edge tag' wrote")
    bundle = open_bundle(config.bundle)
    m = bundle.manifest
    classifier = Classifier(
        bundle.text_embeddings,
        bundle.labels,
        m.model.logit_scale,
        m.model.logit_bias,
        config.classify,
        m.scoring,
    )
    dim = bundle.text_embeddings.shape[1]
    with Reader(db) as reader:
        runs = {r.id: r for r in reader.runs()}
        total = reader.count_media()
        made = Counter(row.run_id for row in reader.iter_media(predictions=False) if row.run_id is not None)
    before: Counter[str] = Counter()
    after: Counter[str] = Counter()
    retagged = changed = 0
    checked: set[int] = set()
    with Store(db) as store, Reader(db) as reader:
        run_id = None
        for rows, vectors in _with_embeddings(reader):
            if vectors.shape[1] != dim:
                raise UserError(
                    f"{db}: its embeddings are {vectors.shape[1]}-d but {bundle.root} is {dim}-d: they "
                    "come from another model; retag with a bundle of the model that tagged it"
                )
            for rid in {r.run_id for r in rows} - checked - {None}:
                if rid in runs:
                    check_run(db, runs[rid], bundle)
                checked.add(rid)
            if run_id is None:
                flavours = sorted({runs[r].flavour for r in made if r in runs and runs[r].flavour})
                settings = {"classify": asdict(config.classify), "from_runs": sorted(made)}
                info = RunInfo("retag", str(db), bundle=bundle, flavour=",".join(flavours), settings=settings)
                run_id = store.start_run(info)
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-6)
            for row, decision, vector in zip(rows, classifier(vectors), vectors, strict=True):
                before[row.top_name or ""] += 1
                after[decision.name] += 1
                changed += decision.name != (row.top_name or "")
                store.put(_record(row, decision, vector))
                retagged += 1
        if run_id is None:
            raise UserError(
                f"{db}: no stored embeddings to retag (tagged with --no-embeddings, or by lit-edge 0.1); "
                "tag the photos again to store them"
            )
    log.info("%s: retagged %d rows with %s (%d decisions changed)", db, retagged, bundle.root, changed)
    return RetagResult(run_id, retagged, changed, total - retagged, dict(before), dict(after))
