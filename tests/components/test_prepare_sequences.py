"""The sequence step: the pipeline's library steps give the command line's data and metrics."""

import os
import shutil

import apache_beam as beam
import keras
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline

from components import example_gen
from components.prepare_sequences import anomalies_of
from s3rec_tf.data import prepare, prepared, reader
from s3rec_tf.data.beam_runtime import run_beam


def _example_gen(raw_dir, files, out_dir):
    """What the pipeline's ExampleGen writes: `Split-<name>/` of tf.Examples."""
    with TestPipeline() as p:
        for split, name in files.items():
            (p | f"Gen{split}" >> example_gen._EventFileToExample({"input_base": raw_dir}, name)
             | f"Ser{split}" >> beam.Map(lambda ex: ex.SerializeToString())
             | f"Write{split}" >> beam.io.WriteToTFRecord(
                 os.path.join(out_dir, f"Split-{split}", "data"), file_name_suffix=".gz"))
    return {s: os.path.join(out_dir, f"Split-{s}", "*") for s in files}


def _pipeline_path(raw_dir, tmp_path, files, seed):
    patterns = _example_gen(raw_dir, files, str(tmp_path / "examples"))
    config = prepare.PrepareConfig(input_format="s3rec", name="Tiny", seed=seed)
    out = str(tmp_path / "prepared")
    run_beam(lambda p: prepare.build_sequences(
        p, prepare.read_examples(p, patterns, config), out, config),
        pipeline=TestPipeline())
    return prepared.read_prepared(out)


def _metrics(data):
    from s3rec_tf.models.layers import SequenceEncoder
    from s3rec_tf.models import NextItemModel
    from s3rec_tf.training import evaluate_model
    keras.utils.set_random_seed(7)
    model = NextItemModel(SequenceEncoder(num_items=data.num_items,
                                          num_attributes=data.num_attributes, hidden_size=16,
                                          max_length=20))
    model(np.zeros((1, 20), "int32"))
    return evaluate_model(model, data)


def test_command_line_and_pipeline_give_the_same_data_and_metrics(tmp_path, synthetic_dir,
                                                                   tiny_data):
    """`reader.read_dataset` (the CLI's `--data`) vs ExampleGen -> PrepareSequences -> reader."""
    data = _pipeline_path(synthetic_dir, tmp_path, {"events": "Tiny.txt",
                                                    "item_attributes":
                                                        "Tiny_item2attributes.json"}, seed=1)
    np.testing.assert_array_equal(data.user_ids, tiny_data.user_ids)
    assert (data.num_items, data.num_attributes) == (tiny_data.num_items,
                                                     tiny_data.num_attributes)
    for a, b in zip(data.sequences, tiny_data.sequences):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(data.sample_negatives, tiny_data.sample_negatives)
    assert data.fingerprint() == tiny_data.fingerprint()
    assert data.sample_source == tiny_data.sample_source == "generated(per-user, seed=1)"
    assert _metrics(data) == _metrics(tiny_data)


def test_the_authors_sample_file_reaches_the_pipeline(tmp_path, synthetic_dir, tiny_data):
    raw = tmp_path / "raw"
    shutil.copytree(synthetic_dir, raw)
    fixed = np.tile(np.arange(101, 200), (tiny_data.num_users, 1))
    reader.write_sample_negatives(str(raw / "Tiny_sample.txt"), tiny_data.user_ids, fixed)
    cli = reader.read_dataset(str(raw), "Tiny")
    data = _pipeline_path(str(raw), tmp_path, {"events": "Tiny.txt",
                                               "item_attributes": "Tiny_item2attributes.json",
                                               "negatives": "Tiny_sample.txt"}, seed=1)
    np.testing.assert_array_equal(data.sample_negatives, fixed)
    np.testing.assert_array_equal(cli.sample_negatives, fixed)
    assert data.sample_source == "split 'negatives'"


def test_anomalies_name_split_and_feature(tmp_path):
    from tensorflow_metadata.proto.v0 import anomalies_pb2
    from tfx.types import artifact_utils, standard_artifacts
    artifact = standard_artifacts.ExampleAnomalies()
    artifact.uri = str(tmp_path)
    artifact.split_names = artifact_utils.encode_split_names(["events"])
    anomalies = anomalies_pb2.Anomalies()
    info = anomalies.anomaly_info["timestamp"]
    info.reason.add(description="Expected data of type: FLOAT but got BYTES")
    os.makedirs(tmp_path / "Split-events")
    (tmp_path / "Split-events" / "SchemaDiff.pb").write_bytes(anomalies.SerializeToString())
    assert anomalies_of(artifact) == [
        "split 'events': feature 'timestamp': Expected data of type: FLOAT but got BYTES"]
    (tmp_path / "Split-events" / "SchemaDiff.pb").write_bytes(b"")
    assert anomalies_of(artifact) == []


def test_a_text_timestamp_is_refused_naming_the_feature():
    import tensorflow as tf
    from s3rec_tf.errors import DataError
    ex = tf.train.Example()
    ex.features.feature["user_id"].int64_list.value.append(1)
    ex.features.feature["item_id"].bytes_list.value.append(b"a")
    ex.features.feature["timestamp"].bytes_list.value.append(b"noon")
    with pytest.raises(DataError, match="feature 'timestamp' holds text"):
        prepare.event_of(ex.SerializeToString())
    ex.features.feature["timestamp"].Clear()
    ex.features.feature["timestamp"].int64_list.value.append(5)
    assert prepare.event_of(ex.SerializeToString()) == ("1", "a", 5.0)
