"""The detection database: one writer thread, batched transactions, resumable by path.

Why one writer thread: SQLite allows one writer at a time, and a commit per photo would cost more
than classifying it. The pipeline hands finished :class:`MediaRecord` s to :meth:`Store.put`; the
writer commits them in batches (up to ``batch`` records or every ``flush_s`` seconds). A media row
and its predictions are committed together, so a kill at any moment leaves each photo either fully
recorded or absent (and then processed by the next run), never half-written or duplicated: the
unique index on ``(path, frame_index)`` and an upsert make a retry replace, not add.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import queue
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from lit_edge import __version__
from lit_edge.device import schema
from lit_edge.device.classify import Decision
from lit_edge.device.sqlite import sqlite_utils
from lit_edge.errors import UserError

log = logging.getLogger(__name__)
_MEDIA_COLS = [c for c in schema.MEDIA if c != "id"]
_PRED_COLS = [c for c in schema.PREDICTIONS if c != "id"]


def utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class MediaRecord:
    """One photo or frame, finished: its media row fields, its decision, and optionally its pixels."""

    path: str
    frame_index: int = -1
    source: str = ""
    status: str = "done"
    error: str | None = None
    captured_at: str | None = None
    time_source: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    altitude: float | None = None
    width: int | None = None
    height: int | None = None
    file_size: int | None = None
    decision: Decision | None = None
    frame: np.ndarray | None = field(default=None, repr=False)  # RGB, kept only to save it


def open_db(path: Path) -> sqlite_utils.Database:
    """Open (creating if needed) a detection database with the schema, in WAL mode."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise UserError(f"database folder {path.parent} does not exist; create it or choose another --db")
    try:
        db = sqlite_utils.Database(path)
        db.enable_wal()
        db.conn.execute("PRAGMA synchronous=NORMAL")
        db.conn.execute("PRAGMA busy_timeout=10000")
        db["runs"].create(schema.RUNS, pk="id", if_not_exists=True)
        db["media"].create(schema.MEDIA, pk="id", if_not_exists=True)
        db["predictions"].create(
            schema.PREDICTIONS, pk="id", foreign_keys=[("media_id", "media", "id")], if_not_exists=True
        )
        db["media"].create_index(["path", "frame_index"], unique=True, if_not_exists=True)
        db["predictions"].create_index(["media_id"], if_not_exists=True)
    except Exception as exc:  # sqlite3.DatabaseError and friends
        if isinstance(exc, UserError):
            raise
        raise UserError(f"{path}: cannot open as a lit-edge database ({exc}); choose another --db") from exc
    return db


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


class Store:
    """A run's view of the database: resume set, a writer thread, and run bookkeeping."""

    def __init__(
        self,
        path: Path,
        *,
        batch: int = 64,
        flush_s: float = 1.0,
        saver: FrameSaver | None = None,
        queue_size: int = 1024,
    ):
        self.path = Path(path)
        self.db = open_db(self.path)
        self.batch, self.flush_s, self.saver = batch, flush_s, saver
        self.run_id: int | None = None
        self.written = 0
        self._q: queue.Queue = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    # -- run bookkeeping (main thread) ---------------------------------------------------------
    def start_run(
        self, command: str, source: str, *, bundle=None, backend: str = "", flavour: str = "", settings=None
    ) -> int:
        row = {
            "command": command,
            "source": source,
            "bundle": str(bundle.root) if bundle else "",
            "bundle_sha256": _sha(bundle.root / "manifest.json") if bundle else "",
            "model_name": bundle.manifest.model.name if bundle else "",
            "model_version": bundle.manifest.model.version if bundle else "",
            "backend": backend,
            "flavour": flavour,
            "settings": json.dumps(settings or {}, default=str, sort_keys=True),
            "host": platform.node(),
            "lit_edge_version": __version__,
            "started_at": utcnow(),
            "status": "running",
        }
        with self.db.conn:
            self.run_id = self.db["runs"].insert(row).last_pk
        self._thread = threading.Thread(target=self._writer, name="lit-edge-db-writer", daemon=True)
        self._thread.start()
        return self.run_id

    def finish_run(self, status: str = "finished") -> None:
        """Flush everything queued, stop the writer, and mark the run."""
        self.close_writer()
        if self.run_id is not None:
            with self.db.conn:
                self.db["runs"].update(self.run_id, {"status": status, "finished_at": utcnow()})

    def done_paths(self, retry_failed: bool) -> set[str]:
        """Paths of photos (frame_index -1) that this run must skip: done, and failed unless retried."""
        where = "status = 'done'" if retry_failed else "status IN ('done', 'failed')"
        rows = self.db.conn.execute(f"SELECT path FROM media WHERE frame_index = -1 AND {where}")
        return {r[0] for r in rows}

    def next_frame_index(self, path: str) -> int:
        """First free frame index of a live source, so a second run never collides with the first."""
        row = self.db.conn.execute("SELECT MAX(frame_index) FROM media WHERE path = ?", [path]).fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    # -- writing -------------------------------------------------------------------------------
    def put(self, rec: MediaRecord) -> None:
        if self._error is not None:
            raise UserError(f"{self.path}: database writer failed: {self._error}")
        self._q.put(rec)

    @property
    def queue_depth(self) -> int:
        return self._q.qsize()

    def close_writer(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._q.put(None)
            self._thread.join()
        self._thread = None
        if self._error is not None:
            raise UserError(f"{self.path}: database writer failed: {self._error}")

    def _writer(self) -> None:
        db = sqlite_utils.Database(self.path)
        db.conn.execute("PRAGMA synchronous=NORMAL")
        db.conn.execute("PRAGMA busy_timeout=10000")
        try:
            stop = False
            while not stop:
                items: list[MediaRecord] = []
                try:
                    first = self._q.get(timeout=self.flush_s)
                except queue.Empty:
                    continue
                if first is None:
                    break
                items.append(first)
                while len(items) < self.batch:
                    try:
                        nxt = self._q.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        stop = True
                        break
                    items.append(nxt)
                self._write(db.conn, items)
        except BaseException as exc:  # surfaced to the pipeline by put()/close_writer()
            log.error("database writer stopped: %s", exc)
            self._error = exc
        finally:
            db.conn.close()

    def _write(self, conn, items: list[MediaRecord]) -> None:
        now = utcnow()
        cols = ", ".join(_MEDIA_COLS)
        marks = ", ".join("?" for _ in _MEDIA_COLS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in _MEDIA_COLS if c not in ("path", "frame_index"))
        upsert = (
            f"INSERT INTO media ({cols}) VALUES ({marks}) "
            f"ON CONFLICT(path, frame_index) DO UPDATE SET {updates} RETURNING id"
        )
        pred_sql = (
            f"INSERT INTO predictions ({', '.join(_PRED_COLS)}) VALUES ({', '.join('?' for _ in _PRED_COLS)})"
        )
        with conn:
            for rec in items:
                d = rec.decision
                saved = None
                if self.saver is not None and rec.frame is not None:
                    saved = self.saver.save(rec, self.run_id or 0)
                row = {
                    **{k: getattr(rec, k) for k in _MEDIA_COLS if hasattr(rec, k)},
                    "run_id": self.run_id,
                    "processed_at": now,
                    "saved_frame": saved,
                    "top_label_id": d.label_id if d else None,
                    "top_name": d.name if d else None,
                    "top_rank": d.rank if d else None,
                    "top_score": d.score if d else None,
                }
                media_id = conn.execute(upsert, [row.get(c) for c in _MEDIA_COLS]).fetchone()[0]
                conn.execute("DELETE FROM predictions WHERE media_id = ?", [media_id])
                if d:
                    conn.executemany(
                        pred_sql,
                        [
                            (media_id, r, p.label_id, p.scientific_name, p.common_name, p.score)
                            for r, p in enumerate(d.top, start=1)
                        ],
                    )
        self.written += len(items)

    def close(self) -> None:
        self.close_writer()
        self.db.conn.close()


def _sha(path: Path) -> str:
    from lit_edge.bundle import sha256_file

    return sha256_file(path) if path.is_file() else ""


@dataclass
class Summary:
    """What a database holds: decided taxa with counts, and failures with reasons."""

    done: int
    failed: int
    taxa: list[tuple[str, str, int]]  # (rank, name, count), most frequent first
    failures: list[tuple[str, str]]  # (path, error), first ones


def summary(db_path: Path | str, run_id: int | None = None, max_failures: int = 20) -> Summary:
    """Counts per decided taxon and the failures, for the whole database or one run."""
    if not os.path.exists(db_path):
        raise UserError(f"database not found: {db_path}")
    db = sqlite_utils.Database(db_path)
    try:
        where, args = ("WHERE run_id = ?", [run_id]) if run_id is not None else ("", [])
        and_ = "AND" if where else "WHERE"
        conn = db.conn
        done = conn.execute(f"SELECT COUNT(*) FROM media {where} {and_} status = 'done'", args).fetchone()[0]
        failed = conn.execute(
            f"SELECT COUNT(*) FROM media {where} {and_} status = 'failed'", args
        ).fetchone()[0]
        taxa = conn.execute(
            f"SELECT top_rank, top_name, COUNT(*) AS n FROM media {where} {and_} status = 'done' "
            "GROUP BY top_rank, top_name ORDER BY n DESC, top_name",
            args,
        ).fetchall()
        failures = conn.execute(
            f"SELECT path, error FROM media {where} {and_} status = 'failed' ORDER BY path LIMIT ?",
            [*args, max_failures],
        ).fetchall()
    finally:
        db.conn.close()
    return Summary(done, failed, [tuple(t) for t in taxa], [tuple(f) for f in failures])
