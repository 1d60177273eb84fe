#!/usr/bin/env bash
# The main job on the embedded default dataset: synthetic data ->
# pretraining -> fine-tuning -> evaluation. Outputs go to ./runs/demo.
# Extra arguments are passed to the fine-tuning step.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
OUT="${OUT:-runs/demo}"
s3rec-tf synth --output "$OUT/data" --users 1000 --items 500 --seed 0
s3rec-tf pretrain --data "$OUT/data" --name Synthetic --output "$OUT/pretrained" \
  --epochs "${PRETRAIN_EPOCHS:-5}" --save-every 5
s3rec-tf finetune --data "$OUT/data" --name Synthetic --pretrained "$OUT/pretrained" \
  --output "$OUT/finetuned" --epochs "${FINETUNE_EPOCHS:-30}" "$@"
s3rec-tf evaluate --model "$OUT/finetuned" --data "$OUT/data" --name Synthetic --protocol both
