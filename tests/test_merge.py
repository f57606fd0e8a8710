"""`lit-edge db merge`: shard databases written by the real `lit-edge tag --shard`, joined into one.

Every photo exactly once, runs kept, predictions/embeddings/annotations carried, idempotent, a
shard killed and re-run merges cleanly, one rule when two inputs hold one photo (done beats
failed, then newer wins), and a shard of another bundle refused in one line.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bundle_factory import COLOURS, make_bundle, solid, write_jpeg
from lit_edge.cli.app import app

runner = CliRunner()
N_PHOTOS = 30


def _rows(db: Path, sql: str, args=()):
    con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)  # never creates the file
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def _tag(folder: Path, *args) -> str:
    r = runner.invoke(
        app, ["tag", str(folder), "--no-progress", "--workers", "1", "--threads", "1", *map(str, args)]
    )
    assert r.exit_code == 0, r.output
    return r.output


def _merge(*args, code: int = 0) -> str:
    r = runner.invoke(app, ["db", "merge", *map(str, args)])
    assert r.exit_code == code, r.output
    return r.output


def _photos(folder: Path, n: int, start: int = 0) -> Path:
    names = list(COLOURS)
    rng = np.random.default_rng(start)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        img = solid(COLOURS[names[i % 4]]) ^ rng.integers(0, 8, (48, 64, 3), dtype=np.uint8)
        write_jpeg(folder / f"{i:04d}.jpg", img)
    return folder


def _content(db: Path) -> list:
    """Everything a merge decides, independent of row ids."""
    media = _rows(
        db,
        "SELECT m.path, m.frame_index, m.status, m.top_name, m.processed_at, r.started_at, r.shard "
        "FROM media m LEFT JOIN runs r ON r.id = m.run_id ORDER BY m.path",
    )
    preds = _rows(
        db,
        "SELECT m.path, p.position, p.scientific_name, p.score FROM predictions p "
        "JOIN media m ON m.id = p.media_id ORDER BY m.path, p.position",
    )
    runs = _rows(db, "SELECT started_at, host, shard, status, finished_at FROM runs ORDER BY started_at")
    return [media, preds, runs]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="module")
def shards(tmp_path_factory, bundle):
    """A folder tagged as 3 shards into dbs/: (photos, dbs, shard paths)."""
    root = tmp_path_factory.mktemp("sharded")
    photos = _photos(root / "photos", N_PHOTOS)
    dbs = root / "dbs"
    dbs.mkdir()
    for i in range(3):
        _tag(photos, "--shard", f"{i}/3", "--db", dbs, "--bundle", bundle)
    return photos, dbs, sorted(dbs.glob("lit-edge.shard-*.db"))


def test_merge_holds_every_photo_once_with_its_runs_and_is_idempotent(shards, tmp_path):
    photos, dbs, parts = shards
    out = tmp_path / "all.db"
    said = _merge(out, *parts)
    assert "all 3 shards of 3 have a finished run" in said
    assert f"{out}: {N_PHOTOS} media, {N_PHOTOS} done, 0 failed" in said
    assert _rows(out, "SELECT COUNT(*), COUNT(DISTINCT path) FROM media") == [(N_PHOTOS, N_PHOTOS)]
    # every shard's rows, predictions and runs, as they were
    want_media, want_preds = [], []
    for p in parts:
        media, preds, _ = _content(p)
        want_media += media
        want_preds += preds
    media, preds, runs = _content(out)
    assert [m[:5] for m in media] == sorted(m[:5] for m in want_media)
    assert preds == sorted(want_preds)
    assert sorted(r[2] for r in runs) == ["0/3", "1/3", "2/3"]
    # each media row points at the run of its own shard, remapped
    assert _rows(out, "SELECT COUNT(*) FROM media WHERE run_id NOT IN (SELECT id FROM runs)") == [(0,)]
    assert _rows(out, "SELECT COUNT(*) FROM predictions WHERE media_id NOT IN (SELECT id FROM media)") == [
        (0,)
    ]

    before = _content(out)
    again = _merge(out, *reversed(parts))
    assert again.count(" 0 added, 0 replaced") == 3 and "0 run(s)" in again
    assert _content(out) == before
    assert _rows(out, "PRAGMA integrity_check") == [("ok",)]


def test_new_photos_and_a_killed_then_resumed_shard_merge_cleanly(tmp_path, bundle):
    photos = _photos(tmp_path / "photos", 1000)  # ~500 in the shard: the writer commits every 256
    shard = tmp_path / "dbs"
    shard.mkdir()
    out = tmp_path / "all.db"
    cmd = [sys.executable, "-m", "lit_edge.cli.app", "tag", str(photos), "--shard", "0/2", "--db", str(shard),
           "--bundle", str(bundle), "--no-progress", "--workers", "1", "--threads", "1", "--batch-size", "2"]  # fmt: skip
    db = shard / "lit-edge.shard-0-of-2.db"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if _rows(db, "SELECT COUNT(*) FROM media")[0][0] >= 10:
                break
        except sqlite3.Error:
            pass
        time.sleep(0.01)
    assert proc.poll() is None, "the shard finished before it could be killed: give it more photos"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = _rows(db, "SELECT COUNT(*) FROM media")[0][0]
    said = _merge(out, db)  # merged while killed: what it has, and a note
    assert "still marked running" in said and "shard(s) 0,1 of 2 have no finished run" in said
    assert _rows(out, "SELECT COUNT(*) FROM media")[0][0] == partial

    _photos(photos, 20, start=500)  # a new card copied in before the re-run
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)  # the re-run resumes
    said = _merge(out, db)
    whole = _rows(db, "SELECT COUNT(*) FROM media")[0][0]
    assert whole > partial and f"{whole - partial} added, 0 replaced, {partial} already there" in said
    assert _rows(out, "SELECT COUNT(*), COUNT(DISTINCT path) FROM media") == [(whole, whole)]
    assert _rows(out, "SELECT status FROM runs ORDER BY started_at") == [("running",), ("finished",)]
    assert "shard(s) 1 of 2 have no finished run" in said


def test_one_photo_in_two_inputs_keeps_done_over_failed_then_the_newer(tmp_path, bundle):
    photos = tmp_path / "photos"
    photos.mkdir()
    write_jpeg(photos / "ok.jpg", solid(COLOURS["Viridis silva"]))
    (photos / "late.jpg").write_bytes(b"\xff\xd8\xff\xe0 not yet copied")  # a half-copied file
    a, b, c = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "c.db"
    _tag(photos, "--db", a, "--bundle", bundle)
    write_jpeg(photos / "late.jpg", solid(COLOURS["Caerulea mare"]))  # the copy finished
    _tag(photos, "--db", b, "--bundle", bundle)
    _tag(photos, "--db", c, "--bundle", bundle)  # the same again, later: newer rows
    status = "SELECT path, status, top_name, processed_at FROM media ORDER BY path"
    assert [r[1] for r in _rows(a, status)] == ["failed", "done"]

    for order in ((a, b, c), (c, b, a), (b, a, c)):
        out = tmp_path / f"out-{'-'.join(p.stem for p in order)}.db"
        _merge(out, *order)
        got = _rows(out, status)
        assert [(Path(r[0]).name, r[1], r[2]) for r in got] == [
            ("late.jpg", "done", "Caerulea mare"),
            ("ok.jpg", "done", "Viridis silva"),
        ]
        assert [r[3] for r in got] == [r[3] for r in _rows(c, status)]  # c's rows are the newest
        # the kept rows bring their own predictions only
        assert _rows(out, "SELECT COUNT(*) FROM predictions") == _rows(c, "SELECT COUNT(*) FROM predictions")


def test_a_shard_of_another_bundle_is_refused_unless_allowed(shards, tmp_path):
    photos, _, parts = shards
    other = make_bundle(tmp_path / "other", logit_scale=20.0)  # another bundle: another checksum
    odd = tmp_path / "odd.db"
    _tag(photos, "--shard", "0/3", "--db", odd, "--bundle", other)
    out = tmp_path / "all.db"
    said = _merge(out, parts[0], odd, code=2)
    assert said.startswith("error: ") and said.count("\n") == 1 and "--allow-mixed-bundles" in said
    assert str(odd) in said and not out.exists()  # nothing written
    _merge(out, parts[0])
    _merge(out, odd, code=2)  # OUT's own bundle counts too
    said = _merge(out, odd, "--allow-mixed-bundles")
    assert "0 added, " in said and _rows(out, "SELECT COUNT(DISTINCT bundle_sha256) FROM runs") == [(2,)]


def test_bad_inputs_are_one_line_errors(shards, tmp_path):
    _, _, parts = shards
    not_db = tmp_path / "notes.db"
    not_db.write_text("field notes, not a database")
    for args, words in (
        ((tmp_path / "o.db", tmp_path / "missing.db"), "shard database not found"),
        ((tmp_path / "o.db", not_db), "not a lit-edge detection database"),
        ((parts[0], parts[0]), "is the output database too"),
    ):
        said = _merge(*args, code=2)
        assert said.startswith("error: ") and words in said and said.count("\n") == 1, said


def _store_shard(db: Path, shard: str, paths: list[str], seed: int) -> dict[str, bytes]:
    """A shard written by the real Store, with embeddings; returns each path's stored vector bytes."""
    from lit_edge.db.schema import connect
    from lit_edge.db.writer import MediaRecord, RunInfo, Store

    rng = np.random.default_rng(seed)
    with Store(db) as store:
        store.start_run(RunInfo("tag", "/cards", shard=shard))
        for p in paths:
            store.put(MediaRecord(path=p, embedding=rng.normal(size=16).astype(np.float32)))
    conn = connect(db)
    try:
        return dict(
            conn.execute("SELECT m.path, e.vector FROM embeddings e JOIN media m ON m.id = e.media_id")
        )
    finally:
        conn.close()


def test_embeddings_and_annotation_histories_follow_their_photos(tmp_path):
    from lit_edge.db.schema import connect
    from lit_edge.db.writer import NewAnnotation, add_annotation, undo_annotation

    a, b, c, out = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "c.db", tmp_path / "all.db"
    vec = _store_shard(a, "0/2", [f"/cards/{i}.jpg" for i in range(0, 10, 2)], seed=1)
    vec |= _store_shard(b, "1/2", [f"/cards/{i}.jpg" for i in range(1, 10, 2)], seed=2)
    conn = connect(a)  # a reviewer works on shard a before the merge: says, corrects, undoes
    try:
        (mid,) = conn.execute("SELECT id FROM media WHERE path = '/cards/0.jpg'").fetchone()
        first = add_annotation(conn, NewAnnotation(mid, "Vulpes vulpes", "animal", reviewer="ana"))
        second = add_annotation(
            conn, NewAnnotation(mid, "Meles meles", "animal", reviewer="ana", replaces=first)
        )
        undo_annotation(conn, second, reviewer="ana")
    finally:
        conn.close()

    said = _merge(out, b, a)  # b first: ids in OUT differ from a's
    assert "4 annotation(s) added" in said  # said, corrected, the undo's retraction, what it restored
    got = dict(_rows(out, "SELECT m.path, e.vector FROM embeddings e JOIN media m ON m.id = e.media_id"))
    assert got == vec  # every embedding, byte for byte, on its own photo
    assert _rows(
        out,
        "SELECT COUNT(*) FROM embeddings e JOIN media m ON m.id = e.media_id WHERE e.run_id IS NOT m.run_id",
    ) == [(0,)]
    chain = _rows(
        out,
        "SELECT a.id, m.path, a.label, a.replaces, a.retracted FROM annotations a "
        "JOIN media m ON m.id = a.media_id ORDER BY a.id",
    )
    (i1, p1, l1, r1, x1), (i2, p2, l2, r2, x2), (i3, _, l3, r3, x3), (_, p4, l4, r4, x4) = chain
    assert p1 == p2 == p4 == "/cards/0.jpg"
    assert (l1, l2, l3, l4) == ("Vulpes vulpes", "Meles meles", "Meles meles", "Vulpes vulpes")
    assert (r1, r2, r3, r4) == (None, i1, i2, i3) and (x1, x2, x3, x4) == (0, 0, 1, 0)  # remapped

    assert "0 annotation(s) added" in _merge(out, a, b)  # again: nothing twice
    assert _rows(out, "SELECT COUNT(*) FROM annotations") == [(4,)]

    time.sleep(0.01)  # photo 0 tagged again later (another file): its newer row and vector win,
    newer = _store_shard(c, "0/2", ["/cards/0.jpg"], seed=3)  # and its people's history stays
    assert "0 added, 1 replaced" in _merge(out, c)
    got = dict(_rows(out, "SELECT m.path, e.vector FROM embeddings e JOIN media m ON m.id = e.media_id"))
    assert got["/cards/0.jpg"] == newer["/cards/0.jpg"] != vec["/cards/0.jpg"] and len(got) == 10
    assert _rows(out, "SELECT COUNT(*) FROM annotations a JOIN media m ON m.id = a.media_id") == [(4,)]


def test_a_merge_killed_half_way_leaves_whole_shards_and_a_rerun_completes_it(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_merge", Path(__file__).parents[1] / "bench" / "bench_merge.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    parts = [tmp_path / f"s{i}.db" for i in range(4)]
    for i, p in enumerate(parts):
        bench.make_shard(p, i, 4, 40_000, 0)  # 40,000 rows each, as the bench makes them
    out = tmp_path / "all.db"
    cmd = [sys.executable, "-m", "lit_edge.cli.app", "db", "merge", str(out), *map(str, parts)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    counts = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            n = _rows(out, "SELECT COUNT(*) FROM media")[0][0]
        except sqlite3.Error:
            n = 0
        counts.add(n)
        if n:  # one shard committed, the next one under way
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the merge ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert counts <= {0, 40_000, 80_000, 120_000}  # only ever whole shards
    n = _rows(out, "SELECT COUNT(*) FROM media")[0][0]
    assert n in (40_000, 80_000, 120_000) and _rows(out, "PRAGMA integrity_check") == [("ok",)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    assert _rows(out, "SELECT COUNT(*), COUNT(DISTINCT path) FROM media") == [(160_000, 160_000)]
    assert _rows(out, "SELECT COUNT(*) FROM predictions") == [(800_000,)]
    assert _rows(out, "SELECT COUNT(*) FROM runs") == [(4,)]


def test_shards_whose_runs_started_in_the_same_millisecond_keep_their_own_runs(shards, tmp_path):
    """The tasks of a Slurm array start together on one host: two runs may share a start time
    to the millisecond. Each shard keeps its run, and its photos point at it."""
    import shutil

    _, _, parts = shards
    same = []
    for p in parts:
        copy = tmp_path / p.name
        shutil.copyfile(p, copy)
        con = sqlite3.connect(copy)
        with con:
            con.execute("UPDATE runs SET started_at = '2026-12-07T09:00:00.000+00:00'")
        con.close()
        same.append(copy)
    out = tmp_path / "all.db"
    said = _merge(out, *same)
    assert "all 3 shards of 3 have a finished run" in said, said
    per_shard = _rows(
        out,
        "SELECT r.shard, COUNT(*) FROM media m JOIN runs r ON r.id = m.run_id GROUP BY r.shard ORDER BY r.shard",
    )
    want = sorted(
        (_rows(p, "SELECT shard FROM runs")[0][0], _rows(p, "SELECT COUNT(*) FROM media")[0][0])
        for p in parts
    )
    assert per_shard == want
