#!/usr/bin/env bash
# Effect of fast training on ranking (NB201, CIFAR-10): the same sampled
# cells scored after K SGD steps for each K, then Kendall τ-b / Spearman ρ
# of every score field (wot, d, das, das@α, train_loss, train_acc, …)
# against the 200-epoch NB201 CIFAR-10 test accuracy.
#
# Scoring batch: records 0..B-1 of the CIFAR file (B = 128); training
# batches: records B..999 of the same file (dasnas's default when
# --train-data is the --data file), batch 64, SGD lr 0.1 cosine,
# momentum 0.9, weight decay 5e-4, seed = --seed (weights and batches).
#
#   scripts/fast_training_ranking.sh [CELLS] [KS] [OUTDIR]
#   e.g. scripts/fast_training_ranking.sh 300 "0 10 50 200" results/fast_training
#
# Resumable: rerunning continues each K's file where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
CELLS=${1:-300}
KS=${2:-"0 10 50 200"}
OUT=${3:-results/fast_training}
DATA=../shared/data/cifar10_test1000_q75.bin
TRUTH=../shared/data/nb201_acc_200ep.csv
BIN=${DASNAS:-target/release/dasnas}
EXTRA=${EXTRA_ARGS:-}
mkdir -p "$OUT"
for K in $KS; do
  echo "== K = $K: $CELLS cells -> $OUT/k$K.jsonl" >&2
  start=$(date +%s)
  # shellcheck disable=SC2086
  "$BIN" score --space nb201 --sample "$CELLS" --seed 0 --data "$DATA" --batch 128 \
    --train-steps "$K" --train-batch 64 --lr 0.1 --momentum 0.9 --wd 5e-4 \
    --extra-alphas 0,0.5,2 --out "$OUT/k$K.jsonl" --resume $EXTRA
  echo "   $(( $(date +%s) - start )) s" >&2
done
for K in $KS; do
  echo "== K = $K"
  "$BIN" eval --scores "$OUT/k$K.jsonl" --truth "$TRUTH" --target cifar10_test_acc
done
