import json
import os

import numpy as np
import pytest

from s3rec_tf import artifacts
from s3rec_tf.config import EncoderConfig, to_dict
from s3rec_tf.errors import ArtifactError
from s3rec_tf.io import write_json_atomic
from s3rec_tf.models.layers import SequenceEncoder
from s3rec_tf.models import NextItemModel, S3RecPretrainer

VOCAB = {"dataset": "T", "num_items": 20, "num_attributes": 3, "fingerprint": "abc"}


def _save(path):
    model = NextItemModel(SequenceEncoder(20, 3, max_length=6, hidden_size=8), loss="ce")
    artifacts.save_model(str(path), model, "finetuned", VOCAB, {"lr": 1e-3})
    return model


def test_round_trip_with_manifest(tmp_path):
    model = _save(tmp_path / "m")
    loaded, manifest = artifacts.load_next_item_model(str(tmp_path / "m"))
    assert manifest["vocabulary"] == VOCAB and manifest["library_version"]
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")], "no temp dirs left"


def test_corrupt_or_truncated_weights_are_detected(tmp_path):
    _save(tmp_path / "m")
    weights = tmp_path / "m" / artifacts.WEIGHTS
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        artifacts.load_next_item_model(str(tmp_path / "m"))


def test_missing_and_wrong_kind(tmp_path):
    with pytest.raises(ArtifactError, match="not found"):
        artifacts.read_manifest(str(tmp_path / "none"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="not an s3rec-tf model"):
        artifacts.read_manifest(str(tmp_path / "empty"))
    _save(tmp_path / "m")
    with pytest.raises(ArtifactError, match="expected pretrained"):
        artifacts.load_pretrainer(str(tmp_path / "m"))


def test_vocabulary_mismatch_says_what_differs():
    manifest = {"vocabulary": VOCAB}
    artifacts.check_vocabulary(manifest, dict(VOCAB), "m")
    with pytest.raises(ArtifactError, match="num_items: model 20 vs data 21"):
        artifacts.check_vocabulary(manifest, {**VOCAB, "num_items": 21}, "m")
    with pytest.raises(ArtifactError, match="fingerprint"):
        artifacts.check_vocabulary(manifest, {**VOCAB, "fingerprint": "zzz"}, "m")


def _as_format_1(path):
    """Rewrites a manifest into format 1: the encoder's config and fields by kind."""
    manifest_path = os.path.join(path, artifacts.MANIFEST)
    with open(manifest_path) as f:
        manifest = json.load(f)
    config = manifest.pop("model")["config"]
    del manifest["encoder"]
    manifest.update(format=artifacts.LEGACY_FORMAT, encoder_config=config["encoder"]["config"])
    if manifest["kind"] == "pretrained":
        manifest.update(item_attributes_shape=config["item_attributes_shape"],
                        loss_weights=config["loss_weights"])
    else:
        manifest["loss"] = config["loss"]
    write_json_atomic(manifest_path, manifest)


def test_manifest_carries_the_keras_config(tmp_path):
    _save(tmp_path / "m")
    manifest = artifacts.read_manifest(str(tmp_path / "m"))
    assert manifest["format"] == artifacts.FORMAT
    assert manifest["model"]["class_name"] == "NextItemModel"
    assert "compile_config" not in manifest["model"]
    assert artifacts.task_config(manifest)["loss"] == "ce"
    assert artifacts.encoder_config(manifest)["num_items"] == 20


def test_format_1_manifests_still_load(tmp_path):
    model = _save(tmp_path / "ft")
    _as_format_1(tmp_path / "ft")
    loaded, manifest = artifacts.load_next_item_model(str(tmp_path / "ft"))
    assert loaded.loss_name == "ce" and loaded.encoder.max_length == 6
    assert artifacts.encoder_config(manifest)["hidden_size"] == 8
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    pre = S3RecPretrainer(SequenceEncoder(20, 3, max_length=6, hidden_size=8),
                          np.ones((22, 2), "int32"), loss_weights={"sp": 0.25})
    artifacts.save_model(str(tmp_path / "pre"), pre, "pretrained", VOCAB, {})
    _as_format_1(tmp_path / "pre")
    loaded, _ = artifacts.load_pretrainer(str(tmp_path / "pre"))
    assert loaded.loss_weights_["sp"] == 0.25
    np.testing.assert_array_equal(loaded.item_attributes.numpy(), np.ones((22, 2)))


def test_format_1_manifests_give_their_encoder_config(tmp_path):
    _save(tmp_path / "ft")
    _as_format_1(tmp_path / "ft")
    manifest = artifacts.read_manifest(str(tmp_path / "ft"))
    assert artifacts.encoder_config_of(manifest) == EncoderConfig(hidden_size=8, max_length=6)


def _edit_manifest(path, edit):
    manifest_path = os.path.join(path, artifacts.MANIFEST)
    with open(manifest_path) as f:
        manifest = json.load(f)
    edit(manifest)
    write_json_atomic(manifest_path, manifest)


def test_manifest_records_the_encoder_config_once(tmp_path):
    model = NextItemModel(SequenceEncoder(20, 3, max_length=6, hidden_size=8, dropout=0.25))
    artifacts.save_model(str(tmp_path / "m"), model, "finetuned", VOCAB,
                         {"lr": 1e-3, "hidden_size": 8, "dropout": 0.25})
    manifest = artifacts.read_manifest(str(tmp_path / "m"))
    expected = EncoderConfig(hidden_size=8, max_length=6, dropout=0.25)
    assert manifest["encoder"] == to_dict(expected)
    assert artifacts.encoder_config_of(manifest) == expected
    assert manifest["hyperparameters"] == {"lr": 1e-3}  # the encoder's fields: once
    with pytest.raises(ValueError, match=r"hidden_size: hyperparameters 16 vs model 8"):
        artifacts.save_model(str(tmp_path / "x"), model, "finetuned", VOCAB,
                             {"hidden_size": 16})
    assert not (tmp_path / "x").exists()


def test_manifests_written_before_the_encoder_config_still_load(tmp_path):
    _save(tmp_path / "m")
    _edit_manifest(tmp_path / "m", lambda m: m.pop("encoder"))
    loaded, manifest = artifacts.load_next_item_model(str(tmp_path / "m"))
    assert artifacts.encoder_config_of(manifest) == loaded.encoder.encoder_config()


def test_an_encoder_config_that_disagrees_with_the_model_is_refused(tmp_path):
    _save(tmp_path / "m")
    _edit_manifest(tmp_path / "m", lambda m: m["encoder"].update(hidden_size=16, dropout=0.1))
    with pytest.raises(ArtifactError, match=r"`encoder` disagrees with its model configuration "
                                            r"\(hidden_size: encoder 16 vs model 8; "
                                            r"dropout: encoder 0.1 vs model 0.5\)"):
        artifacts.load_next_item_model(str(tmp_path / "m"))
    _edit_manifest(tmp_path / "m", lambda m: m["encoder"].update(hidden_size=-1))
    with pytest.raises(ArtifactError, match="manifest's `encoder`: `hidden_size` must be"):
        artifacts.load_next_item_model(str(tmp_path / "m"))


def test_a_model_configuration_that_does_not_build_is_reported(tmp_path):
    _save(tmp_path / "m")
    path = tmp_path / "m" / artifacts.MANIFEST
    manifest = json.loads(path.read_text())
    manifest["model"]["config"]["encoder"]["config"]["num_items"] = 0
    path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="model configuration does not build"):
        artifacts.load_next_item_model(str(tmp_path / "m"))
    with pytest.raises(ValueError, match="a pretrained model is a S3RecPretrainer"):
        artifacts.save_model(str(tmp_path / "x"), NextItemModel(SequenceEncoder(20, 3)),
                             "pretrained", VOCAB, {})


def test_merge_keeps_the_directory_and_moves_the_manifest_last(tmp_path, monkeypatch):
    run = tmp_path / "run"
    (run / "_resume").mkdir(parents=True)
    (run / "history.jsonl").write_text("{}\n")
    moved = []
    replace = os.replace

    def recording_replace(src, dst):
        moved.append(os.path.basename(dst))
        replace(src, dst)
    monkeypatch.setattr(os, "replace", recording_replace)
    model = NextItemModel(SequenceEncoder(20, 3, max_length=6, hidden_size=8))
    artifacts.save_model(str(run), model, "finetuned", VOCAB, {}, merge=True)
    assert moved[-2:] == [artifacts.WEIGHTS, artifacts.MANIFEST]
    assert sorted(os.listdir(run)) == ["_resume", "history.jsonl", artifacts.MANIFEST,
                                       artifacts.WEIGHTS]
    assert os.listdir(tmp_path) == ["run"], "no temporary left"
    artifacts.load_next_item_model(str(run))
