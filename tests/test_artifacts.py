import json
import os

import numpy as np
import pytest

from s3rec_tf import artifacts
from s3rec_tf.errors import ArtifactError
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


def test_failed_write_leaves_nothing(tmp_path):
    def fill(tmp):
        open(os.path.join(tmp, "half"), "w").write("x")
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError):
        artifacts.write_atomic_dir(str(tmp_path / "out"), fill)
    assert os.listdir(tmp_path) == []


def test_refused_or_failed_writes_leave_no_folder_behind(tmp_path):
    # a failed fill removes the parent folders the call created
    def fill(tmp):
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError):
        artifacts.write_atomic_dir(str(tmp_path / "a" / "b" / "out"), fill)
    assert os.listdir(tmp_path) == []
    # replace=False refuses an existing directory before filling
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep").write_text("1")
    with pytest.raises(ArtifactError, match="already exists"):
        artifacts.write_atomic_dir(str(tmp_path / "x"), lambda tmp: None, replace=False)
    assert (tmp_path / "x" / "keep").read_text() == "1"
    # a file where a parent directory should be is an ArtifactError, not a traceback
    (tmp_path / "f").write_text("file")
    with pytest.raises(ArtifactError, match="is a file, expected a directory"):
        artifacts.write_atomic_dir(str(tmp_path / "f" / "out"), lambda tmp: None)
    with pytest.raises(ArtifactError, match="is a file, expected a directory"):
        artifacts.write_json_atomic(str(tmp_path / "f" / "m.json"), {})
    assert sorted(os.listdir(tmp_path)) == ["f", "x"]


def test_write_file_atomic_replaces_whole_files_only(tmp_path, monkeypatch):
    path = tmp_path / "d" / "n.txt"
    artifacts.write_file_atomic(str(path), "one\n")
    artifacts.write_file_atomic(str(path), b"two\n")
    assert path.read_text() == "two\n"
    artifacts.write_json_atomic(str(tmp_path / "d" / "m.json"), {"b": np.int64(2), "a": 1.5})
    assert (tmp_path / "d" / "m.json").read_text() == '{\n  "a": 1.5,\n  "b": 2\n}\n'

    def broken_replace(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        artifacts.write_file_atomic(str(path), "three\n")
    assert path.read_text() == "two\n"
    assert sorted(os.listdir(tmp_path / "d")) == ["m.json", "n.txt"], "no temporary left"


def _as_format_1(path):
    """Rewrites a manifest into format 1: the encoder's config and fields by kind."""
    manifest_path = os.path.join(path, artifacts.MANIFEST)
    with open(manifest_path) as f:
        manifest = json.load(f)
    config = manifest.pop("model")["config"]
    manifest.update(format=artifacts.LEGACY_FORMAT, encoder_config=config["encoder"]["config"])
    if manifest["kind"] == "pretrained":
        manifest.update(item_attributes_shape=config["item_attributes_shape"],
                        loss_weights=config["loss_weights"])
    else:
        manifest["loss"] = config["loss"]
    artifacts.write_json_atomic(manifest_path, manifest)


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
