"""What an export carries beside the SavedModel: TF Serving warm-up requests, a model card."""

import json
import os

import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from s3rec_tf import artifacts, serving
from s3rec_tf.io import write_json_atomic
from s3rec_tf import ids as ids_lib
from s3rec_tf.layers import SequenceEncoder
from s3rec_tf.models import NextItemModel

MAX_LENGTH = 7
HYPER = {"loss": "bce", "learning_rate": 0.001, "epochs": 3, "pretrained": None, "seed": 5}
RUN_METRICS = {"test/full": {"HR@10": 0.25, "NDCG@10": 0.125},
               "test/sampled": {"HR@10": 0.5, "MRR": 0.3}}


def _finetune_output(root, data, best_epoch=2, run_best_epoch=2):
    """A fine-tuning output directory: `best/` (an untrained model) and `metrics.json`."""
    encoder = SequenceEncoder(data.num_items, data.num_attributes, max_length=MAX_LENGTH,
                              hidden_size=8, num_layers=1, num_heads=1)
    best = artifacts.save_model(os.path.join(root, "best"), NextItemModel(encoder),
                                "finetuned", artifacts.vocabulary_of(data), HYPER,
                                {"best_epoch": best_epoch, "valid": {"MRR": 0.25}})
    write_json_atomic(os.path.join(root, "metrics.json"),
                                {"best_epoch": run_best_epoch, "metrics": RUN_METRICS})
    return best


@pytest.fixture(scope="module")
def export(tiny_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("extras")
    best = _finetune_output(str(root / "ft"), tiny_data)
    path = serving.export_serving_model(best, str(root / "serving"), version=1, default_k=4)
    return {"path": path, "best": best, "root": root}


def test_warmup_requests_parse_and_run_against_serving_default(export, tiny_data):
    path = os.path.join(export["path"], "assets.extra", serving.WARMUP_FILE)
    assert os.path.exists(path)
    loaded = tf.saved_model.load(export["path"])
    shapes = []
    for record in tf.data.TFRecordDataset(path):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        assert log.WhichOneof("log_type") == "predict_log"
        signature = loaded.signatures[request.model_spec.signature_name or "serving_default"]
        assert request.model_spec.signature_name == "serving_default"
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        assert set(inputs) == set(signature.structured_input_signature[1])
        out = signature(**inputs)
        batch = inputs["history"].shape[0]
        assert out["item_ids"].shape == (batch, 4)
        assert all(len(i) for i in out["item_ids"].numpy().ravel())  # real items
        ids = set(inputs["history"].numpy().astype(str).ravel())
        assert ids <= set(ids_lib.paper_vocabulary(tiny_data.num_items))
        shapes.append(tuple(inputs["history"].shape))
    assert shapes == [(1, 1), (1, MAX_LENGTH), (8, MAX_LENGTH)]


def test_model_card_holds_data_training_and_metrics(export, tiny_data):
    extra = os.path.join(export["path"], "assets.extra")
    card = json.load(open(os.path.join(extra, serving.MODEL_CARD + ".json")))
    assert card["data"]["fingerprint"] == tiny_data.fingerprint()
    assert card["data"]["num_items"] == tiny_data.num_items
    assert card["training"]["hyperparameters"] == HYPER
    assert card["training"]["best_epoch"] == 2 and card["training"]["loss"] == "bce"
    assert card["metrics"] == RUN_METRICS
    assert card["metrics_source"] == str(export["root"] / "ft" / "metrics.json")
    assert card["validation_at_best_epoch"] == {"MRR": 0.25}
    assert card["architecture"]["max_length"] == MAX_LENGTH
    assert card["serving"] == {"signatures": list(serving.SIGNATURES), "default_k": 4,
                               "num_items": tiny_data.num_items}
    text = open(os.path.join(extra, serving.MODEL_CARD + ".md")).read()
    assert tiny_data.fingerprint() in text and "test/full: HR@10 0.2500" in text
    assert "learning_rate: 0.001" in text and "none (SASRec)" in text


def test_model_card_ignores_metrics_of_another_run(tiny_data, tmp_path):
    best = _finetune_output(str(tmp_path / "ft"), tiny_data, best_epoch=2, run_best_epoch=9)
    path = serving.export_serving_model(best, str(tmp_path / "serving"), version=1)
    extra = os.path.join(path, "assets.extra")
    card = json.load(open(os.path.join(extra, serving.MODEL_CARD + ".json")))
    assert card["metrics"] == {} and card["metrics_source"] is None
    assert "None recorded" in open(os.path.join(extra, serving.MODEL_CARD + ".md")).read()
    # `s3rec-tf evaluate` of this very model is used instead
    write_json_atomic(os.path.join(best, "evaluation.json"),
                                {"model": os.path.abspath(best), "metrics": RUN_METRICS})
    path = serving.export_serving_model(best, str(tmp_path / "serving"), version=2)
    card = json.load(open(os.path.join(path, "assets.extra", serving.MODEL_CARD + ".json")))
    assert card["metrics"] == RUN_METRICS
    assert card["metrics_source"] == os.path.join(os.path.abspath(best), "evaluation.json")
