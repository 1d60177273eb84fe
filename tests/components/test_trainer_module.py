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


def test_tuner_trials_stream_when_a_shuffle_buffer_is_set(tmp_path, tiny_data, monkeypatch):
    """A trial run with `shuffle_buffer` streams its users; one without reads them into
    memory, once for all trials."""
    from s3rec_tf import training
    from s3rec_tf.data import streaming
    from tests.conftest import write_prepared
    root = write_prepared(tiny_data, tmp_path / "prepared")
    seen = []
    monkeypatch.setattr(training, "run_pretraining",
                        lambda data, *a, **k: seen.append(("pretrain", data)))
    monkeypatch.setattr(training, "run_finetuning", lambda data, *a, **k: (
        seen.append(("finetune", data)), {"metrics": {"valid/sampled": {"MRR": 0.5}}})[1])
    args = types.SimpleNamespace(
        custom_config={"pretrain": {"shuffle_buffer": 64}, "finetune": {},
                       "search_space": {"learning_rate": [1e-3, 5e-4]}, "max_trials": 2},
        train_files=[os.path.join(root, "Split-sequences", "*")],
        working_dir=str(tmp_path / "work"))
    result = trainer_module.tuner_fn(args)
    result.tuner.search(**result.fit_kwargs)
    pretrain = [d for job, d in seen if job == "pretrain"]
    finetune = [d for job, d in seen if job == "finetune"]
    assert len(pretrain) == len(finetune) == 2
    assert all(isinstance(d, streaming.StreamedData) for d in pretrain)
    assert not any(isinstance(d, streaming.StreamedData) for d in finetune)
    assert finetune[0] is finetune[1] and len(finetune[0].sequences) == tiny_data.num_users
    assert [t.status for t in result.tuner.oracle.trials.values()] == ["COMPLETED"] * 2


@pytest.mark.slow
def test_tuner_fn_searches_on_tiny_data(tmp_path, synthetic_dir):
    from s3rec_tf.data import prepare
    prepare.prepare(synthetic_dir, str(tmp_path / "prepared"), prepare.PrepareConfig(
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
