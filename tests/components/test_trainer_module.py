"""The Trainer/Tuner module: hyperparameters in, the right runs out."""

import os
import types

import pytest

from components import trainer_module
from s3rec_tf import hparams


def test_an_unknown_hyperparameter_is_an_error_naming_it():
    args = types.SimpleNamespace(custom_config={"job": "pretrain",
                                                "hyperparameters": {"epoch": 5}},
                                 hyperparameters=None, train_files=["/nowhere/Split-sequences/*"])
    with pytest.raises(ValueError, match=r"epoch.*is not a known key"):
        trainer_module.run_fn(args)


def test_the_strategy_hyperparameter_reaches_the_run_before_the_data(monkeypatch):
    """`multi-worker` is set up before any data is read (no TF op may run first)."""
    monkeypatch.delenv("TF_CONFIG", raising=False)
    args = types.SimpleNamespace(custom_config={"job": "finetune", "hyperparameters": {
        "strategy": "multi-worker"}}, hyperparameters=None,
        train_files=["/nowhere/Split-sequences/*"])
    with pytest.raises(ValueError, match=r"strategy.*needs the TF_CONFIG"):
        trainer_module.run_fn(args)


def test_a_shuffle_buffer_streams_the_trainers_data(tmp_path, tiny_data):
    from s3rec_tf.data import streaming
    from tests.conftest import write_prepared
    root = write_prepared(tiny_data, tmp_path / "prepared")
    args = types.SimpleNamespace(train_files=[os.path.join(root, "Split-sequences", "*")])
    assert isinstance(trainer_module._data(args, stream=True), streaming.StreamedData)
    assert len(trainer_module._data(args).sequences) == tiny_data.num_users


def test_tuned_values_keep_the_keys_of_the_job():
    best = {"space": [], "values": {"learning_rate": 5e-4, "aap_weight": 0.5,
                                    "hidden_size": 32}}
    assert trainer_module.tuned_values(best, "finetune") == {"learning_rate": 5e-4,
                                                              "hidden_size": 32}
    assert trainer_module.tuned_values(best, "pretrain") == best["values"]
    assert trainer_module.tuned_values(None, "pretrain") == {}


def test_the_default_search_space_is_made_of_known_hyperparameters():
    known = set(hparams.known_keys("pretrain")) | set(hparams.known_keys("finetune"))
    assert set(trainer_module.SEARCH_SPACE) <= known
    assert {"learning_rate", "dropout", "hidden_size", "aap_weight", "mip_weight",
            "map_weight", "sp_weight"} <= set(trainer_module.SEARCH_SPACE)


@pytest.mark.slow
def test_tuner_fn_searches_on_tiny_data(tmp_path, synthetic_dir):
    from s3rec_tf.data import preprocess
    preprocess.prepare(synthetic_dir, str(tmp_path / "prepared"), preprocess.PrepareConfig(
        name="Tiny"), beam_args=["--runner=DirectRunner"])
    tiny = {"hidden_size": 16, "max_length": 20, "epochs": 1}
    args = types.SimpleNamespace(
        custom_config={"pretrain": {**tiny, "save_every": 0}, "finetune": tiny,
                       "search_space": {"learning_rate": [1e-3, 5e-4], "dropout": [0.2]},
                       "max_trials": 2},
        train_files=[str(tmp_path / "prepared" / "Split-sequences" / "*")],
        working_dir=str(tmp_path / "work"))
    result = trainer_module.tuner_fn(args)
    result.tuner.search(**result.fit_kwargs)
    best = result.tuner.get_best_hyperparameters()[0].values
    assert best["learning_rate"] in (1e-3, 5e-4) and best["dropout"] == 0.2
