#!/usr/bin/env bash
# Our own pretraining and the improvements beyond the paper, recorded in benchmarks/results/.
# Usage: benchmarks/quality.sh sweep NAME|lastfm-sweep|finetune-seeds NAME EP|beauty-ce|sports|
#        sports-own|sampled-ce NAME|own-ce NAME EP|segment-negatives NAME
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$ROOT"
SHARED="${SHARED:-$ROOT/../shared}"
DATA="$SHARED/data/s3rec"
mkdir -p runs benchmarks/results
case "${1:-}" in
  sweep)
    # Our own pretraining: epochs 0 (no pretraining), then each budget in EPOCHS, with the
    # same fine-tuning recipe and seed; pretraining resumes, so each budget continues the
    # previous one. Usage: [EPOCHS="10 25 50"] [SEEDS="1"] benchmarks/quality.sh sweep NAME
    name="${2:?usage: $0 sweep NAME}"
    for seed in ${SEEDS:-1}; do
      pre="runs/$name-own-pre"; [ "$seed" = 1 ] || pre="$pre-seed$seed"
      [ -f "benchmarks/results/${name}_own-pretrain-ep0_bce_validsampled_seed$seed.json" ] || \
      s3rec-tf finetune --data "$DATA" --name "$name" --pretrained none --seed "$seed" \
        --output "runs/$name-own-ep0-seed$seed" \
        --record "benchmarks/results/${name}_own-pretrain-ep0_bce_validsampled_seed$seed.json"
      for ep in ${EPOCHS:-10 25 50}; do
        s3rec-tf pretrain --data "$DATA" --name "$name" --output "$pre" \
          --epochs "$ep" --save-every 0 --seed "$seed"
        [ -f "benchmarks/results/${name}_own-pretrain-ep${ep}_bce_validsampled_seed$seed.json" ] || \
        s3rec-tf finetune --data "$DATA" --name "$name" --pretrained "$pre" \
          --seed "$seed" --output "runs/$name-own-ep$ep-seed$seed" \
          --record "benchmarks/results/${name}_own-pretrain-ep${ep}_bce_validsampled_seed$seed.json"
      done
    done ;;
  lastfm-sweep)
    "$0" sweep LastFM ;;
  finetune-seeds)
    # The fine-tuning seed spread on one pretraining run: fine-tune with SEEDS from
    # runs/NAME-own-pre (pretraining seed 1) after it has done EP epochs, and with no
    # pretraining. Usage: [SEEDS="2 3"] benchmarks/quality.sh finetune-seeds NAME EP
    name="${2:?usage: $0 finetune-seeds NAME EP}"; ep="${3:?usage: $0 finetune-seeds NAME EP}"
    done_epochs="$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['epochs_done'])" \
      "runs/$name-own-pre/manifest.json")"
    if [ "$done_epochs" != "$ep" ]; then
      echo "runs/$name-own-pre has $done_epochs pretraining epochs, not $ep" >&2; exit 2
    fi
    for seed in ${SEEDS:-2 3}; do
      for tag in ep0 "ep$ep"; do
        pre="runs/$name-own-pre"; [ "$tag" = ep0 ] && pre=none
        [ -f "benchmarks/results/${name}_own-pretrain-${tag}_bce_validsampled_seed$seed.json" ] || \
        s3rec-tf finetune --data "$DATA" --name "$name" --pretrained "$pre" --seed "$seed" \
          --output "runs/$name-own-$tag-seed$seed" \
          --record "benchmarks/results/${name}_own-pretrain-${tag}_bce_validsampled_seed$seed.json"
      done
    done ;;
  beauty-ce)
    s3rec-tf finetune --data "$DATA" --name Beauty --pretrained runs/Beauty-authors --loss ce \
      --valid-protocol full --seed 1 --output runs/Beauty-s3rec-authors-ce-validfull-seed1 \
      --record benchmarks/results/Beauty_s3rec-authors_ce_validfull_seed1.json ;;
  sports)
    # The authors' Sports checkpoint (100 epochs, upstream) is not available here:
    # the paper's SASRec recipe (bce), then full softmax
    for loss in bce ce; do
      [ -f "benchmarks/results/Sports_and_Outdoors_sasrec_${loss}_validfull_seed1.json" ] || \
      s3rec-tf finetune --data "$DATA" --name Sports_and_Outdoors --pretrained none \
        --loss "$loss" --valid-protocol full --seed 1 \
        --output "runs/Sports-sasrec-$loss-validfull-seed1" \
        --record "benchmarks/results/Sports_and_Outdoors_sasrec_${loss}_validfull_seed1.json"
    done ;;
  sports-own)
    # Our own pretraining on Sports (EPOCHS, default 20), then full-softmax fine-tuning,
    # against the same fine-tuning without pretraining (the `sports` case)
    ep="${EPOCHS:-20}"
    s3rec-tf pretrain --data "$DATA" --name Sports_and_Outdoors \
      --output runs/Sports_and_Outdoors-own-pre --epochs "$ep" --save-every 0 --seed 1
    s3rec-tf finetune --data "$DATA" --name Sports_and_Outdoors \
      --pretrained runs/Sports_and_Outdoors-own-pre --loss ce --valid-protocol full --seed 1 \
      --output "runs/Sports-own-ep$ep-ce-validfull-seed1" \
      --record "benchmarks/results/Sports_and_Outdoors_own-pretrain-ep${ep}_ce_validfull_seed1.json" ;;
  sampled-ce)
    # Sampled softmax with log-Q correction, no pretraining, early stopping on full
    # ranking: the `ce` recipe with `--loss sampled-ce`. The record's loss tag names the
    # proposal, the number of negatives and in-batch negatives.
    # Usage: [NEGATIVES=100] [PROPOSAL=uniform|popularity] [IN_BATCH=1] [SEED=1]
    #        benchmarks/quality.sh sampled-ce NAME
    name="${2:?usage: $0 sampled-ce NAME}"
    n="${NEGATIVES:-100}"; proposal="${PROPOSAL:-uniform}"; seed="${SEED:-1}"
    tag="sampled-ce-$proposal$n"; in_batch=--no-in-batch-negatives
    if [ "${IN_BATCH:-0}" = 1 ]; then tag="$tag-inbatch"; in_batch=--in-batch-negatives; fi
    s3rec-tf finetune --data "$DATA" --name "$name" --pretrained none --loss sampled-ce \
      --sampled-negatives "$n" --proposal "$proposal" "$in_batch" --valid-protocol full \
      --seed "$seed" --output "runs/$name-sasrec-$tag-validfull-seed$seed" \
      --record "benchmarks/results/${name}_sasrec_${tag}_validfull_seed$seed.json" ;;
  own-ce)
    # Our own pretraining (seed 1) to EP epochs (resumed when runs/NAME-own-pre has fewer),
    # then full-softmax fine-tuning with early stopping on full NDCG@20, SEEDS (default
    # 1 2 3) one after another on one thread each. Usage: [SEEDS="1 2 3"]
    #   benchmarks/quality.sh own-ce NAME EP
    name="${2:?usage: $0 own-ce NAME EP}"; ep="${3:?usage: $0 own-ce NAME EP}"
    s3rec-tf pretrain --data "$DATA" --name "$name" --output "runs/$name-own-pre" \
      --epochs "$ep" --save-every 0 --seed 1
    for seed in ${SEEDS:-1 2 3}; do
      rec="benchmarks/results/${name}_own-pretrain-ep${ep}_ce_validfull_seed$seed.json"
      [ -f "$rec" ] || s3rec-tf finetune --data "$DATA" --name "$name" \
        --pretrained "runs/$name-own-pre" --loss ce --valid-protocol full --seed "$seed" \
        --intra-op-threads 1 --inter-op-threads 1 \
        --output "runs/$name-own-ep$ep-ce-validfull-seed$seed" --record "$rec"
    done ;;
  segment-negatives)
    # SP's negative segment, streamed: the paper's rule (`all`) against its streaming
    # equivalent (`batch`), each pretrained EPOCHS (default 10) from the prepared
    # TFRecords with a 10,000-user shuffle buffer, then fine-tuned alike (the paper's
    # `bce` recipe, in memory), seed SEED (default 1); records in benchmarks/results/segment-negatives/.
    # Usage: [EPOCHS=10] [SEED=1] benchmarks/quality.sh segment-negatives NAME
    name="${2:?usage: $0 segment-negatives NAME}"; ep="${EPOCHS:-10}"; seed="${SEED:-1}"
    prepared="runs/prepared-$name"; mkdir -p benchmarks/results/segment-negatives
    [ -f "$prepared/stats.json" ] || \
      s3rec-tf prepare --input "$DATA" --name "$name" --output "$prepared"
    for rule in all batch; do
      pre="runs/$name-segneg-$rule-seed$seed"
      s3rec-tf pretrain --data "$prepared" --name "$name" --output "$pre" --epochs "$ep" \
        --save-every 0 --seed "$seed" --shuffle-buffer 10000 --segment-negatives "$rule"
      rec="benchmarks/results/segment-negatives/${name}_own-pretrain-ep$ep-segneg-${rule}_bce_validsampled_seed$seed.json"
      [ -f "$rec" ] || s3rec-tf finetune --data "$prepared" --name "$name" --pretrained "$pre" \
        --seed "$seed" --output "$pre-ft" --record "$rec"
    done ;;
  *) echo "usage: $0 sweep NAME|lastfm-sweep|finetune-seeds NAME EP|beauty-ce|sports|sports-own|sampled-ce NAME|own-ce NAME EP|segment-negatives NAME" >&2
     exit 2 ;;
esac
