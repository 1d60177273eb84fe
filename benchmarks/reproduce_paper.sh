#!/usr/bin/env bash
# Fine-tunes from the authors' released pretrained weights and without
# pretraining (SASRec), with the paper's recipe, and records each run in
# benchmarks/results/. Needs the datasets and weights in ../shared (see README).
# Usage: benchmarks/reproduce_paper.sh [LastFM|Beauty|all]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$ROOT"
SHARED="${SHARED:-$ROOT/../shared}"
DATA="$SHARED/data/s3rec"
WHICH="${1:-all}"
mkdir -p runs benchmarks/results

authors() {  # dataset
  [ -f "runs/$1-authors/manifest.json" ] || s3rec-tf import-weights \
    --weights "$SHARED/golden/$1-epochs-150.weights.npz" --data "$DATA" --name "$1" \
    --output "runs/$1-authors"
}

finetune() {  # dataset tag pretrained seed protocol loss
  local out="runs/$1-$2-$6-valid$5-seed$4"
  s3rec-tf finetune --data "$DATA" --name "$1" --pretrained "$3" --output "$out" \
    --seed "$4" --valid-protocol "$5" --loss "$6" \
    --record "benchmarks/results/$1_$2_$6_valid$5_seed$4.json"
}

if [ "$WHICH" = LastFM ] || [ "$WHICH" = all ]; then
  authors LastFM
  for seed in 1 2 3; do
    finetune LastFM s3rec-authors runs/LastFM-authors "$seed" sampled bce
    finetune LastFM sasrec none "$seed" sampled bce
  done
fi
if [ "$WHICH" = Beauty ] || [ "$WHICH" = all ]; then
  authors Beauty
  finetune Beauty s3rec-authors runs/Beauty-authors 1 sampled bce
  finetune Beauty s3rec-authors runs/Beauty-authors 1 full bce
  finetune Beauty sasrec none 1 sampled bce
  finetune Beauty sasrec none 1 full bce
fi
