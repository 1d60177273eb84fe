"""Pipeline constants and defaults (the embedded synthetic demo)."""

import json
import os

PIPELINE_NAME = os.environ.get("S3REC_PIPELINE_NAME", "s3rec-tf")

#: Where the local runner keeps everything (pipeline root, MLMD, serving dir).
LOCAL_ROOT = os.environ.get("S3REC_LOCAL_ROOT", os.path.join("runs", "pipeline"))

#: Input data: the synthetic demo by default; any S3-Rec-format or CSV dataset.
DATA_DIR = os.environ.get("S3REC_DATA_DIR", os.path.join("runs", "pipeline", "data"))
DATASET = os.environ.get("S3REC_DATASET", "Synthetic")
INPUT_FORMAT = os.environ.get("S3REC_INPUT_FORMAT", "s3rec")
K_CORE = int(os.environ.get("S3REC_K_CORE", "0"))

#: Hyperparameters (JSON): paper defaults unless overridden. The demo keeps
#: the paper's architecture but trains briefly so it finishes in minutes.
PRETRAIN_HPARAMS = json.loads(os.environ.get(
    "S3REC_PRETRAIN_HPARAMS", json.dumps({"epochs": 3, "save_every": 0})))
FINETUNE_HPARAMS = json.loads(os.environ.get(
    "S3REC_FINETUNE_HPARAMS", json.dumps({"epochs": 20, "patience": 5})))

#: Blessing: minimum metrics, and the metric that must not regress.
THRESHOLDS = json.loads(os.environ.get("S3REC_THRESHOLDS",
                                       json.dumps({"test/sampled/HR@10": 0.2})))
COMPARE_METRIC = os.environ.get("S3REC_COMPARE_METRIC", "test/full/NDCG@10")

#: Beam options for the preprocessing component.
BEAM_ARGS = json.loads(os.environ.get("S3REC_BEAM_ARGS", json.dumps([
    "--direct_running_mode=multi_processing", "--direct_num_workers=2"])))
