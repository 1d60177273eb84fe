"""The S3-Rec objectives, written on logits and reduced as sums per sample.

Each function returns the per-row loss *sum* that the original code computes
(`nn.BCELoss(reduction='none')` summed over the counted positions and
attributes); divide by the batch size for a per-sample mean.

The original applies `BCELoss` to probabilities (`sigmoid(logit)`), which
clamps each log term at -100. On logits that is `softplus`, identical except
where float32 saturates (|logit| > ~16); `original_clamp=True` reproduces the
saturated form exactly for the parity check.
"""

from __future__ import annotations

import tensorflow as tf


def _bce_positive(p_logit):
    """`-log(sigmoid(x))`."""
    return tf.nn.softplus(-p_logit)


def _bce_negative(logit, original_clamp: bool = False):
    """`-log(1 - sigmoid(x))`, optionally with the original's float32 clamp."""
    if original_clamp:
        p = tf.sigmoid(logit)
        return -tf.maximum(tf.math.log(1.0 - p), -100.0)
    return tf.nn.softplus(logit)


def attribute_loss(logits, target_attributes, original_clamp: bool = False):
    """Multi-label BCE over all attributes, for AAP and MAP.

    Args:
        logits: `[n, attribute_size]` attribute scores at the counted positions.
        target_attributes: int `[n, max_attrs]` attribute ids of each
            position's item, padded with 0 (attribute 0 is padding and never a
            target). Duplicates must have been removed.
        original_clamp: bool. Reproduce the original's probability-space BCE.

    Returns:
        `[n]` loss summed over attributes: `sum_a -log(1 - p_a)` plus, for the
        item's attributes, `-log(p_a) + log(1 - p_a)`.
    """
    target_attributes = tf.cast(target_attributes, tf.int32)
    negative = tf.reduce_sum(_bce_negative(logits, original_clamp), axis=-1)
    target_logits = tf.gather(logits, target_attributes, batch_dims=1)
    present = tf.cast(target_attributes > 0, logits.dtype)
    if original_clamp:
        p = tf.sigmoid(target_logits)
        pos_term = -tf.maximum(tf.math.log(p), -100.0)
    else:
        pos_term = _bce_positive(target_logits)
    correction = (pos_term - _bce_negative(target_logits, original_clamp)) * present
    return negative + tf.reduce_sum(correction, axis=-1)


def pairwise_sigmoid_loss(pos_logit, neg_logit):
    """The original's MIP/SP loss: `BCE(sigmoid(sigmoid(pos) - sigmoid(neg)), 1)`."""
    return _bce_positive(tf.sigmoid(pos_logit) - tf.sigmoid(neg_logit))


def next_item_bce_loss(pos_logits, neg_logits, weights):
    """The paper's fine-tuning loss: one positive and one negative per position.

    `sum(-log(sigmoid(pos) + 1e-24) - log(1 - sigmoid(neg) + 1e-24)) / sum(w)`
    over positions with weight 1, exactly as the original.
    """
    weights = tf.cast(weights, pos_logits.dtype)
    per_position = (-tf.math.log(tf.sigmoid(pos_logits) + 1e-24)
                    - tf.math.log(1.0 - tf.sigmoid(neg_logits) + 1e-24))
    return tf.math.divide_no_nan(tf.reduce_sum(per_position * weights), tf.reduce_sum(weights))


def next_item_ce_loss(logits, targets):
    """Full softmax cross-entropy over the item catalogue (mean over rows).

    Args:
        logits: `[n, item_size]` scores of every item (non-items set to a large
            negative value by the caller).
        targets: int `[n]` the next item of each row.
    """
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(targets, tf.int32),
                                                       logits=logits))
