"""``lit-edge db merge OUT.db SHARD.db ...``: the databases of a sharded job joined into one.

Each shard of ``lit-edge tag --shard I/N`` (a Slurm array task, say) writes its own database; this
joins them, and is safe to repeat in any order and at any time:

- **Every photo once.** Media rows are keyed by ``(path, frame_index)``, as in every database.
  When two inputs hold the same photo (a shard re-run into another file, a folder tagged twice),
  one rule picks the row kept: **done beats failed, then the newer ``processed_at`` wins**; on a
  tie the row already in OUT stays. The kept row brings its own predictions and embedding.
- **Runs kept.** Every run of every shard becomes a run of OUT (new ids; media rows point at
  them), recognised on a second merge by what it recorded when it started (``started_at``, host,
  command, source, bundle): merging again adds nothing, and a run merged while it was still going
  gets its final status.
- **Annotations carried.** People's verifications follow their photo by path, their ``replaces``
  chains remapped; one already in OUT (same photo, time, reviewer, label) is not added twice.
- **One bundle.** Shards tagged with another bundle (``bundle_sha256``, or model name and version
  where no checksum was recorded) are refused, before anything is written, unless
  ``allow_mixed_bundles``: their scores are not comparable.

Why SQL and not Python rows: ``ATTACH`` and ``INSERT ... SELECT ... ON CONFLICT`` keep every row
inside SQLite, so a million rows merge in seconds with a few MB of Python (``bench/bench_merge.py``
measures it). Each shard is one transaction: a merge killed half-way leaves OUT with whole shards
only, and running it again completes it. Inputs are opened read-only and never changed; OUT is
created or migrated through ``lit_edge.db.schema`` like any database.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from lit_edge.db import schema
from lit_edge.errors import UserError

log = logging.getLogger(__name__)

#: What a run recorded when it started: how a run is recognised in OUT on a second merge. The
#: shard is part of it: the tasks of a Slurm array start on one host in the same millisecond now
#: and then, and without it one shard's run (and its photos) was taken for another's.
RUN_KEY = ("started_at", "host", "command", "source", "bundle_sha256", "shard")


@dataclass(frozen=True)
class MergeConfig:
    """What ``lit-edge db merge`` does: ``shards`` into ``out``."""

    out: Path
    shards: tuple[Path, ...]
    allow_mixed_bundles: bool = False


@dataclass
class ShardMerged:
    """What one input brought to OUT."""

    path: Path
    media: int = 0  # rows in the input
    added: int = 0  # photos OUT did not have
    replaced: int = 0  # OUT's row replaced by this input's (done over failed, or newer)
    runs_added: int = 0
    annotations_added: int = 0
    shards: list[str] = field(default_factory=list)  # runs.shard values seen (I/N)
    unfinished_runs: int = 0  # runs still marked running (killed, or going on)

    @property
    def kept(self) -> int:
        """Rows of this input that OUT already had as good or better."""
        return self.media - self.added - self.replaced


def _bundle_of(row: sqlite3.Row | tuple) -> str:
    sha, name, version = row
    return f"bundle {sha[:12]}" if sha else f"model {name or '?'} {version or ''}".rstrip()


def _bundles(conn: sqlite3.Connection) -> set[str]:
    """The bundles the runs of a database were made with (runs with no bundle at all ignored)."""
    rows = conn.execute("SELECT DISTINCT bundle_sha256, model_name, model_version FROM runs")
    return {_bundle_of(r) for r in rows if any(r)}


def _inputs(config: MergeConfig) -> list[Path]:
    """The inputs, each once, none of them OUT."""
    out = Path(config.out).expanduser()
    seen, inputs = set(), []
    for p in config.shards:
        p = Path(p).expanduser()
        if not p.is_file():
            raise UserError(f"shard database not found: {p}; give the files 'lit-edge tag --shard' wrote")
        if out.exists() and os.path.samefile(p, out):
            raise UserError(f"{p} is the output database too; merge into a new file")
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            inputs.append(p)
    if not inputs:
        raise UserError("no shard databases given; usage: lit-edge db merge OUT.db SHARD.db ...")
    return inputs


def check_bundles(config: MergeConfig, inputs: list[Path]) -> None:
    """Refuse inputs (or an OUT) made with different bundles, unless mixing is allowed."""
    seen: dict[str, Path] = {}
    out = Path(config.out)
    sources = ([out] if out.is_file() and out.stat().st_size else []) + inputs  # an empty file: new
    for p in sources:
        conn, _ = schema.connect_readonly(p)
        try:
            bundles = _bundles(conn)
        finally:
            conn.close()
        for b in sorted(bundles):
            seen.setdefault(b, p)
    if len(seen) > 1 and not config.allow_mixed_bundles:
        (a, pa), (b, pb) = list(seen.items())[:2]
        raise UserError(
            f"{pb} was tagged with {b}, {pa} with {a}: their scores are not comparable; merge the "
            "shards of one bundle, or pass --allow-mixed-bundles to keep them side by side"
        )


def _select(target: tuple[str, ...], source: tuple[str, ...], alias: str, fixed: dict[str, str]) -> str:
    """A SELECT list giving ``target``'s columns from a table with ``source``'s columns: the same
    column, a fixed expression, or NULL (an older input lacks it)."""
    out = []
    for col in target:
        if col in fixed:
            out.append(fixed[col])
        elif col in source:
            out.append(f'{alias}."{col}"')
        else:
            out.append("NULL")
    return ", ".join(out)


class _Merger:
    """One connection to OUT with each input attached in turn as ``s``."""

    def __init__(self, out: Path):
        schema.connect(out).close()  # create or migrate OUT the one way databases are made
        self.conn = sqlite3.connect(Path(out).resolve().as_uri(), uri=True, isolation_level=None)
        self.conn.execute("PRAGMA busy_timeout=10000")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA cache_size=-65536")  # 64 MB of pages: index inserts stay in memory
        self.conn.execute("PRAGMA temp_store=FILE")  # the temp tables of a big shard go to disk

    def close(self) -> None:
        self.conn.close()

    def merge(self, path: Path) -> ShardMerged:
        conn = self.conn
        conn.execute("ATTACH DATABASE ? AS s", [f"{Path(path).resolve().as_uri()}?mode=ro"])
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                done = self._merge(path)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as exc:
            raise UserError(f"{path}: cannot merge it ({exc}); check that it is a whole database") from exc
        finally:
            for t in ("run_map", "win", "id_map"):
                conn.execute(f"DROP TABLE IF EXISTS temp.{t}")
            conn.execute("DETACH DATABASE s")
        return done

    def _cols(self, table: str) -> tuple[str, ...]:
        return tuple(r[1] for r in self.conn.execute(f'PRAGMA s.table_info("{table}")'))

    def _merge(self, path: Path) -> ShardMerged:
        conn = self.conn
        res = ShardMerged(Path(path))
        res.media = conn.execute("SELECT COUNT(*) FROM s.media").fetchone()[0]
        self._runs(res)
        src = self._cols("media")
        target = schema.COLUMNS["media"][1:]  # all but id
        fixed = {
            "run_id": "rm.dst",
            "kind": "CASE WHEN m.frame_index >= 0 THEN 'live' ELSE 'photo' END",  # a 0.1 database
        }
        if "kind" in src:
            fixed.pop("kind")
        # the input's rows that win: new to OUT, done over failed, or newer with the same status
        conn.execute(
            """CREATE TEMP TABLE win AS
            SELECT m.id AS src, o.id AS dst FROM s.media m
            LEFT JOIN main.media o ON o.path = m.path AND o.frame_index = m.frame_index
            WHERE o.id IS NULL
               OR (m.status = 'done' AND o.status IS NOT 'done')
               OR (m.status IS o.status AND m.processed_at > o.processed_at)"""
        )
        res.added, res.replaced = conn.execute(
            "SELECT COUNT(*) - COUNT(dst), COUNT(dst) FROM temp.win"
        ).fetchone()
        cols = ", ".join(f'"{c}"' for c in target)
        updates = ", ".join(f'"{c}" = excluded."{c}"' for c in target if c not in ("path", "frame_index"))
        conn.execute(
            f"""INSERT INTO main.media ({cols})
            SELECT {_select(target, src, "m", fixed)} FROM temp.win w
            JOIN s.media m ON m.id = w.src LEFT JOIN temp.run_map rm ON rm.src = m.run_id
            WHERE true ORDER BY m.id
            ON CONFLICT(path, frame_index) DO UPDATE SET {updates}"""
        )
        conn.execute(
            """CREATE TEMP TABLE id_map (src INTEGER PRIMARY KEY, dst INTEGER NOT NULL, replaced INTEGER)"""
        )
        conn.execute(
            """INSERT INTO temp.id_map SELECT w.src, o.id, w.dst IS NOT NULL FROM temp.win w
            JOIN s.media m ON m.id = w.src
            JOIN main.media o ON o.path = m.path AND o.frame_index = m.frame_index"""
        )
        self._predictions()
        self._embeddings()
        res.annotations_added = self._annotations()
        return res

    def _runs(self, res: ShardMerged) -> None:
        """Copy the input's runs that OUT lacks, update the ones it has; fill ``temp.run_map``."""
        conn = self.conn
        conn.execute("CREATE TEMP TABLE run_map (src INTEGER PRIMARY KEY, dst INTEGER NOT NULL)")
        src = self._cols("runs")
        target = schema.COLUMNS["runs"][1:]
        # an older input may lack a key column (0.1 had no shard): there it is NULL
        theirs = {k: f'r."{k}"' if k in src else "NULL" for k in RUN_KEY}
        key = " AND ".join(f'o."{k}" IS {theirs[k]}' for k in RUN_KEY)
        for row in conn.execute(f"SELECT r.id, r.status, {_select(('shard',), src, 'r', {})} FROM s.runs r"):
            src_id, status, shard = row
            if shard:
                res.shards.append(shard)
            if status == schema.RUNNING:
                res.unfinished_runs += 1
            dst = conn.execute(
                f"SELECT o.id FROM main.runs o, s.runs r WHERE r.id = ? AND {key} ORDER BY o.id LIMIT 1",
                [src_id],
            ).fetchone()
            if dst is None:
                cur = conn.execute(
                    f"""INSERT INTO main.runs ({", ".join(f'"{c}"' for c in target)})
                    SELECT {_select(target, src, "r", {})} FROM s.runs r WHERE r.id = ?""",
                    [src_id],
                )
                dst_id = cur.lastrowid
                res.runs_added += 1
            else:
                dst_id = dst[0]
                # a run merged while it was going: it has finished (or been killed) since
                conn.execute(
                    """UPDATE main.runs AS o SET status = r.status, finished_at = r.finished_at
                    FROM s.runs r WHERE r.id = ? AND o.id = ?
                    AND r.finished_at IS NOT NULL AND r.finished_at IS NOT o.finished_at""",
                    [src_id, dst_id],
                )
            conn.execute("INSERT INTO temp.run_map VALUES (?, ?)", [src_id, dst_id])

    def _predictions(self) -> None:
        conn = self.conn
        src = self._cols("predictions")
        target = schema.COLUMNS["predictions"][1:]
        fixed = {"media_id": "i.dst"}
        if "position" not in src and "rank" in src:  # a 0.1 database
            fixed["position"] = 'p."rank"'
        conn.execute(
            "DELETE FROM main.predictions WHERE media_id IN (SELECT dst FROM temp.id_map WHERE replaced)"
        )
        conn.execute(
            f"""INSERT INTO main.predictions ({", ".join(f'"{c}"' for c in target)})
            SELECT {_select(target, src, "p", fixed)} FROM temp.id_map i
            JOIN s.predictions p ON p.media_id = i.src ORDER BY i.src, p.id"""
        )

    def _embeddings(self) -> None:
        conn = self.conn
        conn.execute(
            "DELETE FROM main.embeddings WHERE media_id IN (SELECT dst FROM temp.id_map WHERE replaced)"
        )
        if not self._cols("embeddings"):
            return
        conn.execute(
            """INSERT INTO main.embeddings (media_id, run_id, dim, vector)
            SELECT i.dst, rm.dst, e.dim, e.vector FROM temp.id_map i
            JOIN s.embeddings e ON e.media_id = i.src LEFT JOIN temp.run_map rm ON rm.src = e.run_id"""
        )

    def _annotations(self) -> int:
        """Carry the input's annotations (few: people made them) that OUT lacks; returns how many."""
        conn = self.conn
        if not self._cols("annotations"):
            return 0
        rows = conn.execute(
            """SELECT a.id, o.id, a.label, a.common_name, a.observation_type, a.reviewer, a.created_at,
                      a.replaces, a.retracted
            FROM s.annotations a JOIN s.media m ON m.id = a.media_id
            JOIN main.media o ON o.path = m.path AND o.frame_index = m.frame_index ORDER BY a.id"""
        ).fetchall()
        mapped: dict[int, int] = {}
        added = 0
        for src_id, media_id, label, common, otype, reviewer, created, replaces, retracted in rows:
            # what it replaces is part of who it is: an undo's restored copy repeats an earlier word
            # (same label, reviewer and, within a millisecond, time) at another place in the chain
            same = conn.execute(
                """SELECT id FROM main.annotations WHERE media_id = ? AND label IS ? AND reviewer IS ?
                AND created_at IS ? AND retracted IS ? AND replaces IS ?""",
                [media_id, label, reviewer, created, retracted, mapped.get(replaces)],
            ).fetchone()
            if same is not None:
                mapped[src_id] = same[0]
                continue
            cur = conn.execute(
                """INSERT INTO main.annotations (media_id, label, common_name, observation_type, reviewer,
                created_at, replaces, retracted) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                [media_id, label, common, otype, reviewer, created, mapped.get(replaces), retracted],
            )
            mapped[src_id] = cur.lastrowid
            added += 1
        return added


def merge(config: MergeConfig, on_shard=None) -> list[ShardMerged]:
    """Merge ``config.shards`` into ``config.out``; ``on_shard(result)`` after each input."""
    inputs = _inputs(config)
    for p in inputs:  # refuse a file that is not a detection database, or is newer, before writing
        schema.connect_readonly(p)[0].close()
    check_bundles(config, inputs)
    merger = _Merger(Path(config.out).expanduser())
    results = []
    try:
        for p in inputs:
            res = merger.merge(p)
            log.info("%s: %d added, %d replaced, %d kept", p, res.added, res.replaced, res.kept)
            results.append(res)
            if on_shard:
                on_shard(res)
    finally:
        merger.close()
    return results


def coverage(out: Path) -> list[str]:
    """What OUT holds, and which shards of each split have no finished run yet (to re-run)."""
    conn, _ = schema.connect_readonly(out)
    try:
        n, done, failed = conn.execute(
            "SELECT COUNT(*), TOTAL(status = 'done'), TOTAL(status = 'failed') FROM media"
        ).fetchone()
        runs = conn.execute("SELECT shard, status FROM runs WHERE shard IS NOT NULL").fetchall()
    finally:
        conn.close()
    lines = [f"{out}: {n} media, {int(done)} done, {int(failed)} failed"]
    finished: dict[int, set[int]] = {}
    for shard, status in runs:
        index, _, count = shard.partition("/")
        got = finished.setdefault(int(count), set())
        if status == schema.FINISHED:
            got.add(int(index))
    for count, got in sorted(finished.items()):
        missing = sorted(set(range(count)) - got)
        if not missing:
            lines.append(f"  all {count} shards of {count} have a finished run")
        else:
            ids = ",".join(map(str, missing))
            lines.append(
                f"  shard(s) {ids} of {count} have no finished run: re-run them "
                f"(SHARDS={count} sbatch --array={ids} device/tag_array.sh ...) and merge again"
            )
    return lines
