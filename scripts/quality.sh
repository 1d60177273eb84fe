#!/usr/bin/env bash
# Our own pretraining and the improvements beyond the paper, recorded in results/.
# Usage: scripts/quality.sh sweep NAME|lastfm-sweep|beauty-ce|sports
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
SHARED="${SHARED:-$ROOT/../shared}"
DATA="$SHARED/data/s3rec"
mkdir -p runs results
case "${1:-}" in
  sweep)
    # Our own pretraining: epochs 0 (no pretraining), then each budget in EPOCHS, with the
    # same fine-tuning recipe and seed; pretraining resumes, so each budget continues the
    # previous one. Usage: [EPOCHS="10 25 50"] [SEEDS="1"] scripts/quality.sh sweep NAME
    name="${2:?usage: $0 sweep NAME}"
    for seed in ${SEEDS:-1}; do
      pre="runs/$name-own-pre"; [ "$seed" = 1 ] || pre="$pre-seed$seed"
      [ -f "results/${name}_own-pretrain-ep0_bce_validsampled_seed$seed.json" ] || \
      s3rec-tf finetune --data "$DATA" --name "$name" --pretrained none --seed "$seed" \
        --output "runs/$name-own-ep0-seed$seed" \
        --record "results/${name}_own-pretrain-ep0_bce_validsampled_seed$seed.json"
      for ep in ${EPOCHS:-10 25 50}; do
        s3rec-tf pretrain --data "$DATA" --name "$name" --output "$pre" \
          --epochs "$ep" --save-every 0 --seed "$seed"
        [ -f "results/${name}_own-pretrain-ep${ep}_bce_validsampled_seed$seed.json" ] || \
        s3rec-tf finetune --data "$DATA" --name "$name" --pretrained "$pre" \
          --seed "$seed" --output "runs/$name-own-ep$ep-seed$seed" \
          --record "results/${name}_own-pretrain-ep${ep}_bce_validsampled_seed$seed.json"
      done
    done ;;
  lastfm-sweep)
    "$0" sweep LastFM ;;
  beauty-ce)
    s3rec-tf finetune --data "$DATA" --name Beauty --pretrained runs/Beauty-authors --loss ce \
      --valid-protocol full --seed 1 --output runs/Beauty-s3rec-authors-ce-validfull-seed1 \
      --record results/Beauty_s3rec-authors_ce_validfull_seed1.json ;;
  sports)
    # No released checkpoint for Sports: the paper's SASRec recipe (bce), then full softmax
    for loss in bce ce; do
      [ -f "results/Sports_and_Outdoors_sasrec_${loss}_validfull_seed1.json" ] || \
      s3rec-tf finetune --data "$DATA" --name Sports_and_Outdoors --pretrained none \
        --loss "$loss" --valid-protocol full --seed 1 \
        --output "runs/Sports-sasrec-$loss-validfull-seed1" \
        --record "results/Sports_and_Outdoors_sasrec_${loss}_validfull_seed1.json"
    done ;;
  *) echo "usage: $0 sweep NAME|lastfm-sweep|beauty-ce|sports" >&2; exit 2 ;;
esac
