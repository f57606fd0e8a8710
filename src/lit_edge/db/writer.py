"""Writing a detection database: one writer thread, batched transactions, resumable by path.

Why one writer thread: SQLite allows one writer at a time, and a commit per photo would cost more
than classifying it. The pipeline hands finished :class:`MediaRecord` s to :meth:`Store.put`; the
writer commits them in batches (up to ``batch`` records, or whatever is queued after ``flush_s``
seconds). A media row, its predictions and its embedding are committed in one transaction, so a
kill at any moment leaves each photo either fully recorded or absent (and then processed by the
next run), never half-written or duplicated: the unique index on ``(path, frame_index)`` and an
upsert make a retry replace, not add, and keep the row's id (so annotations stay attached).

People's annotations are written here too (:func:`add_annotation`, :func:`undo_annotation`), never
over a prediction: an append-only history whose current entry the reader computes.
"""

from __future__ import annotations

import json
import logging
import platform
import queue
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lit_edge import __version__
from lit_edge.db import schema
from lit_edge.errors import UserError

if TYPE_CHECKING:
    from lit_edge.bundle import Bundle
    from lit_edge.device.classify import Decision

log = logging.getLogger(__name__)

_MEDIA_COLS = tuple(c for c in schema.COLUMNS["media"] if c != "id")
_PRED_COLS = tuple(c for c in schema.COLUMNS["predictions"] if c != "id")
_UPSERT = (
    f"INSERT INTO media ({', '.join(_MEDIA_COLS)}) VALUES ({', '.join('?' for _ in _MEDIA_COLS)}) "
    "ON CONFLICT(path, frame_index) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _MEDIA_COLS if c not in ("path", "frame_index"))
    + " RETURNING id"
)
_INSERT_PRED = (
    f"INSERT INTO predictions ({', '.join(_PRED_COLS)}) VALUES ({', '.join('?' for _ in _PRED_COLS)})"
)
_PUT_EMBEDDING = (
    "INSERT INTO embeddings (media_id, run_id, dim, vector) VALUES (?, ?, ?, ?) "
    "ON CONFLICT(media_id) DO UPDATE SET run_id = excluded.run_id, dim = excluded.dim, vector = excluded.vector"
)


def utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class StoreConfig:
    """How a :class:`Store` writes: batching, and where confident frames are saved (if anywhere)."""

    batch: int = 64  # records per transaction, at most
    flush_s: float = 1.0  # commit what is queued at least this often
    queue_size: int = 1024  # records waiting for the writer; put() blocks beyond (back-pressure)
    save_frames: Path | None = None  # write the pixels of records that carry ``frame`` here, as JPEG
    save_quota_mb: float = 500.0
    jpeg_quality: int = 90


@dataclass(frozen=True)
class RunInfo:
    """What a run records about itself in ``runs`` (the store adds host, version and times)."""

    command: str  # tag | detect | learn
    source: str  # the folder, glob, file or address as the user gave it
    bundle: Bundle | None = None
    backend: str = ""
    flavour: str = ""  # the image tower variant that ran (fp32, int8_cpu, ...)
    settings: dict = field(default_factory=dict)  # the run's typed config, as JSON
    shard: str | None = None  # "I/N" when this run does one shard of a bigger job


@dataclass
class MediaRecord:
    """One photo, clip, clip frame or live frame, finished: what the pipeline hands the writer.

    ``kind`` says which (``schema.MEDIA_KINDS``): photos and clips have ``frame_index`` -1, clip
    frames and live frames an index >= 0. ``embedding`` (the image tower's output, any float dtype,
    1-D) is stored as float16 when given; ``frame`` (RGB pixels) only to save a JPEG of it.
    """

    path: str
    frame_index: int = -1
    kind: str = schema.PHOTO
    source: str = ""
    status: str = schema.DONE
    error: str | None = None
    captured_at: str | None = None
    time_source: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    altitude: float | None = None
    relative_altitude: float | None = None  # metres above the take-off point (drones)
    width: int | None = None
    height: int | None = None
    file_size: int | None = None
    offset_s: float | None = None  # a clip frame's time from the clip's start
    duration_s: float | None = None  # a clip's length
    decision: Decision | None = None
    embedding: np.ndarray | None = field(default=None, repr=False)
    frame: np.ndarray | None = field(default=None, repr=False)

    def check(self) -> None:
        """Refuse a record the schema cannot hold (a programming error, found before it is queued)."""
        if self.kind not in schema.MEDIA_KINDS:
            raise ValueError(f"MediaRecord.kind {self.kind!r} is not one of {schema.MEDIA_KINDS}")
        if (self.frame_index < 0) != (self.kind in (schema.PHOTO, schema.CLIP)):
            raise ValueError(f"a {self.kind} record cannot have frame_index {self.frame_index}")
        if self.status not in (schema.DONE, schema.FAILED):
            raise ValueError(f"MediaRecord.status {self.status!r} is not done or failed")
        if self.embedding is not None and np.ndim(self.embedding) != 1:
            raise ValueError(f"MediaRecord.embedding must be 1-D, not shape {np.shape(self.embedding)}")


def embedding_blob(vector: np.ndarray) -> tuple[int, bytes]:
    """``(dim, bytes)``: the vector as little-endian float16, how ``embeddings.vector`` holds it.

    float16 halves the size at no cost that matters: a unit vector's components round to within
    1e-3 relative, far below the gap between a species' and its neighbour's cosine.
    """
    v = np.ascontiguousarray(vector, dtype="<f2").ravel()
    return v.size, v.tobytes()


class FrameSaver:
    """Writes confident frames as JPEG into a folder, stopping (with one log line) at a disk quota."""

    def __init__(self, folder: Path, quota_mb: float, quality: int = 90):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.quota = int(quota_mb * 1024 * 1024)
        self.quality = quality
        self.used = sum(p.stat().st_size for p in self.folder.rglob("*.jpg") if p.is_file())
        self._warned = False

    def save(self, rec: MediaRecord, run_id: int) -> str | None:
        import cv2

        ok, buf = cv2.imencode(
            ".jpg", cv2.cvtColor(rec.frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, self.quality]
        )
        if not ok:
            return None
        if self.used + buf.nbytes > self.quota:
            if not self._warned:
                log.warning(
                    "frame quota of %d MB reached in %s; not saving more", self.quota >> 20, self.folder
                )
                self._warned = True
            return None
        stem = f"run{run_id}_{max(rec.frame_index, 0):08d}_{Path(rec.path).stem}"[:120]
        out = self.folder / f"{stem}.jpg"
        out.write_bytes(buf.tobytes())
        self.used += buf.nbytes
        return str(out)


class _Flush:
    """A queue marker: commit what came before it, then set ``done``."""

    def __init__(self):
        self.done = threading.Event()


class Store:
    """A run's view of the database: resume queries, a writer thread, and run bookkeeping.

    Use it as a context manager. Leaving the ``with`` flushes every queued record, marks the run
    ``finished`` (``interrupted`` when an exception leaves it, or when the caller set
    :attr:`outcome`) and closes every connection::

        with Store(db, StoreConfig(batch=256)) as store:
            skip = store.done_paths(retry_failed=False)
            store.start_run(RunInfo("tag", folder, bundle=bundle))
            for rec in records:
                store.put(rec)
    """

    def __init__(self, path: Path | str, config: StoreConfig | None = None):
        self.path = Path(path)
        self.config = config or StoreConfig()
        self.conn = schema.connect(self.path)  # creates or migrates; refuses foreign and newer files
        self.saver = (
            FrameSaver(self.config.save_frames, self.config.save_quota_mb, self.config.jpeg_quality)
            if self.config.save_frames
            else None
        )
        self.run_id: int | None = None
        self.outcome = schema.FINISHED  # what close() marks the run, unless an exception leaves
        self.written = 0
        self._q: queue.Queue = queue.Queue(maxsize=max(1, self.config.queue_size))
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._closed = False

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.close(schema.INTERRUPTED if exc_type is not None else None)
        except UserError:
            if exc_type is None:
                raise
            log.exception("closing %s after an error", self.path)  # keep the original exception

    # -- run bookkeeping (the caller's thread) --------------------------------------------------
    def start_run(self, info: RunInfo) -> int:
        """Record the run and start the writer thread; returns the run's id."""
        if self.run_id is not None:
            raise RuntimeError("Store.start_run called twice; one Store records one run")
        b = info.bundle
        row = {
            "command": info.command,
            "source": info.source,
            "bundle": str(b.root) if b else "",
            "bundle_sha256": _sha(b.root / "manifest.json") if b else "",
            "model_name": b.manifest.model.name if b else "",
            "model_version": b.manifest.model.version if b else "",
            "backend": info.backend,
            "flavour": info.flavour,
            "settings": json.dumps(info.settings or {}, default=str, sort_keys=True),
            "host": platform.node(),
            "lit_edge_version": __version__,
            "started_at": utcnow(),
            "status": schema.RUNNING,
            "shard": info.shard,
        }
        cur = self.conn.execute(
            f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})", list(row.values())
        )
        self.run_id = int(cur.lastrowid)
        self._thread = threading.Thread(target=self._writer, name="lit-edge-db-writer", daemon=True)
        self._thread.start()
        return self.run_id

    def done_paths(self, retry_failed: bool = False) -> set[str]:
        """Paths of photos and whole clips (frame_index -1) to skip: done, and failed unless retried."""
        return {
            r[0]
            for r in self.conn.execute(
                f"SELECT path FROM media WHERE frame_index = -1 AND {_skip(retry_failed)}"
            )
        }

    def frames_done(self, path: str, retry_failed: bool = False) -> set[int]:
        """Frame indices of one clip already recorded (done, and failed unless retried)."""
        rows = self.conn.execute(
            f"SELECT frame_index FROM media WHERE path = ? AND frame_index >= 0 AND {_skip(retry_failed)}",
            [path],
        )
        return {int(r[0]) for r in rows}

    def next_frame_index(self, path: str) -> int:
        """First free frame index of a live source, so that a second run never collides with the first."""
        row = self.conn.execute("SELECT MAX(frame_index) FROM media WHERE path = ?", [path]).fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    # -- writing -------------------------------------------------------------------------------
    def put(self, rec: MediaRecord) -> None:
        """Queue a finished record (blocks while the queue is full: the writer sets the pace)."""
        if self._thread is None:
            raise RuntimeError("Store.put before start_run: every media row belongs to a run")
        self._raise_if_failed()
        rec.check()
        self._q.put(rec)

    def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        if self._thread is not None and self._thread.is_alive():
            marker = _Flush()
            self._q.put(marker)
            while not marker.done.wait(0.1):
                if not self._thread.is_alive():
                    break
        self._raise_if_failed()

    @property
    def queue_depth(self) -> int:
        return self._q.qsize()

    def close(self, status: str | None = None) -> None:
        """Flush, stop the writer, mark the run ``status`` (default :attr:`outcome`), close. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._thread is not None and self._thread.is_alive():
                self._q.put(None)
                self._thread.join()
            if self.run_id is not None:
                if self._error is not None:  # records were lost: the run did not finish
                    status = schema.INTERRUPTED
                self.conn.execute(
                    "UPDATE runs SET status = ?, finished_at = ? WHERE id = ?",
                    [status or self.outcome, utcnow(), self.run_id],
                )
        finally:
            self.conn.close()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise UserError(f"{self.path}: database writer failed: {self._error}; check the disk and rerun")

    def _writer(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=10000")
        stop = False
        try:
            while not stop:
                try:
                    first = self._q.get(timeout=self.config.flush_s)
                except queue.Empty:
                    continue
                items, markers = [], []
                nxt = first
                while True:
                    if nxt is None:
                        stop = True
                        break
                    if isinstance(nxt, _Flush):
                        markers.append(nxt)
                        break
                    items.append(nxt)
                    if len(items) >= self.config.batch:
                        break
                    try:
                        nxt = self._q.get_nowait()
                    except queue.Empty:
                        break
                if items:
                    self._write(conn, items)
                for m in markers:
                    m.done.set()
        except BaseException as exc:  # surfaced to the caller by put()/flush()/close()
            log.error("database writer stopped: %s", exc)
            self._error = exc
            while not stop:  # keep draining, so that a put() blocked on a full queue returns
                item = self._q.get()
                stop = item is None
                if isinstance(item, _Flush):
                    item.done.set()
        finally:
            conn.close()

    def _row(self, rec: MediaRecord, now: str) -> list:
        d = rec.decision
        saved = None
        if self.saver is not None and rec.frame is not None:
            saved = self.saver.save(rec, self.run_id or 0)
        row = {
            "run_id": self.run_id,
            "processed_at": now,
            "saved_frame": saved,
            "top_label_id": d.label_id if d else None,
            "top_name": d.name if d else None,
            "top_rank": d.rank if d else None,
            "top_score": float(d.score) if d else None,
        }
        return [row[c] if c in row else getattr(rec, c) for c in _MEDIA_COLS]

    def _write(self, conn: sqlite3.Connection, items: list[MediaRecord]) -> None:
        now = utcnow()
        rows = [self._row(rec, now) for rec in items]  # JPEGs are saved before the transaction
        conn.execute("BEGIN")
        try:
            for rec, row in zip(items, rows, strict=True):
                media_id = conn.execute(_UPSERT, row).fetchone()[0]
                conn.execute("DELETE FROM predictions WHERE media_id = ?", [media_id])
                if rec.decision is not None:
                    conn.executemany(
                        _INSERT_PRED,
                        [
                            (media_id, pos, p.label_id, p.scientific_name, p.common_name, float(p.score))
                            for pos, p in enumerate(rec.decision.top, start=1)
                        ],
                    )
                # predictions and embedding always come from the same run: a record without one
                # removes the embedding an earlier run left
                if rec.embedding is not None:
                    conn.execute(_PUT_EMBEDDING, [media_id, self.run_id, *embedding_blob(rec.embedding)])
                else:
                    conn.execute("DELETE FROM embeddings WHERE media_id = ?", [media_id])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.written += len(items)


def _skip(retry_failed: bool) -> str:
    return f"status = '{schema.DONE}'" if retry_failed else f"status IN ('{schema.DONE}', '{schema.FAILED}')"


def _sha(path: Path) -> str:
    from lit_edge.bundle import sha256_file

    return sha256_file(path) if path.is_file() else ""


# -- annotations (a person's word; never over a prediction) ---------------------------------------


@dataclass(frozen=True)
class NewAnnotation:
    """A verification to record: what a person says a media row shows."""

    media_id: int
    label: str  # scientific name, or blank / human / vehicle / unknown
    observation_type: str  # animal / blank / human / vehicle / unknown (Camtrap DP's)
    reviewer: str = ""
    common_name: str = ""
    replaces: int | None = None  # the annotation this one corrects, if any


def add_annotation(conn: sqlite3.Connection, new: NewAnnotation) -> int:
    """Append an annotation (``conn`` from ``schema.connect``); returns its id.

    ``replaces`` must name an annotation of the same media row: a correction of another photo's
    label would silently change what that photo is.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute("SELECT 1 FROM media WHERE id = ?", [new.media_id]).fetchone() is None:
            raise UserError(f"no media row {new.media_id}; annotate a row of this database")
        _check_replaces(conn, new.media_id, new.replaces)
        cur = conn.execute(
            "INSERT INTO annotations (media_id, label, common_name, observation_type, reviewer, created_at, "
            "replaces, retracted) VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
            [
                new.media_id,
                new.label,
                new.common_name,
                new.observation_type,
                new.reviewer,
                utcnow(),
                new.replaces,
            ],
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return int(cur.lastrowid)


def undo_annotation(conn: sqlite3.Connection, annotation_id: int, reviewer: str = "") -> int:
    """Retract an annotation: a new row (retracted = 1) that replaces it; returns the new row's id."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute(
            "SELECT media_id, label, common_name, observation_type FROM annotations WHERE id = ?",
            [annotation_id],
        ).fetchone()
        if row is None:
            raise UserError(f"no annotation {annotation_id} to undo")
        _check_replaces(conn, row[0], annotation_id)
        cur = conn.execute(
            "INSERT INTO annotations (media_id, label, common_name, observation_type, reviewer, created_at, "
            "replaces, retracted) VALUES (?, ?, ?, ?, ?, ?, ?, 1)",
            [*row, reviewer, utcnow(), annotation_id],
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return int(cur.lastrowid)


def _check_replaces(conn: sqlite3.Connection, media_id: int, replaces: int | None) -> None:
    if replaces is None:
        return
    row = conn.execute("SELECT media_id FROM annotations WHERE id = ?", [replaces]).fetchone()
    if row is None or row[0] != media_id:
        raise UserError(f"annotation {replaces} is not one of media row {media_id}'s; reload and retry")
    if conn.execute("SELECT 1 FROM annotations WHERE replaces = ?", [replaces]).fetchone():
        raise UserError(f"annotation {replaces} was already replaced; reload and retry")
