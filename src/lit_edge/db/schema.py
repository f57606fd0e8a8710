"""The detection database's schema, version by version, and the one way to open a database.

A database is created by replaying the history: the version 1 tables (what lit-edge 0.1 wrote),
then every migration in :data:`MIGRATIONS`. A fresh database and a migrated 0.1 database are thus
the same shape by construction, and the next version is one function appended to the list.

Version 2 (the tables and their columns; docs/design.md says what each one means):

``runs``         id, command, source, bundle, bundle_sha256, model_name, model_version, backend,
                 flavour, settings (JSON), host, lit_edge_version, started_at, finished_at, status,
                 shard (``I/N`` or NULL)
``media``        id, run_id, path, frame_index, source, captured_at, time_source, latitude,
                 longitude, altitude, width, height, file_size, status, error, processed_at,
                 saved_frame, top_label_id, top_name, top_rank, top_score, kind, offset_s,
                 duration_s, relative_altitude; unique ``(path, frame_index)``
``predictions``  id, media_id, position (1 = best; ``rank`` in version 1), label_id,
                 scientific_name, common_name, score
``embeddings``   media_id (primary key), run_id, dim, vector (``dim`` float16, little-endian)
``annotations``  id, media_id, label, common_name, observation_type, reviewer, created_at,
                 replaces, retracted (an append-only history; see ``reader.current_annotations``)

How a file is recognised: a version 2+ database carries ``PRAGMA application_id`` =
:data:`APPLICATION_ID` and its version in ``PRAGMA user_version``. A 0.1 database has neither, and
is recognised by its three tables. Anything else (another application's SQLite file, a text file)
is refused in one line, and so is a database newer than this code: its columns may mean something
this code does not know.

Why plain ``sqlite3`` and ``ALTER TABLE`` (no sqlite-utils): see the package docstring.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

from lit_edge.errors import UserError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
APPLICATION_ID = 0x4C697445  # "LitE": marks a file as a lit-edge detection database (v2 and later)

# media.kind
PHOTO, CLIP, FRAME, LIVE = "photo", "clip", "frame", "live"
MEDIA_KINDS = (PHOTO, CLIP, FRAME, LIVE)
# media.status
DONE, FAILED = "done", "failed"
# runs.status
RUNNING, FINISHED, INTERRUPTED = "running", "finished", "interrupted"

V1_TABLES = ("runs", "media", "predictions")

#: The columns of each table at :data:`SCHEMA_VERSION`, in table order (the writer and reader use
#: these names; a test checks them against the tables a fresh and a migrated database really have).
COLUMNS: dict[str, tuple[str, ...]] = {
    "runs": (
        "id", "command", "source", "bundle", "bundle_sha256", "model_name", "model_version", "backend",
        "flavour", "settings", "host", "lit_edge_version", "started_at", "finished_at", "status", "shard",
    ),
    "media": (
        "id", "run_id", "path", "frame_index", "source", "captured_at", "time_source", "latitude",
        "longitude", "altitude", "width", "height", "file_size", "status", "error", "processed_at",
        "saved_frame", "top_label_id", "top_name", "top_rank", "top_score", "kind", "offset_s",
        "duration_s", "relative_altitude",
    ),
    "predictions": ("id", "media_id", "position", "label_id", "scientific_name", "common_name", "score"),
    "embeddings": ("media_id", "run_id", "dim", "vector"),
    "annotations": (
        "id", "media_id", "label", "common_name", "observation_type", "reviewer", "created_at", "replaces",
        "retracted",
    ),
}  # fmt: skip

# Version 1, as lit-edge 0.1 created it (through sqlite-utils): the base every database starts from.
_V1 = (
    """CREATE TABLE "runs" ("id" INTEGER PRIMARY KEY, "command" TEXT, "source" TEXT, "bundle" TEXT,
    "bundle_sha256" TEXT, "model_name" TEXT, "model_version" TEXT, "backend" TEXT, "flavour" TEXT,
    "settings" TEXT, "host" TEXT, "lit_edge_version" TEXT, "started_at" TEXT, "finished_at" TEXT,
    "status" TEXT)""",
    """CREATE TABLE "media" ("id" INTEGER PRIMARY KEY, "run_id" INTEGER, "path" TEXT,
    "frame_index" INTEGER, "source" TEXT, "captured_at" TEXT, "time_source" TEXT, "latitude" REAL,
    "longitude" REAL, "altitude" REAL, "width" INTEGER, "height" INTEGER, "file_size" INTEGER,
    "status" TEXT, "error" TEXT, "processed_at" TEXT, "saved_frame" TEXT, "top_label_id" INTEGER,
    "top_name" TEXT, "top_rank" TEXT, "top_score" REAL)""",
    """CREATE TABLE "predictions" ("id" INTEGER PRIMARY KEY, "media_id" INTEGER REFERENCES "media"("id"),
    "rank" INTEGER, "label_id" INTEGER, "scientific_name" TEXT, "common_name" TEXT, "score" REAL)""",
    'CREATE UNIQUE INDEX "idx_media_path_frame_index" ON "media" ("path", "frame_index")',
    'CREATE INDEX "idx_predictions_media_id" ON "predictions" ("media_id")',
)


def _create_v1(conn: sqlite3.Connection) -> None:
    for sql in _V1:
        conn.execute(sql)


def _v1_to_v2(conn: sqlite3.Connection) -> None:
    """Clips, frames, drones, shards, embeddings and annotations; ``rank`` becomes ``position``.

    ``kind`` is derived from ``frame_index`` (0.1 wrote photos at -1 and live or video frames at
    >= 0; it had no clip rows). ``predictions.rank`` was the top-k position, renamed so that "rank"
    means a taxon rank only.
    """
    conn.execute("""ALTER TABLE media ADD COLUMN "kind" TEXT NOT NULL DEFAULT 'photo'""")
    conn.execute("UPDATE media SET kind = 'live' WHERE frame_index >= 0")
    for col in ("offset_s", "duration_s", "relative_altitude"):
        conn.execute(f'ALTER TABLE media ADD COLUMN "{col}" REAL')
    conn.execute('ALTER TABLE runs ADD COLUMN "shard" TEXT')
    conn.execute('ALTER TABLE predictions RENAME COLUMN "rank" TO "position"')
    conn.execute(
        """CREATE TABLE "embeddings" ("media_id" INTEGER PRIMARY KEY REFERENCES "media"("id"),
        "run_id" INTEGER, "dim" INTEGER NOT NULL, "vector" BLOB NOT NULL)"""
    )
    conn.execute(
        """CREATE TABLE "annotations" ("id" INTEGER PRIMARY KEY,
        "media_id" INTEGER NOT NULL REFERENCES "media"("id"), "label" TEXT NOT NULL, "common_name" TEXT,
        "observation_type" TEXT, "reviewer" TEXT, "created_at" TEXT,
        "replaces" INTEGER REFERENCES "annotations"("id"), "retracted" INTEGER NOT NULL DEFAULT 0)"""
    )
    conn.execute('CREATE INDEX "idx_annotations_media_id" ON "annotations" ("media_id")')
    # detect's per-run summary on a months-long live database (bench/bench_db.py measures it)
    conn.execute('CREATE INDEX "idx_media_run_id" ON "media" ("run_id")')


#: ``MIGRATIONS[v - 1]`` takes a database from version ``v`` to ``v + 1``; append, never edit.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1_to_v2]
assert len(MIGRATIONS) == SCHEMA_VERSION - 1


def _not_ours(path: Path, why: str) -> UserError:
    return UserError(
        f"{path}: not a lit-edge detection database ({why}); pass the file 'lit-edge tag --db' wrote"
    )


def detect_version(conn: sqlite3.Connection, path: Path) -> int:
    """The schema version of an open database: 0 for an empty one, 1 for lit-edge 0.1's.

    Raises a :class:`UserError` for a file that is not a detection database, or one newer than
    :data:`SCHEMA_VERSION`.
    """
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise _not_ours(path, f"not SQLite: {exc}") from exc
    if app_id == APPLICATION_ID:
        if version > SCHEMA_VERSION:
            from lit_edge import __version__

            raise UserError(
                f"{path}: database schema version {version} is newer than this lit-edge "
                f"({__version__}, schema {SCHEMA_VERSION}) knows; upgrade lit-edge to use it"
            )
        if version < 2:
            raise _not_ours(path, f"lit-edge's application id with schema version {version}")
        return version
    if app_id != 0 or version != 0:
        raise _not_ours(path, f"application id {app_id:#x}, user_version {version}")
    if not tables:
        return 0
    missing = [t for t in V1_TABLES if t not in tables]
    if missing:
        raise _not_ours(path, f"no {', '.join(missing)} table")
    return 1


def _configure(conn: sqlite3.Connection) -> None:
    # WAL: readers (db summary, review) never block the writer; NORMAL is durable at every
    # checkpoint and never corrupts; a busy timeout rides out another process's commit.
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=10000")


def connect(path: Path | str) -> sqlite3.Connection:
    """Open ``path`` for writing, creating it or migrating it to :data:`SCHEMA_VERSION` first.

    The connection is in autocommit mode (``isolation_level=None``): writers say ``BEGIN`` and
    ``COMMIT`` themselves, so that what is one transaction is visible in the code. Migrations run in
    one ``BEGIN IMMEDIATE`` transaction, with the version read again under its lock: two processes
    opening one old database at once migrate it once, and a kill mid-way leaves it as it was.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise UserError(f"database folder {path.parent} does not exist; create it or choose another --db")
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise UserError(f"{path}: cannot open the database ({exc}); choose another --db") from exc
    try:
        detect_version(conn, path)  # refuse a foreign file before changing anything in it
        try:
            _configure(conn)
        except sqlite3.Error as exc:  # a read-only file or folder, a full disk
            raise UserError(
                f"{path}: cannot write the database ({exc}); check its permissions or choose another --db"
            ) from exc
        migrate(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring an open database to :data:`SCHEMA_VERSION` in one transaction; returns the old version."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            old = detect_version(conn, path)
            if old == 0:
                _create_v1(conn)
            for step in MIGRATIONS[max(old, 1) - 1 :]:
                step(conn)
            if old != SCHEMA_VERSION:
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    except sqlite3.DatabaseError as exc:
        raise UserError(f"{path}: cannot prepare the database ({exc}); choose another --db") from exc
    if 0 < old < SCHEMA_VERSION:
        log.info("%s: migrated the database from schema version %d to %d", path, old, SCHEMA_VERSION)
    return old


def connect_readonly(path: Path | str) -> tuple[sqlite3.Connection, int]:
    """Open an existing database read-only: ``(connection, schema version)``; never creates or migrates.

    An older database is read as it is (the reader maps its columns, see ``reader.py``), so a
    read-only command never writes to a file the user handed it.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"database not found: {path}; make one with 'lit-edge tag FOLDER --db {path}'")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=10000")
    except sqlite3.Error as exc:
        raise UserError(f"{path}: cannot open the database ({exc}); check the path and permissions") from exc
    try:
        version = detect_version(conn, path)
        if version == 0:
            raise _not_ours(path, f"no {', '.join(V1_TABLES)} table")
    except BaseException:
        conn.close()
        raise
    return conn, version


def table_columns(conn: sqlite3.Connection, table: str) -> tuple[str, ...]:
    """The columns a table really has, in order (empty when the table does not exist)."""
    return tuple(row[1] for row in conn.execute(f'PRAGMA table_info("{table}")'))
