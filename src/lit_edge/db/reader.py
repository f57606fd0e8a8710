"""Reading a detection database into typed records, streaming, and read-only.

Every exporter, the report, the summary and the review app work from these records, never from
SQL, so the schema is interpreted in one place: predictions are attached to their media in
position order, timestamps are parsed once, and a file that is not a detection database is
refused with one line instead of a SQL traceback.

Big databases (a season of live frames is millions of rows) are read as streams:
:meth:`Reader.iter_media` walks media and predictions side by side in id order, holding one row at
a time; :func:`read_detections` loads everything at once, for the exports of a card or two.

Older databases are read as they are, never migrated: a read-only command (``db summary``,
``db export``, ``report``) must not write to a file the user handed it, and copying a big file
into memory to migrate the copy would cost its size in RAM. The columns a version lacks are read
through :data:`_FALLBACK` (``kind`` from ``frame_index``, ``position`` from ``rank``) or as NULL;
the tables it lacks read as empty.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path

import numpy as np

from lit_edge.db import schema
from lit_edge.errors import UserError


@dataclass(frozen=True)
class Prediction:
    """One of a media row's top-k classes (``position`` 1 = best)."""

    position: int
    label_id: int
    scientific_name: str
    common_name: str
    score: float


@dataclass(frozen=True)
class MediaRow:
    """One photo, clip, clip frame or live frame, with its decision and its top-k predictions."""

    id: int
    run_id: int | None
    path: str
    frame_index: int
    source: str | None
    captured_at: str | None
    time_source: str | None
    latitude: float | None
    longitude: float | None
    altitude: float | None
    width: int | None
    height: int | None
    status: str
    error: str | None
    top_label_id: int | None
    top_name: str | None
    top_rank: str | None
    top_score: float | None
    predictions: tuple[Prediction, ...] = ()
    saved_frame: str | None = None  # a saved JPEG of a live frame, if the runtime kept one
    kind: str = schema.PHOTO
    file_size: int | None = None
    processed_at: str | None = None
    offset_s: float | None = None
    duration_s: float | None = None
    relative_altitude: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == schema.DONE

    @cached_property
    def timestamp(self) -> datetime | None:
        """``captured_at`` parsed; naive when the camera's clock gave no offset (EXIF)."""
        return parse_time(self.captured_at)

    @property
    def is_photo(self) -> bool:
        return self.kind == schema.PHOTO

    @property
    def is_file(self) -> bool:
        """A row of its own file (a photo or a whole clip), not a frame within one."""
        return self.frame_index < 0

    @property
    def name(self) -> str:
        """The file name (or the path and frame number for frames)."""
        if self.is_file:
            return Path(self.path).name
        return f"{self.path}#{self.frame_index}"


@dataclass(frozen=True)
class RunRow:
    """One ``lit-edge tag``/``detect`` invocation: model, bundle and settings."""

    id: int
    command: str
    source: str
    bundle: str
    bundle_sha256: str
    model_name: str
    model_version: str
    backend: str
    flavour: str
    settings: dict
    host: str
    lit_edge_version: str
    started_at: str
    finished_at: str
    status: str
    shard: str | None = None

    @property
    def classifier(self) -> str:
        """``model name`` + ``version``: Camtrap DP's ``classifiedBy``."""
        return f"{self.model_name} {self.model_version}".strip() or "lit-edge"


@dataclass(frozen=True)
class Annotation:
    """A person's verification of a media row (one entry of its append-only history)."""

    id: int
    media_id: int
    label: str
    common_name: str
    observation_type: str
    reviewer: str
    created_at: str
    replaces: int | None
    retracted: bool


@dataclass(frozen=True)
class DecisionGroup:
    """Media rows that share a kind, a status, a decision and a day (see ``Reader.decision_groups``).

    ``passes``: their ``top_score`` reaches the rule's ``min_score`` (``has_score``: it is set).
    """

    kind: str
    ok: bool
    top_name: str | None
    top_rank: str | None
    has_score: bool
    passes: bool
    day: str
    count: int
    score_sum: float
    score_max: float

    @property
    def top_score(self) -> float | None:
        """A score that classifies like the group's own: for ``classify_media``, which reads it."""
        if not self.has_score:
            return None
        return float("inf") if self.passes else float("-inf")


@dataclass(frozen=True)
class Detections:
    """Everything in a (small) database: its runs and its media, oldest first."""

    db: Path
    runs: tuple[RunRow, ...]
    media: tuple[MediaRow, ...]

    @property
    def latest_run(self) -> RunRow | None:
        return self.runs[-1] if self.runs else None

    def run(self, run_id: int | None) -> RunRow | None:
        for r in self.runs:
            if r.id == run_id:
                return r
        return self.latest_run

    @property
    def photos(self) -> tuple[MediaRow, ...]:
        return tuple(m for m in self.media if m.is_photo)


def parse_time(text: str | None) -> datetime | None:
    """ISO 8601 (with ``Z``, an offset, or none) -> datetime; None for missing or unreadable text."""
    if not text:
        return None
    text = text.strip().replace(" ", "T", 1)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _settings(text: str | None) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {"settings": text}
    return value if isinstance(value, dict) else {"settings": value}


#: How a column that an older schema lacks is read (anything else missing reads as NULL).
_FALLBACK = {
    ("media", "kind"): f"CASE WHEN frame_index < 0 THEN '{schema.PHOTO}' ELSE '{schema.LIVE}' END",
    ("predictions", "position"): "rank",
}

# MediaRow's fields in order, as SQL that gives each its Python value (so rows build positionally)
_MEDIA_SELECT = (
    "id", "run_id", "path COALESCE({}, '')", "frame_index COALESCE({}, -1)", "source", "captured_at",
    "time_source", "latitude", "longitude", "altitude", "width", "height", "status COALESCE({}, '')",
    "error", "top_label_id", "top_name", "top_rank", "top_score CAST({} AS REAL)",
    # predictions go here
    "saved_frame", f"kind COALESCE({{}}, '{schema.PHOTO}')", "file_size", "processed_at", "offset_s",
    "duration_s", "relative_altitude",
)  # fmt: skip
_SPLIT = 18  # MediaRow fields before ``predictions``
_PRED_SELECT = (
    "media_id", "position", "label_id COALESCE({}, -1)", "scientific_name COALESCE({}, '')",
    "common_name COALESCE({}, '')", "score COALESCE(CAST({} AS REAL), 0.0)",
)  # fmt: skip
_ANN = schema.COLUMNS["annotations"]


class Reader:
    """A read-only view of a detection database (any version this code knows). A context manager."""

    def __init__(self, path: Path | str):
        self.path = Path(path).expanduser()
        self.conn, self.version = schema.connect_readonly(self.path)
        self._cols = {t: set(schema.table_columns(self.conn, t)) for t in schema.COLUMNS}

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    def _col(self, table: str, column: str) -> str:
        """``column`` as SQL for this database's version: itself, its fallback, or NULL."""
        if column in self._cols[table]:
            return column
        return _FALLBACK.get((table, column), "NULL")

    def _select(
        self, table: str, wanted: Iterable[str], tail: str = "", args: list | tuple = ()
    ) -> sqlite3.Cursor:
        """Plain tuples in ``wanted`` order, whatever the version; fast to read.

        ``wanted`` names columns; a name may carry a SQL wrapper (``COALESCE({}, -1)``) after a
        space, where ``{}`` stands for the column.
        """
        exprs = []
        for w in wanted:
            name, _, wrap = w.partition(" ")
            exprs.append((wrap or "{}").format(self._col(table, name)) + f" AS {name}")
        cur = self.conn.cursor()
        cur.row_factory = None
        try:
            return cur.execute(f"SELECT {', '.join(exprs)} FROM {table} {tail}", list(args))
        except sqlite3.DatabaseError as exc:
            raise UserError(f"{self.path}: cannot read the database ({exc}); is it damaged?") from exc

    def has(self, table: str) -> bool:
        return bool(self._cols[table])

    # -- runs ----------------------------------------------------------------------------------
    def runs(self) -> tuple[RunRow, ...]:
        out = []
        for r in self._select("runs", schema.COLUMNS["runs"], "ORDER BY id"):
            d = dict(zip(schema.COLUMNS["runs"], r, strict=True))
            text = {k: str(v or "") for k, v in d.items() if k not in ("id", "settings", "shard")}
            out.append(RunRow(id=int(d["id"]), settings=_settings(d["settings"]), shard=d["shard"], **text))
        return tuple(out)

    # -- media ---------------------------------------------------------------------------------
    def count_media(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM media").fetchone()[0])

    def iter_media(
        self,
        *,
        run_id: int | None = None,
        kinds: Iterable[str] | None = None,
        predictions: bool = True,
        ok: bool | None = None,
    ) -> Iterator[MediaRow]:
        """Media rows in id order, each with its predictions; optionally one run's, some kinds, or
        only done (``ok=True``) or only failed (``ok=False``) rows.

        Memory stays flat however big the database: media and their predictions are two cursors
        walked side by side (a merge on the media id, which both are ordered by).
        """
        cond, args = self._where(run_id, kinds)
        if ok is not None:
            cond += (" AND " if cond else "WHERE ") + f"status {'=' if ok else 'IS NOT'} '{schema.DONE}'"
        rows = self._select("media", _MEDIA_SELECT, f"{cond} ORDER BY id", args)
        if not predictions:
            for row in rows:
                yield MediaRow(*row[:_SPLIT], (), *row[_SPLIT:])
            return
        # the predictions of the same media rows, by media id; in insert order, sorted per row below
        tail = (f"WHERE media_id IN (SELECT id FROM media {cond}) " if cond else "") + "ORDER BY media_id, id"
        preds = self._select("predictions", _PRED_SELECT, tail, args)
        pending = next(preds, None)
        for row in rows:
            media_id = row[0]
            mine = []
            while pending is not None and pending[0] <= media_id:
                if pending[0] == media_id:
                    mine.append(Prediction(*pending[1:]))
                pending = next(preds, None)
            if len(mine) > 1:
                mine.sort(key=_position)
            yield MediaRow(*row[:_SPLIT], tuple(mine), *row[_SPLIT:])

    def _where(self, run_id: int | None, kinds: Iterable[str] | None, alias: str = "") -> tuple[str, list]:
        where, args = [], []
        if run_id is not None:
            where.append(f"{alias}run_id = ?")
            args.append(run_id)
        if kinds is not None:
            kinds = tuple(kinds)
            kind = self._col("media", "kind")
            where.append(f"{alias}{kind} IN ({', '.join('?' for _ in kinds)})")
            args.extend(kinds)
        return ("WHERE " + " AND ".join(where)) if where else "", args

    def decision_groups(self, *, run_id: int | None = None, min_score: float = 0.0) -> list[DecisionGroup]:
        """Media rows grouped by everything a decision rule and the summary look at, counted by SQLite.

        A summary of a million rows is then a few hundred groups for Python to classify, not a
        million records to build (``bench/bench_db.py``).
        """
        cond, args = self._where(run_id, None)
        kind = self._col("media", "kind")
        day = "CASE WHEN length(captured_at) >= 10 THEN substr(captured_at, 1, 10) ELSE 'unknown' END"
        sql = (
            f"SELECT {kind}, status, top_name, top_rank, top_score IS NOT NULL, "
            f"COALESCE(top_score >= ?, 0), {day}, COUNT(*), COALESCE(SUM(top_score), 0.0), MAX(top_score) "
            f"FROM media {cond} GROUP BY 1, 2, 3, 4, 5, 6, 7"
        )
        try:
            rows = self.conn.execute(sql, [min_score, *args]).fetchall()
        except sqlite3.DatabaseError as exc:
            raise UserError(f"{self.path}: cannot read the database ({exc}); is it damaged?") from exc
        return [
            DecisionGroup(
                kind=k or schema.PHOTO,
                ok=status == schema.DONE,
                top_name=name,
                top_rank=rank,
                has_score=bool(has),
                passes=bool(passes),
                day=d,
                count=int(n),
                score_sum=float(total),
                score_max=float(best) if best is not None else 0.0,
            )
            for k, status, name, rank, has, passes, d, n, total, best in rows
        ]

    def common_names(self, names: Iterable[str], *, run_id: int | None = None) -> dict[str, str]:
        """scientific name -> a common name the predictions (of one run's media) give it, if any."""
        names = sorted(set(names))
        cond, args = self._where(run_id, None)
        media = f"AND media_id IN (SELECT id FROM media {cond}) " if cond else ""
        out: dict[str, str] = {}
        for start in range(0, len(names), 500):
            part = names[start : start + 500]
            rows = self._select(
                "predictions",
                ("scientific_name", "common_name MIN({})"),
                f"WHERE scientific_name IN ({', '.join('?' for _ in part)}) AND common_name != '' "
                f"{media}GROUP BY scientific_name",
                [*part, *args],
            )
            out.update(dict(rows))
        return out

    # -- annotations ---------------------------------------------------------------------------
    def annotation_history(self, media_id: int) -> tuple[Annotation, ...]:
        """Every annotation of one media row, oldest first (corrections and undos included)."""
        if not self.has("annotations"):
            return ()
        return tuple(
            _annotation(r)
            for r in self._select("annotations", _ANN, "WHERE media_id = ? ORDER BY id", [media_id])
        )

    def current_annotations(
        self, *, run_id: int | None = None, kinds: Iterable[str] | None = None
    ) -> dict[int, Annotation]:
        """media id -> its current annotation: the newest that nothing replaces and is not retracted.

        An undo is a retracted row that replaces the undone one, so undoing a media row's only
        annotation leaves it unverified, and correcting one keeps only the correction. ``run_id``
        and ``kinds`` keep the media rows of one run, or of some kinds, only.
        """
        if not self.has("annotations"):
            return {}
        cond, args = self._where(run_id, kinds)
        tail = (f"WHERE media_id IN (SELECT id FROM media {cond}) " if cond else "") + "ORDER BY media_id, id"
        out: dict[int, Annotation] = {}
        group: list[Annotation] = []
        for r in self._select("annotations", _ANN, tail, args):
            a = _annotation(r)
            if group and group[0].media_id != a.media_id:
                _current(group, out)
                group = []
            group.append(a)
        _current(group, out)
        return out

    # -- embeddings ----------------------------------------------------------------------------
    def count_embeddings(self) -> int:
        if not self.has("embeddings"):
            return 0
        return int(self.conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])

    def iter_embeddings(
        self, chunk: int = 4096, dtype: type = np.float16
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(media ids, vectors)`` in media id order, ``chunk`` rows at a time (one dim per chunk)."""
        if not self.has("embeddings"):
            return
        ids: list[int] = []
        blobs: list[bytes] = []
        dim = None
        for media_id, d, blob in self._select(
            "embeddings", ("media_id", "dim", "vector"), "ORDER BY media_id"
        ):
            if ids and (d != dim or len(ids) >= chunk):
                yield _stack(ids, blobs, dim, dtype)
                ids, blobs = [], []
            dim = d
            ids.append(media_id)
            blobs.append(blob)
        if ids:
            yield _stack(ids, blobs, dim, dtype)

    def load_embeddings(self, ids: Iterable[int], dtype: type = np.float16) -> tuple[np.ndarray, np.ndarray]:
        """``(found ids, vectors)`` for the media ids asked for (in their order; missing ones left out)."""
        wanted = [int(i) for i in ids]
        if not self.has("embeddings") or not wanted:
            return np.zeros(0, np.int64), np.zeros((0, 0), dtype)
        found: dict[int, tuple[int, bytes]] = {}
        for start in range(0, len(wanted), 500):  # SQLite's parameter limit
            part = wanted[start : start + 500]
            for media_id, d, blob in self._select(
                "embeddings",
                ("media_id", "dim", "vector"),
                f"WHERE media_id IN ({', '.join('?' for _ in part)})",
                part,
            ):
                found[media_id] = (d, blob)
        order = [i for i in wanted if i in found]
        dims = {found[i][0] for i in order}
        if len(dims) > 1:
            raise UserError(
                f"{self.path}: the embeddings asked for have different sizes {sorted(dims)} "
                "(runs with different bundles); ask for one run's media"
            )
        if not order:
            return np.zeros(0, np.int64), np.zeros((0, 0), dtype)
        return _stack(order, [found[i][1] for i in order], dims.pop(), dtype)


def _stack(ids: list[int], blobs: list[bytes], dim: int, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    vectors = np.frombuffer(b"".join(blobs), dtype="<f2").reshape(len(ids), dim)
    return np.asarray(ids, dtype=np.int64), vectors.astype(dtype, copy=True)


def _annotation(r: tuple) -> Annotation:
    d = dict(zip(_ANN, r, strict=True))
    return Annotation(
        id=int(d["id"]),
        media_id=int(d["media_id"]),
        label=d["label"] or "",
        common_name=d["common_name"] or "",
        observation_type=d["observation_type"] or "",
        reviewer=d["reviewer"] or "",
        created_at=d["created_at"] or "",
        replaces=d["replaces"],
        retracted=bool(d["retracted"]),
    )


def _current(group: list[Annotation], out: dict[int, Annotation]) -> None:
    replaced = {a.replaces for a in group if a.replaces is not None}
    live = [a for a in group if a.id not in replaced and not a.retracted]
    if live:
        out[live[-1].media_id] = live[-1]


def _position(p: Prediction) -> int:
    return p.position


def read_detections(db: Path | str) -> Detections:
    """Everything at once: convenient for a card's worth of photos; stream a big one with :class:`Reader`."""
    with Reader(db) as r:
        return Detections(db=r.path, runs=r.runs(), media=tuple(r.iter_media()))
