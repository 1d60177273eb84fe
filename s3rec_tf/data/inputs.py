"""`tf.data` input pipelines built from arrays, with in-graph sampling.

All randomness (shuffling, masks, segments, negatives) comes from stateless
TensorFlow ops keyed by `(seed, epoch, batch)`, so every epoch sees fresh
samples, a run is reproducible from its seed, and a run resumed at epoch `e`
sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from s3rec_tf import ids
from s3rec_tf.config import (PREFIX_SAMPLING, PROPOSALS, TRAINING_ROWS, EncoderConfig,
                             FinetuneConfig, PretrainConfig)
from s3rec_tf.data.reader import SequenceData, pad_left

#: The defaults of the arguments below are the configs' (`s3rec_tf.config`).
_ENCODER, _PRETRAIN, _FINETUNE = EncoderConfig(), PretrainConfig(), FinetuneConfig()

PRETRAIN_KEYS = ("masked_item_sequence", "pos_items", "neg_items",
                 "masked_segment_sequence", "pos_segment", "neg_segment")
_MAX_REJECTION_ROUNDS = 64


@dataclasses.dataclass
class PretrainArrays:
    """Pretraining samples as (start, length) views into one flat item array.

    Each sample is a prefix of a user's training part
    `items[-(max_length + 2):-2]`, as in the original `PretrainDataset`.
    """

    flat_items: np.ndarray     # all training parts concatenated
    starts: np.ndarray         # [num_samples] start of the sample's user part
    lengths: np.ndarray        # [num_samples] prefix length (1..max_length)
    long_sequence: np.ndarray  # all full sequences concatenated (SP negatives)
    num_items: int
    max_length: int
    user_starts: np.ndarray    # [num_users] start of each user's part (one-per-user)
    user_lengths: np.ndarray   # [num_users] length of each user's part (0: no sample)

    @property
    def num_samples(self) -> int:
        return len(self.lengths)

    def samples_per_epoch(self, prefix_sampling: str = PREFIX_SAMPLING[0]) -> int:
        """Samples of an epoch under `prefix_sampling` (`config.PREFIX_SAMPLING`)."""
        _check_prefix_sampling(prefix_sampling)
        if prefix_sampling == "every":
            return self.num_samples
        return int(np.count_nonzero(self.user_lengths))


def pretrain_arrays(data: SequenceData, max_length: int = _ENCODER.max_length) -> PretrainArrays:
    """Every prefix of each user's training part (vectorised, no per-sample loop)."""
    parts = [s[-(max_length + 2):-2] for s in data.sequences]
    part_lengths = np.asarray([len(p) for p in parts], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(part_lengths)[:-1]])
    starts = np.repeat(offsets, part_lengths)
    # prefix lengths 1..len(part) for each user
    within = np.arange(part_lengths.sum()) - np.repeat(offsets, part_lengths)
    lengths = within + 1
    flat = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return PretrainArrays(flat.astype(np.int32), starts.astype(np.int32),
                          lengths.astype(np.int32),
                          np.concatenate(data.sequences).astype(np.int32),
                          data.num_items, max_length, offsets.astype(np.int32),
                          part_lengths.astype(np.int32))


def _check_prefix_sampling(prefix_sampling: str):
    if prefix_sampling not in PREFIX_SAMPLING:
        raise ValueError(f"`prefix_sampling` must be one of {PREFIX_SAMPLING}. "
                         f"Received: prefix_sampling={prefix_sampling!r}")


def prefix_uniforms(num_users: int, seed: int, epoch):
    """The uniforms in [0, 1) of `one-per-user` sampling in `epoch`, one per user."""
    return tf.random.stateless_uniform([num_users], _epoch_seed(seed, epoch, 3))


def drawn_prefix_length(u, part_length):
    """`one-per-user` sampling: a prefix of length `1 + floor(u * part_length)`.

    `u` comes from `prefix_uniforms` (by the user's position in the data), so
    a resumed run and the streamed path draw the same lengths; 0 for an
    empty part.
    """
    part_length = tf.cast(part_length, tf.int32)
    drawn = 1 + tf.cast(tf.floor(u * tf.cast(part_length, tf.float32)), tf.int32)
    return tf.where(part_length > 0, tf.minimum(drawn, part_length), 0)


def _seed_pair(seed: int):
    return tf.constant([seed & 0x7FFFFFFF, (seed >> 31) & 0x7FFFFFFF], tf.int64)


def _uniform_items(shape, seed, num_items):
    return tf.random.stateless_uniform(shape, seed, minval=1, maxval=num_items + 1,
                                       dtype=tf.int32)


def sample_negatives(forbidden_fn, shape, seed, num_items: int):
    """Uniform items in `1..num_items` rejected while `forbidden_fn(items)` is true.

    Rejection runs in-graph until no position is forbidden (bounded by
    64 rounds, after which a forbidden draw can remain only if a row's
    forbidden set covers nearly the whole catalogue).
    """
    candidate = _uniform_items(shape, seed, num_items)

    def cond(i, neg):
        return tf.logical_and(i < _MAX_REJECTION_ROUNDS, tf.reduce_any(forbidden_fn(neg)))

    def body(i, neg):
        fresh = _uniform_items(shape, tf.random.experimental.stateless_fold_in(seed, i + 1),
                               num_items)
        return i + 1, tf.where(forbidden_fn(neg), fresh, neg)

    _, negatives = tf.while_loop(cond, body, (tf.constant(0), candidate))
    return negatives


def make_pretrain_batch(starts, lengths, seed, flat_items, long_sequence, num_items: int,
                        max_length: int, mask_p: float, trim: bool = True):
    """Builds one pretraining batch from prefix views (TensorFlow ops only).

    Follows the original `PretrainDataset.__getitem__`: each item but the last
    is masked with probability `mask_p`, the last is always masked; a masked
    position gets a negative item not in the prefix; for prefixes of length
    >= 2 a segment of length `U{1..len//2}` at a uniform start is replaced by
    the mask id, and a negative segment of the same length is cut from the
    concatenation of all sequences. Sequences are left-padded with 0.

    With `trim`, the batch has `T = max(lengths)` columns instead of
    `max_length`: only left padding is cut and position ids are kept. Random
    draws are made at the full width either way, so a trimmed batch equals
    the padded batch of the same seed without its empty columns.
    """
    mask_id = ids.mask_id(num_items)
    lengths = tf.cast(lengths, tf.int32)
    starts = tf.cast(starts, tf.int32)
    batch = tf.shape(lengths)[0]
    width = tf.constant(max_length, tf.int32)
    column = tf.range(width)[None, :]
    position = column - (width - lengths[:, None])          # index inside the prefix
    valid = position >= 0
    items = tf.where(valid, tf.gather(flat_items, starts[:, None] + tf.maximum(position, 0)), 0)
    seeds = tf.random.experimental.stateless_split(seed, 6)
    shape = tf.shape(items)

    # Masked Item Prediction
    is_last = tf.equal(position, lengths[:, None] - 1)
    masked = tf.logical_and(valid, tf.logical_or(
        tf.random.stateless_uniform(shape, seeds[0]) < mask_p, is_last))

    def in_prefix(candidates):
        return tf.reduce_any(tf.equal(candidates[:, :, None], items[:, None, :]), axis=-1)

    negatives = sample_negatives(in_prefix, shape, seeds[1], num_items)
    masked_item_sequence = tf.where(masked, mask_id, items)
    neg_items = tf.where(masked, negatives, items)

    # Segment Prediction
    half = lengths // 2
    has_segment = lengths >= 2
    u = tf.random.stateless_uniform(tf.stack([3, batch]), seeds[2])
    seg_len = 1 + tf.cast(tf.floor(u[0] * tf.cast(half, tf.float32)), tf.int32)
    seg_len = tf.minimum(tf.maximum(seg_len, 1), tf.maximum(half, 1))
    seg_start = tf.cast(tf.floor(u[1] * tf.cast(lengths - seg_len + 1, tf.float32)), tf.int32)
    seg_start = tf.minimum(seg_start, lengths - seg_len)
    long_len = tf.shape(long_sequence)[0]
    neg_start = tf.cast(tf.floor(u[2] * tf.cast(long_len - seg_len + 1, tf.float32)), tf.int32)
    neg_start = tf.minimum(neg_start, long_len - seg_len)
    offset = position - seg_start[:, None]
    in_segment = valid & has_segment[:, None] & (offset >= 0) & (offset < seg_len[:, None])
    neg_source = tf.gather(long_sequence,
                           tf.clip_by_value(neg_start[:, None] + offset, 0, long_len - 1))
    outside = tf.where(valid, mask_id, 0)
    segment_rows = has_segment[:, None]
    masked_segment_sequence = tf.where(in_segment, mask_id, items)
    pos_segment = tf.where(segment_rows, tf.where(in_segment, items, outside), items)
    neg_segment = tf.where(segment_rows, tf.where(in_segment, neg_source, outside), items)
    out = {"masked_item_sequence": masked_item_sequence, "pos_items": items,
           "neg_items": neg_items, "masked_segment_sequence": masked_segment_sequence,
           "pos_segment": pos_segment, "neg_segment": neg_segment}
    if trim:
        kept = tf.reduce_max(lengths)
        out = {k: v[:, max_length - kept:] for k, v in out.items()}
    return out


def _epoch_seed(seed: int, epoch, stream: int):
    base = tf.random.experimental.stateless_fold_in(_seed_pair(seed), stream)
    return tf.random.experimental.stateless_fold_in(base, tf.cast(epoch, tf.int64))


def pretrain_dataset(arrays: PretrainArrays, batch_size: int = _PRETRAIN.batch_size,
                     mask_p: float = _PRETRAIN.mask_p, seed: int = 0, first_epoch: int = 0,
                     epochs: int = 1, shuffle: bool = True,
                     trim: bool = True,
                     prefix_sampling: str = _PRETRAIN.prefix_sampling) -> tf.data.Dataset:
    """Batches of pretraining samples for epochs `first_epoch..epochs-1`.

    Args:
        arrays: from `pretrain_arrays`.
        batch_size: int. Defaults to the paper's (`PretrainConfig`).
        mask_p: float. Masking probability. Defaults to `PretrainConfig`'s.
        seed: int. Seed of every random choice.
        first_epoch: int. First epoch to produce (to resume a run).
        epochs: int. One past the last epoch.
        shuffle: bool. Shuffle samples each epoch. Defaults to `True`.
        trim: bool. Cut each batch's left padding (exact). Defaults to `True`.
        prefix_sampling: str. `every` prefix of each user's part (the paper's)
            or `one-per-user` (`drawn_prefix_length`). Defaults to
            `PretrainConfig`'s.

    Returns:
        A `tf.data.Dataset` of dicts (see `PRETRAIN_KEYS`) with
        `ceil(arrays.samples_per_epoch(prefix_sampling) / batch_size)` batches
        per epoch, its cardinality known. Train `E` epochs with Keras as
        `model.fit(pretrain_dataset(..., epochs=E), epochs=E)`: each epoch
        then has its own shuffle and masks.
    """
    if not 0.0 <= mask_p < 1.0:
        raise ValueError(f"`mask_p` must be in [0, 1). Received: mask_p={mask_p}")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1. Received: batch_size={batch_size}")
    n = arrays.samples_per_epoch(prefix_sampling)
    flat = tf.constant(arrays.flat_items)
    long_sequence = tf.constant(arrays.long_sequence)
    if prefix_sampling == "every":
        starts, lengths = tf.constant(arrays.starts), tf.constant(arrays.lengths)
    else:
        with_part = arrays.user_lengths > 0
        starts = tf.constant(arrays.user_starts[with_part])
        part_lengths = tf.constant(arrays.user_lengths)

    def one_epoch(epoch):
        order = tf.range(n)
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(order, _epoch_seed(seed, epoch, 1))
        if prefix_sampling == "every":
            epoch_lengths = lengths
        else:
            drawn = drawn_prefix_length(
                prefix_uniforms(len(arrays.user_lengths), seed, epoch), part_lengths)
            epoch_lengths = tf.boolean_mask(drawn, drawn > 0)
        ds = tf.data.Dataset.from_tensor_slices(
            (tf.gather(starts, order), tf.gather(epoch_lengths, order))).batch(batch_size)
        batch_seed = _epoch_seed(seed, epoch, 2)

        def build(index, views):
            s = tf.random.experimental.stateless_fold_in(batch_seed, index)
            return make_pretrain_batch(views[0], views[1], s, flat, long_sequence,
                                       arrays.num_items, arrays.max_length, mask_p, trim)

        return ds.enumerate().map(build, num_parallel_calls=tf.data.AUTOTUNE,
                                  deterministic=True)

    return with_cardinality(tf.data.Dataset.range(first_epoch, epochs).flat_map(one_epoch),
                            max(0, epochs - first_epoch) * steps_per_epoch(n, batch_size))


def with_cardinality(dataset: tf.data.Dataset, batches: int) -> tf.data.Dataset:
    """`dataset` (prefetched) declaring that it holds `batches` batches.

    Keras's `fit` then knows the steps of an epoch (a progress bar with a
    total, no "ran out of data" warning at the end of the data).
    """
    return (dataset.apply(tf.data.experimental.assert_cardinality(batches))
            .prefetch(tf.data.AUTOTUNE))


def steps_per_epoch(num_samples: int, batch_size: int) -> int:
    return -(-num_samples // batch_size)


@dataclasses.dataclass
class FinetuneArrays:
    """Training inputs of the next-item model: one row per user, or per prefix."""

    input_ids: np.ndarray     # [rows, max_length] items[:-3] (or a prefix), left-padded
    target_pos: np.ndarray    # [rows, max_length] items[1:-2] (or the prefix's next item)
    history: np.ndarray       # [users, max_full] sorted items of the whole sequence
    num_items: int
    user_index: np.ndarray | None = None  # [rows] each row's user; None: row i is user i


def finetune_arrays(data: SequenceData, max_length: int = _ENCODER.max_length,
                    rows: str = TRAINING_ROWS[0]) -> FinetuneArrays:
    """The fine-tuning rows of `data` (`rows`: one of `s3rec_tf.config.TRAINING_ROWS`).

    `"sequences"` (the original's `SASRecDataset("train")`): one row per
    user, input `items[:-3]`, the next item the target at every position.
    `"prefixes"`: one row per prefix `items[:k]`, `1 <= k <= len - 3`, its
    next item `items[k]` the target at its last position only; the same
    `(context, next item)` pairs, each with its context at the end of the
    row as evaluation places it. Both keep the last `max_length` items.
    """
    if rows not in TRAINING_ROWS:
        raise ValueError(f"`rows` must be one of {TRAINING_ROWS}. Received: {rows!r}")
    if rows == "sequences":
        inputs = [s[:-3] for s in data.sequences]
        targets = [s[1:-2] for s in data.sequences]
        user_index = None
    else:
        inputs, targets, user_index = [], [], []
        for u, s in enumerate(data.sequences):
            for k in range(1, len(s) - 2):
                inputs.append(s[:k])
                targets.append(s[k:k + 1])
                user_index.append(u)
        user_index = np.asarray(user_index, dtype=np.int32)
    sentinel = data.num_items + 10
    width = max(len(s) for s in data.sequences)
    history = np.full((data.num_users, width), sentinel, dtype=np.int32)
    for u, s in enumerate(data.sequences):
        history[u, :len(s)] = np.sort(s)
    return FinetuneArrays(pad_left(inputs, max_length), pad_left(targets, max_length),
                          history, data.num_items, user_index)


def target_counts(arrays: FinetuneArrays) -> np.ndarray:
    """`[num_items + 2]` int64: how often each item id is a fine-tuning target.

    The frequency of each item in the training sequences as the loss sees
    them (`items[1:-2]`, the last `max_length` of them); padding 0 and the
    mask id count 0.
    """
    targets = arrays.target_pos[arrays.target_pos > 0]
    return np.bincount(targets, minlength=arrays.num_items + 2).astype(np.int64)


def proposal_weights(proposal: str, counts: np.ndarray) -> np.ndarray:
    """Unnormalised `[num_items + 2]` int64 weights of a `sampled-ce` proposal.

    Args:
        proposal: str. `"uniform"`: 1 for every item `1..num_items`;
            `"popularity"`: the item's target count (items never a target
            are never drawn). See `s3rec_tf.config.PROPOSALS`.
        counts: `target_counts` of the training arrays.

    Padding 0 and the mask id (the last id) always weigh 0.
    """
    if proposal not in PROPOSALS:
        raise ValueError(f"`proposal` must be one of {PROPOSALS}. Received: {proposal!r}")
    counts = np.asarray(counts, dtype=np.int64)
    weights = np.ones_like(counts) if proposal == "uniform" else counts.copy()
    weights[0] = weights[-1] = 0
    if weights.sum() <= 0:
        raise ValueError("the proposal has no item to draw (no training targets)")
    return weights


def sample_from_weights(weights, shape, seed):
    """Item ids drawn with replacement with probability `weights / sum(weights)`.

    Exact inverse-CDF sampling on the integer cumulative weights (no rounding):
    `shape` stateless draws keyed by `seed`.
    """
    cumulative = tf.constant(np.cumsum(np.asarray(weights, dtype=np.int64)), tf.int64)
    draws = tf.random.stateless_uniform(tf.reshape(tf.reduce_prod(shape), [1]), seed,
                                        minval=0, maxval=cumulative[-1], dtype=tf.int64)
    items = tf.searchsorted(cumulative[None], draws[None], side="right", out_type=tf.int32)
    return tf.reshape(items, shape)


def make_finetune_batch(x, y, rows, seed, num_items: int, negatives: bool = True,
                        trim: bool = True):
    """One next-item batch from inputs `x`, targets `y` and sorted histories `rows`.

    `rows` holds each user's whole sequence, sorted, padded on the right with
    an id above `num_items`. With `negatives`, one uniform negative per
    position outside the user's sequence (`target_neg`); with `trim`, the
    columns of pure padding are cut.
    """
    if trim:
        real = tf.reduce_sum(tf.cast(tf.reduce_any(x > 0, axis=0), tf.int32))
        width = tf.maximum(real, 1)
        x, y = x[:, -width:], y[:, -width:]
    out = {"input_ids": x, "target_pos": y}
    if negatives:
        def in_history(candidates):
            idx = tf.searchsorted(rows, candidates, side="left")
            idx = tf.minimum(idx, tf.shape(rows)[1] - 1)
            return tf.equal(tf.gather(rows, idx, batch_dims=1), candidates)

        neg = sample_negatives(in_history, tf.shape(x), seed, num_items)
        out["target_neg"] = tf.where(y > 0, neg, 0)
    return out


def finetune_dataset(arrays: FinetuneArrays, batch_size: int = _FINETUNE.batch_size, seed: int = 0,
                     first_epoch: int = 0, epochs: int = 1, negatives: bool = True,
                     shuffle: bool = True, trim: bool = True, sampled_negatives: int = 0,
                     proposal=None) -> tf.data.Dataset:
    """Next-item training batches (`input_ids`, `target_pos`, `target_neg`).

    As the original `SASRecDataset` ("train"): input `items[:-3]`, targets
    `items[1:-2]`, and (for the `bce` loss) one uniform negative per position
    that is not in the user's whole sequence, drawn afresh every epoch.

    With `sampled_negatives` > 0 (the `sampled-ce` loss), batches also carry
    `sampled_neg`, int `[batch, sampled_negatives]`: items drawn with
    replacement from `proposal` (`proposal_weights`) for each sequence,
    afresh every batch, keyed by `(seed, epoch, batch)` like every other draw.
    They may include the sequence's own items: the loss removes accidental
    hits.

    The dataset's cardinality is known, `ceil(rows / batch_size)` batches
    per epoch; train `E` epochs with Keras as `model.fit(finetune_dataset(...,
    epochs=E), epochs=E, steps_per_epoch=steps_per_epoch(rows, batch_size))`.
    """
    if sampled_negatives and proposal is None:
        raise ValueError("`sampled_negatives` needs the `proposal` weights")
    inputs = tf.constant(arrays.input_ids)
    targets = tf.constant(arrays.target_pos)
    history = tf.constant(arrays.history)
    # each row's `history` row (per-user rows are their own)
    user_index = None if arrays.user_index is None else tf.constant(arrays.user_index)
    n = len(arrays.input_ids)
    num_items = arrays.num_items

    def one_epoch(epoch):
        order = tf.range(n)
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(order, _epoch_seed(seed, epoch, 3))
        batch_seed = _epoch_seed(seed, epoch, 4)
        sampled_seed = _epoch_seed(seed, epoch, 5)

        def build(index, rows):
            x = tf.gather(inputs, rows)
            out = make_finetune_batch(
                x, tf.gather(targets, rows),
                tf.gather(history, rows if user_index is None else tf.gather(user_index, rows)),
                tf.random.experimental.stateless_fold_in(batch_seed, index), num_items,
                negatives, trim)
            if sampled_negatives:
                out["sampled_neg"] = sample_from_weights(
                    proposal, tf.stack([tf.shape(x)[0], sampled_negatives]),
                    tf.random.experimental.stateless_fold_in(sampled_seed, index))
            return out

        ds = tf.data.Dataset.from_tensor_slices(order).batch(batch_size)
        return ds.enumerate().map(build, num_parallel_calls=tf.data.AUTOTUNE,
                                  deterministic=True)

    return with_cardinality(tf.data.Dataset.range(first_epoch, epochs).flat_map(one_epoch),
                            max(0, epochs - first_epoch) * steps_per_epoch(n, batch_size))


@dataclasses.dataclass
class EvalArrays:
    """Inputs and answers of one evaluation split."""

    input_ids: np.ndarray   # [users, max_length]
    answers: np.ndarray     # [users]
    history: np.ndarray     # [users, width] items to exclude from full ranking, 0-padded
    negatives: np.ndarray | None  # [users, 99]


def eval_arrays(data: SequenceData, split: str,
                max_length: int = _ENCODER.max_length) -> EvalArrays:
    """`valid`: input `items[:-2]`, answer `items[-2]`; `test`: `items[:-1]`, `items[-1]`."""
    if split not in ("valid", "test"):
        raise ValueError(f"`split` must be 'valid' or 'test'. Received: split={split!r}")
    cut = 2 if split == "valid" else 1
    inputs = [s[:-cut] for s in data.sequences]
    answers = np.asarray([s[-cut] for s in data.sequences], dtype=np.int32)
    return EvalArrays(pad_left(inputs, max_length), answers,
                      pad_left(inputs, max(len(i) for i in inputs)),
                      data.sample_negatives)
