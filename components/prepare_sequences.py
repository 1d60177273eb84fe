"""`PrepareSequences`: the custom Beam step from validated events to the prepared dataset.

Custom because TFX has no component that groups events into per-user
sequences, builds id vocabularies and draws the sampled-ranking negatives
(TensorFlow Transform works row by row and cannot group by user). The work
is the library's Beam graph (`s3rec_tf.data.prepare.read_examples` +
`build_sequences`); this component checks its inputs and wires artifacts:

- refuses to run when `ExampleValidator` found anomalies in a validated
  split, with one line per anomaly naming the feature;
- refuses an empty `events` split (from the statistics);
- writes the prepared dataset (`s3rec_tf.data.prepared`) as an `Examples`
  artifact with splits `sequences` and `item_attributes`.
"""


import os
import time

import apache_beam as beam
from tfx.components.util import examples_utils
from tfx.dsl.component.experimental.annotations import (BeamComponentParameter,
                                                        InputArtifact, OutputArtifact,
                                                        Parameter)
from tfx.dsl.component.experimental.decorators import component
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts


def anomalies_of(anomalies_artifact) -> list:
    """`["split 'events': feature 'timestamp': <description>", ...]` of an ExampleAnomalies."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2
    found = []
    for split in artifact_utils.decode_split_names(anomalies_artifact.split_names):
        path = os.path.join(artifact_utils.get_split_uri([anomalies_artifact], split),
                            "SchemaDiff.pb")
        if not os.path.exists(path):
            continue
        with open(path, "rb") as f:
            anomalies = anomalies_pb2.Anomalies.FromString(f.read())
        for feature, info in sorted(anomalies.anomaly_info.items()):
            reason = "; ".join(r.description or r.short_description for r in info.reason) \
                or info.description or info.short_description
            found.append(f"split {split!r}: feature {feature!r}: {reason}")
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            found.append(f"split {split!r}: dataset: {info.description or info.short_description}")
    return found


def num_examples(statistics_artifact, split: str) -> int:
    from tfx.components.statistics_gen import stats_artifact_utils
    stats = stats_artifact_utils.load_statistics(statistics_artifact, split).proto()
    return sum(d.num_examples for d in stats.datasets)


@component(use_beam=True)
def PrepareSequences(
    examples: InputArtifact[standard_artifacts.Examples],
    statistics: InputArtifact[standard_artifacts.ExampleStatistics],
    anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
    prepared: OutputArtifact[standard_artifacts.Examples],
    dataset: Parameter[str],
    input_format: Parameter[str] = "s3rec",
    k_core: Parameter[int] = 0,
    seed: Parameter[int] = 0,
    beam_pipeline: BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    """Validated events (+ attributes, + the authors' negatives) -> prepared sequences.

    `input_format` chooses the id layout (`s3rec`: the paper's ids kept).
    """
    from s3rec_tf.data import prepared as prepared_lib
    from s3rec_tf.data import prepare
    from s3rec_tf.data.beam_runtime import run_beam
    from s3rec_tf.errors import DataError

    start = time.time()
    problems = anomalies_of(anomalies)
    if problems:
        raise DataError(examples.uri, "ExampleValidator found anomalies: " +
                        " | ".join(problems))
    splits = artifact_utils.decode_split_names(examples.split_names)
    if prepare.EVENTS_SPLIT not in splits:
        raise DataError(examples.uri, f"no {prepare.EVENTS_SPLIT!r} split (has {splits})")
    if num_examples(statistics, prepare.EVENTS_SPLIT) == 0:
        raise DataError(examples.uri, f"split {prepare.EVENTS_SPLIT!r} is empty")
    patterns = {s: os.path.join(artifact_utils.get_split_uri([examples], s), "*")
                for s in splits if s in (prepare.EVENTS_SPLIT, prepare.ATTRIBUTES_SPLIT,
                                         prepare.NEGATIVES_SPLIT)}
    config = prepare.PrepareConfig(input_format=input_format, name=dataset,
                                   k_core=k_core, seed=seed)
    run_beam(lambda p: prepare.build_sequences(
        p, prepare.read_examples(p, patterns, config), prepared.uri, config),
        pipeline=beam_pipeline)
    stats = prepare.check_prepared(prepared.uri, {"interactions": examples.uri})
    prepared.split_names = artifact_utils.encode_split_names(list(prepared_lib.SPLITS))
    # its splits hold tf.Examples: said so, as ExampleGen says it of its own output
    examples_utils.set_payload_format(prepared, example_gen_pb2.FORMAT_TF_EXAMPLE)
    prepared.set_string_custom_property("dataset", dataset)
    prepared.set_string_custom_property("negatives", stats["negatives"])
    prepared.set_int_custom_property("num_users", stats["users"])
    prepared.set_int_custom_property("num_items", stats["items"])
    print(f"PrepareSequences: {stats['users']} users, {stats['items']} items, "
          f"{stats['interactions']} interactions ({stats['users_too_short']} users too "
          f"short); negatives: {stats['negatives']}; {time.time() - start:.1f}s", flush=True)
