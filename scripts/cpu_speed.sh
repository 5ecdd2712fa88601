#!/usr/bin/env bash
# The CPU throughput figures of docs/results.md ("CPU speed against PyTorch"), reproducible:
#
#   1. per space (NB201; NB101 at its 128-channel stem; DARTS at C = 16,
#      8 cells), B = 128, seed 0: `dasnas bench` with exact and with fast
#      convs, and `scripts/torch_reference.py` (the PyTorch formulation) on
#      the same cells (`dasnas bench --cells N` times the sampled cells 1..N
#      after cell 0; torch_reference times its file's cells after the first),
#      RUNS rounds, the three back to back in each round;
#   2. the scaling table: NB201 and DARTS at 1 thread, 2 threads on one cell
#      (op-parallel), and 2 cells in flight on one thread each.
#
# Usage: scripts/cpu_speed.sh [OUT_DIR]   (default results/cpu_speed)
# Env: RUNS (2), TORCH_PYTHON (a python3 with PyTorch installed),
#      CELLS_NB201 (20), CELLS_NB101 (6), CELLS_DARTS (8).
# Needs a release build (`cargo build --release`). Run it on a quiet
# machine: it measures wall time. Writes raw outputs to OUT_DIR/<space>-*.txt
# and one summary line per measurement to OUT_DIR/summary.tsv.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results/cpu_speed}
RUNS=${RUNS:-2}
PY=${TORCH_PYTHON:-python3}
BIN=target/release/dasnas
mkdir -p "$OUT"
[ -x "$BIN" ] || { echo "cpu_speed.sh: build first: cargo build --release" >&2; exit 1; }
"$PY" -c 'import torch' 2>/dev/null || { echo "cpu_speed.sh: $PY has no torch (set TORCH_PYTHON)" >&2; exit 1; }

declare -A CELLS=([nb201]=${CELLS_NB201:-20} [nb101]=${CELLS_NB101:-6} [darts]=${CELLS_DARTS:-8})
SUMMARY="$OUT/summary.tsv"
printf 'space\trun\timplementation\tthreads\tin_flight\tcells\tcells_per_s\n' >"$SUMMARY"
machine=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
echo "machine: $machine, $(nproc) cores; $(date -u +%FT%TZ)" | tee "$OUT/machine.txt"

# cells/s from `dasnas bench`'s JSON line.
bench_rate() { grep '^{' "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["cells_per_s"])'; }

for space in nb201 nb101 darts; do
  n=${CELLS[$space]}
  # The cells dasnas bench samples (seed 0): cell 0 the warm-up, then 1..n.
  "$BIN" score --space "$space" --sample $((n + 1)) --batch 2 --device cpu --seed 0 \
    | python3 -c 'import json,sys; [print(json.loads(l)["arch"]) for l in sys.stdin]' >"$OUT/$space-cells.txt"
  for run in $(seq 1 "$RUNS"); do
    for conv in exact fast; do
      f="$OUT/$space-dasnas-$conv-run$run.txt"
      "$BIN" bench --space "$space" --cells "$n" --device cpu --threads 2 --conv "$conv" >"$f" 2>&1
      printf '%s\t%s\tdasnas %s\t2\t1\t%s\t%s\n' "$space" "$run" "$conv" "$n" "$(bench_rate "$f")" >>"$SUMMARY"
    done
    f="$OUT/$space-torch-run$run.txt"
    "$PY" scripts/torch_reference.py "$OUT/$space-cells.txt" --space "$space" --threads 2 --batch 128 >"$f" 2>&1
    rate=$(grep -o '[0-9.]* cells/s' "$f" | tail -1 | cut -d' ' -f1)
    printf '%s\t%s\tpytorch\t2\t1\t%s\t%s\n' "$space" "$run" "$n" "$rate" >>"$SUMMARY"
  done
done

# Scaling on this machine's cores: one cell on 1 or 2 threads, or 2 cells
# in flight on one thread each (fast convs, the same cells as above).
for space in nb201 darts; do
  n=${CELLS[$space]}
  for run in $(seq 1 "$RUNS"); do
    for cfg in "1 1" "2 1" "2 2"; do
      set -- $cfg
      f="$OUT/$space-scaling-t$1-k$2-run$run.txt"
      "$BIN" bench --space "$space" --cells "$n" --device cpu --threads "$1" --cells-in-flight "$2" \
        --conv fast >"$f" 2>&1
      printf '%s\t%s\tdasnas fast\t%s\t%s\t%s\t%s\n' "$space" "$run" "$1" "$2" "$n" "$(bench_rate "$f")" >>"$SUMMARY"
    done
  done
done
column -t -s $'\t' "$SUMMARY"
