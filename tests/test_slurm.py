"""On a real Slurm cluster (two slurmd on 127.0.0.1): sharded tag arrays with a cancel and a
requeue, merged into one database, and ``train/slurm.sh`` as a user submits it.

The cluster (``tests/slurm_cluster.py``) starts once for this module and stops after it. Where
Slurm cannot start (not installed, not root) the tests are skipped with the reason;
``LIT_EDGE_REQUIRE_SLURM=1`` (set by ``.ci/run``) turns that into a failure.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from slurm_cluster import SlurmCluster, SlurmUnavailable, _free_ports, missing_prerequisite

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
        env=job_env(RDZV_PORT=str(_free_ports(1)[0])),
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
