#!/usr/bin/env bash
# Multi-node LiT training under Slurm: one srun task per node, each running torchrun, with c10d
# rendezvous on the first node of the allocation. Every lit-edge argument after this script's name
# is passed through, e.g.:
#
#   sbatch --nodes=4 train/slurm.sh run train/inat2021_vitl16.py \
#       --set data.root=/data/inat2021 --set image_checkpoint=/models/vit_l16.safetensors
#   sbatch --nodes=4 train/slurm.sh cache-features train/inat2021_vitl16.py --set ...   # cache first
#
# Preemption/time limits: rerun with `run ... --resume`; a run resumes from its latest checkpoint.
#SBATCH --job-name=lit-edge
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=32
#SBATCH --time=24:00:00
#SBATCH --output=runs/slurm-%j.out
set -euo pipefail

GPUS_PER_NODE=${GPUS_PER_NODE:-${SLURM_GPUS_ON_NODE:-8}}
HEAD_NODE=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
RDZV_PORT=${RDZV_PORT:-29500}
PYTHON=${PYTHON:-python}

export OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}
export TOKENIZERS_PARALLELISM=false
export HF_HUB_OFFLINE=1

srun --kill-on-bad-exit=1 "$PYTHON" -m torch.distributed.run \
    --nnodes="$SLURM_JOB_NUM_NODES" \
    --nproc_per_node="$GPUS_PER_NODE" \
    --rdzv_id="$SLURM_JOB_ID" \
    --rdzv_backend=c10d \
    --rdzv_endpoint="$HEAD_NODE:$RDZV_PORT" \
    -m lit_edge.train "$@"
