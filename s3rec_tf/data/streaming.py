"""Streaming input: training and evaluation read the prepared TFRecords.

The in-memory path (`s3rec_tf.data.inputs` over `read_prepared`) holds every
user. Here the prepared dataset (`s3rec-tf prepare`, the pipeline's
`PrepareSequences`) is read as a `tf.data` stream: resident memory is the
model, the catalogue (attribute table) and the shuffle buffers, not the
users. Pretraining samples and fine-tuning negatives are still generated
in-graph per batch by the same functions as the in-memory path
(`make_pretrain_batch`, `make_finetune_batch`), keyed by `(seed, epoch, batch)`.

Shuffling is a `tf.data` shuffle buffer (`shuffle_buffer` sequences, then
`shuffle_buffer` pretraining samples), seeded per epoch, so a run is
reproducible from its seed and a resumed run sees the batches an
uninterrupted run would. It is not the in-memory path's permutation of all
samples: the batches differ, the rules do not.

Negative segments of Segment Prediction (`segment_negatives`):

- `all`: the paper's rule: a segment cut at a uniform position of the
  concatenation of all sequences. It needs that concatenation (4 bytes per
  interaction) in memory; one pass over the records builds it.
- `batch`: the streaming equivalent: the same cut, from the concatenation
  of the whole sequences of the distinct users in the sample's batch (its
  own included, as in the paper's rule). Memory is bounded by the batch.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import os
import types

import numpy as np
import tensorflow as tf

from s3rec_tf import ids
from s3rec_tf.config import HISTORY_RULES, SEGMENT_NEGATIVES
from s3rec_tf.data import inputs as inputs_lib
from s3rec_tf.data import prepared as prepared_lib
from s3rec_tf.data.reader import SequenceData
from s3rec_tf.errors import DataError

class StreamedData(SequenceData):
    """A prepared dataset's id spaces and counts, without its users.

    Has what training needs of a `SequenceData` (name, item and attribute
    counts, attribute table, fingerprint, user count) and the prepared
    directory the users are streamed from.
    """

    def __init__(self, prepared_dir: str, name: str | None = None):
        stats = prepared_lib.read_stats(prepared_dir)
        items = ids.read_vocabulary(os.path.join(prepared_dir, prepared_lib.ITEM_VOCABULARY))
        attributes = ids.read_vocabulary(
            os.path.join(prepared_dir, prepared_lib.ATTRIBUTE_VOCABULARY))
        item_attributes = {}
        spec = {"item": tf.io.FixedLenFeature([], tf.int64),
                "attributes": tf.io.VarLenFeature(tf.int64)}
        for ex in prepared_lib._records(prepared_dir, prepared_lib.ATTRIBUTES_SPLIT).map(
                lambda r: tf.io.parse_single_example(r, spec)):
            item_attributes[int(ex["item"])] = np.sort(
                ex["attributes"].values.numpy()).astype(np.int32)
        # the negatives stay in the prepared files: a run has none of its own to save
        super().__init__(name or stats["config"]["name"], None, (), len(items), len(attributes),
                         item_attributes, None, prepared_lib.negatives_label(stats),
                         users_too_short=int(stats.get("users_too_short", 0)))
        self.prepared_dir = prepared_dir
        self.item_vocabulary, self.attribute_vocabulary = items, attributes
        self._num_users = int(stats["users"])

    @property
    def num_users(self) -> int:
        return self._num_users

    def num_interactions(self) -> int:
        return int(sequence_records(self.prepared_dir).map(
            lambda r: tf.size(r["items"], tf.int64)).reduce(tf.constant(0, tf.int64),
                                                            lambda a, b: a + b))


def sequence_records(prepared_dir: str) -> tf.data.Dataset:
    """The users of a prepared directory, in file order: `{user_id, items, negatives}`."""
    if not glob.glob(os.path.join(prepared_lib.split_dir(prepared_dir,
                                                         prepared_lib.SEQUENCES_SPLIT), "*")):
        raise DataError(prepared_dir, "no sequence files (expected Split-sequences/*)")
    spec = {"user_id": tf.io.FixedLenFeature([], tf.string),
            "items": tf.io.VarLenFeature(tf.int64),
            "negatives": tf.io.VarLenFeature(tf.int64)}

    def parse(record):
        ex = tf.io.parse_single_example(record, spec)
        return {"user_id": ex["user_id"], "items": tf.cast(ex["items"].values, tf.int32),
                "negatives": tf.cast(ex["negatives"].values, tf.int32)}

    return prepared_lib._records(prepared_dir, prepared_lib.SEQUENCES_SPLIT).map(
        parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def count_samples(prepared_dir: str, max_length: int = 50) -> int:
    """Pretraining samples per epoch (one per prefix of each training part), in one pass."""
    return int(sequence_records(prepared_dir).map(
        lambda r: tf.cast(tf.minimum(tf.size(r["items"]) - 2, max_length), tf.int64)).reduce(
        tf.constant(0, tf.int64), lambda a, b: a + b))


def long_sequence(prepared_dir: str) -> np.ndarray:
    """The concatenation of all sequences (the paper's negative-segment source), in one pass."""
    parts = [r.numpy() for r in sequence_records(prepared_dir).map(lambda r: r["items"])]
    return np.concatenate(parts).astype(np.int32) if parts else np.zeros(0, np.int32)


def _shuffle_seed(seed: int, epoch: int, stream: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])


def _epochs(one_epoch, first_epoch: int, epochs: int) -> tf.data.Dataset:
    parts = [one_epoch(e) for e in range(first_epoch, epochs)]
    if not parts:
        return one_epoch(first_epoch).take(0)
    return functools.reduce(lambda a, b: a.concatenate(b), parts).prefetch(tf.data.AUTOTUNE)


def _check_common(batch_size: int, shuffle_buffer: int):
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1. Received: batch_size={batch_size}")
    if shuffle_buffer < 0:
        raise ValueError(f"`shuffle_buffer` must be >= 0. Received: "
                         f"shuffle_buffer={shuffle_buffer}")


def pretrain_stream(prepared_dir: str, num_items: int, max_length: int = 50,
                    batch_size: int = 100, mask_p: float = 0.2, seed: int = 0,
                    first_epoch: int = 0, epochs: int = 1, shuffle_buffer: int = 10000,
                    segment_negatives: str = "batch", trim: bool = True,
                    all_sequences: np.ndarray | None = None) -> tf.data.Dataset:
    """Pretraining batches streamed from a prepared directory.

    The samples are those of `inputs.pretrain_arrays` (every prefix of each
    user's training part `items[-(max_length + 2):-2]`), shuffled through a
    buffer of `shuffle_buffer` users and one of `shuffle_buffer` samples
    (0: file order), batched, and turned into MIP/SP inputs in-graph by
    `inputs.make_pretrain_batch`. An epoch has
    `ceil(count_samples(...) / batch_size)` batches.

    Args:
        segment_negatives: `all` (the paper's rule; `all_sequences`, or one
            pass of `long_sequence`) or `batch` (see the module docstring).
        all_sequences: the concatenation of all sequences, for `all`.
    """
    _check_common(batch_size, shuffle_buffer)
    if segment_negatives not in SEGMENT_NEGATIVES:
        raise ValueError(f"`segment_negatives` must be one of {SEGMENT_NEGATIVES}. "
                         f"Received: segment_negatives={segment_negatives!r}")
    if not 0.0 <= mask_p < 1.0:
        raise ValueError(f"`mask_p` must be in [0, 1). Received: mask_p={mask_p}")
    every = None
    if segment_negatives == "all":
        every = tf.constant(long_sequence(prepared_dir) if all_sequences is None
                            else np.asarray(all_sequences, np.int32))

    def user_samples(ordinal, record):
        items = record["items"]
        part = items[-(max_length + 2):-2]
        n = tf.shape(part)[0]
        views = tf.data.Dataset.from_tensors((part, items, ordinal)).repeat(tf.cast(n, tf.int64))
        lengths = tf.data.Dataset.range(1, tf.cast(n, tf.int64) + 1)
        return tf.data.Dataset.zip((views, lengths)).map(
            lambda view, length: (view[0], tf.cast(length, tf.int32), view[1], view[2]))

    def one_epoch(epoch: int):
        users = sequence_records(prepared_dir).enumerate()
        if shuffle_buffer:
            users = users.shuffle(shuffle_buffer, seed=_shuffle_seed(seed, epoch, 1),
                                  reshuffle_each_iteration=False)
        samples = users.flat_map(user_samples)
        if shuffle_buffer:
            samples = samples.shuffle(shuffle_buffer, seed=_shuffle_seed(seed, epoch, 2),
                                      reshuffle_each_iteration=False)
        batches = samples.padded_batch(batch_size, padded_shapes=([max_length], [], [None], []))
        batch_seed = inputs_lib._epoch_seed(seed, epoch, 2)

        def build(index, batch):
            parts, lengths, full, user = batch
            rows = tf.shape(parts)[0]
            flat = tf.reshape(parts, [-1])
            starts = tf.range(rows) * max_length
            if every is not None:
                source = every
            else:  # the whole sequences of the batch's distinct users, concatenated
                _, which = tf.unique(user)
                first = tf.math.unsorted_segment_min(tf.range(rows), which,
                                                     tf.reduce_max(which) + 1)
                distinct = tf.gather(full, first)
                source = tf.boolean_mask(distinct, distinct > 0)
            s = tf.random.experimental.stateless_fold_in(batch_seed, index)
            return inputs_lib.make_pretrain_batch(starts, lengths, s, flat, source, num_items,
                                                  max_length, mask_p, trim)

        return batches.enumerate().map(build, num_parallel_calls=tf.data.AUTOTUNE,
                                       deterministic=True)

    return _epochs(one_epoch, first_epoch, epochs)


def finetune_stream(prepared_dir: str, num_items: int, max_length: int = 50,
                    batch_size: int = 256, seed: int = 0, first_epoch: int = 0,
                    epochs: int = 1, negatives: bool = True, shuffle_buffer: int = 10000,
                    trim: bool = True) -> tf.data.Dataset:
    """Next-item training batches streamed from a prepared directory.

    The rows of `inputs.finetune_arrays` (input `items[:-3]`, targets
    `items[1:-2]`, left-padded to `max_length`; for `bce` one negative per
    position outside the user's sequence, by `inputs.make_finetune_batch`),
    users shuffled through a buffer of `shuffle_buffer` (0: file order).
    An epoch has `ceil(users / batch_size)` batches.
    """
    _check_common(batch_size, shuffle_buffer)
    sentinel = num_items + 10

    def row(record):
        items = record["items"]

        def left_pad(seq):
            seq = seq[-max_length:]
            return tf.pad(seq, [[max_length - tf.shape(seq)[0], 0]])

        return left_pad(items[:-3]), left_pad(items[1:-2]), tf.sort(items)

    def one_epoch(epoch: int):
        users = sequence_records(prepared_dir)
        if shuffle_buffer:
            users = users.shuffle(shuffle_buffer, seed=_shuffle_seed(seed, epoch, 3),
                                  reshuffle_each_iteration=False)
        batches = users.map(row).padded_batch(
            batch_size, padded_shapes=([max_length], [max_length], [None]),
            padding_values=(0, 0, sentinel))
        batch_seed = inputs_lib._epoch_seed(seed, epoch, 4)

        def build(index, batch):
            x, y, history = batch
            return inputs_lib.make_finetune_batch(
                x, y, history, tf.random.experimental.stateless_fold_in(batch_seed, index),
                num_items, negatives, trim)

        return batches.enumerate().map(build, num_parallel_calls=tf.data.AUTOTUNE,
                                       deterministic=True)

    return _epochs(one_epoch, first_epoch, epochs)


def eval_chunks(prepared_dir: str, split: str, max_length: int = 50, chunk: int = 1024,
                limit: int | None = None):
    """`inputs.EvalArrays` of `chunk` users at a time, in file order (the first `limit`)."""
    records = sequence_records(prepared_dir)
    if limit is not None:
        records = records.take(limit)
    for batch in records.map(lambda r: (r["items"], r["negatives"])).ragged_batch(chunk):
        items, negatives = batch
        rows = types.SimpleNamespace(
            sequences=[np.asarray(s) for s in items.numpy()],
            sample_negatives=np.stack([np.asarray(n) for n in negatives.numpy()]))
        yield inputs_lib.eval_arrays(rows, split, max_length)


def stream_ranks(evaluator, prepared_dir: str, split: str, protocol: str,
                 max_length: int = 50, limit: int | None = None) -> np.ndarray:
    """0-based ranks of each streamed user's answer (`RankingEvaluator.ranks`)."""
    out = [evaluator.ranks(arrays, protocol)
           for arrays in eval_chunks(prepared_dir, split, max_length,
                                     chunk=evaluator.batch_size, limit=limit)]
    return np.concatenate(out) if out else np.zeros(0, np.int32)


def prepared_dir_of(data) -> str:
    """The prepared directory a `StreamedData` streams from; anything else is refused."""
    path = getattr(data, "prepared_dir", None)
    if path is None:
        raise DataError(getattr(data, "name", "data"),
                        "streaming input (shuffle_buffer > 0) reads a prepared directory "
                        "(`s3rec-tf prepare` output) as --data")
    return path


@dataclasses.dataclass
class StreamSplit:
    """One evaluation split of a prepared directory, read as a stream."""

    prepared_dir: str
    split: str
    max_length: int = 50
    limit: int | None = None


class StreamEvaluator:
    """`RankingEvaluator` over a `StreamSplit`: same metrics, users read in chunks."""

    def __init__(self, model, history_rule: str = HISTORY_RULES[0]):
        from s3rec_tf.evaluation import RankingEvaluator
        self.evaluator = RankingEvaluator(model, history_rule=history_rule)

    def ranks(self, source: StreamSplit, protocol: str) -> np.ndarray:
        return stream_ranks(self.evaluator, source.prepared_dir, source.split, protocol,
                            source.max_length, source.limit)

    def evaluate(self, source: StreamSplit, protocol: str) -> dict:
        from s3rec_tf import metrics as metrics_lib
        ranks = self.ranks(source, protocol)
        return (metrics_lib.full_ranking_metrics(ranks) if protocol == "full"
                else metrics_lib.sampled_metrics(ranks))


def evaluate_stream(model, prepared_dir: str, protocols=("full", "sampled"),
                    splits=("valid", "test"), max_length: int | None = None,
                    limit: int | None = None, history_rule: str = HISTORY_RULES[0]) -> dict:
    """`training.evaluate_model`'s metrics, the users streamed from `prepared_dir`."""
    max_length = max_length or model.encoder.max_length
    evaluator = StreamEvaluator(model, history_rule)
    return {f"{split}/{protocol}": evaluator.evaluate(
                StreamSplit(prepared_dir, split, max_length, limit), protocol)
            for split in splits for protocol in protocols}
