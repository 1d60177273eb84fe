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
import types

import numpy as np
import tensorflow as tf

from s3rec_tf.config import (HISTORY_RULES, SEGMENT_NEGATIVES, EncoderConfig, FinetuneConfig,
                             PretrainConfig)
from s3rec_tf.data import inputs as inputs_lib
from s3rec_tf.data.prepared import StreamedData, sequence_records  # noqa: F401
from s3rec_tf.data.ranking_inputs import PROTOCOLS

#: The defaults of the arguments below are the configs' (`s3rec_tf.config`).
_ENCODER, _PRETRAIN, _FINETUNE = EncoderConfig(), PretrainConfig(), FinetuneConfig()

def count_samples(prepared_dir: str, max_length: int = _ENCODER.max_length,
                  prefix_sampling: str = _PRETRAIN.prefix_sampling) -> int:
    """Pretraining samples per epoch, in one pass: one per prefix of each training
    part (`every`), or one per user with a non-empty part (`one-per-user`)."""
    inputs_lib._check_prefix_sampling(prefix_sampling)

    def samples(r):
        part = tf.maximum(tf.minimum(tf.size(r["items"]) - 2, max_length), 0)
        if prefix_sampling != "every":
            part = tf.minimum(part, 1)
        return tf.cast(part, tf.int64)

    return int(sequence_records(prepared_dir).map(samples).reduce(
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


def pretrain_stream(prepared_dir: str, num_items: int, max_length: int = _ENCODER.max_length,
                    batch_size: int = _PRETRAIN.batch_size, mask_p: float = _PRETRAIN.mask_p,
                    seed: int = 0, first_epoch: int = 0, epochs: int = 1,
                    shuffle_buffer: int = 10000, segment_negatives: str = "batch",
                    trim: bool = True,
                    all_sequences: np.ndarray | None = None,
                    prefix_sampling: str = _PRETRAIN.prefix_sampling,
                    num_users: int | None = None) -> tf.data.Dataset:
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
        prefix_sampling: `every` prefix, or `one-per-user` (the length of
            `inputs.drawn_prefix_length`, the in-memory path's draw).
        num_users: the users in the directory, for `one-per-user`.
    """
    _check_common(batch_size, shuffle_buffer)
    inputs_lib._check_prefix_sampling(prefix_sampling)
    if prefix_sampling != "every" and num_users is None:
        raise ValueError("`prefix_sampling='one-per-user'` needs `num_users`")
    if segment_negatives not in SEGMENT_NEGATIVES:
        raise ValueError(f"`segment_negatives` must be one of {SEGMENT_NEGATIVES}. "
                         f"Received: segment_negatives={segment_negatives!r}")
    if not 0.0 <= mask_p < 1.0:
        raise ValueError(f"`mask_p` must be in [0, 1). Received: mask_p={mask_p}")
    every = None
    if segment_negatives == "all":
        every = tf.constant(long_sequence(prepared_dir) if all_sequences is None
                            else np.asarray(all_sequences, np.int32))

    def user_samples(ordinal, record, uniforms):
        items = record["items"]
        part = items[-(max_length + 2):-2]
        n = tf.shape(part)[0]
        if uniforms is not None:  # one-per-user: one sample, its prefix drawn
            length = inputs_lib.drawn_prefix_length(uniforms[ordinal], n)
            return tf.data.Dataset.from_tensors(
                (part, length, items, ordinal)).repeat(tf.cast(tf.minimum(n, 1), tf.int64))
        views = tf.data.Dataset.from_tensors((part, items, ordinal)).repeat(tf.cast(n, tf.int64))
        lengths = tf.data.Dataset.range(1, tf.cast(n, tf.int64) + 1)
        return tf.data.Dataset.zip((views, lengths)).map(
            lambda view, length: (view[0], tf.cast(length, tf.int32), view[1], view[2]))

    def one_epoch(epoch: int):
        uniforms = (None if prefix_sampling == "every"
                    else inputs_lib.prefix_uniforms(num_users, seed, epoch))
        users = sequence_records(prepared_dir).enumerate()
        if shuffle_buffer:
            users = users.shuffle(shuffle_buffer, seed=_shuffle_seed(seed, epoch, 1),
                                  reshuffle_each_iteration=False)
        samples = users.flat_map(lambda ordinal, record: user_samples(ordinal, record, uniforms))
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


def finetune_stream(prepared_dir: str, num_items: int, max_length: int = _ENCODER.max_length,
                    batch_size: int = _FINETUNE.batch_size, seed: int = 0, first_epoch: int = 0,
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


def eval_chunks(prepared_dir: str, split: str, max_length: int = _ENCODER.max_length,
                chunk: int = 1024, limit: int | None = None):
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


def ranking_stream(prepared_dir: str, split: str, protocol: str = "full",
                   max_length: int = _ENCODER.max_length,
                   batch_size: int = 256) -> tf.data.Dataset:
    """`ranking_inputs.ranking_dataset` of a split, the users streamed in file order.

    The same batches as the in-memory dataset of `eval_chunks`' arrays, except
    that `history` is left-padded with 0 to its batch's widest row rather
    than the split's (padding is never ranked). The cardinality is unknown.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"`protocol` must be one of {PROTOCOLS}. Received: protocol={protocol!r}")
    if split not in ("valid", "test"):
        raise ValueError(f"`split` must be 'valid' or 'test'. Received: split={split!r}")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1. Received: batch_size={batch_size}")
    cut = 2 if split == "valid" else 1

    def features(record):
        items = record["items"]
        history = items[:-cut]
        x = history[-max_length:]
        out = {"input_ids": tf.pad(x, [[max_length - tf.shape(x)[0], 0]])}
        if protocol == "full":  # history reversed: padded on the right, reversed back below
            out.update(answers=items[-cut], history=tf.reverse(history, [0]))
        else:
            out["candidates"] = tf.concat([items[-cut:][:1], record["negatives"]], 0)
        return out

    def left_padded(batch):
        return {**batch, "history": tf.reverse(batch["history"], [1])}

    batches = sequence_records(prepared_dir).map(features).padded_batch(batch_size)
    if protocol == "full":
        batches = batches.map(left_padded)
    return batches.prefetch(tf.data.AUTOTUNE)


def stream_ranks(evaluator, prepared_dir: str, split: str, protocol: str,
                 max_length: int = _ENCODER.max_length, limit: int | None = None) -> np.ndarray:
    """0-based ranks of each streamed user's answer (`RankingEvaluator.ranks`)."""
    return evaluator.ranks(eval_chunks(prepared_dir, split, max_length,
                                       chunk=evaluator.batch_size, limit=limit), protocol)


@dataclasses.dataclass
class StreamSplit:
    """One evaluation split of a prepared directory, read as a stream."""

    prepared_dir: str
    split: str
    max_length: int = _ENCODER.max_length
    limit: int | None = None


class StreamEvaluator:
    """`RankingEvaluator` over a `StreamSplit`: its chunks ranked and combined."""

    def __init__(self, model, history_rule: str = HISTORY_RULES[0]):
        from s3rec_tf.evaluation import RankingEvaluator
        self.evaluator = RankingEvaluator(model, history_rule=history_rule)

    def _chunks(self, source: StreamSplit):
        return eval_chunks(source.prepared_dir, source.split, source.max_length,
                           chunk=self.evaluator.batch_size, limit=source.limit)

    def ranks(self, source: StreamSplit, protocol: str) -> np.ndarray:
        return self.evaluator.ranks(self._chunks(source), protocol)

    def evaluate(self, source: StreamSplit, protocol: str) -> dict:
        return self.evaluator.evaluate(self._chunks(source), protocol)


def evaluate_stream(model, prepared_dir: str, protocols=("full", "sampled"),
                    splits=("valid", "test"), max_length: int | None = None,
                    limit: int | None = None, history_rule: str = HISTORY_RULES[0]) -> dict:
    """`training.evaluate_model`'s metrics, the users streamed from `prepared_dir`."""
    max_length = max_length or model.encoder.max_length
    evaluator = StreamEvaluator(model, history_rule)
    return {f"{split}/{protocol}": evaluator.evaluate(
                StreamSplit(prepared_dir, split, max_length, limit), protocol)
            for split in splits for protocol in protocols}
