"""A laptop run with the packaged towers: locked EfficientNet-Lite0 + MiniLM, features cached once.

python -m lit_edge.data.toy /tmp/toy-inat      # or point data.root at your own iNat-style data
lit-edge train run train/laptop.py --set data.root=/tmp/toy-inat

Short of time (a CPU, no GPU)? Lock MiniLM too and train only its head: every caption is then
encoded once into a text-feature cache and an epoch costs only the head (see TextConfig)::

lit-edge train run train/laptop.py --set data.root=/tmp/toy-inat --set out_dir=runs/laptop-locked \
    --set text.lock_encoder=true --set text.feature_cache=runs/laptop/text-features --set optim.lr=1e-3
"""

from lit_edge.train.config import CacheConfig, DataConfig, EvalConfig, LossConfig, OptimConfig, TrainConfig


def get_config() -> TrainConfig:
    return TrainConfig(
        name="laptop",
        model="lit-effnetlite0-minilm",
        data=DataConfig(format="inat", root="data/inat2021", split="train_mini", num_workers=2),
        cache=CacheConfig(dir="runs/laptop/cache", shard_size=2048, batch_size=64),
        loss=LossConfig(kind="softmax", multi_positive=True),
        optim=OptimConfig(lr=1e-4, weight_decay=0.1, warmup_steps=100, schedule="cosine"),
        eval=EvalConfig(  # data.root unset: the held-out split (val) of data.root
            evaluators=("zeroshot",),
            every_steps=500,
            data=DataConfig(format="inat", split="val"),
            batch_size=64,
            max_images=2000,
        ),
        global_batch=128,
        epochs=4,
        seed=0,
        out_dir="runs/laptop",
        checkpoint_every=200,
        log_every=20,
    )
