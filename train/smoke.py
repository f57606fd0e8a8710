"""Smoke config: the tiny random model on a handful of images, seconds on a laptop CPU (tests run it).

lit-edge train run train/smoke.py --set data.root=/path/to/tiny/inat --set cache.dir=/tmp/cache
"""

from lit_edge.train.config import CacheConfig, DataConfig, EvalConfig, OptimConfig, TrainConfig


def get_config() -> TrainConfig:
    return TrainConfig(
        name="smoke",
        model="lit-tiny-test",
        data=DataConfig(format="inat", root="", split="train"),
        cache=CacheConfig(dir="", shard_size=8, batch_size=8),
        optim=OptimConfig(lr=1e-3, weight_decay=0.1, warmup_steps=2, schedule="cosine"),
        eval=EvalConfig(evaluators=(), data=DataConfig(format="inat", root="", split="val"), batch_size=8),
        global_batch=8,
        epochs=2,
        seed=0,
        out_dir="runs/smoke",
        checkpoint_every=4,
        keep_checkpoints=2,
        log_every=2,
    )
