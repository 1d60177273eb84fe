import os

import numpy as np
import pytest

from s3rec_tf import artifacts
from s3rec_tf.errors import ArtifactError
from s3rec_tf.layers import SequenceEncoder
from s3rec_tf.models import NextItemModel

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
