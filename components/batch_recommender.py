"""`BatchRecommender`: every user's top-k from the pushed model, with Beam `RunInference`.

Custom because TFX's `BulkInferrer` runs a model's signature on examples one
by one and writes `PredictionLog`s; it does not build each user's history
from the prepared sequences, nor write per-user top-k rows as TFRecord and
Parquet. The work is the library's (`s3rec_tf.batch.recommend_batch`, the
same graph as `s3rec-tf recommend-batch`) on the component's Beam pipeline;
this component wires artifacts. Off by default
(`create_pipeline(enable_batch_recommendations=True)`).

A model the `Pusher` did not push (not blessed) gets no recommendations: the
output is left empty and marked `skipped`.
"""


import apache_beam as beam
from tfx.dsl.component.experimental.annotations import (BeamComponentParameter,
                                                        InputArtifact, OutputArtifact,
                                                        Parameter)
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts


@component(use_beam=True)
def BatchRecommender(
    examples: InputArtifact[standard_artifacts.Examples],
    pushed_model: InputArtifact[standard_artifacts.PushedModel],
    recommendations: OutputArtifact[standard_artifacts.InferenceResult],
    k: Parameter[int] = 10,
    index: Parameter[str] = "brute",
    beam_pipeline: BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    """The prepared dataset's users -> top-k of the pushed SavedModel (`s3rec_tf.batch`)."""
    from s3rec_tf import batch
    if not pushed_model.get_int_custom_property("pushed"):
        recommendations.set_int_custom_property("skipped", 1)
        print("BatchRecommender: skipped (the model was not pushed)", flush=True)
        return
    summary = batch.recommend_batch(examples.uri, None, pushed_model.uri, recommendations.uri,
                                    k=k, index=index, pipeline=beam_pipeline,
                                    replace=True)  # TFX's own artifact folder
    recommendations.set_int_custom_property("skipped", 0)
    recommendations.set_int_custom_property("num_users", summary["users"])
    recommendations.set_int_custom_property("k", k)
    recommendations.set_string_custom_property("index", index)
    print(f"BatchRecommender: top-{k} of {summary['users']} users "
          f"({summary['users_per_s']} users/s, index {index})", flush=True)
