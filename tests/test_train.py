"""The trainer end to end with the tiny model on real JPEGs: cache, resume, 2 gloo ranks, kill, CLI, eval."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from safetensors.numpy import load_file
from typer.testing import CliRunner

from lit_edge.cli.app import app
from lit_edge.data.toy import write_toy_inat
from lit_edge.train.checkpointing import latest_checkpoint, list_checkpoints
from lit_edge.train.config import apply_overrides, load_config
from lit_edge.train.metrics import read_metrics
from lit_edge.train.trainer import train
from ports import free_ports

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "train" / "smoke.py"
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A toy iNat dataset and its feature cache, built once through the real CLI."""
    root = write_toy_inat(tmp_path_factory.mktemp("inat"), classes=8, train_per_class=4, val_per_class=2)
    cache = root / "cache"
    res = CliRunner().invoke(
        app,
        ["train", "cache-features", str(SMOKE), "--set", f"data.root={root}", "--set", f"cache.dir={cache}"],
    )
    assert res.exit_code == 0, res.output
    assert "32 rows" in res.output
    return root, cache


def _cfg(toy, out, *overrides):
    root, cache = toy
    return load_config(
        SMOKE, [f"data.root={root}", f"cache.dir={cache}", f"out_dir={out}", "dropout=false", *overrides]
    )


def _weights(folder: Path) -> dict[str, np.ndarray]:
    return load_file(str(folder / "model.safetensors"))


def _assert_same(a: dict, b: dict, atol: float = 0.0):
    assert a.keys() == b.keys()
    worst = max(float(np.abs(a[k] - b[k]).max()) for k in a)
    assert worst <= atol, f"weights differ by {worst}"


def test_cached_training_learns_and_resume_is_exact(toy, tmp_path):
    straight = train(_cfg(toy, tmp_path / "a", "max_steps=8"))
    assert straight.step == 8
    losses = [m["train/loss"] for m in read_metrics(tmp_path / "a") if "train/loss" in m]
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert [s for s, _ in list_checkpoints(tmp_path / "a")] == [4, 8]  # keep_checkpoints=2

    first = train(_cfg(toy, tmp_path / "b", "max_steps=8", "stop_at=4"))
    assert first.step == 4 and latest_checkpoint(tmp_path / "b").name == "step-00000004"
    second = train(_cfg(toy, tmp_path / "b", "max_steps=8"), resume=True)
    assert second.step == 8
    _assert_same(_weights(straight.checkpoint), _weights(second.checkpoint))

    from lit_edge.errors import UserError

    with pytest.raises(UserError, match="pass --resume"):
        train(_cfg(toy, tmp_path / "b", "max_steps=8"))


def test_locked_text_encoder_trains_only_the_head_and_its_feature_cache_changes_nothing(
    toy, tmp_path, monkeypatch
):
    """text.lock_encoder: encoder weights stay, the head moves; text.feature_cache: same run, cached."""
    from lit_edge.train import text_cache
    from lit_edge.train.trainer import build_model

    locked = ("max_steps=6", "text.lock_encoder=true")
    live_cfg = _cfg(toy, tmp_path / "live", *locked)
    start = {k: v.detach().numpy().copy() for k, v in build_model(live_cfg).state_dict().items()}
    live = _weights(train(live_cfg).checkpoint)
    encoder = [k for k in live if k.startswith("text_tower.encoder.")]
    head = [k for k in live if k.startswith("text_tower.head.")]
    assert encoder and head
    for k in encoder:
        np.testing.assert_array_equal(live[k], start[k], err_msg=k)
    assert all(not np.allclose(live[k], start[k]) for k in head)

    encoded: list[int] = []
    real_encode = text_cache.encode_texts

    def counting(model, texts, *args, **kwargs):
        encoded.append(len(texts))
        return real_encode(model, texts, *args, **kwargs)

    monkeypatch.setattr(text_cache, "encode_texts", counting)
    tf = tmp_path / "text-features"
    cached = train(_cfg(toy, tmp_path / "cached", *locked, f"text.feature_cache={tf}"))
    _assert_same(live, _weights(cached.checkpoint), atol=2e-5)
    import json

    texts = json.loads((tf / "texts.json").read_text(encoding="utf-8"))
    assert encoded == [len(texts)] and len(set(texts)) == len(texts) > 8  # 8 classes, several kinds

    # resume from the cached run's middle is exact, and the second run encodes nothing new
    first = train(_cfg(toy, tmp_path / "resumed", *locked, f"text.feature_cache={tf}", "stop_at=3"))
    assert first.step == 3
    second = train(_cfg(toy, tmp_path / "resumed", *locked, f"text.feature_cache={tf}"), resume=True)
    _assert_same(_weights(cached.checkpoint), _weights(second.checkpoint))
    assert len(encoded) == 1

    from lit_edge.errors import UserError

    with pytest.raises(UserError, match="another text encoder"):  # seed 1: other random encoder weights
        train(_cfg(toy, tmp_path / "other", *locked, f"text.feature_cache={tf}", "seed=1"))


def test_text_options_that_cannot_work_are_refused(toy, tmp_path):
    from lit_edge.errors import UserError

    with pytest.raises(UserError, match="text.feature_cache needs text.lock_encoder=true"):
        train(_cfg(toy, tmp_path / "a", f"text.feature_cache={tmp_path / 'tf'}"))
    with pytest.raises(UserError, match="loss.kind=distill needs a class-distribution model"):
        train(_cfg(toy, tmp_path / "b", "loss.kind=distill"))


def test_checkpoint_is_a_model_checkpoint_with_trainer_state(toy, tmp_path):
    from lit_edge.model import load_checkpoint
    from lit_edge.model.checkpoint import read_checkpoint_config

    res = train(_cfg(toy, tmp_path, "max_steps=4"))
    _, extra = read_checkpoint_config(res.checkpoint)
    assert extra["step"] == 4 and extra["sampler"]["epoch"] == 1 and extra["sampler"]["batch"] == 0
    assert extra["train_config"]["max_steps"] == 4
    assert (res.checkpoint / "optimizer.safetensors").is_file()
    model = load_checkpoint(res.checkpoint)  # what the exporter reads
    assert model.config.name == "lit-tiny-test"
    assert not list(res.checkpoint.parent.glob(".tmp-*"))
    last = res.checkpoint.parent / "last"  # what the README's `train eval runs/NAME/checkpoints/last` reads
    assert last.resolve() == res.checkpoint.resolve() and load_checkpoint(last).config.name == "lit-tiny-test"


def _rank_worker(rank, world, ports, cfg_dicts, out_dir):
    from safetensors.torch import save_file

    from lit_edge.train.config import TrainConfig

    torch.set_num_threads(1)
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank)})
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    for port, (name, cfg_dict) in zip(ports, cfg_dicts.items(), strict=True):
        os.environ["MASTER_PORT"] = str(port)  # a fresh rendezvous per run, like a fresh torchrun
        result = train(TrainConfig.from_dict(cfg_dict))
        state = {k: v.detach().contiguous() for k, v in result.model.state_dict().items()}
        save_file(state, f"{out_dir}/{name}-rank{rank}.safetensors")


LOSSES = {"softmax": ["loss.kind=softmax"], "sigmoid": ["loss.kind=sigmoid", "loss.multi_positive=true"]}


@pytest.mark.slow
def test_two_gloo_ranks_agree_and_match_one_process(toy, tmp_path):
    # locked text encoder with a text-feature cache: rank 0 encodes, rank 1 waits and reads it
    runs = {**LOSSES, "text-cache": ["text.lock_encoder=true", f"text.feature_cache={tmp_path / 'tf'}"]}
    cfgs = {name: _cfg(toy, tmp_path / f"two-{name}", "max_steps=6", *o) for name, o in runs.items()}
    ports = free_ports(len(cfgs))
    mp.spawn(
        _rank_worker, args=(2, ports, {k: c.to_dict() for k, c in cfgs.items()}, str(tmp_path)), nprocs=2
    )
    start = train(_cfg(toy, tmp_path / "zero", "max_steps=1", "optim.lr=0", "optim.warmup_steps=0"))
    init = {k: v.detach().numpy() for k, v in start.model.state_dict().items()}
    for name, overrides in runs.items():
        r0 = load_file(str(tmp_path / f"{name}-rank0.safetensors"))
        r1 = load_file(str(tmp_path / f"{name}-rank1.safetensors"))
        _assert_same(r0, r1)  # ranks end with identical weights
        single = train(_cfg(toy, tmp_path / f"one-{name}", "max_steps=6", *overrides))
        one = {k: v.detach().numpy() for k, v in single.model.state_dict().items()}
        _assert_same(r0, one, atol=1e-5)  # and with one process on the same global batches
        moved = max(float(np.abs(r0[k] - init[k]).max()) for k in r0)
        assert moved > 1e-3  # the comparison is not of two untrained models


@pytest.mark.slow
def test_killed_run_resumes_losing_only_steps_since_the_last_checkpoint(toy, tmp_path):
    root, cache = toy
    out = tmp_path / "killed"
    steps = 120
    overrides = [
        f"data.root={root}",
        f"cache.dir={cache}",
        f"out_dir={out}",
        "dropout=false",
        f"max_steps={steps}",
        "checkpoint_every=5",
    ]
    args = [sys.executable, "-m", "lit_edge.train", "run", str(SMOKE)]
    for o in overrides:
        args += ["--set", o]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not any(s >= 10 for s, _ in list_checkpoints(out)):
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    saved = [s for s, _ in list_checkpoints(out)]
    assert saved and 10 <= max(saved) < steps, saved
    resumed = train(load_config(SMOKE, overrides), resume=True)
    assert resumed.step == steps
    logged = [m["step"] for m in read_metrics(out) if "train/loss" in m]
    assert logged[-1] == steps
    straight = train(_cfg(toy, tmp_path / "straight", f"max_steps={steps}", f"checkpoint_every={steps}"))
    _assert_same(_weights(straight.checkpoint), _weights(resumed.checkpoint))


def test_online_mode_skips_unreadable_images_and_evaluates_every_rank(tmp_path):
    root = write_toy_inat(tmp_path / "inat", classes=4, train_per_class=4, val_per_class=2)
    victim = sorted((root / "train").rglob("*.jpg"))[3]
    victim.write_bytes(b"truncated")
    (sorted((root / "val").rglob("*.jpg"))[0]).unlink()
    cfg = load_config(
        SMOKE,
        [
            f"data.root={root}",
            f"out_dir={tmp_path / 'run'}",
            "max_steps=4",
            "global_batch=4",
            "eval.evaluators=zeroshot",
            f"eval.data.root={root}",
            "eval.every_steps=2",
        ],
    )
    res = train(cfg)
    assert res.step == 4
    assert res.failed_images >= 1  # the truncated JPEG, counted, never a crash
    assert res.metrics["zeroshot/failed"] == 1 and res.metrics["zeroshot/images"] == 7
    for rank in ("species", "genus", "family", "order", "class", "phylum", "kingdom"):
        assert 0.0 <= res.metrics[f"zeroshot/{rank}/top1"] <= res.metrics[f"zeroshot/{rank}/top5"] <= 1.0
    evals = [m for m in read_metrics(tmp_path / "run") if "zeroshot/species/top1" in m]
    assert [m["step"] for m in evals] == [2, 4]
    assert (tmp_path / "run" / "metrics.csv").read_text().startswith("step,name,value")


def test_topk_by_rank_sums_probabilities_within_each_group():
    from lit_edge.train.evaluate import topk_by_rank

    taxa = [
        {"scientific_name": "A a", "genus": "A", "family": "F"},
        {"scientific_name": "A b", "genus": "A", "family": "F"},
        {"scientific_name": "C c", "genus": "C", "family": "F"},
        {"scientific_name": "D d", "genus": "D", "family": ""},
    ]
    probs = np.array([[0.3, 0.25, 0.45, 0.0], [0.1, 0.1, 0.1, 0.7]])
    labels = np.array([0, 3])
    m = topk_by_rank(probs, labels, taxa, ks=(1, 2))
    assert m["species/top1"] == 0.5 and m["species/top2"] == 1.0  # C c beats A a; D d right
    assert m["genus/top1"] == 1.0  # A (0.55) beats C (0.45); D right
    assert m["family/top1"] == 1.0 and "kingdom/top1" not in m  # unknown family not counted


def test_cli_help_errors_and_eval(toy, tmp_path):
    runner = CliRunner()
    for cmd in ("run", "cache-features", "eval"):
        res = runner.invoke(app, ["train", cmd, "--help"])
        assert res.exit_code == 0 and "Usage" in res.output
    res = runner.invoke(app, ["train", "run", str(SMOKE), "--set", "optim.lrr=1"])
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [
        "error: unknown config key 'optim.lrr' (no 'lrr' in OptimConfig); did you mean lr?"
    ]
    res = runner.invoke(app, ["train", "run", str(SMOKE)])
    assert res.exit_code == 2 and "data.root is empty" in res.output

    root, cache = toy
    res = runner.invoke(
        app,
        [
            "train",
            "run",
            str(SMOKE),
            "--set",
            f"data.root={root}",
            "--set",
            f"cache.dir={cache}",
            "--set",
            f"out_dir={tmp_path / 'run'}",
            "--set",
            "max_steps=2",
        ],
    )
    assert res.exit_code == 0, res.output
    ckpt = latest_checkpoint(tmp_path / "run")
    res = runner.invoke(
        app, ["train", "eval", str(ckpt), "--data", str(root), "--out", str(tmp_path / "m.json")]
    )
    assert res.exit_code == 0, res.output
    assert "zeroshot/species/top1" in res.output and "zeroshot/kingdom/top5" in res.output
    assert (tmp_path / "m.json").is_file()


def test_cache_for_another_model_is_refused(toy, tmp_path):
    from lit_edge.errors import UserError

    cfg = _cfg(toy, tmp_path, "max_steps=1")
    cfg = apply_overrides(cfg, [])
    import json

    meta_path = toy[1] / "meta.json"
    meta = json.loads(meta_path.read_text())
    bad = tmp_path / "cache"
    bad.mkdir()
    for f in toy[1].iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    meta["model"]["hash"] = "0000"
    (bad / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="another image tower"):
        train(replace(cfg, cache=replace(cfg.cache, dir=str(bad))))


def test_training_from_a_written_cache_uses_its_captions(tmp_path, monkeypatch):
    """The starter's route: write_cache(features, labels, taxa, captions) then train from it alone."""
    import json

    from lit_edge.model import get_config
    from lit_edge.train.cache import write_cache

    model_cfg = get_config("lit-tiny-test").to_dict()
    model_cfg["name"] = "tiny-locked-proj"
    model_cfg["image"]["lock_proj"] = True  # nothing in the image tower trains: rows are embeddings
    (tmp_path / "m.json").write_text(json.dumps(model_cfg))
    rng = np.random.default_rng(0)
    labels = np.arange(16) % 4
    feats = rng.normal(size=(4, 32))[labels] + 0.1 * rng.normal(size=(16, 32))
    taxa = [{"scientific_name": n} for n in ("Aa aa", "Bb bb", "Cc cc", "Dd dd")]
    captions = {i: [f"class {i} text", f"another class {i} text"] for i in range(4)}
    write_cache(tmp_path / "c", feats, labels, taxa, captions)
    cfg = load_config(
        SMOKE,
        [
            f"model={tmp_path / 'm.json'}",
            f"cache.dir={tmp_path / 'c'}",
            f"out_dir={tmp_path / 'run'}",
            "max_steps=4",
            "global_batch=8",
        ],
    )
    from lit_edge.model import LiTModel

    seen: list[str] = []
    original = LiTModel.tokenize

    def spy(self, texts):
        seen.extend([texts] if isinstance(texts, str) else texts)
        return original(self, texts)

    monkeypatch.setattr(LiTModel, "tokenize", spy)
    res = train(cfg)
    assert res.step == 4 and res.checkpoint is not None
    assert len(seen) == 32 and set(seen) <= {t for texts in captions.values() for t in texts}
    bad = apply_overrides(cfg, ["model=lit-tiny-test", f"out_dir={tmp_path / 'run2'}"])
    from lit_edge.errors import UserError

    with pytest.raises(UserError, match="'embedding' features but model"):
        train(bad)
