"""Read a detection database (the schema in ``lit_edge.device.schema``) into typed records.

Every writer works from these records, never from SQL, so the schema is interpreted in one place:
timestamps are parsed once, predictions are attached to their media in rank order, and a file that
is not a detection database is refused with one line instead of a SQL traceback.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path

from lit_edge.errors import UserError


@dataclass(frozen=True)
class Prediction:
    """One of a media row's top-k classes (``rank`` 1 = best)."""

    rank: int
    label_id: int
    scientific_name: str
    common_name: str
    score: float


@dataclass(frozen=True)
class MediaRecord:
    """One photo or classified frame, with its decision and its top-k predictions."""

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

    @property
    def ok(self) -> bool:
        return self.status == "done"

    @cached_property
    def timestamp(self) -> datetime | None:
        """``captured_at`` parsed; naive when the camera's clock gave no offset (EXIF)."""
        return parse_time(self.captured_at)

    @property
    def is_photo(self) -> bool:
        return self.frame_index is None or self.frame_index < 0

    @property
    def name(self) -> str:
        """The file name (or the address and frame number for live sources)."""
        if self.is_photo:
            return Path(self.path).name
        return f"{self.path}#{self.frame_index}"


@dataclass(frozen=True)
class RunRecord:
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

    @property
    def classifier(self) -> str:
        """``model name`` + ``version``: Camtrap DP's ``classifiedBy``."""
        return f"{self.model_name} {self.model_version}".strip() or "lit-edge"


@dataclass(frozen=True)
class Detections:
    """Everything in a database: its runs and its media (oldest first)."""

    db: Path
    runs: tuple[RunRecord, ...]
    media: tuple[MediaRecord, ...]

    @property
    def latest_run(self) -> RunRecord | None:
        return self.runs[-1] if self.runs else None

    def run(self, run_id: int | None) -> RunRecord | None:
        for r in self.runs:
            if r.id == run_id:
                return r
        return self.latest_run

    @property
    def photos(self) -> tuple[MediaRecord, ...]:
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


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def read_detections(db: Path | str) -> Detections:
    """Open ``db`` read-only and read all runs, media and predictions."""
    db = Path(db).expanduser()
    if not db.is_file():
        raise UserError(f"database not found: {db}; make one with 'lit-edge tag FOLDER --db {db}'")
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise UserError(
            f"{db}: not a SQLite database ({exc}); pass the file 'lit-edge tag --db' wrote"
        ) from exc
    try:
        missing = {"runs", "media", "predictions"} - tables
        if missing:
            raise UserError(
                f"{db}: not a lit-edge detection database (no {', '.join(sorted(missing))} table); "
                "pass the file 'lit-edge tag --db' wrote"
            )
        return Detections(db=db, runs=_read_runs(conn), media=_read_media(conn))
    finally:
        conn.close()


def _get(row: sqlite3.Row, cols: set[str], name: str, default=None):
    return row[name] if name in cols else default


def _read_runs(conn: sqlite3.Connection) -> tuple[RunRecord, ...]:
    cols = _columns(conn, "runs")
    out = []
    for r in conn.execute("SELECT * FROM runs ORDER BY id"):

        def g(name: str, r=r) -> str:
            return str(_get(r, cols, name) or "")

        out.append(
            RunRecord(
                id=int(r["id"]),
                command=g("command"),
                source=g("source"),
                bundle=g("bundle"),
                bundle_sha256=g("bundle_sha256"),
                model_name=g("model_name"),
                model_version=g("model_version"),
                backend=g("backend"),
                flavour=g("flavour"),
                settings=_settings(_get(r, cols, "settings")),
                host=g("host"),
                lit_edge_version=g("lit_edge_version"),
                started_at=g("started_at"),
                finished_at=g("finished_at"),
                status=g("status"),
            )
        )
    return tuple(out)


def _select(conn: sqlite3.Connection, table: str, wanted: tuple[str, ...], order: str) -> sqlite3.Cursor:
    """Plain tuples in ``wanted`` order (NULL for a column an older database lacks): fast to read."""
    have = _columns(conn, table)
    cols = ", ".join(c if c in have else f"NULL AS {c}" for c in wanted)
    cur = conn.cursor()
    cur.row_factory = None
    return cur.execute(f"SELECT {cols} FROM {table} ORDER BY {order}")


_PRED_COLS = ("media_id", "rank", "label_id", "scientific_name", "common_name", "score")
_MEDIA_COLS = (
    "id", "run_id", "path", "frame_index", "source", "captured_at", "time_source", "latitude",
    "longitude", "altitude", "width", "height", "status", "error", "top_label_id", "top_name",
    "top_rank", "top_score", "saved_frame",
)  # fmt: skip


def _read_media(conn: sqlite3.Connection) -> tuple[MediaRecord, ...]:
    preds: dict[int, list[Prediction]] = {}
    for media_id, rank, label_id, sci, common, score in _select(
        conn, "predictions", _PRED_COLS, "media_id, rank"
    ):
        preds.setdefault(media_id, []).append(
            Prediction(
                rank=int(rank),
                label_id=int(label_id) if label_id is not None else -1,
                scientific_name=sci or "",
                common_name=common or "",
                score=float(score or 0.0),
            )
        )
    out = []
    for row in _select(conn, "media", _MEDIA_COLS, "id"):
        (mid, run_id, path, frame, source, captured_at, time_source, lat, lon, alt, w, h) = row[:12]
        (status, error, top_label_id, top_name, top_rank, top_score, saved_frame) = row[12:]
        out.append(
            MediaRecord(
                id=int(mid),
                run_id=run_id,
                path=str(path or ""),
                frame_index=int(frame) if frame is not None else -1,
                source=source,
                captured_at=captured_at,
                time_source=time_source,
                latitude=lat,
                longitude=lon,
                altitude=alt,
                width=w,
                height=h,
                status=str(status or ""),
                error=error,
                top_label_id=top_label_id,
                top_name=top_name,
                top_rank=top_rank,
                top_score=float(top_score) if top_score is not None else None,
                predictions=tuple(preds.get(mid, ())),
                saved_frame=saved_frame,
            )
        )
    return tuple(out)
