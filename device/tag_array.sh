#!/usr/bin/env bash
# Tag one big photo folder with a Slurm job array: task I of N tags shard I/N (a hash of each
# photo's path inside FOLDER) into its own database DB_DIR/lit-edge.shard-I-of-N.db; then join them:
#
#   sbatch --array=0-15 device/tag_array.sh /data/photos /scratch/lit-edge        # CPU nodes
#   sbatch --array=0-3 --gpus-per-task=1 --cpus-per-task=16 --mem=8G \
#       device/tag_array.sh /data/photos /scratch/lit-edge --backend auto         # GPU nodes
#   lit-edge db merge photos.db /scratch/lit-edge/lit-edge.shard-*.db             # when they end
#
# Any argument after DB_DIR goes to `lit-edge tag` (--bundle, --species, --threshold, ...).
# The shard comes from SLURM_ARRAY_TASK_ID/COUNT (an array 1-16 works too). A task that fails,
# is cancelled or hits its time limit resumes where it stopped when run again, so:
#   scontrol requeue JOBID_3                     # while Slurm still knows the job, or
#   SHARDS=16 sbatch --array=3,7 device/tag_array.sh /data/photos /scratch/lit-edge
# (SHARDS says N when the array is not 0..N-1), then merge again: every photo stays once.
#
# Resources: tag uses one inference worker per core (up to 4) and a decode thread per core, about
# 250 MB of memory on CPU; on a GPU node decoding JPEGs is the limit, so give it more cores.
# docs/scale.md sizes an array from measured files/s.
#SBATCH --job-name=lit-edge-tag
#SBATCH --cpus-per-task=4
#SBATCH --mem=2G
#SBATCH --time=12:00:00
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=lit-edge-tag-%A_%a.out
set -euo pipefail

USAGE="usage: sbatch --array=0-N-1 device/tag_array.sh FOLDER DB_DIR [lit-edge tag options]"
FOLDER=${1:?$USAGE}
DB_DIR=${2:?$USAGE}
shift 2
mkdir -p "$DB_DIR"

SHARD=()
if [ -n "${SHARDS:-}" ]; then
    SHARD=(--shard "${SLURM_ARRAY_TASK_ID:?SHARDS is for job arrays}/$SHARDS")
fi
echo "task ${SLURM_ARRAY_JOB_ID:-}_${SLURM_ARRAY_TASK_ID:-} on $(hostname), restart ${SLURM_RESTART_COUNT:-0}"
# exec: Slurm's signals (scancel, the time limit) reach lit-edge, which finishes its batch and
# flushes the database before it exits
exec lit-edge tag "$FOLDER" --db "$DB_DIR" --no-progress "${SHARD[@]}" "$@"
