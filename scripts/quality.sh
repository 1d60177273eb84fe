#!/usr/bin/env bash
# Our own pretraining and the improvements beyond the paper, recorded in results/.
# Usage: scripts/quality.sh lastfm-sweep|beauty-ce|sports-ce
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
SHARED="${SHARED:-$ROOT/../shared}"
DATA="$SHARED/data/s3rec"
mkdir -p runs results
case "${1:-}" in
  lastfm-sweep)
    # pretraining epochs 0 (no pretraining), 10, 25, 50 with the same fine-tuning recipe;
    # pretraining resumes, so each budget continues the previous one
    for seed in 1; do
      [ -f "results/LastFM_own-pretrain-ep0_bce_validsampled_seed$seed.json" ] || \
      s3rec-tf finetune --data "$DATA" --name LastFM --pretrained none --seed "$seed" \
        --output "runs/LastFM-own-ep0-seed$seed" --record "results/LastFM_own-pretrain-ep0_bce_validsampled_seed$seed.json"
      for ep in ${EPOCHS:-10 25 50}; do
        s3rec-tf pretrain --data "$DATA" --name LastFM --output runs/LastFM-own-pre \
          --epochs "$ep" --save-every 0 --seed "$seed"
        s3rec-tf finetune --data "$DATA" --name LastFM --pretrained runs/LastFM-own-pre \
          --seed "$seed" --output "runs/LastFM-own-ep$ep-seed$seed" \
          --record "results/LastFM_own-pretrain-ep${ep}_bce_validsampled_seed$seed.json"
      done
    done ;;
  beauty-ce)
    s3rec-tf finetune --data "$DATA" --name Beauty --pretrained runs/Beauty-authors --loss ce \
      --valid-protocol full --seed 1 --output runs/Beauty-s3rec-authors-ce-validfull-seed1 \
      --record results/Beauty_s3rec-authors_ce_validfull_seed1.json ;;
  sports-ce)
    s3rec-tf finetune --data "$DATA" --name Sports_and_Outdoors --pretrained none --loss ce \
      --valid-protocol full --seed 1 --output runs/Sports-sasrec-ce-validfull-seed1 \
      --record results/Sports_and_Outdoors_sasrec_ce_validfull_seed1.json ;;
  *) echo "usage: $0 lastfm-sweep|beauty-ce|sports-ce" >&2; exit 2 ;;
esac
