"""`lit-edge tag` with several inference workers: same results, every file once, the plan recorded.

Real parts throughout: the colour bundle's ONNX graph in real ONNX Runtime sessions, real JPEGs,
a real SQLite file, the real CLI.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bundle_factory import COLOURS, make_bundle, solid, write_jpeg
from lit_edge.cli.app import app
from lit_edge.device import backends
from lit_edge.device.config import BackendConfig, EngineConfig, TagConfig
from lit_edge.device.pipeline import Engine
from lit_edge.device.plan import plan_tag
from lit_edge.device.tagger import run_tag

runner = CliRunner()
NAMES = list(COLOURS)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """60 noisy solid-colour JPEGs (the noise makes every score distinct) and one corrupt file."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(3)
    for i in range(60):
        noise = rng.integers(0, 40, (48, 64, 3), dtype=np.uint8)
        write_jpeg(root / f"{i:03d}.jpg", solid(COLOURS[NAMES[i % 4]]) ^ noise)
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    return root


def _table(db: Path) -> dict[str, tuple]:
    """path name -> (status, error, top name, top rank, top score, [(position, label, score), ...])."""
    con = sqlite3.connect(db)
    try:
        media = con.execute(
            "SELECT id, path, status, error, top_name, top_rank, top_score FROM media"
        ).fetchall()
        preds = con.execute(
            "SELECT media_id, position, label_id, score FROM predictions ORDER BY media_id, position"
        )
        by_media: dict[int, list] = {}
        for mid, position, label, score in preds:
            by_media.setdefault(mid, []).append((position, label, score))
    finally:
        con.close()
    return {Path(p).name: (s, e, n, r, sc, by_media.get(mid, [])) for mid, p, s, e, n, r, sc in media}


def _settings(db: Path) -> dict:
    con = sqlite3.connect(db)
    try:
        return json.loads(con.execute("SELECT settings FROM runs ORDER BY id DESC").fetchone()[0])
    finally:
        con.close()


def test_plan_picks_workers_and_threads_by_core_count():
    cfg = TagConfig(source="x", db=Path("x.db"))
    cpu, gpu = backends.get("onnxruntime-cpu"), backends.get("onnxruntime-cuda")
    two = plan_tag(cfg, cpu, cores=2)
    assert (two.workers, two.threads, two.batch_size, two.decoders) == (2, 1, 2, 2)
    eight = plan_tag(cfg, cpu, cores=8)
    assert (eight.workers, eight.threads) == (4, 2)  # at most 4 workers; the rest as intra-op threads
    one = plan_tag(cfg, cpu, cores=1)
    assert (one.workers, one.threads) == (1, 1)
    on_gpu = plan_tag(cfg, gpu, cores=8)
    assert (on_gpu.workers, on_gpu.threads, on_gpu.batch_size) == (1, 8, 16)
    assert plan_tag(cfg, backends.get("tensorrt"), cores=8) == on_gpu  # by the device, not the name
    # explicit settings win; --workers 1 alone is the old single session on every core
    old = plan_tag(TagConfig(source="x", db=Path("x.db"), workers=1), cpu, cores=2)
    assert (old.workers, old.threads) == (1, 2)
    mine = TagConfig(
        source="x",
        db=Path("x.db"),
        workers=3,
        batch_size=5,
        decoders=1,
        engine=EngineConfig(backend=BackendConfig(threads=2)),
    )
    assert plan_tag(mine, cpu, cores=2) == plan_tag(mine, cpu, cores=64)
    assert (plan_tag(mine, gpu, cores=2).workers, plan_tag(mine, gpu, cores=2).threads) == (3, 2)


def test_several_workers_give_the_same_rows_as_one(tmp_path, bundle, photos):
    """Same files, 1 worker vs 3 workers sharing one session: identical rows."""
    tables = []
    for extra in (["--workers", "1"], ["--workers", "3"]):
        db = tmp_path / f"w{extra[1]}.db"
        args = ["tag", str(photos), "--db", str(db), "--bundle", str(bundle), "--no-progress"]
        r = runner.invoke(app, [*args, "--threads", "1", "--batch-size", "2", *extra])
        assert r.exit_code == 0, r.output
        assert "60 done, 1 failed" in r.output
        tables.append(_table(db))
        assert _settings(db)["plan"]["workers"] == int(extra[1])
    one, three = tables
    assert len(one) == 61 and one == three
    assert one["corrupt.jpg"][0] == "failed"
    assert {one[f"{i:03d}.jpg"][2] for i in range(0, 60, 4)} == {NAMES[0]}  # really classified
    # every photo has its own scores (the runner-ups differ with the noise): a comparison that can fail
    assert len({tuple(row[5]) for row in one.values() if row[0] == "done"}) > 30


def test_workers_really_run_batches_at_the_same_time(tmp_path, bundle, photos):
    """The batches of a 2-worker run overlap in time; with 1 worker they never do."""

    def peak_overlap(workers: int) -> int:
        engine = Engine(EngineConfig(bundle=bundle, backend=BackendConfig("onnxruntime-cpu", threads=1)))
        inner = engine.backend.embed
        lock, now, peak = threading.Lock(), [0], [0]
        gate = threading.Barrier(2, timeout=0.5)

        def embed(batch):
            with lock:
                now[0] += 1
                peak[0] = max(peak[0], now[0])
            try:
                gate.wait()  # hold each call until a second one arrives (or 0.5 s pass)
            except threading.BrokenBarrierError:
                gate.reset()
            try:
                return inner(batch)
            finally:
                with lock:
                    now[0] -= 1

        engine.backend.embed = embed
        cfg = TagConfig(source=str(photos), db=tmp_path / f"o{workers}.db", batch_size=16, workers=workers)
        result = run_tag(cfg, engine=engine)
        assert result.processed == 61 and result.failed == 1
        return peak[0]

    assert peak_overlap(1) == 1
    assert peak_overlap(2) == 2


def test_worker_and_thread_flags_are_checked_and_recorded(tmp_path, bundle, photos):
    db = tmp_path / "f.db"
    base = ["tag", str(photos), "--db", str(db), "--bundle", str(bundle), "--no-progress"]
    r = runner.invoke(app, [*base, "--workers", "-1"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    r = runner.invoke(app, [*base, "--threads", "-2"])
    assert r.exit_code == 2
    r = runner.invoke(app, [*base, "--workers", "2", "--threads", "1", "--batch-size", "3"])
    assert r.exit_code == 0, r.output
    got = _settings(db)["plan"]
    assert (got["workers"], got["threads"], got["batch_size"]) == (2, 1, 3)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux-only")
def test_auto_plan_follows_the_cores_this_process_may_use():
    """Pinned to one core (taskset, a container's cpuset), auto means one worker of one thread."""
    code = (
        "import os\n"
        "os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})\n"
        "from pathlib import Path\n"
        "from lit_edge.device import backends\n"
        "from lit_edge.device.config import TagConfig\n"
        "from lit_edge.device.plan import plan_tag\n"
        "p = plan_tag(TagConfig(source='x', db=Path('x.db')), backends.get('onnxruntime-cpu'))\n"
        "print(p.workers, p.threads, p.decoders)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["1", "1", "1"]
