"""Ranking metrics in Keras (`fit`'s validation) against `RankingEvaluator`."""

import os
import warnings

import keras
import numpy as np
import pytest

from s3rec_tf import metrics as metrics_lib
from s3rec_tf.data import inputs
from s3rec_tf.data.ranking_inputs import ranking_dataset
from s3rec_tf.evaluation import RankingEvaluator
from s3rec_tf.models.layers import SequenceEncoder
from s3rec_tf.models import NextItemModel, ranking
from s3rec_tf.models import ranking_metrics as rm
from s3rec_tf.training import adam


def _model(data):
    enc = SequenceEncoder(data.num_items, data.num_attributes, max_length=10, hidden_size=8,
                          num_layers=1, num_heads=1)
    return NextItemModel(enc, loss="bce")


@pytest.mark.parametrize("rule", ["remove", "keep"])
def test_answer_ranks_of_lists_follow_the_evaluators_rule(rule):
    rng = np.random.default_rng(0)
    num_items = 12
    scores = rng.integers(0, 4, size=(6, num_items + 2)).astype(np.float32)  # many ties
    answers = rng.integers(1, num_items + 1, size=6).astype(np.int32)
    history = rng.integers(0, num_items + 1, size=(6, 5)).astype(np.int32)
    history[0, 0] = answers[0]  # an answer in its own history
    expected = ranking.answer_ranks(scores, answers, num_items, history, rule).numpy()
    excluded = ranking.excluded_items(num_items, history, rule == "remove").numpy()
    y_true = np.where(excluded, -1.0, np.eye(num_items + 2)[answers])
    ranks, has_answer = rm.answer_ranks(y_true, scores)
    # under `remove` the evaluator's miss is a list without an answer
    np.testing.assert_array_equal(has_answer.numpy(), np.isfinite(expected))
    np.testing.assert_array_equal(ranks.numpy()[has_answer.numpy()],
                                  expected[np.isfinite(expected)])
    assert (rule == "remove") == (not has_answer.numpy()[0])


@pytest.mark.parametrize("protocol, rule", [("full", "remove"), ("full", "keep"),
                                            ("sampled", "remove")])
def test_the_models_ranks_are_those_of_its_lists(tiny_data, protocol, rule):
    model = _model(tiny_data)
    model.compile(optimizer=adam(1e-3), history_rule=rule)
    arrays = inputs.eval_arrays(tiny_data, "valid", 10)
    arrays.history[:5, -1] = arrays.answers[:5]  # answers in their own history
    batch = next(iter(ranking_dataset(arrays, protocol, batch_size=40)))
    ranks, has_answer = rm.answer_ranks(*model.ranking_lists(batch))
    expected = model.answer_ranks(batch).numpy()
    np.testing.assert_array_equal(has_answer.numpy(), np.isfinite(expected))
    np.testing.assert_array_equal(ranks.numpy()[has_answer.numpy()],
                                  expected[np.isfinite(expected)])


def test_the_original_rule_has_no_lists(tiny_data):
    model = _model(tiny_data)
    model.compile(optimizer=adam(1e-3), history_rule="original")
    batch = next(iter(ranking_dataset(inputs.eval_arrays(tiny_data, "valid", 10))))
    with pytest.raises(ValueError, match="original"):
        model.ranking_lists(batch)
    with pytest.raises(ValueError, match="history_rule"):
        model.compile(optimizer=adam(1e-3), history_rule="drop")


def test_formulas_and_ties_count_for_the_answer():
    y_true = np.array([[1, 0, 0, -1], [0, 1, 0, 0], [0, 0, 0, 0]], np.float32)
    y_pred = np.array([[0.5, 0.5, 0.1, 9.0], [0.3, 0.1, 0.2, 0.0], [1, 2, 3, 4]], np.float32)
    # ranks 0 and 2; the third list has no answer and is not counted
    for metric, value in [(rm.HitRate(1), 0.5), (rm.HitRate(3), 1.0),
                          (rm.NDCG(3), (1 + 1 / np.log2(4)) / 2), (rm.NDCG(2), 0.5),
                          (rm.MRR(), (1 + 1 / 3) / 2)]:
        metric.update_state(y_true, y_pred)
        assert float(metric.result()) == pytest.approx(value, abs=1e-7), metric.name
        metric.reset_state()
        metric.update_from_ranks(np.array([0, 2]))
        assert float(metric.result()) == pytest.approx(value, abs=1e-7), metric.name


def test_the_metric_sets_are_named_as_the_evaluators():
    for implementation in rm.IMPLEMENTATIONS:
        for protocol, names in [("full", metrics_lib.full_ranking_metrics([0])),
                                ("sampled", metrics_lib.sampled_metrics([0]))]:
            assert ([m.name for m in rm.ranking_metrics(protocol, implementation)]
                    == list(names))
    metric = rm.NDCG(7)
    assert type(metric).from_config(metric.get_config()).k == 7
    with pytest.raises(ValueError, match="implementation"):
        rm.ranking_metrics("full", "tfrs")
    with pytest.raises(ValueError, match="protocol"):
        rm.ranking_metrics("top")


@pytest.mark.parametrize("protocol, implementation, rule", [
    ("full", "s3rec", "remove"), ("full", "s3rec", "keep"), ("full", "s3rec", "original"),
    ("sampled", "s3rec", "remove"), ("full", "keras-rs", "remove"),
    ("full", "keras-rs", "keep"), ("sampled", "keras-rs", "remove")])
def test_keras_metrics_report_the_evaluators_numbers(tiny_data, protocol, implementation,
                                                     rule):
    model = _model(tiny_data)
    arrays = inputs.eval_arrays(tiny_data, "valid", 10)
    expected = RankingEvaluator(model, history_rule=rule).evaluate(arrays, protocol)
    model.compile(optimizer=adam(1e-3), metrics=rm.ranking_metrics(protocol, implementation),
                  history_rule=rule)
    got = model.evaluate(ranking_dataset(arrays, protocol, batch_size=32), verbose=0,
                         return_dict=True)
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-6), name


def test_fit_validates_with_standard_callbacks(tiny_data, tmp_path):
    model = _model(tiny_data)
    model.compile(optimizer=adam(1e-3), metrics=rm.ranking_metrics("full"))
    arrays = inputs.finetune_arrays(tiny_data, 10)
    steps = inputs.steps_per_epoch(len(arrays.input_ids), 64)
    valid = ranking_dataset(inputs.eval_arrays(tiny_data, "valid", 10), "full", 64)
    path = str(tmp_path / "best.keras")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(
            inputs.finetune_dataset(arrays, 64, epochs=3), epochs=3, steps_per_epoch=steps,
            validation_data=valid, verbose=0,
            callbacks=[keras.callbacks.EarlyStopping(monitor="val_NDCG@20", mode="max",
                                                     patience=1, restore_best_weights=True),
                       keras.callbacks.ModelCheckpoint(path, monitor="val_NDCG@20",
                                                       mode="max", save_best_only=True),
                       keras.callbacks.TensorBoard(str(tmp_path / "logs"))])
        restored = keras.models.load_model(path)
    assert [str(w.message) for w in caught] == []
    assert {"loss", "val_NDCG@20", "val_MRR", "val_HR@10"} <= set(history.history)
    assert os.listdir(tmp_path / "logs" / "validation")
    # the checkpoint is a compiled model with the same metrics
    assert [m.name for m in restored.metrics] == [m.name for m in model.metrics]
    best = max(history.history["val_NDCG@20"])
    got = restored.evaluate(valid, verbose=0, return_dict=True)["NDCG@20"]
    assert got == pytest.approx(best, abs=1e-6)
