#!/usr/bin/env bash
# Multi-node LiT training under Slurm: one srun task per node, each running torchrun with one
# process per GPU, and a c10d rendezvous at the first node of the allocation. Every argument after
# this script's name goes to `lit-edge train` (a config file first means `run`), e.g.:
#
#   sbatch --nodes=4 train/slurm.sh train/inat2021_vitl16.py \
#       --set data.root=/data/inat2021 --set image_checkpoint=/models/vit_l16.safetensors
#   sbatch --nodes=4 train/slurm.sh cache-features train/inat2021_vitl16.py --set ...   # cache first
#
# CPU nodes (gloo; one process per node using its cores; tests/test_slurm.py runs this):
#   sbatch --nodes=2 --gpus-per-node=0 --cpus-per-task=16 train/slurm.sh train/smoke.py --set ...
#
# Preemption/time limits: rerun with `run ... --resume`; a run resumes from its latest checkpoint.
# Environment: PYTHON (default python: the environment lit-edge is installed in; sbatch exports the
# submitting shell's environment), NPROC_PER_NODE (default: the node's GPUs, else 1), RDZV_PORT.
#SBATCH --job-name=lit-edge-train
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=32
#SBATCH --time=24:00:00
#SBATCH --output=slurm-%x-%j.out
set -euo pipefail

NPROC_PER_NODE=${NPROC_PER_NODE:-${SLURM_GPUS_ON_NODE:-1}}
[ "$NPROC_PER_NODE" -ge 1 ] 2>/dev/null || NPROC_PER_NODE=1
CPUS_PER_TASK=${SLURM_CPUS_PER_TASK:-1}
# The rendezvous host is the first node's address (NodeAddr), which is its name on most clusters
# but not on all (e.g. a separate interconnect address).
HEAD_NODE=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
HEAD_ADDR=$(scontrol show node "$HEAD_NODE" | sed -n 's/.*NodeAddr=\([^ ]*\).*/\1/p')
HEAD_ADDR=${HEAD_ADDR:-$HEAD_NODE}
# A port per job, so that two jobs whose first node is the same do not meet at one rendezvous.
RDZV_PORT=${RDZV_PORT:-$((29500 + SLURM_JOB_ID % 2000))}
PYTHON=${PYTHON:-python}

export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$((CPUS_PER_TASK / NPROC_PER_NODE > 0 ? CPUS_PER_TASK / NPROC_PER_NODE : 1))}
export TOKENIZERS_PARALLELISM=false
export HF_HUB_OFFLINE=1

case "${1:-}" in
    "" | -h | --help) ARGS=(--help) ;;
    run | cache-features | eval | starter | -*) ARGS=("$@") ;;
    *) ARGS=(run "$@") ;; # a config file: `run` it
esac

echo "lit-edge train on $SLURM_JOB_NUM_NODES node(s) x $NPROC_PER_NODE process(es), rendezvous $HEAD_ADDR:$RDZV_PORT"
# srun does not inherit --cpus-per-task from sbatch (Slurm >= 22.05): pass it, or each node's
# torchrun would be confined to one CPU where the cluster pins tasks to their cores.
srun --nodes="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    "$PYTHON" -m torch.distributed.run \
    --nnodes="$SLURM_JOB_NUM_NODES" \
    --nproc_per_node="$NPROC_PER_NODE" \
    --rdzv_id="$SLURM_JOB_ID" \
    --rdzv_backend=c10d \
    --rdzv_endpoint="$HEAD_ADDR:$RDZV_PORT" \
    -m lit_edge.train "${ARGS[@]}"
