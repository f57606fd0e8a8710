"""On a real Slurm cluster (two slurmd on 127.0.0.1): sharded tag arrays with a cancel and a
requeue, merged into one database, and ``train/slurm.sh`` as a user submits it.

The cluster (``tests/slurm_cluster.py``) starts once for this module and stops after it. Where
Slurm cannot start (not installed, not root) the tests are skipped with the reason;
``LIT_EDGE_REQUIRE_SLURM=1`` (set by ``.ci/run``) turns that into a failure.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest

from ports import free_ports
from slurm_cluster import SlurmCluster, SlurmUnavailable, missing_prerequisite

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.slurm]


def _unavailable(why: str):
    if os.environ.get("LIT_EDGE_REQUIRE_SLURM") == "1":
        pytest.fail(f"Slurm required (LIT_EDGE_REQUIRE_SLURM=1) but {why}")
    pytest.skip(f"no Slurm cluster: {why}")


@pytest.fixture(scope="module")
def slurm():
    why = missing_prerequisite()
    if why:
        _unavailable(why)
    cluster = SlurmCluster()
    try:
        cluster.start()
    except SlurmUnavailable as exc:
        cluster.stop()
        _unavailable(f"it did not start: {exc}")
    yield cluster
    cluster.stop()


def job_env(**extra: str) -> dict[str, str]:
    """What a user's shell exports to sbatch: this Python's environment first on PATH, this
    checkout's code first on PYTHONPATH (the CLI ``lit-edge`` and ``python`` resolve to them)."""
    src = str(REPO / "src")
    pythonpath = os.pathsep.join([src, *filter(None, [os.environ.get("PYTHONPATH")])])
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {"PATH": path, "PYTHONPATH": pythonpath, "OMP_NUM_THREADS": "1", **extra}


def test_train_slurm_sh_on_two_nodes_matches_one_process(slurm, tmp_path):
    pytest.importorskip("torch")
    from safetensors.numpy import load_file
    from typer.testing import CliRunner

    from lit_edge.cli.app import app
    from lit_edge.data.toy import write_toy_inat
    from lit_edge.train.checkpointing import latest_checkpoint
    from lit_edge.train.config import load_config
    from lit_edge.train.trainer import train

    smoke = REPO / "train" / "smoke.py"
    root = write_toy_inat(tmp_path / "inat", classes=8, train_per_class=4, val_per_class=2)
    cache = root / "cache"
    res = CliRunner().invoke(
        app,
        ["train", "cache-features", str(smoke), "--set", f"data.root={root}", "--set", f"cache.dir={cache}"],
    )
    assert res.exit_code == 0, res.output
    sets = [f"data.root={root}", f"cache.dir={cache}", "dropout=false", "max_steps=6"]

    # as the script's header says for CPU nodes; the cluster's nodes have one CPU each
    args = ["--nodes=2", "--gpus-per-node=0", "--cpus-per-task=1", f"--chdir={tmp_path}"]
    job = slurm.sbatch(
        [*args, str(REPO / "train" / "slurm.sh"), str(smoke), *[x for s in sets for x in ("--set", s)],
         "--set", f"out_dir={tmp_path / 'slurm'}"],
        env=job_env(RDZV_PORT=str(free_ports(1)[0])),
    )  # fmt: skip
    states = slurm.wait(job, timeout_s=600)
    log = next(tmp_path.glob(f"slurm-lit-edge-train-{job}.out")).read_text()
    assert states == {"": "COMPLETED"}, log[-3000:]
    assert "2 node(s) x 1 process(es)" in log and "over 2 rank(s)" in log, log[-3000:]

    ckpt = latest_checkpoint(tmp_path / "slurm")
    assert ckpt is not None, log[-3000:]
    two = load_file(str(ckpt / "model.safetensors"))
    single = train(load_config(smoke, [*sets, f"out_dir={tmp_path / 'one'}"]))
    one = {k: v.detach().numpy() for k, v in single.model.state_dict().items()}
    start = train(load_config(smoke, [*sets, f"out_dir={tmp_path / 'zero'}", "max_steps=1", "optim.lr=0",
                                      "optim.warmup_steps=0"]))  # fmt: skip
    init = {k: v.detach().numpy() for k, v in start.model.state_dict().items()}
    assert two.keys() == one.keys()
    worst = max(float(np.abs(two[k] - one[k]).max()) for k in two)
    assert worst <= 1e-5, f"2 nodes and 1 process differ by {worst}"
    moved = max(float(np.abs(two[k] - init[k]).max()) for k in two)
    assert moved > 1e-3  # the comparison is not of two untrained models


# -- tag arrays -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def colour_bundle(tmp_path_factory) -> Path:
    from bundle_factory import make_bundle

    return make_bundle(tmp_path_factory.mktemp("bundle"))


def _photo_folder(root: Path, n: int, size: tuple[int, int]) -> Path:
    """``n`` photos in a few sub-folders (copies of one real JPEG: the paths are what is split)."""
    import shutil

    from bundle_factory import write_jpeg

    h, w = size
    ramp = np.linspace(0, 255, w, dtype=np.uint8)
    img = np.stack([np.tile(ramp, (h, 1)), np.tile(ramp[::-1], (h, 1)), np.full((h, w), 90, np.uint8)], -1)
    one = write_jpeg(root / "one.jpg", img)
    photos = root / "photos"
    for i in range(n):
        dest = photos / f"cam{i % 3}" / f"IMG_{i:05d}.JPG"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(one, dest)
    return photos


def _q(db: Path, sql: str):
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _submit_tag_array(slurm, tmp_path, photos, dbs, bundle, array: str, **env) -> str:
    return slurm.sbatch(
        [f"--array={array}", "--cpus-per-task=1", "--mem=1G", f"--chdir={tmp_path}",
         str(REPO / "device" / "tag_array.sh"), str(photos), str(dbs),
         "--bundle", str(bundle), "--workers", "1", "--batch-size", "1"],
        env=job_env(**env),
    )  # fmt: skip


def _merge(out: Path, dbs: Path) -> str:
    from typer.testing import CliRunner

    from lit_edge.cli.app import app

    r = CliRunner().invoke(app, ["db", "merge", str(out), *map(str, sorted(dbs.glob("*.db")))])
    assert r.exit_code == 0, r.output
    return r.output


def _logs(tmp_path: Path) -> str:
    return "\n".join(
        f"--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted(tmp_path.glob("lit-edge-tag-*.out"))
    )


def test_a_four_task_tag_array_merges_to_every_photo_once(slurm, tmp_path, colour_bundle):
    n = 120
    photos = _photo_folder(tmp_path, n, (96, 128))
    dbs = tmp_path / "dbs"
    job = _submit_tag_array(slurm, tmp_path, photos, dbs, colour_bundle, "0-3")
    states = slurm.wait(job)
    assert set(states.values()) == {"COMPLETED"} and len(states) == 4, (states, _logs(tmp_path))
    names = sorted(p.name for p in dbs.glob("*.db"))
    assert names == [f"lit-edge.shard-{i}-of-4.db" for i in range(4)]
    sizes = [_q(dbs / name, "SELECT COUNT(*) FROM media")[0][0] for name in names]
    assert sum(sizes) == n and all(s > 0 for s in sizes), sizes

    out = tmp_path / "all.db"
    said = _merge(out, dbs)
    assert "all 4 shards of 4 have a finished run" in said, said
    assert _q(out, "SELECT COUNT(*), COUNT(DISTINCT path), TOTAL(status = 'done') FROM media") == [(n, n, n)]
    assert sorted(r[0] for r in _q(out, "SELECT shard FROM runs")) == ["0/4", "1/4", "2/4", "3/4"]


def test_a_cancelled_and_requeued_task_and_a_repeated_shard_still_give_every_photo_once(
    slurm, tmp_path, colour_bundle
):
    n = 1000  # ~250 a task, big enough photos that a task runs for seconds
    photos = _photo_folder(tmp_path, n, (768, 1024))
    dbs = tmp_path / "dbs"
    job = _submit_tag_array(slurm, tmp_path, photos, dbs, colour_bundle, "0-3")
    victim = dbs / "lit-edge.shard-1-of-4.db"

    def started(states) -> bool:
        if states.get("1") != "RUNNING" or not victim.exists():
            return False
        try:
            return _q(victim, "SELECT COUNT(*) FROM media")[0][0] >= 10
        except sqlite3.Error:
            return False

    slurm.wait(job, until=started, timeout_s=300)
    slurm.run(["scancel", f"{job}_1"])  # mid-run: SIGTERM, lit-edge flushes and exits
    slurm.wait(job, until=lambda s: s.get("1") == "CANCELLED", timeout_s=60)
    partial = _q(victim, "SELECT COUNT(*) FROM media")[0][0]
    assert 10 <= partial < 250 + 50, partial
    slurm.run(["scontrol", "requeue", f"{job}_1"])
    # Slurm holds a requeued job back for two minutes (BeginTime); a user waits, the test need not
    slurm.run(["scontrol", "update", f"JobId={job}_1", "StartTime=now"])
    states = slurm.wait(job, timeout_s=600)
    assert set(states.values()) == {"COMPLETED"}, (states, _logs(tmp_path))
    log = (tmp_path / f"lit-edge-tag-{job}_1.out").read_text()
    assert "restart 0" in log and "restart 1" in log  # one log, both attempts (--open-mode=append)

    runs = _q(victim, "SELECT shard, status FROM runs ORDER BY id")
    assert [r[0] for r in runs] == ["1/4", "1/4"] and runs[-1][1] == "finished"
    assert runs[0][1] in ("interrupted", "running"), runs  # flushed on SIGTERM (or killed after KillWait)
    assert _q(victim, "SELECT COUNT(*) = COUNT(DISTINCT path) FROM media") == [(1,)]

    out = tmp_path / "all.db"
    _merge(out, dbs)
    # shard 2 submitted again on its own (as after a node failure): SHARDS says N; it resumes
    again = _submit_tag_array(slurm, tmp_path, photos, dbs, colour_bundle, "2", SHARDS="4")
    assert slurm.wait(again) == {"2": "COMPLETED"}, _logs(tmp_path)
    said = _merge(out, dbs)
    assert said.count(" 0 added, 0 replaced") == 4, said  # nothing new, nothing twice
    assert _q(out, "SELECT COUNT(*), COUNT(DISTINCT path), TOTAL(status = 'done') FROM media") == [(n, n, n)]
    shards = sorted(r[0] for r in _q(out, "SELECT shard FROM runs"))
    assert shards == ["0/4", "1/4", "1/4", "2/4", "2/4", "3/4"]
