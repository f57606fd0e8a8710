"""Configs as code: the shipped train/*.py files load, and --set overrides are typed and checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from lit_edge.train.config import TrainConfig, apply_overrides, load_config
from lit_edge.train.trainer import learning_rate

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["smoke", "laptop", "inat2021_vitl16"])
def test_shipped_configs_load(name):
    cfg = load_config(REPO / "train" / f"{name}.py")
    assert isinstance(cfg, TrainConfig)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_reference_config_is_the_papers_setup():
    cfg = load_config(REPO / "train" / "inat2021_vitl16.py")
    assert (cfg.global_batch, cfg.epochs, cfg.optim.lr, cfg.optim.weight_decay) == (4096, 32, 5e-4, 0.1)
    assert (cfg.optim.warmup_steps, cfg.optim.schedule) == (500, "cosine")
    from lit_edge.model import get_config

    image = get_config(cfg.model).image
    assert image.lock and "vit_large_patch16" in image.timm_name


def test_overrides_parse_to_the_field_types():
    cfg = apply_overrides(
        TrainConfig(),
        [
            "optim.lr=2e-4",
            "global_batch=64",
            "dropout=false",
            "loss.kind=sigmoid",
            "loss.multi_positive=yes",
            "optim.betas=0.9,0.98",
            'data.text_mix={"scientific": 2, "common": 1}',
            "eval.evaluators=zeroshot",
            "eval.data.split=train_mini",
        ],
    )
    assert cfg.optim.lr == 2e-4 and cfg.global_batch == 64 and cfg.dropout is False
    assert cfg.loss.kind == "sigmoid" and cfg.loss.multi_positive is True
    assert cfg.optim.betas == (0.9, 0.98)
    assert cfg.data.text_mix == {"scientific": 2.0, "common": 1.0}
    assert cfg.eval.evaluators == ("zeroshot",) and cfg.eval.data.split == "train_mini"


@pytest.mark.parametrize(
    ("item", "match"),
    [
        ("optim.lrr=1", r"unknown config key 'optim.lrr'.*did you mean lr"),
        ("global_batch=many", r"bad value 'many' for config key 'global_batch': expected int"),
        ("dropout=maybe", "expected bool"),
        ("optim=1", "expected OptimConfig"),
        ("global_batch.x=1", "is a value, not a section"),
        ("novalue", "write it as key=value"),
    ],
)
def test_bad_overrides_are_clear_user_errors(item, match):
    from lit_edge.errors import UserError

    with pytest.raises(UserError, match=match):
        apply_overrides(TrainConfig(), [item])


def test_config_file_without_get_config_is_refused(tmp_path):
    from lit_edge.errors import UserError

    (tmp_path / "c.py").write_text("X = 1\n")
    with pytest.raises(UserError, match="no get_config"):
        load_config(tmp_path / "c.py")
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "missing.py")


def test_learning_rate_warms_up_then_follows_the_cosine():
    from lit_edge.train.config import OptimConfig

    cfg = OptimConfig(lr=1.0, warmup_steps=10, schedule="cosine", min_lr_ratio=0.1)
    assert learning_rate(cfg, 0, 110) == pytest.approx(0.1)
    assert learning_rate(cfg, 9, 110) == pytest.approx(1.0)
    assert learning_rate(cfg, 60, 110) == pytest.approx(0.55)  # half-way down the cosine
    assert learning_rate(cfg, 110, 110) == pytest.approx(0.1)


def test_eval_data_follows_the_training_data_unless_set():
    cfg = load_config(REPO / "train" / "laptop.py", ["data.root=/somewhere/inat"])
    resolved = cfg.eval_config().data
    assert (resolved.root, resolved.format, resolved.split) == ("/somewhere/inat", "inat", "val")
    cfg = apply_overrides(cfg, ["eval.data.root=/held/out"])
    assert cfg.eval_config().data.root == "/held/out"


def test_the_toy_data_set_is_what_the_laptop_config_reads(tmp_path):
    """`python -m lit_edge.data.toy DIR` then `train run train/laptop.py --set data.root=DIR`."""
    import subprocess
    import sys

    from lit_edge.data import load_dataset
    from lit_edge.train.batches import EpochSampler

    subprocess.run([sys.executable, "-m", "lit_edge.data.toy", str(tmp_path / "toy")], check=True)
    cfg = load_config(REPO / "train" / "laptop.py", [f"data.root={tmp_path / 'toy'}"])
    train = load_dataset(cfg.data)
    assert cfg.data.split == "train_mini" and len(train) >= cfg.global_batch
    assert EpochSampler(len(train), cfg.global_batch, 0).steps_per_epoch >= 1
    assert len(load_dataset(cfg.eval_config().data)) > 0


def test_a_global_batch_larger_than_the_data_says_which_set_fixes_it():
    from lit_edge.errors import UserError
    from lit_edge.train.batches import EpochSampler

    with pytest.raises(UserError, match=r"32 samples.*--set global_batch=32"):
        EpochSampler(32, 128, 0)
