import pytest

from s3rec_tf import hparams
from s3rec_tf.config import FinetuneConfig


def test_configs_split_encoder_and_job_fields():
    enc, cfg = hparams.configs({"hidden_size": 32, "epochs": 3, "loss": "ce"}, "finetune")
    assert enc.hidden_size == 32 and cfg == FinetuneConfig(epochs=3, loss="ce")


def test_unknown_keys_and_jobs_are_errors_naming_them():
    with pytest.raises(ValueError, match=r"finetune hyperparameters: `epoch` is not a known key"):
        hparams.configs({"epoch": 50, "lr": 1.0}, "finetune")
    with pytest.raises(ValueError, match=r"pretrain hyperparameters: `loss` is not a known key"):
        hparams.check({"loss": "ce"}, "pretrain")
    with pytest.raises(ValueError, match="`job` must be one of"):
        hparams.check({}, "train")
