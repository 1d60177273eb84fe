"""Batch recommendations: every user's top-k with Apache Beam `RunInference`.

`s3rec-tf recommend-batch` and the pipeline's `BatchRecommender` component
run this graph:

```
users (paper format <NAME>.txt, or a prepared dataset's sequences split)
  -> (user_id, history of raw item ids, oldest first: the whole sequence)
  -> RunInference(KeyedModelHandler(RecommenderHandler))   # batches of users
  -> one row per user -> TFRecord (tf.Example) and Parquet
```

A user's answer is exactly what `s3rec_tf.serving.Recommender.query` gives
for the user's whole history (what `s3rec-tf recommend --user` answers):
the model handler loads that recommender once per worker and answers a
batch of users per call. `TFModelHandlerTensor`
(`apache_beam.ml.inference.tensorflow_inference`) is not used: on this stack
it cannot be imported (it imports `tensorflow_hub` 0.15, which imports
`tensorflow.compat.v1.estimator`, gone from TensorFlow 2.16), and it stacks
equal-shaped tensors while histories differ in length and the export takes
raw string ids. The handler is a plain `ModelHandler`, so `RunInference`
still does the batching, the model sharing per worker and its metrics.

Output directory (written with `s3rec_tf.io.write_atomic_dir`:
nothing appears until every file is complete):

- `recommendations-SSSSS-of-NNNNN.tfrecord`: one `tf.Example` per user with
  `user_id` (bytes), `item_ids` (bytes list, best first), `scores` (float
  list), `num_results`, `num_known`, `num_unknown` (int64);
- `recommendations-SSSSS-of-NNNNN.parquet`: the same columns
  (`PARQUET_SCHEMA`);
- `summary.json`: users, k, index, model, data, elapsed seconds, users/s.

Rows are in no particular order. A paper-format file is read and checked by
`s3rec_tf.data.reader.read_sequences` in the launching process (the paper's
files fit in memory); a prepared dataset (`s3rec-tf prepare`) is read by the
workers, shard by shard, so large data should be prepared first.
"""

from __future__ import annotations

import glob
import json
import os
import time

from apache_beam.ml.inference.base import ModelHandler

from s3rec_tf.errors import DataError

#: Stem of the output shards (`<stem>-SSSSS-of-NNNNN.tfrecord` / `.parquet`).
OUTPUT_STEM = "recommendations"
SUMMARY = "summary.json"
#: Most users per `RunInference` call.
DEFAULT_BATCH_SIZE = 256
COLUMNS = ("user_id", "item_ids", "scores", "num_results", "num_known", "num_unknown")


def parquet_schema():
    import pyarrow as pa
    return pa.schema([("user_id", pa.string()), ("item_ids", pa.list_(pa.string())),
                      ("scores", pa.list_(pa.float32())), ("num_results", pa.int32()),
                      ("num_known", pa.int32()), ("num_unknown", pa.int32())])


def to_example(row: dict) -> bytes:
    """A row as a serialized `tf.Example`."""
    import tensorflow as tf
    f = tf.train.Feature
    feature = {
        "user_id": f(bytes_list=tf.train.BytesList(value=[row["user_id"].encode()])),
        "item_ids": f(bytes_list=tf.train.BytesList(value=[i.encode()
                                                           for i in row["item_ids"]])),
        "scores": f(float_list=tf.train.FloatList(value=row["scores"])),
        **{n: f(int64_list=tf.train.Int64List(value=[row[n]]))
           for n in ("num_results", "num_known", "num_unknown")},
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def from_example(record: bytes) -> dict:
    """A row back from its `tf.Example` (for readers of the TFRecord output)."""
    import tensorflow as tf
    ex = tf.train.Example.FromString(record).features.feature
    return {"user_id": ex["user_id"].bytes_list.value[0].decode(),
            "item_ids": [i.decode() for i in ex["item_ids"].bytes_list.value],
            "scores": list(ex["scores"].float_list.value),
            **{n: int(ex[n].int64_list.value[0])
               for n in ("num_results", "num_known", "num_unknown")}}


def read_output(output_dir: str) -> dict:
    """`{"tfrecord": {user: row}, "parquet": {user: row}}` of an output directory."""
    import pyarrow.parquet as pq
    import tensorflow as tf
    rows = {"tfrecord": {}, "parquet": {}}
    files = sorted(glob.glob(os.path.join(output_dir, f"{OUTPUT_STEM}-*.tfrecord")))
    for record in tf.data.TFRecordDataset(files):
        row = from_example(record.numpy())
        rows["tfrecord"][row["user_id"]] = row
    for path in sorted(glob.glob(os.path.join(output_dir, f"{OUTPUT_STEM}-*.parquet"))):
        for row in pq.read_table(path).to_pylist():
            rows["parquet"][row["user_id"]] = row
    return rows


class RecommenderHandler(ModelHandler):
    """A Beam `ModelHandler`: histories (lists of raw ids) -> `Recommender.query` answers.

    Args:
        export_dir: export base or version directory.
        k: int >= 1.
        exclude_history: bool.
        index: `brute` or `scann` (`s3rec_tf.ann.INDEXES`).
        max_batch_size: most histories per call.
    """

    def __init__(self, export_dir: str, k: int = 10, exclude_history: bool = True,
                 index: str = "brute", max_batch_size: int = DEFAULT_BATCH_SIZE):
        super().__init__()
        self.export_dir = export_dir
        self.k = k
        self.exclude_history = exclude_history
        self.index = index
        self.max_batch_size = max_batch_size

    def load_model(self):
        import atexit

        from s3rec_tf import serving
        model = serving.Recommender(self.export_dir, index=self.index)
        atexit.register(model.close)  # release it while TensorFlow is still whole
        return model

    def run_inference(self, batch, model, inference_args=None):
        from apache_beam.ml.inference.base import PredictionResult
        answers = model.query(list(batch), self.k, self.exclude_history)
        return [PredictionResult(h, a) for h, a in zip(batch, answers)]

    def get_num_bytes(self, batch) -> int:
        return sum(len(str(i)) for h in batch for i in h)

    def get_metrics_namespace(self) -> str:
        return "s3rec_tf.batch"

    def batch_elements_kwargs(self):
        return {"max_batch_size": self.max_batch_size}


def _row(keyed) -> dict:
    user, result = keyed
    answer = result.inference
    return {"user_id": str(user), "item_ids": [i for i, _ in answer["items"]],
            "scores": [float(s) for _, s in answer["items"]],
            **{n: int(answer[n]) for n in ("num_results", "num_known", "num_unknown")}}


def check_source(data_dir: str, name: str | None) -> str:
    """`"prepared"` or `"s3rec"` (paper format); a missing source is a `DataError`."""
    from s3rec_tf.data import prepared
    if prepared.is_prepared(data_dir):
        return "prepared"
    if not name:
        raise DataError(data_dir, "not a prepared dataset; give --name for <NAME>.txt")
    path = os.path.join(data_dir, f"{name}.txt")
    if not os.path.isfile(path):
        raise DataError(path, "no such file (and the directory is not a prepared dataset)")
    return "s3rec"


class _PreparedHistories:
    """A prepared dataset's `tf.Example` -> `(user_id, [raw item ids])`."""

    def __init__(self, prepared_dir: str):
        self.prepared_dir = prepared_dir
        self.vocabulary = None

    def __call__(self, record: bytes):
        import tensorflow as tf

        from s3rec_tf.data import prepared
        if self.vocabulary is None:
            with tf.io.gfile.GFile(os.path.join(self.prepared_dir,
                                                prepared.ITEM_VOCABULARY)) as f:
                self.vocabulary = [line.rstrip("\n") for line in f]
        ex = tf.train.Example.FromString(record).features.feature
        return (ex["user_id"].bytes_list.value[0].decode(),
                [self.vocabulary[i - 1] for i in ex["items"].int64_list.value])


def read_users(pipeline, data_dir: str, name: str | None):
    """A PCollection of `(user_id, [raw item ids, oldest first])`, one per user."""
    import apache_beam as beam

    from s3rec_tf.data.reader import user_histories
    from s3rec_tf.data import prepared
    if check_source(data_dir, name) == "prepared":
        pattern = os.path.join(prepared.split_dir(data_dir, prepared.SEQUENCES_SPLIT), "*")
        return (pipeline
                | "ReadSequences" >> beam.io.ReadFromTFRecord(pattern)  # .gz by its name
                | "ToHistories" >> beam.Map(_PreparedHistories(data_dir)))
    return pipeline | "Users" >> beam.Create(user_histories(data_dir, name))


def build(pipeline, data_dir: str, name: str | None, export_dir: str, output_dir: str,
          k: int = 10, exclude_history: bool = True, index: str = "brute",
          batch_size: int = DEFAULT_BATCH_SIZE):
    """Adds the graph to `pipeline`: users -> RunInference -> TFRecord + Parquet shards."""
    import apache_beam as beam
    from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

    handler = KeyedModelHandler(RecommenderHandler(export_dir, k, exclude_history, index,
                                                   batch_size))
    counter = beam.metrics.Metrics.counter("s3rec_tf.batch", "users")

    def count(row):
        counter.inc()
        return row

    rows = (read_users(pipeline, data_dir, name)
            | "RunInference" >> RunInference(handler)
            | "ToRows" >> beam.Map(_row)
            | "Count" >> beam.Map(count))
    prefix = os.path.join(output_dir, OUTPUT_STEM)
    _ = (rows | "ToExamples" >> beam.Map(to_example)
         | "WriteTFRecord" >> beam.io.WriteToTFRecord(prefix, file_name_suffix=".tfrecord"))
    _ = rows | "WriteParquet" >> beam.io.WriteToParquet(prefix, parquet_schema(),
                                                        file_name_suffix=".parquet")


def _users_counted(result):
    try:
        from apache_beam.metrics.metric import MetricsFilter
        counters = result.metrics().query(MetricsFilter().with_name("users"))["counters"]
        return int(sum(c.committed or 0 for c in counters)) if counters else None
    except Exception:  # a runner without metrics
        return None


def recommend_batch(data_dir: str, name: str | None, export_dir: str, output_dir: str,
                    k: int = 10, exclude_history: bool = True, index: str = "brute",
                    beam_args: list | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                    pipeline=None, replace: bool = False) -> dict:
    """Writes every user's top-k to `output_dir` (TFRecord, Parquet, `summary.json`).

    Args:
        data_dir: a prepared dataset, or a directory with `<name>.txt`.
        name: dataset name (file stem); not needed for a prepared dataset.
        export_dir: export base or version directory (`s3rec-tf export`, a
            Pusher's destination).
        output_dir: the output directory; nothing appears there unless the
            whole run completes.
        k: int >= 1. exclude_history: bool. index: `brute` | `scann`.
        beam_args: Beam options (default: `s3rec_tf.data.preprocess.default_beam_args`,
            the DirectRunner with 2 processes).
        batch_size: most users per `RunInference` call.
        pipeline: a ready `beam.Pipeline` (a TFX component's) instead of `beam_args`.
        replace: bool. Replace an existing non-empty `output_dir` (else it is
            refused). Defaults to `False`.

    Returns:
        The summary (also `<output_dir>/summary.json`).

    Raises:
        DataError / ArtifactError: a missing or malformed input, before
            anything runs; ValueError: `k` or `index` out of range.
    """
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from s3rec_tf import ann, serving
    from s3rec_tf.data import preprocess
    from s3rec_tf.io import write_atomic_dir, write_json_atomic

    if k < 1:
        raise ValueError(f"k must be >= 1. Received: k={k}")
    if index not in ann.INDEXES:
        raise ValueError(f"`index` must be one of {ann.INDEXES}. Received: {index!r}")
    if index == "scann":
        ann.require_scann()
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Received: {batch_size}")
    source = check_source(data_dir, name)
    model_path = serving.resolve_export_dir(export_dir)  # fail early and clearly
    summary = {}

    def fill(staging):
        start = time.time()
        args = beam_args if beam_args is not None else preprocess.default_beam_args()
        p = pipeline if pipeline is not None else beam.Pipeline(options=PipelineOptions(args))
        build(p, data_dir, name, model_path, staging, k, exclude_history, index, batch_size)
        try:
            result = p.run()
            result.wait_until_finish()
        except Exception as e:
            found = preprocess._find_data_error(e)
            if found is not None:
                raise found from None
            raise
        elapsed = time.time() - start
        users = _users_counted(result)
        if users is None:  # count what was written
            users = len(read_output(staging)["parquet"])
        summary.update({
            "users": users, "k": k, "exclude_history": exclude_history, "index": index,
            "model": os.path.abspath(model_path), "data": os.path.abspath(data_dir),
            "source": source, "name": name, "batch_size": batch_size,
            "beam_args": None if pipeline is not None else list(args),
            "elapsed_s": round(elapsed, 2),
            "users_per_s": round(users / elapsed, 1) if elapsed > 0 else None,
            "files": sorted(f for f in os.listdir(staging) if f.startswith(OUTPUT_STEM))})
        write_json_atomic(os.path.join(staging, SUMMARY), summary)

    write_atomic_dir(output_dir, fill, replace=replace)
    return summary


def summary_of(output_dir: str) -> dict:
    with open(os.path.join(output_dir, SUMMARY)) as f:
        return json.load(f)
