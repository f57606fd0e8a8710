"""The detection database: import cost, writer and reader speed, memory, an index, migrations.

Prints tables of ratios measured side by side in one run (never absolute goals: the machine may
be shared). What each row decides:

- *import*: ``sqlite3`` against sqlite-utils (with pandas kept out, as lit-edge 0.1 imported it),
  each in a fresh process after numpy and typer (which the runtime imports anyway): what dropping the
  dependency saves the runtime (budget: 1.5 s to the first prediction, 250 MB peak RSS).
- *writer*: ``Store.put`` records/s with and without a 512-d embedding per record.
- *reader*: streaming ``Reader.iter_media`` against loading everything (``read_detections``):
  time and Python heap peak.
- *summary*: the one summary (SQLite groups rows, Python classifies each group) against
  classifying every row as a stream.
- *index*: a run's summary (``detect``'s end-of-run output) on a database of many runs, with and
  without ``idx_media_run_id``.
- *migration*: v1 -> v2 with ``ALTER TABLE`` (what ``schema.py`` does) against rebuilding the
  predictions table as sqlite-utils' ``transform`` does.

    python bench/bench_db.py [--rows 200000] [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import numpy as np

from lit_edge.db import schema
from lit_edge.db.reader import Reader, read_detections
from lit_edge.db.summary import summarise
from lit_edge.db.writer import MediaRecord, RunInfo, Store, StoreConfig
from lit_edge.device.classify import Decision, Prediction

IMPORT = """
import resource, sys, time
import numpy, typer  # the runtime has both loaded already
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
{stmt}
dt = time.perf_counter() - t
print(dt, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""
STUBBED = (
    "sys.modules['pandas'] = None\nimport sqlite_utils\ndel sys.modules['pandas']"  # as lit-edge 0.1 did
)


def bench_import(repeats: int) -> list[tuple[str, float, float]]:
    rows = []
    for name, stmt in (("sqlite3", "import sqlite3"), ("sqlite-utils (no pandas)", STUBBED)):
        times, rss = [], []
        for _ in range(repeats):
            r = subprocess.run(
                [sys.executable, "-c", IMPORT.format(stmt=stmt)], capture_output=True, text=True, timeout=120
            )
            if r.returncode != 0:
                break
            t, m = map(float, r.stdout.split())
            times.append(t)
            rss.append(m)
        if times:
            rows.append((name, statistics.median(times) * 1000, statistics.median(rss)))
        else:
            rows.append((name + " (not installed)", float("nan"), float("nan")))
    return rows


def _decision() -> Decision:
    top = tuple(Prediction(i, f"Species {i}", f"common {i}", 0.5 / (i + 1)) for i in range(5))
    return Decision(top=top, label_id=0, name="Species 0", rank="species", score=0.5)


def bench_writer(tmp: Path, n: int) -> dict[str, float]:
    d = _decision()
    vec = np.random.default_rng(0).normal(size=512).astype(np.float32)
    out = {}
    for label, emb in (("no embedding", None), ("512-d embedding", vec)):
        db = tmp / f"w-{label[:2]}.db"
        with Store(db, StoreConfig(batch=256)) as store:
            store.start_run(RunInfo("bench", "writer"))
            t = time.perf_counter()
            for i in range(n):
                store.put(MediaRecord(f"/card/{i:07d}.jpg", decision=d, embedding=emb))
            store.flush()
            out[label] = n / (time.perf_counter() - t)
    return out


def make_big(path: Path, n: int, runs: int = 1) -> None:
    """``n`` media rows (5 predictions each) over ``runs`` runs, written straight in (fast)."""
    conn = schema.connect(path)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO runs (id, command, source, status) VALUES (?, 'detect', 'rtsp://cam', 'finished')",
        ((r,) for r in range(1, runs + 1)),
    )
    conn.executemany(
        "INSERT INTO media (id, run_id, path, frame_index, kind, status, captured_at, top_name, top_rank, "
        "top_score) VALUES (?, ?, 'rtsp://cam', ?, 'live', 'done', '2024-05-01T00:00:00Z', ?, 'species', 0.9)",
        ((i, 1 + (i - 1) * runs // n, i, f"Species {i % 50}") for i in range(1, n + 1)),
    )
    conn.executemany(
        "INSERT INTO predictions (media_id, position, label_id, scientific_name, common_name, score) "
        "VALUES (?, ?, ?, ?, '', 0.1)",
        ((i, p, p, f"Species {(i + p - 1) % 50}") for i in range(1, n + 1) for p in range(1, 6)),
    )
    conn.execute("COMMIT")
    conn.close()


def _timed_peak(fn):
    tracemalloc.start()
    t = time.perf_counter()
    result = fn()
    dt = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, dt, peak


def bench_reader(db: Path) -> list[tuple[str, float, float]]:
    def stream():
        with Reader(db) as r:
            return sum(1 for _ in r.iter_media())

    def load():
        return len(read_detections(db).media)

    rows = []
    for label, fn in (("stream (Reader.iter_media)", stream), ("all at once (read_detections)", load)):
        _, dt, peak = _timed_peak(fn)
        rows.append((label, dt, peak))
    return rows


def bench_summary(db: Path) -> dict[str, float]:
    """The one summary (SQLite groups, Python classifies each group) against classifying every row."""
    from lit_edge.outcomes import DecisionRule, classify_media

    def row_by_row():
        with Reader(db) as r:
            return Counter(classify_media(m, DecisionRule()).observation_type for m in r.iter_media())

    out = {}
    for label, fn in (
        ("grouped (summarise)", lambda: summarise(db)),
        ("row by row (iter_media)", row_by_row),
    ):
        t = time.perf_counter()
        fn()
        out[label] = time.perf_counter() - t
    return out


def bench_index(tmp: Path, n: int) -> dict[str, float]:
    db = tmp / "runs.db"
    make_big(db, n, runs=200)
    plain = tmp / "runs-noindex.db"
    shutil.copy(db, plain)
    with sqlite3.connect(plain) as con:
        con.execute("DROP INDEX idx_media_run_id")
    out = {}
    for label, path in (("with idx_media_run_id", db), ("without", plain)):
        times = []
        for _ in range(3):
            t = time.perf_counter()
            summarise(path, run_id=200)
            times.append(time.perf_counter() - t)
        out[label] = min(times)
    return out


def _v1(path: Path, n: int) -> None:
    from lit_edge.db.schema import _create_v1

    con = sqlite3.connect(path)
    _create_v1(con)
    con.executemany(
        "INSERT INTO media (id, run_id, path, frame_index, status) VALUES (?, 1, ?, -1, 'done')",
        ((i, f"/card/{i:07d}.jpg") for i in range(1, n + 1)),
    )
    con.executemany(
        "INSERT INTO predictions (media_id, rank, label_id, scientific_name, score) VALUES (?, ?, ?, 'x', 0.1)",
        ((i, r, r) for i in range(1, n + 1) for r in range(1, 6)),
    )
    con.commit()
    con.close()


def bench_migration(tmp: Path, n: int) -> dict[str, float]:
    out = {}
    a = tmp / "v1-alter.db"
    _v1(a, n)
    t = time.perf_counter()
    schema.connect(a).close()
    out["ALTER TABLE (schema.py)"] = time.perf_counter() - t
    b = tmp / "v1-rebuild.db"
    _v1(b, n)
    con = sqlite3.connect(b, isolation_level=None)
    t = time.perf_counter()
    con.execute("BEGIN")  # what sqlite-utils' transform(rename=...) does: copy into a new table
    con.execute(
        'CREATE TABLE "predictions_new" ("id" INTEGER PRIMARY KEY, "media_id" INTEGER REFERENCES '
        '"media"("id"), "position" INTEGER, "label_id" INTEGER, "scientific_name" TEXT, '
        '"common_name" TEXT, "score" REAL)'
    )
    con.execute(
        "INSERT INTO predictions_new SELECT id, media_id, rank, label_id, scientific_name, common_name, score "
        "FROM predictions"
    )
    con.execute("DROP TABLE predictions")
    con.execute("ALTER TABLE predictions_new RENAME TO predictions")
    con.execute('CREATE INDEX "idx_predictions_media_id" ON "predictions" ("media_id")')
    con.execute("COMMIT")
    out["table rebuild (transform)"] = time.perf_counter() - t
    con.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000, help="media rows of the generated databases")
    ap.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    args = ap.parse_args()
    n = 20_000 if args.quick else args.rows
    print(f"load: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} CPUs; SQLite {sqlite3.sqlite_version}")
    rows = bench_import(3 if args.quick else 7)
    print("\nimport after numpy + typer (median of fresh processes)  ms  RSS MB")
    for name, ms, mb in rows:
        print(f"  {name:46s} {ms:6.0f}  {mb:7.1f}")
    if len(rows) == 2 and rows[0][1] == rows[0][1] and rows[1][1] == rows[1][1]:
        print(f"  sqlite-utils / sqlite3: {rows[1][1] / max(rows[0][1], 1e-9):.1f}x the time")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        w = bench_writer(tmp, n // 4)
        print(f"\nwriter ({n // 4} records, 5 predictions each)         records/s")
        for k, v in w.items():
            print(f"  {k:46s} {v:9.0f}")
        print(f"  with / without embedding: {w['512-d embedding'] / w['no embedding']:.2f}")
        big = tmp / "big.db"
        make_big(big, n)
        r = bench_reader(big)
        print(f"\nreader ({n} media rows, 5 predictions each)      s    heap peak MB")
        for name, dt, peak in r:
            print(f"  {name:46s} {dt:5.2f}  {peak:9.1f}")
        print(
            f"  heap: all at once / stream = {r[1][2] / max(r[0][2], 1e-9):.0f}x; time {r[1][1] / r[0][1]:.2f}x"
        )
        sm = bench_summary(big)
        print(f"\nsummary of the whole database ({n} rows)           s")
        for k, v in sm.items():
            print(f"  {k:46s} {v:6.3f}")
        print(f"  row by row / grouped: {sm['row by row (iter_media)'] / sm['grouped (summarise)']:.0f}x")
        ix = bench_index(tmp, n)
        print(f"\nsummary of the last of 200 runs ({n} rows)          s")
        for k, v in ix.items():
            print(f"  {k:46s} {v:6.3f}")
        print(f"  without / with: {ix['without'] / ix['with idx_media_run_id']:.1f}x")
        mg = bench_migration(tmp, n)
        print(f"\nmigration v1 -> v2 ({n} rows, 5 predictions each)    s")
        for k, v in mg.items():
            print(f"  {k:46s} {v:6.3f}")
        print(f"  rebuild / ALTER: {mg['table rebuild (transform)'] / mg['ALTER TABLE (schema.py)']:.0f}x")


if __name__ == "__main__":
    main()
