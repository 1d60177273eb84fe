"""The ranking evaluator on tiny artifacts: metrics, blessing, baseline."""

import json
import os

import keras
import numpy as np
from tfx.types import artifact_utils, standard_artifacts

from components.ranking_evaluator import RankingEvaluator
from components.trainer_module import library_model_dir
from s3rec_tf import artifacts
from s3rec_tf.data import prepared
from tests.conftest import write_prepared


def _model_artifact(uri, data, seed):
    from s3rec_tf.models.layers import SequenceEncoder
    from s3rec_tf.models import NextItemModel
    keras.utils.set_random_seed(seed)
    model = NextItemModel(SequenceEncoder(num_items=data.num_items,
                                          num_attributes=data.num_attributes, hidden_size=16,
                                          max_length=20, num_layers=1))
    model(np.zeros((1, 20), "int32"))
    artifacts.save_model(os.path.join(library_model_dir(uri), "best"), model, "finetuned",
                         artifacts.vocabulary_of(data), {})
    artifact = standard_artifacts.Model()
    artifact.uri = uri
    return artifact


def _output(cls, uri):
    artifact = cls()
    artifact.uri = uri
    os.makedirs(uri)
    return artifact


def test_metrics_blessing_and_baseline(tmp_path, tiny_data):
    write_prepared(tiny_data, str(tmp_path / "prepared"))
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "prepared")
    examples.split_names = artifact_utils.encode_split_names(list(prepared.SPLITS))
    model = _model_artifact(str(tmp_path / "m1"), tiny_data, 1)
    evaluate = RankingEvaluator.EXECUTOR_SPEC.executor_class._FUNCTION
    evaluation = _output(standard_artifacts.ModelEvaluation, str(tmp_path / "ev1"))
    blessing = _output(standard_artifacts.ModelBlessing, str(tmp_path / "bl1"))
    evaluate(examples=examples, model=model, evaluation=evaluation, blessing=blessing,
             baseline_model=None, thresholds=json.dumps({"test/sampled/HR@10": 0.0}),
             compare_metric="test/full/NDCG@10")
    report = json.load(open(tmp_path / "ev1" / "metrics.json"))
    assert report["blessed"] and os.path.exists(tmp_path / "bl1" / "BLESSED")
    assert report["negatives"] == tiny_data.sample_source
    assert report["history_rule"] == "remove"  # the default: what the export serves
    assert blessing.get_string_custom_property("history_rule") == "remove"
    assert 0.0 <= report["metrics"]["test/sampled/MRR"] <= 1.0
    # the same model against itself as baseline: not below, blessed; a threshold too high: not
    evaluation = _output(standard_artifacts.ModelEvaluation, str(tmp_path / "ev2"))
    blessing = _output(standard_artifacts.ModelBlessing, str(tmp_path / "bl2"))
    evaluate(examples=examples, model=model, evaluation=evaluation, blessing=blessing,
             baseline_model=model, thresholds=json.dumps({"test/full/HR@10": 1.01}),
             compare_metric="test/full/NDCG@10")
    report = json.load(open(tmp_path / "ev2" / "metrics.json"))
    assert not report["blessed"] and os.path.exists(tmp_path / "bl2" / "NOT_BLESSED")
    assert report["baseline_metrics"] == report["metrics"]
    assert blessing.get_int_custom_property("blessed") == 0


def test_the_history_rule_is_a_parameter_named_in_the_records(tmp_path, tiny_data):
    import pytest
    write_prepared(tiny_data, str(tmp_path / "prepared"))
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "prepared")
    examples.split_names = artifact_utils.encode_split_names(list(prepared.SPLITS))
    model = _model_artifact(str(tmp_path / "m1"), tiny_data, 1)
    evaluate = RankingEvaluator.EXECUTOR_SPEC.executor_class._FUNCTION
    evaluation = _output(standard_artifacts.ModelEvaluation, str(tmp_path / "ev"))
    blessing = _output(standard_artifacts.ModelBlessing, str(tmp_path / "bl"))
    evaluate(examples=examples, model=model, evaluation=evaluation, blessing=blessing,
             baseline_model=None, thresholds="{}", compare_metric="test/full/NDCG@10",
             history_rule="original")
    report = json.load(open(tmp_path / "ev" / "metrics.json"))
    assert report["history_rule"] == "original"
    assert blessing.get_string_custom_property("history_rule") == "original"
    with pytest.raises(ValueError, match="history_rule"):
        evaluate(examples=examples, model=model, evaluation=evaluation, blessing=blessing,
                 baseline_model=None, thresholds="{}", compare_metric="test/full/NDCG@10",
                 history_rule="hybrid")
