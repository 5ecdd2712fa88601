#!/usr/bin/env bash
# Score a cell list as a Slurm job array: array task K of N scores shard K/N
# (`dasnas score --shard K/N`) into its own file, resumably; `dasnas merge`
# joins the files afterwards and lists what is missing.
#
#   sbatch --array=0-63 scripts/slurm-array.sh --all --unique --space nb101 \
#          --data cifar10_batch.bin --batch 128
#   dasnas merge shards/shard-*-of-64.jsonl --out nb101.jsonl --expect cells.txt
#
# Arguments are `dasnas score`'s (the cell selection and the run settings),
# without --shard, --out and --resume, which this script sets. A task that
# is re-queued or re-submitted resumes its shard: cells already in its file
# are skipped, and a line cut off mid-write is dropped.
#
# Environment:
#   SLURM_ARRAY_TASK_ID     K (0-based, as --array=0-… numbers tasks)
#   SLURM_ARRAY_TASK_COUNT  N (set by Slurm for an array job)
#   DASNAS_SHARD_DIR        folder of the shard files (default: shards)
#   DASNAS_BIN              the dasnas binary (default: dasnas on PATH)
#
#SBATCH --job-name=dasnas
#SBATCH --cpus-per-task=8
#SBATCH --output=dasnas-%A_%a.log
set -euo pipefail

k="${SLURM_ARRAY_TASK_ID:-}"
n="${SLURM_ARRAY_TASK_COUNT:-}"
if [ -z "$k" ] || [ -z "$n" ]; then
    echo "slurm-array.sh: SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT must be set (submit with sbatch --array=0-N)" >&2
    exit 2
fi
case "$k$n" in
    *[!0-9]*)
        echo "slurm-array.sh: task id '$k' and count '$n' must be whole numbers" >&2
        exit 2
        ;;
esac
for arg in "$@"; do
    case "$arg" in
        --shard|--shard=*|--out|--out=*|--resume)
            echo "slurm-array.sh: $arg is set by the script; leave it out" >&2
            exit 2
            ;;
    esac
done

dir="${DASNAS_SHARD_DIR:-shards}"
mkdir -p "$dir"
threads=()
if [ -n "${SLURM_CPUS_PER_TASK:-}" ]; then
    threads=(--threads "$SLURM_CPUS_PER_TASK")
fi
exec "${DASNAS_BIN:-dasnas}" score "$@" "${threads[@]}" \
    --shard "$k/$n" --out "$dir/shard-$k-of-$n.jsonl" --resume
