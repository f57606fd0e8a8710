"""The paper's setup on iNaturalist-2021: locked ViT-L/16, MiniLM text tower, contrastive (softmax) loss.

Global batch 4096, 32 epochs, AdamW lr 5e-4, weight decay 0.1, 500 warmup steps then cosine. The
locked tower's features are cached once (float16, ~2.7M x 1024) and the text tower trains from them.
The ViT-L/16 weights are your own local file (no hub here)::

    # one node, 8 GPUs (cache first, then train; both resumable)
    torchrun --standalone --nproc_per_node=8 -m lit_edge.train cache-features train/inat2021_vitl16.py \\
        --set data.root=/data/inat2021 --set image_checkpoint=/models/vit_l16.safetensors
    torchrun --standalone --nproc_per_node=8 -m lit_edge.train run train/inat2021_vitl16.py \\
        --set data.root=/data/inat2021 --set image_checkpoint=/models/vit_l16.safetensors
    # many nodes under Slurm: sbatch train/slurm.sh train/inat2021_vitl16.py --set ...
"""

from lit_edge.train.config import CacheConfig, DataConfig, EvalConfig, LossConfig, OptimConfig, TrainConfig


def get_config() -> TrainConfig:
    return TrainConfig(
        name="inat2021-vitl16",
        model="lit-vit-l16-minilm",
        data=DataConfig(
            format="inat",
            root="/data/inat2021",
            split="train",
            text_mix={
                "scientific": 1.0,
                "common": 1.0,
                "taxonomic": 1.0,
                "scientific_common": 1.0,
                "taxonomic_common": 1.0,
            },
            num_workers=8,
        ),
        cache=CacheConfig(dir="/data/inat2021/cache-vitl16", shard_size=16384, batch_size=256),
        loss=LossConfig(kind="softmax", multi_positive=True),
        optim=OptimConfig(lr=5e-4, weight_decay=0.1, warmup_steps=500, schedule="cosine"),
        eval=EvalConfig(
            evaluators=("zeroshot",),
            every_steps=2000,
            data=DataConfig(format="inat", split="val"),  # the val split of data.root
            batch_size=256,
        ),
        global_batch=4096,
        epochs=32,
        seed=0,
        out_dir="runs/inat2021-vitl16",
        checkpoint_every=1000,
        keep_checkpoints=3,
        log_every=50,
    )
