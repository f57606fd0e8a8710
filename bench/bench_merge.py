"""``lit-edge db merge`` at scale: time and peak memory to join shard databases of 1,000,000 rows.

Measured side by side in one run (the issue's goal in brackets):

- **merge**: ``lit-edge db merge OUT.db`` of ``--shards`` shard databases holding ``--rows`` media
  rows in all (5 predictions each, as ``tag --top-k 5`` writes), into a new database, end to end
  in a subprocess: wall seconds (<= 60 s for 1,000,000 rows on 2 cores) and peak RSS (<= 500 MB);
- **merge again**: the same command once more (idempotent: nothing added), the cost of a re-run;
- **plain append**: the naive way, the same rows appended by ``INSERT INTO ... SELECT`` with no
  duplicate check, no run remapping and no rules, with SQLite's default 2 MB page cache (the merge
  asks for 64 MB, which is why it can beat this);
- **with embeddings**: a smaller merge whose rows carry ``--embed-dim`` float16 embeddings (the
  starter's 1000-d: 2 KB a row), reported per million rows (linear: the blob copy dominates).

The shards are v2 databases made through ``lit_edge.db.schema`` and filled in SQL (paths, runs,
decisions and scores like a real ``tag --shard`` run's). They are kept under ``--work`` between
runs of the bench. The load average is printed with the table: on a shared machine the seconds
move, the ratios much less.

    .venv/bin/python bench/bench_merge.py                       # 1,000,000 rows in 4 shards
    .venv/bin/python bench/bench_merge.py --rows 200000 --embed-rows 20000
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lit_edge.db import schema

CLI = [sys.executable, "-m", "lit_edge.cli.app"]
# runs a command and prints its peak RSS (KB): ru_maxrss of the waited-for child
PEAK = "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)"


def make_shard(path: Path, index: int, count: int, rows: int, embed_dim: int) -> None:
    """A shard database as ``tag --shard index/count`` would leave it, filled in SQL."""
    conn = schema.connect(path)
    conn.execute("BEGIN")
    conn.execute(
        """INSERT INTO runs (command, source, bundle, bundle_sha256, model_name, model_version, backend,
        flavour, settings, host, lit_edge_version, started_at, finished_at, status, shard)
        VALUES ('tag', '/data/photos', '/models/starter', 'ab12cd34', 'starter', '1', 'onnxruntime-cpu',
        'int8_cpu', '{}', ?, '0.1.0', ?, ?, 'finished', ?)""",
        [f"node{index:03d}", f"2026-01-01T00:{index:02d}:00.000+00:00", "2026-01-01T06:00:00.000+00:00",
         f"{index}/{count}"],
    )  # fmt: skip
    conn.execute(
        f"""WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {rows - 1})
        INSERT INTO media (run_id, path, frame_index, source, captured_at, time_source, width, height,
            file_size, status, processed_at, top_label_id, top_name, top_rank, top_score, kind)
        SELECT 1, printf('/data/photos/cam%03d/%08d-%d.JPG', i % 500, i, {index}), -1,
            printf('/data/photos/cam%03d/%08d-%d.JPG', i % 500, i, {index}),
            '2025-06-01T12:00:00', 'exif', 2048, 1536, 2000000, 'done',
            '2026-01-01T01:00:00.000+00:00', i % 1000, 'Vulpes vulpes', 'species', 0.9, 'photo'
        FROM n"""
    )
    conn.execute(
        """INSERT INTO predictions (media_id, position, label_id, scientific_name, common_name, score)
        SELECT m.id, k.k, (m.id + k.k) % 1000, 'Vulpes vulpes', 'red fox', 1.0 / (k.k + 1)
        FROM media m, (SELECT 1 AS k UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4
                       UNION ALL SELECT 5) k ORDER BY m.id, k.k"""
    )
    if embed_dim:
        conn.execute(
            f"INSERT INTO embeddings (media_id, run_id, dim, vector) "
            f"SELECT id, 1, {embed_dim}, randomblob({2 * embed_dim}) FROM media"
        )
    conn.execute("COMMIT")
    conn.close()


def shards(work: Path, rows: int, count: int, embed_dim: int) -> list[Path]:
    folder = work / f"shards-{rows}x{count}-e{embed_dim}"
    paths = [folder / f"lit-edge.shard-{i}-of-{count}.db" for i in range(count)]
    if all(p.exists() for p in paths):
        return paths
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    t0 = time.perf_counter()
    for i, p in enumerate(paths):
        make_shard(p, i, count, rows // count, embed_dim)
    print(f"made {count} shards of {rows // count} rows in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return paths


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of ``cmd`` in a subprocess."""
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", PEAK, *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stderr[-2000:]}")
    return wall, int(res.stdout.strip().splitlines()[-1]) / 1024


APPEND = """
import sqlite3, sys
from lit_edge.db import schema
out, *shards = sys.argv[1:]
schema.connect(out).close()
conn = sqlite3.connect(out, isolation_level=None)
conn.execute("PRAGMA synchronous=NORMAL")
for s in shards:
    conn.execute("ATTACH DATABASE ? AS s", [s])
    conn.execute("BEGIN")
    for t in ("runs", "media", "predictions", "embeddings"):
        cols = ", ".join(r[1] for r in conn.execute(f"PRAGMA s.table_info({t})") if r[1] not in ("id",))
        conn.execute(f"INSERT INTO main.{t} ({cols}) SELECT {cols} FROM s.{t}")
    conn.execute("COMMIT")
    conn.execute("DETACH DATABASE s")
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="media rows in all the shards")
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--embed-rows", type=int, default=100_000, help="rows of the embeddings merge (0: skip)")
    ap.add_argument("--embed-dim", type=int, default=1000)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "lit-edge-bench-merge")
    args = ap.parse_args()

    parts = shards(args.work, args.rows, args.shards, 0)
    out = args.work / "merged.db"
    results = []
    for p in (out, args.work / "appended.db"):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{p}{suffix}").unlink(missing_ok=True)
    results.append(("merge", args.rows, *timed([*CLI, "db", "merge", str(out), *map(str, parts)])))
    results.append(
        ("merge again (adds nothing)", args.rows, *timed([*CLI, "db", "merge", str(out), *map(str, parts)]))
    )
    results.append(("plain append (no rules, 2 MB cache)", args.rows,
                    *timed([sys.executable, "-c", APPEND, str(args.work / "appended.db"), *map(str, parts)])))  # fmt: skip
    if args.embed_rows:
        eparts = shards(args.work, args.embed_rows, args.shards, args.embed_dim)
        eout = args.work / "merged-embeddings.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{eout}{suffix}").unlink(missing_ok=True)
        results.append((f"merge with {args.embed_dim}-d embeddings", args.embed_rows,
                        *timed([*CLI, "db", "merge", str(eout), *map(str, eparts)])))  # fmt: skip

    load = os.getloadavg()
    print(
        f"\nlit-edge db merge: {args.shards} shards; {os.cpu_count()} cores, load {load[0]:.1f} {load[1]:.1f}"
    )
    print(f"{'':34} {'rows':>10} {'wall s':>8} {'s per 1M':>9} {'peak MB':>8} {'vs append':>10}")
    base = results[2][2] / results[2][1]
    for name, rows, wall, rss in results:
        per_m = wall / rows * 1e6
        print(f"{name:34} {rows:>10,} {wall:>8.1f} {per_m:>9.1f} {rss:>8.0f} {per_m / (base * 1e6):>9.2f}x")
    size = sum(p.stat().st_size for p in parts) / 1e6
    print(
        f"shard files: {size:.0f} MB for {args.rows:,} rows; goal: merge of 1,000,000 rows <= 60 s, <= 500 MB"
    )


if __name__ == "__main__":
    main()
