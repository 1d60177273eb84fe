"""Which ids a ranking leaves out: the one rule for training, evaluation and serving.

A ranking over the item table (`[batch, item_size]` scores, see
`NextItemModel.score_last`) never ranks the non-items, padding 0 and the mask
id (`s3rec_tf.ids`), and, where asked, not the items of the user's history
(the one exception: the `original` history rule ranks every row, as the
original code did).
The next-item model's softmax loss (`ce`) runs over the `item_columns` alone;
the ranking evaluator (validation during training and `s3rec-tf evaluate`)
and the serving signatures take their exclusions from `excluded_ids`
(`excluded_items` is its mask form).

What a full ranking does with the user's history is a named rule,
`HISTORY_RULES` (`remove`, the default; `original`; `keep`), and
`answer_ranks` is the one op that applies it: evaluation, validation and the
pipeline's evaluator rank answers with it, and the export serves `remove`
(`exclude_history` true, its default) and `keep` (false) with
`excluded_items`, so under those two rules an answer is ranked among exactly
the items the export can return (`serving_exclusion`); `original` is the
original code's evaluation, for numbers comparable with the literature.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from s3rec_tf import ids
from s3rec_tf.config import HISTORY_RULES

__all__ = ["HISTORY_RULES", "non_item_ids", "non_item_mask", "item_columns", "excluded_ids",
           "excluded_items", "check_history_rule", "serving_exclusion", "answer_ranks"]


def non_item_ids(num_items: int) -> tuple:
    """The ids of a ranking's columns that are not items: padding 0 and the mask id."""
    return (ids.PADDING_ID, ids.mask_id(num_items))


def non_item_mask(num_items: int):
    """`[item_size]` bool: true at the `non_item_ids`."""
    index = tf.range(ids.item_size(num_items))
    return tf.reduce_any(tf.equal(index[:, None], tf.constant(non_item_ids(num_items))[None]),
                         axis=1)


def item_columns(num_items: int) -> slice:
    """The columns of a ranking that are items, `1..num_items`: all but the
    `non_item_ids`. The next-item softmax (`ce`) runs over these alone."""
    return slice(ids.FIRST_ID, ids.FIRST_ID + num_items)


def excluded_ids(num_items: int, history=None, exclude_history=True):
    """The ids each row of a ranking leaves out, as a list: the one rule.

    Args:
        num_items: int. Items `1..num_items`; the ranking has `item_size`
            columns.
        history: int `[batch, length]` item ids or None. Padding (0) may
            appear anywhere and is excluded anyway; ids may repeat.
        exclude_history: bool or scalar bool tensor. Leave out the history's
            items too. Defaults to `True`.

    Returns:
        `(ids, first)`: int32 `[batch, 2 + length]` (`[1, 2]` without
        `history`), the non-items (padding, mask id) and the history, each
        row sorted by id, and bool of the same shape, true at exactly one
        occurrence of each id the row leaves out (a repeat, the history's
        padding, or with `exclude_history` false every history id that is
        not a non-item, is false). The repeats are found by sorting each row,
        `O(length log length)`: full ranking lists a user's whole history.
    """
    non_items = tf.constant(non_item_ids(num_items), tf.int32)[None, :]
    if history is None:
        return non_items, tf.ones_like(non_items, tf.bool)
    history = tf.cast(history, tf.int32)
    listed = tf.concat([tf.tile(non_items, [tf.shape(history)[0], 1]), history], axis=1)
    counted = tf.concat([tf.ones_like(listed[:, :2], tf.bool),
                         tf.broadcast_to(tf.cast(exclude_history, tf.bool),
                                         tf.shape(history))], axis=1)
    # key 2 * id, + 1 where not counted: among equal ids a counted one sorts first
    key = tf.sort(2 * listed + tf.cast(tf.logical_not(counted), tf.int32), axis=1)
    ids_sorted = key // 2
    new_id = tf.concat([tf.ones_like(key[:, :1], tf.bool),
                        tf.not_equal(ids_sorted[:, 1:], ids_sorted[:, :-1])], axis=1)
    return ids_sorted, tf.logical_and(new_id, tf.equal(key % 2, 0))


def excluded_items(num_items: int, history=None, exclude_history=True):
    """`excluded_ids` as a mask over the ranking's columns.

    Returns:
        bool `[batch, item_size]` (`[1, item_size]` without `history`): true
        for padding, the mask id and, with `exclude_history`, every item of
        the row's history.
    """
    listed, first = excluded_ids(num_items, history, exclude_history)
    shape = tf.shape(listed)
    rows = tf.broadcast_to(tf.range(shape[0])[:, None], shape)
    index = tf.reshape(tf.stack([rows, listed], -1), [-1, 2])
    return tf.scatter_nd(index, tf.reshape(tf.cast(first, tf.int32), [-1]),
                         tf.stack([shape[0], ids.item_size(num_items)])) > 0


def check_history_rule(rule: str) -> str:
    """`rule` if it is one of `HISTORY_RULES`, else a `ValueError` naming them."""
    if rule not in HISTORY_RULES:
        raise ValueError(f"`history_rule` must be one of {HISTORY_RULES}. Received: {rule!r}")
    return rule


def serving_exclusion(rule: str):
    """The export's `exclude_history` that serves as `rule` ranks: `remove` true,
    `keep` false, `original` none (no export zeroes the history's scores)."""
    return {"remove": True, "keep": False, "original": None}[check_history_rule(rule)]


def _tie_position(answers, history, ties):
    """`[batch]` int32 in `[0, ties]`: where the answer falls among the ids that tie
    with it, a deterministic draw uniform over the block, a fingerprint of the row
    (the answer, its history and the tie count; never the batch it is in)."""
    history_key = tf.reduce_sum(tf.cast(history, tf.int64), axis=1)
    key = tf.strings.join([tf.strings.as_string(answers), tf.strings.as_string(history_key),
                           tf.strings.as_string(ties)], separator=":")
    draw = tf.cast(tf.strings.to_hash_bucket_fast(key, _TIE_BUCKETS), tf.float64) / _TIE_BUCKETS
    return tf.minimum(tf.cast(draw * tf.cast(ties + 1, tf.float64), tf.int32), ties)


_TIE_BUCKETS = 2 ** 31 - 1


def answer_ranks(scores, answers, num_items: int, history=None,
                 rule: str = HISTORY_RULES[0]):
    """0-based rank of each row's answer under history rule `rule`: the one op.

    The items of the row's history (`history`, the items before the answer)
    are, by rule:

    - `remove`: left out of the ranking, and an answer that is one of them
      is a miss, rank `inf` (the export with `exclude_history` true never
      returns it). The non-items (padding, mask id) are not ranked.
    - `original`: ranked with score 0, the answer too when it is one of
      them, as the original code ranks: its `rating_pred[history] = 0` over
      every row of the item table, so the padding and mask rows are ranked
      too, by their own scores (they are never an answer, but can take
      places above it).
    - `keep`: ranked by their own scores (the export with `exclude_history`
      false). The non-items are not ranked.

    The rank is the number of ranked ids scoring strictly higher than the
    answer, plus, under `original` alone, its place among the ids that tie
    with it: the original orders ties arbitrarily (`np.argpartition`, then
    numpy's unstable `argsort`), and under its rule ties are common (every
    history item scores 0, a repeat answer among them), so the answer falls
    at a deterministic place drawn uniformly over its tie block. Under
    `remove` and `keep` an id that ties with the answer counts for the answer.
    Computed from counts over all columns less the excluded ids, so no
    `[batch, item_size]` mask is built.

    Args:
        scores: float `[batch, item_size]`.
        answers: int `[batch]` answer ids.
        num_items: int. Items `1..num_items`.
        history: int `[batch, length]` item ids or None (no history). Padding
            (0) may appear anywhere; ids may repeat.
        rule: one of `HISTORY_RULES`. Defaults to `remove`.

    Returns:
        float64 `[batch]`: whole numbers, `inf` for a miss.
    """
    check_history_rule(rule)
    answers = tf.cast(answers, tf.int32)
    listed, first = excluded_ids(num_items, history, exclude_history=rule != "keep")
    answer_score = tf.gather(scores, answers, batch_dims=1)
    if history is None:
        in_history = tf.zeros_like(answers, tf.bool)
    else:
        history = tf.cast(history, tf.int32)
        in_history = tf.reduce_any(tf.equal(history, answers[:, None]), axis=1)
    if rule == "original":
        answer_score = tf.where(in_history, tf.zeros_like(answer_score), answer_score)
    answer_score = answer_score[:, None]
    listed = tf.broadcast_to(listed, [tf.shape(scores)[0], tf.shape(listed)[1]])
    listed_scores = tf.gather(scores, listed, batch_dims=1)
    if rule == "original":  # each history item once: its score is replaced by 0
        first = first & tf.not_equal(listed, ids.PADDING_ID) & tf.not_equal(
            listed, ids.mask_id(num_items))

    def count(mask):
        return tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)

    rank = count(scores > answer_score) - count(first & (listed_scores > answer_score))
    if rule == "original":
        # the history's items are ranked again, each at score 0
        rank += count(first) * tf.cast(answer_score[:, 0] < 0, tf.int32)
        # the ranked ids tying with the answer, the answer's own column left out
        ties = (count(scores == answer_score) - count(first & (listed_scores == answer_score))
                + count(first) * tf.cast(tf.equal(answer_score[:, 0], 0), tf.int32) - 1)
        rank += _tie_position(answers, history if history is not None
                              else tf.zeros_like(answers[:, None]), ties)
    rank = tf.cast(rank, tf.float64)
    if rule == "remove":
        rank = tf.where(in_history, tf.constant(np.inf, tf.float64), rank)
    return rank
