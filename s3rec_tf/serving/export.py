"""Export a fine-tuned model as a SavedModel that TF Serving can serve.

Answering from an export is `s3rec_tf.serving.client`.

The export lives in TF Serving's layout, `<base>/<version>/saved_model.pb`,
written with Keras 3's `keras.export.ExportArchive`. It carries its item
vocabulary as an asset (raw id per line, line `i` = item index `i + 1`) and
needs nothing beside its directory.

Signatures (all return `item_ids` [batch, k] string, `scores` [batch, k]
float32, and [batch] int32 counts `num_results`, `num_known`,
`num_unknown`):

- `serving_default(history)`: `history` is a [batch, length] string tensor
  of raw item ids, oldest first, right-padded with "" for shorter
  histories. Returns the top `default_k` items, excluding items already in
  the history.
- `serve_top_k(history, k, exclude_history)`: the same with `k` (int32
  scalar, clipped to the catalogue size; `k < 1` is an error) and
  `exclude_history` (bool scalar) as inputs.
- `serve_int_ids(history)`: int64 raw ids, 0 = padding.
- `serve_examples(examples)`: serialized `tf.Example`s with a bytes feature
  `history` (what TFX evaluators and many clients send).
- `item_embeddings()`: the raw item ids and their embedding rows, for users
  building their own ANN index.
- `serve_query_embedding(history)`: `query` [batch, hidden] float32, the
  vector whose dot product with an item's embedding row is that item's
  score (what an ANN index over `item_embeddings` searches with), and the
  counts `num_known`, `num_unknown`.

Only eligible items are answered: never the padding or mask index, and,
with `exclude_history`, never an item of the history. When fewer than `k`
items are eligible (the history covers the catalogue), row `r` holds
`num_results[r] < k` real results first, then fill entries: item id
`FILL_ID` (`""`, which `export_serving_model` refuses as a vocabulary id, so
it can never name an item) and score `FILL_SCORE` (`-inf`). Clients read
the first `num_results` entries (or drop `""` ids).

Unknown ids are dropped from a history (and counted in `num_unknown`); a
history longer than the model's maximum length keeps its last items. A
history with no known item gets the model's answer for an empty sequence (a
fixed ranking) and `num_known = 0`.

Inputs are validated, each failure an `InvalidArgumentError` naming the
input: `k >= 1`; integer ids `>= 0` (`serve_int_ids`; 0 is padding);
every `tf.Example` carries a `history` feature (`serve_examples`; an empty
one is an empty history); ranks are fixed by the signatures. A request
whose `batch * catalogue` exceeds `MAX_SCORES_PER_REQUEST` is refused with a
clear error instead of exhausting the server's memory.
"""

from __future__ import annotations

import json
import os
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from s3rec_tf import artifacts
from s3rec_tf.io import write_atomic_dir, write_json_atomic
from s3rec_tf import ids as ids_lib
from s3rec_tf.config import SERVING_K, to_dict
from s3rec_tf.errors import ArtifactError
from s3rec_tf.models import NextItemModel, ranking

VOCABULARY_ASSET = "item_vocabulary.txt"
#: TF Serving's warm-up file, in `<version>/assets.extra/`.
WARMUP_FILE = "tf_serving_warmup_requests"
#: The model card's file stem (`.json` and `.md`), in `<version>/assets.extra/`.
MODEL_CARD = "model_card"
#: Largest `batch * catalogue` a request may score (256M float32 scores = 1 GiB).
MAX_SCORES_PER_REQUEST = 1 << 28
SIGNATURES = ("serving_default", "serve_top_k", "serve_int_ids", "serve_examples",
              "item_embeddings", "serve_query_embedding")
#: Item id of the entries past `num_results` (never a vocabulary id).
FILL_ID = ""
#: Score of the entries past `num_results`.
FILL_SCORE = float("-inf")


class _Recommender(tf.Module):
    """The serving computation: raw ids -> indices -> encoder -> top-k raw ids."""

    def __init__(self, model: NextItemModel, vocabulary_file: str, num_items: int,
                 default_k: int):
        super().__init__()
        self.model = model
        self.num_items = num_items
        self.max_length = model.encoder.max_length
        self.default_k = default_k
        init = tf.lookup.TextFileInitializer(
            vocabulary_file, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
            tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER)
        self.id_to_index = tf.lookup.StaticHashTable(init, default_value=-1)
        back = tf.lookup.TextFileInitializer(
            vocabulary_file, tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER,
            tf.string, tf.lookup.TextFileIndex.WHOLE_LINE)
        self.index_to_id = tf.lookup.StaticHashTable(back, default_value=FILL_ID)

    def indices(self, history):
        """Raw ids [B, L] -> left-padded item indices [B, max_length] and counts."""
        history = tf.strings.strip(history)
        padding = tf.equal(history, "")
        index = self.id_to_index.lookup(history) + ids_lib.FIRST_ID  # line number -> item id
        known = tf.logical_and(index >= ids_lib.FIRST_ID, tf.logical_not(padding))
        num_known = tf.reduce_sum(tf.cast(known, tf.int32), axis=1)
        num_unknown = tf.reduce_sum(
            tf.cast(tf.logical_and(tf.logical_not(known), tf.logical_not(padding)), tf.int32), 1)
        # right-align the known items, keeping the last max_length of them
        from_end = tf.cumsum(tf.cast(known, tf.int32), axis=1, reverse=True)
        keep = tf.logical_and(known, from_end <= self.max_length)
        column = self.max_length - from_end
        rows = tf.broadcast_to(tf.range(tf.shape(history)[0])[:, None], tf.shape(history))
        where = tf.where(keep)
        scatter_index = tf.stack([tf.gather_nd(rows, where), tf.gather_nd(column, where)], 1)
        ids = tf.scatter_nd(scatter_index, tf.cast(tf.gather_nd(index, where), tf.int32),
                            [tf.shape(history)[0], self.max_length])
        all_known = tf.where(known, tf.cast(index, tf.int32), ids_lib.PADDING_ID)
        return ids, all_known, num_known, num_unknown

    def top_k(self, history, k, exclude_history):
        # shapes are checked when the request runs (a loaded signature does not)
        history = tf.ensure_shape(history, [None, None], name="history_must_be_batch_by_length")
        k = tf.ensure_shape(k, [], name="k_must_be_a_scalar")
        exclude_history = tf.ensure_shape(exclude_history, [],
                                          name="exclude_history_must_be_a_scalar")
        item_size = ids_lib.item_size(self.num_items)
        checks = [
            tf.debugging.assert_greater(k, 0, message="k must be >= 1"),
            tf.debugging.assert_less_equal(
                tf.cast(tf.shape(history)[0], tf.int64) * item_size,
                tf.constant(MAX_SCORES_PER_REQUEST, tf.int64),
                message=f"batch too large: at most "
                        f"{MAX_SCORES_PER_REQUEST // item_size} histories per "
                        f"request for this catalogue; split the request")]
        with tf.control_dependencies(checks):  # nothing runs before the checks pass
            history = tf.identity(history)
            k = tf.minimum(k, self.num_items)
        ids, all_known, num_known, num_unknown = self.indices(history)
        scores = self.model.score_last(ids, training=False)
        banned = ranking.excluded_items(self.num_items, all_known, exclude_history)
        scores = tf.where(banned, tf.constant(-np.inf, scores.dtype), scores)
        top_scores, top_index = tf.math.top_k(scores, k)
        # fewer than k eligible items: the rest of the row is fill, never a
        # banned (padding, mask or excluded) item that top_k had to take
        eligible = item_size - tf.reduce_sum(tf.cast(banned, tf.int32), axis=1)
        num_results = tf.minimum(eligible, k)
        real = tf.range(k)[None, :] < num_results[:, None]
        item_ids = tf.where(
            real, self.index_to_id.lookup(tf.cast(top_index, tf.int64) - ids_lib.FIRST_ID),
            FILL_ID)
        top_scores = tf.where(real, top_scores, tf.constant(FILL_SCORE, top_scores.dtype))
        return {"item_ids": item_ids, "scores": top_scores, "num_results": num_results,
                "num_known": num_known, "num_unknown": num_unknown}

    def from_int_ids(self, history, k, exclude_history):
        """int64 raw ids, 0 = padding; a negative id is an error."""
        history = tf.ensure_shape(history, [None, None], name="history_must_be_batch_by_length")
        check = tf.debugging.assert_non_negative(
            history, message="history: integer ids must be >= 0 (0 is padding)")
        with tf.control_dependencies([check]):
            history = tf.identity(history)
        return self.top_k(tf.where(history > 0, tf.strings.as_string(history), ""), k,
                          exclude_history)

    def from_examples(self, examples, k, exclude_history):
        """Serialized `tf.Example`s, each with a bytes feature `history`."""
        examples = tf.ensure_shape(examples, [None], name="examples_must_be_a_vector")
        parsed = tf.io.parse_example(examples, {"history": tf.io.VarLenFeature(tf.string)})
        with tf.control_dependencies([parsed["history"].values]):  # parse errors first
            check = tf.debugging.assert_equal(
                has_feature(examples, "history"), True,
                message="examples: every tf.Example needs a bytes feature named history (an "
                        "empty list for an empty history)")
        with tf.control_dependencies([check]):
            dense = tf.sparse.to_dense(parsed["history"], default_value="")
        dense = tf.cond(tf.shape(dense)[1] > 0, lambda: dense,
                        lambda: tf.fill([tf.shape(dense)[0], 1], ""))
        return self.top_k(dense, k, exclude_history)

    def query_embedding(self, history):
        """The query vector of each history: `scores = query @ item_table^T`."""
        history = tf.ensure_shape(history, [None, None], name="history_must_be_batch_by_length")
        ids, _, num_known, num_unknown = self.indices(history)
        query = self.model.last_output(ids, training=False)
        return {"query": query, "num_known": num_known, "num_unknown": num_unknown}

    def embeddings(self):
        table = self.model.encoder.item_table[ids_lib.item_rows(self.num_items)]
        ids = self.index_to_id.lookup(tf.range(self.num_items, dtype=tf.int64))
        return {"item_ids": ids, "embeddings": tf.convert_to_tensor(table)}


def has_feature(examples, name: str):
    """[batch] bool: whether each serialized `tf.Example` has a feature `name`.

    `tf.io.parse_example` reads a missing feature as an empty one; this reads
    the feature keys themselves.
    """
    _, (features,) = tf.io.decode_proto(examples, "tensorflow.Example", ["features"],
                                        [tf.string])
    _, (entries,) = tf.io.decode_proto(tf.reshape(features, [-1]), "tensorflow.Features",
                                       ["feature"], [tf.string])
    _, (keys,) = tf.io.decode_proto(tf.reshape(entries, [-1]),
                                    "tensorflow.Features.FeatureEntry", ["key"], [tf.string])
    keys = tf.reshape(keys, tf.shape(entries))
    return tf.reduce_any(tf.equal(keys, name), axis=1)


def export_serving_model(model_dir: str, output_base: str | None, version: int | None = None,
                         vocabulary: list | None = None, default_k: int = SERVING_K,
                         target_dir: str | None = None, replace: bool = False) -> str:
    """Writes the serving SavedModel of a fine-tuned model directory.

    Args:
        model_dir: a fine-tuned model directory (`<finetune output>/best`).
        output_base: the serving base directory; the export goes to
            `<output_base>/<version>`.
        version: int | None. Defaults to the current Unix time.
        vocabulary: list of raw item ids, index `i` -> item `i + 1`. Defaults
            to the paper format's identity vocabulary (`"1"`, `"2"`, ...).
        default_k: int. `k` of `serving_default`. Defaults to
            `s3rec_tf.config.SERVING_K`.
        target_dir: str | None. Write the SavedModel exactly here instead of
            `<output_base>/<version>` (a TFX model's `Format-Serving`).
        replace: bool. Replace an existing version directory (else it is
            refused); other versions are kept. Defaults to `False`.

    Beside the SavedModel, `assets.extra/` holds the model's `manifest.json`,
    TF Serving's warm-up requests (`WARMUP_FILE`: requests for
    `serving_default` that the server replays before serving) and a model
    card (`model_card.json` / `.md`: data fingerprint, training
    configuration, metrics of the fine-tuning run when recorded).

    Returns:
        The version directory.
    """
    if output_base and os.path.exists(output_base) and not os.path.isdir(output_base):
        raise ArtifactError(f"{output_base}: is a file, expected the serving base directory")
    if version is not None and version < 0:
        raise ArtifactError(f"version {version}: must be >= 0 (TF Serving reads numeric "
                            f"version directories)")
    model, manifest = artifacts.load_next_item_model(model_dir)
    num_items = model.encoder.num_items
    vocabulary = vocabulary or ids_lib.paper_vocabulary(num_items)
    if len(vocabulary) != num_items:
        raise ArtifactError(f"vocabulary has {len(vocabulary)} ids but the model has "
                            f"{num_items} items")
    if len(set(vocabulary)) != len(vocabulary):
        raise ArtifactError("vocabulary has duplicate ids")
    bad = [v for v in vocabulary if not v or "\n" in v or v != v.strip()]
    if bad:
        raise ArtifactError(f"vocabulary id {bad[0]!r} is empty or has surrounding spaces")
    if default_k < 1:
        raise ValueError(f"`default_k` must be >= 1. Received: default_k={default_k}")
    # a plain (unbucketed) copy: one small request runs the fewest ops this way
    serving_model = NextItemModel.from_config({**model.get_config(), "length_buckets": None})
    serving_model.set_weights(model.get_weights())
    version = int(version if version is not None else time.time())
    target = target_dir or os.path.join(output_base, str(version))
    if not replace and os.path.lexists(target) and not (os.path.isdir(target)
                                                        and not os.listdir(target)):
        raise ArtifactError(f"{target} already exists; choose another --version")

    def fill(out):
        with tempfile.TemporaryDirectory() as scratch:  # the vocabulary's source file
            vocab_file = os.path.join(scratch, VOCABULARY_ASSET)
            with open(vocab_file, "w") as f:
                f.write(ids_lib.vocabulary_text(vocabulary))
            rec = _Recommender(serving_model, vocab_file, num_items, default_k)
            archive = keras.export.ExportArchive()
            archive.track(serving_model)
            archive.track(rec.id_to_index)
            archive.track(rec.index_to_id)
            history_spec = tf.TensorSpec([None, None], tf.string, name="history")
            archive.add_endpoint(
                "serving_default", lambda history: rec.top_k(history, default_k, True),
                input_signature=[history_spec])
            archive.add_endpoint(
                "serve_top_k", lambda history, k, exclude_history: rec.top_k(history, k,
                                                                              exclude_history),
                input_signature=[history_spec, tf.TensorSpec([], tf.int32, name="k"),
                                 tf.TensorSpec([], tf.bool, name="exclude_history")])
            archive.add_endpoint(
                "serve_int_ids", lambda history: rec.from_int_ids(history, default_k, True),
                input_signature=[tf.TensorSpec([None, None], tf.int64, name="history")])
            archive.add_endpoint(
                "serve_examples", lambda examples: rec.from_examples(examples, default_k, True),
                input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
            archive.add_endpoint("item_embeddings", rec.embeddings, input_signature=[])
            archive.add_endpoint("serve_query_embedding", rec.query_embedding,
                                 input_signature=[history_spec])
            archive.add_variable_collection("item_embedding_table",
                                            [serving_model.encoder.item_table])
            archive.write_out(out, verbose=False)
        extra = os.path.join(out, "assets.extra")
        os.makedirs(extra, exist_ok=True)
        write_json_atomic(os.path.join(extra, "manifest.json"),
                                    {**manifest, "serving": {"default_k": default_k,
                                                             "signatures": list(SIGNATURES),
                                                             "num_items": num_items}})
        _write_warmup_requests(os.path.join(extra, WARMUP_FILE), vocabulary,
                               serving_model.encoder.max_length)
        _write_model_card(extra, model_dir, manifest, default_k, num_items)

    # nothing appears at `target` (nor a parent this call made) unless the export completes
    write_atomic_dir(target, fill, replace=replace)
    return target


def _write_warmup_requests(path: str, vocabulary: list, max_length: int) -> None:
    """TF Serving warm-up requests for `serving_default` (a TFRecord of `PredictionLog`s).

    TF Serving replays them when it loads the version, before it serves, so
    the first real request does not pay for the graph's first run. Three
    requests: one short history, one of the model's full length, and a batch
    of 8 full-length histories; ids are the first ones of the vocabulary.
    """
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
    full = [vocabulary[i % len(vocabulary)] for i in range(max_length)]
    batches = ([vocabulary[:1]], [full], [full[i:] + full[:i] for i in range(8)])
    with tf.io.TFRecordWriter(path) as writer:
        for batch in batches:
            request = predict_pb2.PredictRequest()
            request.model_spec.signature_name = "serving_default"
            request.inputs["history"].CopyFrom(tf.make_tensor_proto(batch, dtype=tf.string))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def _run_metrics(model_dir: str, manifest: dict):
    """`(metrics, path)` of the model's fine-tuning run, or `({}, None)`.

    The run's `metrics.json` (in `model_dir` or its parent, the `finetune
    --output` directory) when its best epoch is the model's, else the
    `evaluation.json` that `s3rec-tf evaluate` writes for this model.
    """
    model_dir = os.path.abspath(model_dir)
    candidates = [(os.path.join(d, "metrics.json"),
                   lambda r: r.get("best_epoch") == manifest.get("best_epoch"))
                  for d in (model_dir, os.path.dirname(model_dir))]
    candidates.append((os.path.join(model_dir, "evaluation.json"),
                       lambda r: r.get("model") == model_dir))
    for path, belongs in candidates:
        try:
            with open(path) as f:
                record = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and isinstance(record.get("metrics"), dict) and \
                belongs(record):
            return record["metrics"], path
    return {}, None


def _write_model_card(directory: str, model_dir: str, manifest: dict, default_k: int,
                      num_items: int) -> dict:
    """Writes `model_card.json` (data, training configuration, metrics) and `model_card.md`."""
    metrics, source = _run_metrics(model_dir, manifest)
    encoder = artifacts.encoder_config(manifest)
    hyper = manifest.get("hyperparameters", {})
    card = {
        "model": "S3-Rec sequence encoder fine-tuned for next-item prediction",
        "library_version": manifest.get("library_version"),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source_model_dir": os.path.abspath(model_dir),
        "weights_sha256": manifest.get("weights_sha256"),
        "data": dict(manifest.get("vocabulary") or {}),
        # the encoder's `EncoderConfig` (the manifest's record) and its id spaces
        "architecture": {**to_dict(artifacts.encoder_config_of(manifest)),
                         **{k: encoder.get(k) for k in ("num_items", "num_attributes")}},
        "training": {"loss": artifacts.task_config(manifest).get("loss"),
                     "pretrained": hyper.get("pretrained"),
                     "best_epoch": manifest.get("best_epoch"), "hyperparameters": hyper},
        "validation_at_best_epoch": manifest.get("valid"),
        "metrics": metrics,
        "metrics_source": source,
        "serving": {"signatures": list(SIGNATURES), "default_k": default_k,
                    "num_items": num_items},
    }
    write_json_atomic(os.path.join(directory, MODEL_CARD + ".json"), card)
    data, arch, train = card["data"], card["architecture"], card["training"]

    def values(d):
        return ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                         for k, v in d.items())

    lines = [
        f"# Model card: s3rec-tf next-item model ({data.get('dataset') or 'unnamed data'})",
        "",
        f"- Model: {card['model']}; loss `{train['loss']}`; hidden {arch['hidden_size']}, "
        f"{arch['num_layers']} layers, {arch['num_heads']} heads, up to "
        f"{arch['max_length']} history items.",
        f"- Pretraining: {train['pretrained'] or 'none (SASRec)'}; best fine-tuning epoch "
        f"{train['best_epoch']}.",
        f"- Data: {data.get('dataset')}, {data.get('num_items')} items, "
        f"{data.get('num_attributes')} attributes, fingerprint `{data.get('fingerprint')}`.",
        f"- Serving: `serving_default` returns the top {default_k} of {num_items} items for "
        f"a history of raw item ids (unknown ids are dropped and counted); signatures "
        f"{', '.join(SIGNATURES)}.",
        f"- Exported by s3rec-tf {card['library_version']} from `{card['source_model_dir']}` "
        f"at {card['exported_at']}; weights SHA-256 `{card['weights_sha256']}`.",
        "", "## Metrics", "",
    ]
    if metrics:
        lines += [f"From `{source}`:", ""]
        lines += [f"- {split}: {values(v)}" for split, v in metrics.items()
                  if isinstance(v, dict)]
    else:
        lines.append("None recorded (no metrics.json or evaluation.json of this model).")
    if card["validation_at_best_epoch"]:
        lines += ["", f"Validation at the best epoch: {values(card['validation_at_best_epoch'])}."]
    lines += ["", "## Training configuration", ""]
    lines += [f"- {k}: {v}" for k, v in sorted(hyper.items())]
    with open(os.path.join(directory, MODEL_CARD + ".md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return card
