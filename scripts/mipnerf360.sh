#!/usr/bin/env bash
# Mip-NeRF 360 batches: train -> render -> metrics for every (scene, variant), resumable.
#
#   bash scripts/mipnerf360.sh --data /data/360_v2 --out runs/ablation1 [--scenes "garden bonsai"] \
#       [--variants "fastgs guided"] [--gpus 0,1,2,3 | --jobs N] [--dry_run] \
#       [--slurm [--partition p] [--account a] [--gres gpu:1|none] [--cpus_per_task N] \
#                [--time 12:00:00] [--mem 32G] [--job_name mipnerf360]] \
#       [-- <extra train.py flags, e.g. --iterations 7000>]
#   (a cluster without GPUs: --slurm --gres none; each submission's script is kept as
#    <out>/slurm/batch_<job id>.sbatch)
#   python scripts/summarize.py runs/ablation1     # tables + loss plots
#
# Variants: fastgs (SfM init), fastgs_random (100 random points), guided (100 random points +
# semantic guidance: Qwen3-VL when $QWEN_MODEL_PATH is set, else the error-map proposer),
# 3dgs, 3dgs_random. Outdoor scenes train on images_4, indoor ones on images_2, all with --eval.
# Scheduling, skipping finished runs and SLURM submission live in scripts/batch_runs.py.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$repo/.venv/bin/python}
[ -x "$py" ] || py=python3
# No cd: relative --data / --out paths are the caller's.
exec "$py" "$repo/scripts/batch_runs.py" "$@"
