"""`lit_edge.db` on real SQLite files: the v1 -> v2 migration, refusals, the writer's atomicity under
SIGKILL, embeddings, annotation history, the one summary, and streaming a big database."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bundle_factory import COLOURS, make_bundle, solid, write_jpeg
from lit_edge.cli.app import app
from lit_edge.db import schema
from lit_edge.db.reader import Reader, read_detections
from lit_edge.db.summary import summarise, summary_lines
from lit_edge.db.writer import (
    MediaRecord,
    NewAnnotation,
    RunInfo,
    Store,
    StoreConfig,
    add_annotation,
    undo_annotation,
)
from lit_edge.device.classify import Decision, Prediction
from lit_edge.errors import UserError

runner = CliRunner()

# lit-edge 0.1's tables exactly as it created them (sqlite-utils 4.2, dumped from sqlite_master).
V1_DDL = [
    'CREATE TABLE "runs" (\n   "id" INTEGER PRIMARY KEY,\n   "command" TEXT,\n   "source" TEXT,\n'
    '   "bundle" TEXT,\n   "bundle_sha256" TEXT,\n   "model_name" TEXT,\n   "model_version" TEXT,\n'
    '   "backend" TEXT,\n   "flavour" TEXT,\n   "settings" TEXT,\n   "host" TEXT,\n'
    '   "lit_edge_version" TEXT,\n   "started_at" TEXT,\n   "finished_at" TEXT,\n   "status" TEXT\n)',
    'CREATE TABLE "media" (\n   "id" INTEGER PRIMARY KEY,\n   "run_id" INTEGER,\n   "path" TEXT,\n'
    '   "frame_index" INTEGER,\n   "source" TEXT,\n   "captured_at" TEXT,\n   "time_source" TEXT,\n'
    '   "latitude" REAL,\n   "longitude" REAL,\n   "altitude" REAL,\n   "width" INTEGER,\n'
    '   "height" INTEGER,\n   "file_size" INTEGER,\n   "status" TEXT,\n   "error" TEXT,\n'
    '   "processed_at" TEXT,\n   "saved_frame" TEXT,\n   "top_label_id" INTEGER,\n   "top_name" TEXT,\n'
    '   "top_rank" TEXT,\n   "top_score" REAL\n)',
    'CREATE TABLE "predictions" (\n   "id" INTEGER PRIMARY KEY,\n   "media_id" INTEGER REFERENCES '
    '"media"("id"),\n   "rank" INTEGER,\n   "label_id" INTEGER,\n   "scientific_name" TEXT,\n'
    '   "common_name" TEXT,\n   "score" REAL\n)',
    'CREATE UNIQUE INDEX "idx_media_path_frame_index"\n    ON "media" ("path", "frame_index")',
    'CREATE INDEX "idx_predictions_media_id"\n    ON "predictions" ("media_id")',
]

FOX = Prediction(0, "Vulpes vulpes", "red fox", 0.8)
BADGER = Prediction(1, "Meles meles", "European badger", 0.15)
DEER = Prediction(2, "Capreolus capreolus", "roe deer", 0.05)


def make_v1(path: Path) -> Path:
    """A database as lit-edge 0.1 left it: two runs, photos (done, failed), live frames, predictions."""
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    for sql in V1_DDL:
        con.execute(sql)
    runs = [
        (1, "tag", "/card", "/b", "ab" * 32, "lit", "1", "onnxruntime-cpu", "int8_cpu", '{"top_k": 3}', "h",
         "0.1.0", "2024-05-01T10:00:00Z", "2024-05-01T10:01:00Z", "finished"),
        (2, "detect", "rtsp://cam/1", "/b", "cd" * 32, "lit", "1", "onnxruntime-cpu", "fp32", "{}", "h",
         "0.1.0", "2024-05-02T10:00:00Z", None, "interrupted"),
    ]  # fmt: skip
    con.executemany(f"INSERT INTO runs VALUES ({', '.join('?' * 15)})", runs)
    media = [
        (1, 1, "/card/a.jpg", -1, "/card/a.jpg", "2024-05-01T06:30:00", "exif", 51.18, 5.65, 30.5, 96, 64,
         1234, "done", None, "2024-05-01T10:00:30Z", None, 0, "Vulpes vulpes", "species", 0.8),
        (2, 1, "/card/b.jpg", -1, "/card/b.jpg", "2024-05-01T06:31:00", "mtime", None, None, None, None,
         None, 10, "failed", "/card/b.jpg: cannot decode image", "2024-05-01T10:00:31Z", None, None, None,
         None, None),
        (3, 1, "/card/c.jpg", -1, "/card/c.jpg", "2024-05-01T07:00:00", "exif", None, None, None, 96, 64,
         999, "done", None, "2024-05-01T10:00:32Z", None, None, "Vulpes", "genus", 0.6),
        (4, 2, "rtsp://cam/1", 0, "rtsp://cam/1", "2024-05-02T10:00:01Z", "clock", None, None, None, 640,
         480, None, "done", None, "2024-05-02T10:00:02Z", "/frames/x.jpg", None, "uncertain", "uncertain",
         0.3),
        (5, 2, "rtsp://cam/1", 1, "rtsp://cam/1", "2024-05-02T10:00:02Z", "clock", None, None, None, 640,
         480, None, "done", None, "2024-05-02T10:00:03Z", None, None, "blank", "blank", 0.9),
    ]  # fmt: skip
    con.executemany(f"INSERT INTO media VALUES ({', '.join('?' * 21)})", media)
    preds = []
    for media_id in (1, 3, 4, 5):
        for rank, p in enumerate((FOX, BADGER, DEER), start=1):
            preds.append(
                (media_id, rank, p.label_id, p.scientific_name, p.common_name, p.score - media_id / 100)
            )
    con.executemany(
        "INSERT INTO predictions (media_id, rank, label_id, scientific_name, common_name, score) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        preds,
    )
    con.commit()
    con.close()
    return path


def dump(path: Path) -> dict[str, list[tuple]]:
    con = sqlite3.connect(path)
    try:
        return {
            t: con.execute(f"SELECT * FROM {t} ORDER BY id").fetchall()
            for t in ("runs", "media", "predictions")
        }
    finally:
        con.close()


def pragma(path: Path, name: str):
    con = sqlite3.connect(path)
    try:
        return con.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        con.close()


def shape(path: Path) -> dict:
    """Every table's columns (name, type, not null, default, pk) and every index, as SQLite reports them."""
    con = sqlite3.connect(path)
    try:
        tables = [
            r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
        ]
        return {
            "tables": {t: [r[1:] for r in con.execute(f"PRAGMA table_info({t})")] for t in tables},
            "indexes": sorted(
                (r[0], r[1], tuple(c[2] for c in con.execute(f"PRAGMA index_info({r[0]})")))
                for r in con.execute(
                    "SELECT name, tbl_name FROM sqlite_master WHERE type='index' AND sql IS NOT NULL"
                )
            ),
        }
    finally:
        con.close()


def decision(top=(FOX, BADGER, DEER), name=None, rank="species") -> Decision:
    return Decision(
        top=top, label_id=top[0].label_id, name=name or top[0].scientific_name, rank=rank, score=top[0].score
    )


# --- migration -----------------------------------------------------------------------------------


def test_v1_database_is_migrated_in_place_keeping_every_row_and_value(tmp_path):
    db = make_v1(tmp_path / "old.db")
    before = dump(db)
    assert pragma(db, "user_version") == 0
    with Store(db):
        pass
    assert pragma(db, "user_version") == schema.SCHEMA_VERSION == 2
    assert pragma(db, "application_id") == schema.APPLICATION_ID
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    runs = [dict(r) for r in con.execute("SELECT * FROM runs ORDER BY id")]
    media = [dict(r) for r in con.execute("SELECT * FROM media ORDER BY id")]
    preds = con.execute(
        "SELECT id, media_id, position, label_id, scientific_name, common_name, score FROM predictions ORDER BY id"
    ).fetchall()
    assert con.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0] == 0
    assert con.execute("SELECT COUNT(*) FROM annotations").fetchone()[0] == 0
    con.close()
    v1_runs = [c for c in schema.COLUMNS["runs"] if c != "shard"]
    assert [tuple(r[c] for c in v1_runs) for r in runs] == before["runs"]
    assert all(r["shard"] is None for r in runs)
    v1_media = schema.COLUMNS["media"][:21]
    assert [tuple(m[c] for c in v1_media) for m in media] == before["media"]
    assert [m["kind"] for m in media] == ["photo", "photo", "photo", "live", "live"]
    assert all(
        m["offset_s"] is None and m["duration_s"] is None and m["relative_altitude"] is None for m in media
    )
    assert [tuple(p) for p in preds] == before["predictions"]  # rank's values, now called position

    fresh = tmp_path / "fresh.db"
    with Store(fresh):
        pass
    assert shape(db) == shape(fresh)  # a migrated database is the same shape as a new one
    assert list(shape(fresh)["tables"]) == sorted(schema.COLUMNS)
    for table, cols in shape(fresh)["tables"].items():
        assert tuple(c[0] for c in cols) == schema.COLUMNS[table]
    with Store(db):  # opening it again is a no-op
        pass
    assert dump(db)["media"] == dump(db)["media"] and pragma(db, "user_version") == 2


def test_a_failed_migration_leaves_the_v1_database_as_it_was(tmp_path, monkeypatch):
    db = make_v1(tmp_path / "old.db")
    before = shape(db), dump(db)

    def half_done(conn):
        conn.execute("ALTER TABLE media ADD COLUMN kind TEXT")
        conn.execute("CREATE TABLE embeddings (media_id INTEGER)")
        raise sqlite3.OperationalError("disk I/O error (simulated)")

    monkeypatch.setattr(schema, "MIGRATIONS", [half_done])
    with pytest.raises(UserError, match="cannot prepare the database"):
        Store(db)
    assert (shape(db), dump(db)) == before and pragma(db, "user_version") == 0


def test_read_only_commands_read_a_v1_database_without_changing_it(tmp_path):
    db = make_v1(tmp_path / "old.db")
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    det = read_detections(db)
    assert [m.kind for m in det.media] == ["photo", "photo", "photo", "live", "live"]
    assert [p.position for p in det.media[0].predictions] == [1, 2, 3]
    assert det.media[0].predictions[0].scientific_name == "Vulpes vulpes"
    assert [m.is_photo for m in det.media] == [True, True, True, False, False]
    with Reader(db) as r:
        assert r.version == 1
        assert r.current_annotations() == {} and r.count_embeddings() == 0
        assert [m.id for m in r.iter_media(kinds=["live"])] == [4, 5]
    s = summarise(db)
    assert (s.total, s.done, s.failed, s.blank, s.uncertain) == (5, 4, 1, 1, 1)
    assert s.by_kind == {"photo": 3, "live": 2}
    out = runner.invoke(app, ["db", "summary", str(db)], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "5 media, 4 classified (1 blank), 1 failed" in out.output
    csv_out = tmp_path / "o.csv"
    assert runner.invoke(app, ["db", "export", str(db), "-f", "csv", "-o", str(csv_out)]).exit_code == 0
    assert "Vulpes vulpes" in csv_out.read_text()
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest and pragma(db, "user_version") == 0


# --- refusals ------------------------------------------------------------------------------------


def _newer(path: Path) -> Path:
    with Store(path):
        pass
    con = sqlite3.connect(path)
    con.execute("PRAGMA user_version = 3")
    con.close()
    return path


def test_a_database_newer_than_the_code_is_refused_in_one_line(tmp_path):
    db = _newer(tmp_path / "new.db")
    for open_it in (Store, Reader, schema.connect):
        with pytest.raises(UserError, match="schema version 3 is newer than this lit-edge") as e:
            open_it(db)
        assert "\n" not in str(e.value) and "upgrade lit-edge" in str(e.value)
    r = runner.invoke(app, ["db", "summary", str(db)])
    assert r.exit_code == 2 and r.output.startswith("error: ") and len(r.output.strip().splitlines()) == 1
    assert pragma(db, "user_version") == 3


@pytest.mark.parametrize("kind", ["text", "foreign-sqlite", "foreign-app-id", "partial"])
def test_a_file_that_is_not_a_detection_database_is_refused_and_left_alone(tmp_path, kind):
    db = tmp_path / "x.db"
    if kind == "text":
        db.write_text("field notes, not a database\n" * 100)
    else:
        con = sqlite3.connect(db)
        if kind == "foreign-sqlite":
            con.execute("CREATE TABLE birds (name TEXT)")
        elif kind == "foreign-app-id":
            con.execute("PRAGMA application_id = 1234")
            con.execute("CREATE TABLE runs (id INTEGER)")
        else:
            con.execute("CREATE TABLE media (id INTEGER)")
        con.commit()
        con.close()
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    for open_it in (Store, Reader):
        with pytest.raises(UserError, match="not a lit-edge detection database") as e:
            open_it(db)
        assert "\n" not in str(e.value)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest
    assert not Path(f"{db}-wal").exists()


def test_reading_never_creates_a_database(tmp_path):
    with pytest.raises(UserError, match="database not found"):
        Reader(tmp_path / "missing.db")
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(UserError, match="not a lit-edge detection database"):
        Reader(empty)
    assert not (tmp_path / "missing.db").exists() and empty.stat().st_size == 0


# --- writing -------------------------------------------------------------------------------------


def test_store_writes_media_predictions_and_embedding_together_and_upserts(tmp_path):
    db = tmp_path / "d.db"
    rng = np.random.default_rng(0)
    vec = rng.normal(size=384).astype(np.float32)
    vec /= np.linalg.norm(vec)
    with Store(db, StoreConfig(batch=2)) as store:
        run_id = store.start_run(
            RunInfo("tag", "/card", backend="onnxruntime-cpu", flavour="int8_cpu", shard="1/4")
        )
        store.put(MediaRecord("/card/a.jpg", decision=decision(), embedding=vec, width=96, height=64))
        store.put(MediaRecord("/card/b.jpg", status="failed", error="cannot decode image"))
        store.put(
            MediaRecord(
                "/clip.mp4", kind="clip", duration_s=12.5, decision=decision(rank="genus", name="Vulpes")
            )
        )
        store.put(MediaRecord("/clip.mp4", frame_index=30, kind="frame", offset_s=1.0, decision=decision()))
        store.put(
            MediaRecord("/clip.mp4", frame_index=60, kind="frame", offset_s=2.0, status="failed", error="x")
        )
        store.put(MediaRecord("rtsp://cam", frame_index=7, kind="live", decision=decision()))
        store.flush()
        assert store.written == 6
        assert store.done_paths(retry_failed=False) == {"/card/a.jpg", "/card/b.jpg", "/clip.mp4"}
        assert store.done_paths(retry_failed=True) == {"/card/a.jpg", "/clip.mp4"}
        assert store.frames_done("/clip.mp4") == {30, 60}
        assert store.frames_done("/clip.mp4", retry_failed=True) == {30}
        assert store.next_frame_index("rtsp://cam") == 8 and store.next_frame_index("rtsp://other") == 0
    with Reader(db) as r:
        (run,) = r.runs()
        assert (run.id, run.command, run.shard, run.status, run.flavour) == (
            run_id,
            "tag",
            "1/4",
            "finished",
            "int8_cpu",
        )
        assert run.finished_at and run.lit_edge_version
        media = {(m.path, m.frame_index): m for m in r.iter_media()}
        a = media[("/card/a.jpg", -1)]
        assert (a.kind, a.top_name, a.top_rank, a.width) == ("photo", "Vulpes vulpes", "species", 96)
        assert [(p.position, p.scientific_name, p.score) for p in a.predictions] == [
            (1, "Vulpes vulpes", pytest.approx(0.8)),
            (2, "Meles meles", pytest.approx(0.15)),
            (3, "Capreolus capreolus", pytest.approx(0.05)),
        ]
        assert media[("/clip.mp4", -1)].duration_s == 12.5 and media[("/clip.mp4", 30)].offset_s == 1.0
        assert media[("/card/b.jpg", -1)].predictions == ()
        ids, vecs = r.load_embeddings([a.id, media[("/card/b.jpg", -1)].id])
        assert ids.tolist() == [a.id] and vecs.dtype == np.float16 and vecs.shape == (1, 384)
        assert np.array_equal(vecs[0], vec.astype(np.float16))  # exactly what float16 holds
        assert np.abs(vecs[0].astype(np.float32) - vec).max() < 1e-3
        con = sqlite3.connect(db)
        dim, blob = con.execute("SELECT dim, vector FROM embeddings").fetchone()
        con.close()
        assert (
            dim == 384 and len(blob) == 768 and np.array_equal(np.frombuffer(blob, "<f2"), vec.astype("<f2"))
        )

    # a second run over a.jpg: same id, predictions replaced, the stale embedding removed
    with Store(db) as store:
        store.start_run(RunInfo("tag", "/card"))
        store.put(MediaRecord("/card/a.jpg", decision=decision(top=(DEER, FOX), rank="species")))
    with Reader(db) as r:
        again = next(m for m in r.iter_media() if m.path == "/card/a.jpg")
        assert again.id == a.id and again.top_name == "Capreolus capreolus"
        assert [p.scientific_name for p in again.predictions] == ["Capreolus capreolus", "Vulpes vulpes"]
        assert r.count_embeddings() == 0 and r.count_media() == 6


def test_leaving_the_with_on_an_error_marks_the_run_interrupted_and_closes(tmp_path):
    db = tmp_path / "d.db"
    with pytest.raises(KeyError), Store(db) as store:
        store.start_run(RunInfo("tag", "/card"))
        store.put(MediaRecord("/card/a.jpg", decision=decision()))
        raise KeyError("boom")
    with pytest.raises(sqlite3.ProgrammingError):
        store.conn.execute("SELECT 1")
    assert not store._thread.is_alive()
    with Reader(db) as r:
        assert r.runs()[0].status == "interrupted" and r.count_media() == 1  # flushed before closing


def test_records_the_schema_cannot_hold_are_refused_before_queueing(tmp_path):
    with Store(tmp_path / "d.db") as store:
        with pytest.raises(RuntimeError, match="before start_run"):
            store.put(MediaRecord("/a.jpg"))
        store.start_run(RunInfo("tag", "/"))
        for bad in (
            MediaRecord("/a.jpg", kind="video"),
            MediaRecord("/a.jpg", frame_index=3),  # a photo has no frame index
            MediaRecord("/c.mp4", kind="frame"),  # a frame needs one
            MediaRecord("/a.jpg", status="maybe"),
            MediaRecord("/a.jpg", embedding=np.zeros((2, 4))),
        ):
            with pytest.raises(ValueError):
                store.put(bad)


WRITER = textwrap.dedent(
    """
    import sys, numpy as np
    from lit_edge.db.writer import MediaRecord, RunInfo, Store, StoreConfig
    from lit_edge.device.classify import Decision, Prediction
    n = int(sys.argv[2])
    top = tuple(Prediction(i, f"Species {i}", "", 0.5 / (i + 1)) for i in range(5))
    d = Decision(top=top, label_id=0, name="Species 0", rank="species", score=0.5)
    with Store(sys.argv[1], StoreConfig(batch=7, flush_s=0.05)) as store:
        skip = store.done_paths()
        store.start_run(RunInfo("tag", "/card"))
        for i in range(n):
            path = f"/card/{i:05d}.jpg"
            if path not in skip:
                store.put(MediaRecord(path, decision=d, embedding=np.full(64, i % 100, np.float32)))
                if i % 50 == 0:
                    print(i, flush=True)
    """
)


@pytest.mark.slow
def test_a_sigkilled_writer_leaves_whole_rows_and_a_resume_fills_the_gaps(tmp_path):
    db, n = tmp_path / "d.db", 6000
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), str(n)], stdout=subprocess.DEVNULL, env=env
    )
    deadline = time.monotonic() + 120
    committed = 0
    while committed < 300 and time.monotonic() < deadline:  # kill it mid-run, with rows committed
        time.sleep(0.05)
        if db.exists():
            try:
                with sqlite3.connect(db) as con:
                    committed = con.execute("SELECT COUNT(*) FROM media").fetchone()[0]
            except sqlite3.Error:
                pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert committed >= 300, "the writer never got going"
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = con.execute("SELECT COUNT(*) FROM media").fetchone()[0]
    assert rows < n, "the writer finished before the kill; kill earlier"
    per_media = con.execute(
        "SELECT m.id, (SELECT COUNT(*) FROM predictions p WHERE p.media_id = m.id), "
        "(SELECT COUNT(*) FROM embeddings e WHERE e.media_id = m.id) FROM media m"
    ).fetchall()
    assert all(p == 5 and e == 1 for _, p, e in per_media)  # no half-written photo
    assert (
        con.execute(
            "SELECT COUNT(*) FROM predictions WHERE media_id NOT IN (SELECT id FROM media)"
        ).fetchone()[0]
        == 0
    )
    con.close()
    assert summarise(db).total == rows
    done = subprocess.run(
        [sys.executable, "-c", WRITER, str(db), str(n)], capture_output=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    with Reader(db) as r:
        paths = [m.path for m in r.iter_media(predictions=False)]
        assert sorted(paths) == [f"/card/{i:05d}.jpg" for i in range(n)]  # no duplicate, no gap
        assert [run.status for run in r.runs()] == ["running", "finished"]  # the killed run says so
        ids, vecs = next(r.iter_embeddings(chunk=n))
        assert len(ids) == n and vecs[0, 0] == float(int(paths[0][6:11]) % 100)


# --- embeddings ----------------------------------------------------------------------------------


def test_embeddings_stream_in_chunks_of_one_dim(tmp_path):
    db = tmp_path / "d.db"
    rng = np.random.default_rng(1)
    vecs = {}
    with Store(db) as store:
        store.start_run(RunInfo("tag", "/"))
        for i in range(10):
            dim = 8 if i < 7 else 16  # a second bundle with another tower, later
            vecs[f"/{i}.jpg"] = rng.normal(size=dim).astype(np.float32)
            store.put(MediaRecord(f"/{i}.jpg", decision=decision(), embedding=vecs[f"/{i}.jpg"]))
        store.put(MediaRecord("/none.jpg", decision=decision()))
    with Reader(db) as r:
        path_of = {m.id: m.path for m in r.iter_media(predictions=False)}
        chunks = list(r.iter_embeddings(chunk=3, dtype=np.float32))
        assert [c[1].shape for c in chunks] == [(3, 8), (3, 8), (1, 8), (3, 16)]
        for ids, block in chunks:
            assert block.dtype == np.float32
            for i, row in zip(ids, block, strict=True):
                assert np.array_equal(row, vecs[path_of[i]].astype(np.float16).astype(np.float32))
        first = [i for i in path_of if path_of[i] in ("/2.jpg", "/0.jpg")]
        ids, block = r.load_embeddings([first[1], 10**6, first[0]])
        assert ids.tolist() == [first[1], first[0]] and block.shape == (2, 8)
        with pytest.raises(UserError, match="different sizes"):
            r.load_embeddings(list(path_of))


# --- annotations ---------------------------------------------------------------------------------


def test_annotation_history_current_is_newest_not_replaced_not_retracted(tmp_path):
    db = tmp_path / "d.db"
    with Store(db) as store:
        store.start_run(RunInfo("tag", "/"))
        for name in ("a", "b", "c"):
            store.put(MediaRecord(f"/{name}.jpg", decision=decision()))
    with Reader(db) as r:
        ids = {Path(m.path).stem: m.id for m in r.iter_media()}
    conn = schema.connect(db)
    a1 = add_annotation(conn, NewAnnotation(ids["a"], "Vulpes vulpes", "animal", reviewer="ann"))
    b1 = add_annotation(conn, NewAnnotation(ids["b"], "Meles meles", "animal", reviewer="ann"))
    b2 = add_annotation(conn, NewAnnotation(ids["b"], "blank", "blank", reviewer="bo", replaces=b1))
    c1 = add_annotation(conn, NewAnnotation(ids["c"], "Vulpes vulpes", "animal", reviewer="ann"))
    c2 = add_annotation(
        conn, NewAnnotation(ids["c"], "Capreolus capreolus", "animal", reviewer="bo", replaces=c1)
    )
    undo = undo_annotation(conn, c2, reviewer="bo")
    with pytest.raises(UserError, match="already replaced"):
        add_annotation(conn, NewAnnotation(ids["b"], "human", "human", replaces=b1))
    with pytest.raises(UserError, match="not one of media row"):
        add_annotation(conn, NewAnnotation(ids["a"], "human", "human", replaces=b2))
    with pytest.raises(UserError, match="no media row"):
        add_annotation(conn, NewAnnotation(999, "human", "human"))
    conn.close()
    with Reader(db) as r:
        current = r.current_annotations()
        assert {m: a.id for m, a in current.items()} == {ids["a"]: a1, ids["b"]: b2}  # c: its word undone
        assert [(a.id, a.retracted, a.replaces) for a in r.annotation_history(ids["c"])] == [
            (c1, False, None),
            (c2, False, c1),
            (undo, True, c2),
        ]
        # predictions are never overwritten by a person's word
        assert all(m.top_name == "Vulpes vulpes" for m in r.iter_media())
    s = summarise(db)
    assert (s.verified, s.verified_by_type) == (2, {"animal": 1, "blank": 1})
    fox = next(sc for sc in s.species if sc.name == "Vulpes vulpes")
    assert (fox.count, fox.verified) == (3, 1)


# --- the summary ---------------------------------------------------------------------------------


def test_summary_counts_units_clips_once_and_frames_apart(tmp_path):
    db = tmp_path / "d.db"
    with Store(db) as store:
        store.start_run(RunInfo("tag", "/"))
        store.put(MediaRecord("/a.jpg", decision=decision(), captured_at="2024-05-01T06:00:00"))
        store.put(
            MediaRecord(
                "/b.jpg", decision=decision(name="blank", rank="blank"), captured_at="2024-05-01T07:00:00"
            )
        )
        store.put(MediaRecord("/c.jpg", decision=decision(name="animal", rank="animal")))
        store.put(MediaRecord("/d.jpg", status="failed", error="/d.jpg: cannot decode image"))
        store.put(MediaRecord("/v.mp4", kind="clip", decision=decision(), captured_at="2024-05-02T01:00:00"))
        for i in range(5):
            store.put(
                MediaRecord(
                    "/v.mp4", frame_index=i * 10, kind="frame", decision=decision(name="blank", rank="blank")
                )
            )
        store.put(
            MediaRecord(
                "rtsp://cam",
                frame_index=0,
                kind="live",
                decision=decision(name="uncertain", rank="uncertain"),
            )
        )
    s = summarise(db)
    assert (s.total, s.done, s.failed) == (6, 5, 1)
    assert s.by_kind == {"photo": 4, "clip": 1, "frame": 5, "live": 1}
    assert s.by_type == {"animal": 3, "blank": 1, "unknown": 1, "unclassified": 1}
    assert s.blank == 1 and s.uncertain == 1 and s.not_in_list == 1
    assert [(sc.name, sc.count) for sc in s.species] == [("Vulpes vulpes", 2), ("animal", 1)]
    assert s.failures == {"cannot decode image": 1} and s.first_failures == (
        ("/d.jpg", "/d.jpg: cannot decode image"),
    )
    assert s.per_day["2024-05-01"] == {"media": 2, "named": 1, "blank": 1}
    lines = summary_lines(s)
    assert (
        lines[0] == "database holds 5 done, 1 failed (4 photo(s), 1 clip(s) of 5 frame(s), 1 live frame(s))"
    )
    assert "       2  Vulpes vulpes (species)" in lines and "       1  blank" in lines


def test_the_summary_tag_prints_is_the_one_db_summary_prints(tmp_path):
    bundle = make_bundle(tmp_path / "bundle")
    photos = tmp_path / "card"
    photos.mkdir()
    for i, (name, rgb) in enumerate(COLOURS.items()):
        for k in range(i + 1):
            write_jpeg(photos / f"{name}-{k}.jpg", solid(rgb))
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    tag = runner.invoke(app, ["tag", str(photos), "--bundle", str(bundle), "--no-progress"])
    assert tag.exit_code == 0, tag.output
    db = photos / "lit-edge.db"
    s = summarise(db)
    printed = tag.output.splitlines()
    start = next(i for i, line in enumerate(printed) if line.startswith("database holds"))
    assert printed[start:] == summary_lines(s)
    shown = runner.invoke(app, ["db", "summary", str(db)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert f"{s.total} media, {s.done} classified ({s.blank} blank), {s.failed} failed" in shown.output
    rows = {}
    for line in shown.output.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 5:
            rows[cells[0]] = int(cells[3]) if cells[3].isdigit() else cells[3]
    tagged = {}
    for line in printed[start + 1 : printed.index("failures:")]:
        if line.endswith(")"):
            count, rest = line.split(None, 1)
            tagged[rest.rsplit(" (", 1)[0]] = int(count)
    assert tagged and tagged == {k: v for k, v in rows.items() if k in tagged}
    assert sum(tagged.values()) + s.blank + s.uncertain == s.done == sum(range(1, len(COLOURS) + 1))


# --- streaming a big database --------------------------------------------------------------------


def _big(path: Path, n: int) -> None:
    """``n`` media rows with 3 predictions each, written straight into a v2 database (fast)."""
    conn = schema.connect(path)
    conn.execute("BEGIN")
    conn.execute(
        "INSERT INTO runs (id, command, source, status) VALUES (1, 'detect', 'rtsp://cam', 'finished')"
    )
    conn.executemany(
        "INSERT INTO media (id, run_id, path, frame_index, kind, status, captured_at, top_name, top_rank, top_score) "
        "VALUES (?, 1, 'rtsp://cam', ?, 'live', 'done', '2024-05-01T00:00:00Z', ?, 'species', 0.9)",
        ((i, i, f"Species {i % 50}") for i in range(1, n + 1)),
    )
    conn.executemany(
        "INSERT INTO predictions (media_id, position, label_id, scientific_name, common_name, score) "
        "VALUES (?, ?, ?, ?, '', 0.3)",
        (
            (i, pos, (i + pos) % 50, f"Species {(i + pos - 1) % 50}")
            for i in range(1, n + 1)
            for pos in (3, 1, 2)
        ),
    )
    conn.execute("COMMIT")
    conn.close()


@pytest.mark.slow
def test_a_big_database_streams_in_flat_memory(tmp_path):
    db, n = tmp_path / "big.db", 100_000
    _big(db, n)
    with Reader(db) as r:
        tracemalloc.start()
        seen = 0
        for m in r.iter_media():
            seen += 1
            assert m.id == m.frame_index
            assert [p.position for p in m.predictions] == [1, 2, 3]  # position order, not insert order
            assert m.predictions[0].scientific_name == m.top_name
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert seen == n
    # all of it at once is about 1 KB a row (hundreds of MB here); a stream holds a few rows
    assert peak < 5 * 2**20, f"peak {peak / 2**20:.1f} MB while streaming {n} rows"
    tracemalloc.start()
    s = summarise(db)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert s.total == n and len(s.species) == 50 and peak < 5 * 2**20


# --- the runtime's import budget -----------------------------------------------------------------


def test_the_db_package_imports_no_torch_pandas_or_sqlite_utils():
    code = (
        "import sys\n"
        "import lit_edge.db.writer, lit_edge.db.reader, lit_edge.db.summary\n"
        "from typer.testing import CliRunner\n"
        "from lit_edge.cli.app import app\n"
        "for args in (['tag', '--help'], ['detect', '--help'], ['db', 'summary', '--help']):\n"
        "    assert CliRunner().invoke(app, args).exit_code == 0\n"
        "bad = [m for m in ('torch', 'pandas', 'sqlite_utils') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_reader_builds_rows_positionally_in_field_order():
    from dataclasses import fields

    from lit_edge.db import reader

    names = [w.split()[0] for w in reader._MEDIA_SELECT]
    assert [f.name for f in fields(reader.MediaRow)] == [
        *names[: reader._SPLIT],
        "predictions",
        *names[reader._SPLIT :],
    ]
    assert set(names) == set(schema.COLUMNS["media"])
    assert [f.name for f in fields(reader.Prediction)] == [w.split()[0] for w in reader._PRED_SELECT][1:]


def _naive(db: Path, rule, run_id=None) -> tuple:
    """The summary counted row by row, the obvious way: what the grouped SQL must equal."""
    from collections import Counter

    from lit_edge.outcomes import classify_media

    by_type, per_day, taxa, kinds = Counter(), Counter(), {}, Counter()
    with Reader(db) as r:
        for m in r.iter_media(run_id=run_id):
            kinds[m.kind] += 1
            if m.kind == "frame":
                continue
            c = classify_media(m, rule)
            by_type[c.observation_type] += 1
            day = m.captured_at[:10] if m.captured_at and len(m.captured_at) >= 10 else "unknown"
            per_day[(day, "media")] += 1
            per_day[(day, "blank")] += c.observation_type == "blank"
            per_day[(day, "named")] += bool(c.scientific_name)
            if c.scientific_name:
                t = taxa.setdefault((c.scientific_name, c.rank), [0, 0.0, 0.0])
                p = c.probability or 0.0
                t[0], t[1], t[2] = t[0] + 1, t[1] + p, max(t[2], p)
    return (
        dict(kinds),
        dict(by_type),
        {k: v for k, v in per_day.items() if v},
        {k: (n, round(s / n, 9), round(b, 9)) for k, (n, s, b) in taxa.items()},
    )


@pytest.mark.parametrize("min_score", [0.0, 0.5])
def test_the_grouped_summary_equals_counting_row_by_row(tmp_path, min_score):
    from lit_edge.outcomes import DecisionRule

    rng = np.random.default_rng(7)
    db = tmp_path / "d.db"
    names = [("Vulpes vulpes", "species"), ("Vulpes", "genus"), ("blank", "blank"), ("uncertain", "uncertain"),
             ("animal", "animal"), ("Homo sapiens", "species"), ("empty", "species"), ("car", "species")]  # fmt: skip
    for run in range(2):
        with Store(db) as store:
            store.start_run(RunInfo("tag", "/"))
            for i in range(300):
                name, rank = names[rng.integers(len(names))]
                kind = ["photo", "clip", "frame", "live"][rng.integers(4)]
                index = -1 if kind in ("photo", "clip") else i
                when = [None, "2024-05-01T06:00:00", "2024-05-02 07:00:00", "bad"][rng.integers(4)]
                failed = rng.random() < 0.1
                score = float(rng.random())
                top = (Prediction(0, name, f"common {name}", score),)
                store.put(
                    MediaRecord(
                        f"/{run}/{i}.x",
                        frame_index=index,
                        kind=kind,
                        captured_at=when,
                        status="failed" if failed else "done",
                        error=f"/{run}/{i}.x: broken" if failed else None,
                        decision=None if failed else Decision(top, 0, name, rank, score),
                    )
                )
    rule = DecisionRule(min_score=min_score)
    for run_id in (None, 2):
        s = summarise(db, run_id=run_id, rule=rule)
        kinds, by_type, per_day, taxa = _naive(db, rule, run_id)
        assert s.by_kind == kinds and s.by_type == by_type
        assert {(d, k): v for d, c in s.per_day.items() for k, v in c.items() if v} == per_day
        assert {
            (t.name, t.rank): (t.count, round(t.mean_score, 9), round(t.max_score, 9)) for t in s.species
        } == taxa
        assert s.total == sum(by_type.values()) and s.failed == by_type.get("unclassified", 0)
        assert s.failures == {"broken": s.failed}
        assert all(t.common_name == f"common {t.name}" for t in s.species if t.rank != "genus")


def test_tag_on_a_v1_database_migrates_it_and_resumes(tmp_path):
    bundle = make_bundle(tmp_path / "bundle")
    photos = tmp_path / "card"
    photos.mkdir()
    names = list(COLOURS)
    for name in names:
        write_jpeg(photos / f"{name}.jpg", solid(COLOURS[name]))
    db = tmp_path / "old.db"
    con = sqlite3.connect(db)
    for sql in V1_DDL:
        con.execute(sql)
    con.execute("INSERT INTO runs (id, command, status) VALUES (1, 'tag', 'finished')")
    done = str((photos / f"{names[0]}.jpg").resolve())
    con.execute(
        "INSERT INTO media (id, run_id, path, frame_index, status, top_name, top_rank, top_score) "
        "VALUES (1, 1, ?, -1, 'done', 'Vulpes vulpes', 'species', 0.9)",
        [done],
    )
    con.execute(
        "INSERT INTO predictions (media_id, rank, scientific_name, score) VALUES (1, 1, 'Vulpes vulpes', 0.9)"
    )
    con.commit()
    con.close()
    r = runner.invoke(app, ["tag", str(photos), "--db", str(db), "--bundle", str(bundle), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert f"tagged {len(names) - 1} photo(s)" in r.output and "1 already done" in r.output
    assert pragma(db, "user_version") == 2
    with Reader(db) as reader:
        media = {m.path: m for m in reader.iter_media()}
        assert media[done].top_name == "Vulpes vulpes" and media[done].id == 1  # kept, not redone
        assert [p.position for p in media[done].predictions] == [1]
        assert len(media) == len(names) and {m.kind for m in media.values()} == {"photo"}
        assert [run.status for run in reader.runs()] == ["finished", "finished"]


def test_a_writer_that_fails_stops_the_run_with_one_error_and_never_hangs(tmp_path):
    db = tmp_path / "d.db"
    bad = Decision((Prediction(0, "Vulpes vulpes", "", "not a number"),), 0, "Vulpes vulpes", "species", 0.9)
    with (
        pytest.raises(UserError, match="database writer failed") as e,
        Store(db, StoreConfig(batch=1, queue_size=2)) as store,
    ):
        store.start_run(RunInfo("tag", "/"))
        store.put(MediaRecord("/good.jpg", decision=decision()))
        store.put(MediaRecord("/bad.jpg", decision=bad))
        for i in range(200):  # a full queue must not block forever behind a dead writer
            store.put(MediaRecord(f"/{i}.jpg", decision=decision()))
    assert "\n" not in str(e.value) and not store._thread.is_alive()
    with Reader(db) as r:
        rows = list(r.iter_media())
        assert [m.path for m in rows] == ["/good.jpg"] and len(
            rows[0].predictions
        ) == 3  # bad batch rolled back
        assert r.runs()[0].status == "interrupted"
