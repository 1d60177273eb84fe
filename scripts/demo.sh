#!/usr/bin/env bash
# The main job: the TFX pipeline (ExampleGen -> StatisticsGen -> schema ->
# ExampleValidator -> PrepareSequences -> Trainer (pretraining) -> Trainer
# (fine-tuning) -> ranking evaluation -> Pusher) on the embedded synthetic dataset,
# with LocalDagRunner. Everything goes to ./runs/pipeline (MLMD in SQLite,
# artifacts, serving dir). Extra arguments go to pipeline/local_runner.py,
# e.g. `--data-dir ../shared/data/s3rec --dataset LastFM`, `--tuner`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
exec python pipeline/local_runner.py "$@"
