"""`BatchRecommender` on tiny artifacts: the pushed model's top-k for every user."""

import os
import shutil

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from tfx.types import artifact_utils, standard_artifacts

from components.batch_recommender import BatchRecommender
from s3rec_tf import batch, serving
from s3rec_tf.data import prepared, reader
from tests.components.test_ranking_evaluator import _output
from tests.conftest import write_prepared


def _pushed(uri, export_dir=None):
    artifact = standard_artifacts.PushedModel()
    artifact.uri = uri
    if export_dir:  # what the Pusher does: the SavedModel copied into its artifact
        shutil.copytree(export_dir, uri)
    artifact.set_int_custom_property("pushed", int(export_dir is not None))
    return artifact


def test_writes_every_users_top_k(tmp_path, tiny_data, tiny_export, synthetic_dir):
    write_prepared(tiny_data, str(tmp_path / "prepared"))
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "prepared")
    examples.split_names = artifact_utils.encode_split_names(list(prepared.SPLITS))
    run = BatchRecommender.EXECUTOR_SPEC.executor_class._FUNCTION
    out = _output(standard_artifacts.InferenceResult, str(tmp_path / "recs"))
    run(examples=examples, pushed_model=_pushed(str(tmp_path / "pushed"), tiny_export),
        recommendations=out, k=4, index="brute",
        beam_pipeline=beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner"])))
    rows = batch.read_output(out.uri)["tfrecord"]
    histories = dict(reader.user_histories(synthetic_dir, "Tiny"))
    assert set(rows) == set(histories)
    assert out.get_int_custom_property("num_users") == len(histories)
    assert out.get_int_custom_property("skipped") == 0
    user = sorted(histories)[5]
    want = serving.Recommender(tiny_export).recommend([histories[user]], 4)[0]
    assert rows[user]["item_ids"] == [i for i, _ in want]
    # a model the Pusher did not push: nothing written, marked skipped
    out = _output(standard_artifacts.InferenceResult, str(tmp_path / "none"))
    run(examples=examples, pushed_model=_pushed(str(tmp_path / "not-pushed")),
        recommendations=out, k=4, index="brute", beam_pipeline=None)
    assert out.get_int_custom_property("skipped") == 1 and not os.listdir(out.uri)
