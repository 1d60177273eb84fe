"""s3rec_tf.training.jobs: one builder of a model, its optimizer, batches and callbacks."""
import dataclasses

import keras
import numpy as np
import pytest

from s3rec_tf import config as config_lib
from s3rec_tf.config import EncoderConfig, FinetuneConfig, PretrainConfig
from s3rec_tf.training import jobs

ENC = EncoderConfig(hidden_size=16, max_length=10)


def _weights(model):
    return [np.array(w) for w in model.get_weights()]


def test_a_pretraining_job_is_the_configs_model_optimizer_and_batches(tiny_data):
    config = PretrainConfig(epochs=2, batch_size=512, seed=3, learning_rate=2e-3,
                            segment_loss="logit-gap", sp_weight=0.25)
    job = jobs.pretraining_job(config, tiny_data, ENC)
    assert job.model.loss_weights_["sp"] == 0.25
    assert job.model.segment_loss == "logit-gap"
    assert job.model.encoder.hidden_size == 16
    assert job.optimizer is job.model.optimizer and job.optimizer.built
    assert float(job.optimizer.learning_rate) == pytest.approx(2e-3)
    assert job.batch_size == 512
    assert job.steps_per_epoch == -(-job.examples_per_epoch // 512) > 1
    assert not job.validates_in_fit and job.validation_dataset() is None
    # the batches of the epochs asked for, and the same model for the same seed
    batches = list(job.train_dataset(epochs=1))
    assert len(batches) == job.steps_per_epoch
    assert len(list(job.train_dataset(first_epoch=1))) == job.steps_per_epoch  # epoch 2 only
    again = jobs.pretraining_job(config, tiny_data, ENC)
    for a, b in zip(_weights(job.model), _weights(again.model)):
        np.testing.assert_array_equal(a, b)
    history = job.model.fit(job.train_dataset(epochs=1), epochs=1, steps_per_epoch=1,
                            verbose=0, callbacks=job.callbacks())
    assert {"aap_loss", "mip_loss", "map_loss", "sp_loss"} <= set(history.history)


def test_a_pretraining_job_with_one_prefix_per_user_has_one_sample_per_user(tiny_data):
    config = PretrainConfig(epochs=1, batch_size=64, prefix_sampling="one-per-user")
    job = jobs.pretraining_job(config, tiny_data, ENC)
    assert job.examples_per_epoch == sum(1 for s in tiny_data.sequences if len(s) > 2)
    assert job.steps_per_epoch == -(-job.examples_per_epoch // 64)
    assert sum(len(b["pos_items"]) for b in job.train_dataset()) == job.examples_per_epoch


def test_pretraining_on_data_without_attributes_switches_aap_and_map_off(tiny_data, capsys):
    bare = dataclasses.replace(tiny_data, num_attributes=0, item_attributes={})
    job = jobs.pretraining_job(PretrainConfig(epochs=1), bare, ENC, verbose=1)
    assert (job.config.aap_weight, job.config.map_weight) == (0.0, 0.0)
    assert "AAP and MAP are switched off" in capsys.readouterr().err


def test_a_finetuning_job_validates_in_fit_with_the_configs_metrics(tiny_data):
    config = FinetuneConfig(epochs=1, batch_size=64, seed=0, loss="ce", valid_protocol="full",
                            history_rule="original")
    job = jobs.finetuning_job(config, tiny_data, ENC)
    assert job.model.loss_name == "ce" and job.model.history_rule == "original"
    assert job.examples_per_epoch == tiny_data.num_users  # one row per user (sequences)
    assert job.validates_in_fit
    logs = job.model.fit(job.train_dataset(), epochs=1, steps_per_epoch=1,
                         validation_data=job.validation_dataset(), verbose=0).history
    assert f"val_{config.valid_metric}" in logs


def test_a_finetuning_job_starts_from_a_pretrained_model(tiny_data, tmp_path):
    from s3rec_tf import training
    training.run_pretraining(tiny_data, str(tmp_path / "pre"), ENC,
                             PretrainConfig(epochs=1, batch_size=64, save_every=0), verbose=0)
    job = jobs.finetuning_job(FinetuneConfig(epochs=1), tiny_data, ENC,
                              pretrained=str(tmp_path / "pre"))
    pretrained = training.load_pretrained_encoder(str(tmp_path / "pre"), tiny_data, ENC)
    for a, b in zip(_weights(job.model.encoder), _weights(pretrained)):
        np.testing.assert_array_equal(a, b)


def test_a_job_refuses_what_the_data_cannot_give(tiny_data):
    from s3rec_tf.errors import DataError
    with pytest.raises(DataError, match="prepared directory"):
        jobs.pretraining_job(PretrainConfig(shuffle_buffer=100), tiny_data, ENC)


def test_callbacks_wrap_the_callers_own(tmp_path):
    mine = keras.callbacks.Callback()
    job = jobs.Job(PretrainConfig(), ENC, None, None, None, 1, 1, 1)
    assert job.callbacks(mine) == [mine]
    bar, own, board = job.callbacks(mine, progress_bar=True, tensorboard_dir=str(tmp_path))
    assert isinstance(bar, keras.callbacks.ProgbarLogger) and own is mine
    assert type(board).__name__ == "TensorBoardLogger"


def test_the_loss_options_and_sampling_of_each_loss():
    counts = np.array([0, 3, 1])
    assert jobs._loss_options(FinetuneConfig(loss="bce"), lambda: counts) == {"loss": "bce"}
    assert jobs._sampling(FinetuneConfig(loss="bce"), lambda: counts) == {"negatives": True}
    assert jobs._sampling(FinetuneConfig(loss="ce"), lambda: counts) == {"negatives": False}
    sampled = FinetuneConfig(loss="sampled-ce", sampled_negatives=5)
    assert jobs._loss_options(sampled, lambda: counts)["item_counts"] is counts
    assert jobs._sampling(sampled, lambda: counts)["sampled_negatives"] == 5
    assert config_lib.FINETUNE_LOSSES  # every loss above is one the config knows
