"""Which ids a ranking leaves out: the one rule for training, evaluation and serving.

A ranking over the item table (`[batch, item_size]` scores, see
`NextItemModel.score_last`) never ranks the non-items, padding 0 and the mask
id (`s3rec_tf.ids`), and, where asked, not the items of the user's history.
The next-item model's softmax loss (`ce`) runs over the `item_columns` alone;
the ranking evaluator (validation during training and `s3rec-tf evaluate`)
and the serving signatures take their exclusions from `excluded_ids`
(`excluded_items` is its mask form);
`answer_ranks` is the evaluator's rank of an answer among the items left.
"""

from __future__ import annotations

import tensorflow as tf

from s3rec_tf import ids

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


def answer_ranks(scores, answers, excluded):
    """0-based rank of each row's answer among the ids not excluded.

    The rank is the number of eligible ids scoring strictly higher than the
    answer: an id that ties with the answer counts for the answer, and an
    answer that is itself excluded (an item of the history) is still ranked
    by its own score. Computed as the count over all columns less the
    excluded ids above the answer, so no `[batch, item_size]` mask is built.

    Args:
        scores: float `[batch, item_size]`.
        answers: int `[batch]` answer ids.
        excluded: `(ids, first)` from `excluded_ids`.

    Returns:
        int32 `[batch]`.
    """
    listed, first = excluded
    answer_score = tf.gather(scores, answers, batch_dims=1)[:, None]
    higher = tf.reduce_sum(tf.cast(scores > answer_score, tf.int32), axis=1)
    listed_scores = tf.gather(scores, tf.broadcast_to(listed, [tf.shape(scores)[0],
                                                               tf.shape(listed)[1]]),
                              batch_dims=1)
    listed_higher = tf.logical_and(first, listed_scores > answer_score)
    return higher - tf.reduce_sum(tf.cast(listed_higher, tf.int32), axis=1)
