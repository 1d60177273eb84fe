"""Which ids a ranking leaves out: the one rule for training, evaluation and serving.

A ranking over the item table (`[batch, item_size]` scores, see
`NextItemModel.score_last`) never ranks the non-items, padding 0 and the mask
id (`s3rec_tf.ids`), and, where asked, not the items of the user's history.
The next-item model's softmax loss (`ce`), the ranking evaluator (validation
during training and `s3rec-tf evaluate`) and the serving signatures all take
their exclusions from `excluded_items`; `answer_ranks` is the evaluator's
rank of an answer among the items left.
"""

from __future__ import annotations

import tensorflow as tf

from s3rec_tf import ids

#: The bias that `non_item_logit_bias` gives the non-items (softmax weight 0).
NON_ITEM_LOGIT_BIAS = -1e9


def non_item_mask(num_items: int):
    """`[item_size]` bool: true at the padding id 0 and the mask id."""
    index = tf.range(ids.item_size(num_items))
    return tf.logical_or(tf.equal(index, ids.PADDING_ID),
                         tf.equal(index, ids.mask_id(num_items)))


def non_item_logit_bias(num_items: int, dtype=tf.float32):
    """`[item_size]` additive bias: `NON_ITEM_LOGIT_BIAS` at the non-items, else 0."""
    return tf.cast(non_item_mask(num_items), dtype) * NON_ITEM_LOGIT_BIAS


def excluded_items(num_items: int, history=None, exclude_history=True):
    """The ids each row of a ranking leaves out.

    Args:
        num_items: int. Items `1..num_items`; the ranking has `item_size`
            columns.
        history: int `[batch, length]` item ids or None. Padding (0) may
            appear anywhere and is excluded anyway; ids may repeat.
        exclude_history: bool or scalar bool tensor. Leave out the history's
            items too. Defaults to `True`.

    Returns:
        bool `[batch, item_size]` (`[1, item_size]` without `history`): true
        for padding, the mask id and, with `exclude_history`, every item of
        the row's history.
    """
    excluded = non_item_mask(num_items)[None, :]
    if history is None:
        return excluded
    history = tf.cast(history, tf.int32)
    shape = tf.shape(history)
    rows = tf.broadcast_to(tf.range(shape[0])[:, None], shape)
    index = tf.reshape(tf.stack([rows, history], -1), [-1, 2])
    seen = tf.scatter_nd(index, tf.ones(tf.shape(index)[0], tf.int32),
                         tf.stack([shape[0], ids.item_size(num_items)])) > 0
    return tf.logical_or(excluded, tf.logical_and(seen, exclude_history))


def answer_ranks(scores, answers, excluded):
    """0-based rank of each row's answer among the ids not excluded.

    The rank is the number of eligible ids scoring strictly higher than the
    answer: an id that ties with the answer counts for the answer, and an
    answer that is itself excluded (an item of the history) is still ranked
    by its own score.

    Args:
        scores: float `[batch, item_size]`.
        answers: int `[batch]` answer ids.
        excluded: bool, broadcastable to `scores` (`excluded_items`).

    Returns:
        int32 `[batch]`.
    """
    answer_score = tf.gather(scores, answers, batch_dims=1)
    higher = tf.logical_and(scores > answer_score[:, None], tf.logical_not(excluded))
    return tf.reduce_sum(tf.cast(higher, tf.int32), axis=1)
