#!/usr/bin/env bash
# The main job: the TFX pipeline (Beam preprocessing -> pretraining ->
# fine-tuning -> ranking evaluation -> push) on the embedded synthetic dataset,
# with LocalDagRunner. Everything goes to ./runs/pipeline (MLMD in SQLite,
# artifacts, serving dir). Extra arguments go to pipeline/local_runner.py,
# e.g. `--data-dir ../shared/data/s3rec --dataset LastFM`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
exec python pipeline/local_runner.py "$@"
