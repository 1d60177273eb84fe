"""An ExampleGen for the paper's format and RecBole atomic files (custom executor).

CSV goes through the standard `CsvExampleGen`, TFRecords of `tf.Example`
through `ImportExampleGen`, Parquet through TFX's Parquet executor. The
paper's format (one line per user) and RecBole's tab-separated files with
typed headers have no standard reader, so this executor turns them into one
`tf.Example` per row with the project's row parsers
(`s3rec_tf.data.formats`). Each input split is one file, recognised by
its name:

- `events`: `<Name>.txt` (paper) or `<Name>.inter` (RecBole); features
  `user_id`, `item_id` (bytes) and `timestamp` (float; the position in the
  paper's format);
- `item_attributes`: `<Name>_item2attributes.json` or `<Name>.item`;
  `item_id`, `attribute` (bytes), one example per pair;
- `negatives`: `<Name>_sample.txt` (paper, when present); `user_id` (bytes),
  `negatives` (bytes list of 99 item ids).

A malformed row stops the component with a message naming the file and the
row (the pipeline does not drop rows silently).
"""

from __future__ import annotations

import os
from typing import Any, Dict

import apache_beam as beam
import tensorflow as tf
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2


def _bytes(*values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() for v in values]))


def _example(**features):
    return tf.train.Example(features=tf.train.Features(feature=features))


def event_example(user: str, item: str, timestamp: float) -> tf.train.Example:
    return _example(user_id=_bytes(user), item_id=_bytes(item),
                    timestamp=tf.train.Feature(float_list=tf.train.FloatList(
                        value=[float(timestamp)])))


def attribute_example(item: str, attribute: str) -> tf.train.Example:
    return _example(item_id=_bytes(item), attribute=_bytes(attribute))


def negatives_example(user: str, negatives) -> tf.train.Example:
    return _example(user_id=_bytes(user), negatives=_bytes(*(str(n) for n in negatives)))


def kind_of(file_name: str) -> str:
    """`events`, `item_attributes` or `negatives`, from a file name."""
    if file_name.endswith("_sample.txt"):
        return "negatives"
    if file_name.endswith((".txt", ".inter")):
        return "events"
    if file_name.endswith(("_item2attributes.json", ".item")):
        return "item_attributes"
    raise ValueError(f"{file_name}: not a file of the paper's format or RecBole's "
                     f"(<Name>.txt, <Name>_item2attributes.json, <Name>_sample.txt, "
                     f"<Name>.inter, <Name>.item)")


def format_of(file_name: str) -> str:
    """The input format (`s3rec_tf.data.formats`) of a file of this ExampleGen."""
    return "s3rec" if file_name.endswith((".txt", ".json")) else "recbole"


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def _EventFileToExample(pipeline: beam.Pipeline, exec_properties: Dict[str, Any],
                        split_pattern: str) -> beam.pvalue.PCollection:
    """One file of the paper's format or RecBole's -> `tf.Example`s (see module doc)."""
    from s3rec_tf.data import formats
    from s3rec_tf.data import negatives as negatives_lib

    path = os.path.join(exec_properties["input_base"], split_pattern)
    kind = kind_of(os.path.basename(split_pattern))

    if kind == "negatives":
        def negatives_row(element):
            user, negatives = negatives_lib.parse_sample_line(element[1], path, None)
            return negatives_example(user, negatives)
        return (pipeline | "ReadLines" >> beam.io.ReadFromText(path)
                | "Tag" >> beam.Map(lambda line: (path, line))
                | "ToExample" >> beam.Map(negatives_row))
    fmt = formats.get(format_of(path))
    rows_kind = "interactions" if kind == "events" else "attributes"
    parse, flat = fmt.parser(path, rows_kind)
    rows = fmt.beam_rows(pipeline, path, rows_kind)
    parsed = rows | "Parse" >> (beam.FlatMap if flat else beam.Map)(formats.strict(parse))
    return parsed | "ToExample" >> beam.MapTuple(
        event_example if kind == "events" else attribute_example)


class EventFileExecutor(BaseExampleGenExecutor):
    """ExampleGen executor for the paper's format and RecBole atomic files."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _EventFileToExample


def input_config(files: dict) -> example_gen_pb2.Input:
    """`{split: file name}` -> an ExampleGen `Input` with one split per file."""
    return example_gen_pb2.Input(splits=[
        example_gen_pb2.Input.Split(name=split, pattern=pattern)
        for split, pattern in files.items()])


def EventFileExampleGen(input_base: str, files: dict) -> FileBasedExampleGen:
    """The standard `FileBasedExampleGen` with `EventFileExecutor`.

    Args:
        input_base: the data directory.
        files: `{split: file name}` (see the module doc).
    """
    return FileBasedExampleGen(
        input_base=input_base, input_config=input_config(files),
        custom_executor_spec=executor_spec.BeamExecutorSpec(EventFileExecutor))
