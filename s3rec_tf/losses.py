"""The S3-Rec objectives, written on logits and reduced as sums per sample.

Each function returns the per-row loss *sum* that the original code computes
(`nn.BCELoss(reduction='none')` summed over the counted positions and
attributes); divide by the batch size for a per-sample mean.

AAP and MAP use the original's `BCELoss` on probabilities by default
(`attribute_bce="original"`): PyTorch computes `p = sigmoid(logit)` in
float32, clamps each log term at -100, and its backward divides by
`max(p (1 - p), 1e-12)`. So the gradient of a logit is the usual `p - y`
only while `p (1 - p) >= 1e-12`; it fades beyond |logit| ~ 27.6 and is
exactly 0 once `p` rounds to 1 (logit > ~16.6). Saturated attribute logits
therefore stop pushing the encoder. `attribute_bce="softplus"` is the
textbook BCE on logits (`softplus`), whose gradient never fades; in
pretraining from scratch it drives the encoder into a regime where the SP
logits saturate and Segment Prediction stops learning (see the README,
"Differences from the original code").
"""

from __future__ import annotations

import tensorflow as tf

from s3rec_tf import config
#: The attribute BCE forms of `attribute_loss` (AAP, MAP); the first is the default.
from s3rec_tf.config import ATTRIBUTE_BCE_MODES
#: The forms of `segment_loss` (SP); the first is the default.
from s3rec_tf.config import SEGMENT_LOSS_MODES
#: The forms of MIP (`S3RecPretrainer(mip_loss=...)`); the first is the default.
from s3rec_tf.config import MIP_LOSS_MODES
#: PyTorch's `BCELoss`: log terms are clamped at this value ...
_LOG_FLOOR = -100.0
#: ... and its backward divides by `max(p (1 - p), _BACKWARD_EPSILON)`.
_BACKWARD_EPSILON = 1e-12


def _bce_positive(p_logit):
    """`-log(sigmoid(x))`."""
    return tf.nn.softplus(-p_logit)


def _original_bce(logits, target: float):
    """`BCELoss(sigmoid(x), target)` exactly as PyTorch computes value and gradient."""

    @tf.custom_gradient
    def bce(x):
        p = tf.sigmoid(x)
        if target:
            loss = -tf.maximum(tf.math.log(p), _LOG_FLOOR)
        else:
            loss = -tf.maximum(tf.math.log(1.0 - p), _LOG_FLOOR)

        def grad(upstream):
            # (p - y) / max(p (1 - p), eps) * p (1 - p), the last factor from sigmoid's backward
            fade = tf.minimum(p * (1.0 - p) * (1.0 / _BACKWARD_EPSILON), 1.0)
            return upstream * (p - target) * fade

        return loss, grad

    return bce(logits)


def check_mode(option: str, mode: str) -> None:
    """Refuse a `mode` that `PretrainConfig` does not allow for `option` (one of its
    loss fields: `attribute_bce`, `segment_loss`, `mip_loss`), naming the option.

    Raises:
        ConfigError (a ValueError): naming the option, the mode and the allowed forms.
    """
    config.check_value(config.PretrainConfig, option, mode)


def attribute_loss(logits, target_attributes, mode: str = "original"):
    """Multi-label BCE over all attributes, for AAP and MAP.

    Args:
        logits: `[n, attribute_size]` attribute scores at the counted positions.
        target_attributes: int `[n, max_attrs]` attribute ids of each
            position's item, padded with 0 (attribute 0 is padding and never a
            target). Duplicates must have been removed.
        mode: str. `"original"` (PyTorch's `BCELoss` on `sigmoid(logits)`,
            value and gradient) or `"softplus"` (BCE on logits). See the
            module docstring.

    Returns:
        `[n]` loss summed over attributes: `sum_a -log(1 - p_a)` plus, for the
        item's attributes, `-log(p_a) + log(1 - p_a)`.
    """
    check_mode("attribute_bce", mode)
    if mode == "original":
        def positive(x):
            return _original_bce(x, 1.0)

        def negative(x):
            return _original_bce(x, 0.0)
    else:
        positive, negative = _bce_positive, tf.nn.softplus
    target_attributes = tf.cast(target_attributes, tf.int32)
    target_logits = tf.gather(logits, target_attributes, batch_dims=1)
    present = tf.cast(target_attributes > 0, logits.dtype)
    correction = (positive(target_logits) - negative(target_logits)) * present
    return tf.reduce_sum(negative(logits), axis=-1) + tf.reduce_sum(correction, axis=-1)


def pairwise_sigmoid_loss(pos_logit, neg_logit):
    """The original's MIP/SP loss: `BCE(sigmoid(sigmoid(pos) - sigmoid(neg)), 1)`."""
    return _bce_positive(tf.sigmoid(pos_logit) - tf.sigmoid(neg_logit))


def segment_loss(pos_logit, neg_logit, mode: str = "original"):
    """Segment Prediction's per-row loss from the true and the random segment's logits.

    `"original"`: `pairwise_sigmoid_loss`, the authors' `BCE(sigmoid(sigmoid(pos)
    - sigmoid(neg)), 1)`. Once both logits are far on the same side of 0 both
    sigmoids round to 0 or 1, the loss sits at ln 2 and its gradient is 0.
    `"logit-gap"`: `BCE(sigmoid(pos - neg), 1) = softplus(neg - pos)`, a
    BPR-style loss on the logits' gap, whose gradient does not vanish when
    both logits are large.
    """
    check_mode("segment_loss", mode)
    if mode == "original":
        return pairwise_sigmoid_loss(pos_logit, neg_logit)
    return _bce_positive(pos_logit - neg_logit)


def masked_item_ce_loss(queries, table, targets):
    """MIP as full softmax (`mip_loss="ce"`): `next_item_ce_loss` summed over the rows.

    The masked positions of a batch take the place of next-item positions;
    the sum (not the mean) matches the other pretraining losses, each summed
    over the batch as in the original. A batch without masked positions
    contributes 0 and no gradient.

    Args:
        queries: float `[n, hidden]`, the MIP head's output at each masked position.
        table: float `[items, hidden]`, the item rows of the item table
            (`ranking.item_columns`).
        targets: int `[n]` the masked item at each position, as a row of `table`.
    """
    queries = tf.convert_to_tensor(queries)
    n = tf.shape(queries)[0]
    return tf.cond(n > 0,
                   lambda: next_item_ce_loss(queries, table, targets) * tf.cast(n, queries.dtype),
                   lambda: tf.zeros([], queries.dtype))


def next_item_bce_loss(pos_logits, neg_logits, weights):
    """The paper's fine-tuning loss: one positive and one negative per position.

    `sum(-log(sigmoid(pos) + 1e-24) - log(1 - sigmoid(neg) + 1e-24)) / sum(w)`
    over positions with weight 1, exactly as the original.
    """
    weights = tf.cast(weights, pos_logits.dtype)
    per_position = (-tf.math.log(tf.sigmoid(pos_logits) + 1e-24)
                    - tf.math.log(1.0 - tf.sigmoid(neg_logits) + 1e-24))
    return tf.math.divide_no_nan(tf.reduce_sum(per_position * weights), tf.reduce_sum(weights))


#: `next_item_ce_loss` reads a row's loss as `-log p(target)` while every
#: target's probability is at least this (a loss of at most 69); below it, as
#: the log-sum-exp less the target's logit, so nothing underflows.
CE_MIN_TARGET_PROBABILITY = 1e-30


def next_item_ce_loss(queries, table, targets):
    """Full softmax cross-entropy over the item catalogue (mean over rows).

    The value and gradients of `sparse_softmax_cross_entropy_with_logits`
    on `logits = queries @ table^T`, computed with less work: the forward
    pass needs only the softmax and each row's target probability (a row's
    loss is `-log p(target)`; if any target's probability is below
    `CE_MIN_TARGET_PROBABILITY`, all rows take the log-sum-exp form, the
    largest logit less the log of the largest probability, which is at
    least `1 / item_size`), and the backward pass folds the softmax gradient
    `p - onehot(target)` into two matmuls and a scatter, so no
    `[rows, item_size]` tensor is built after the softmax (README
    "Performance notes"). A catalogue's non-items are left out by leaving
    their rows out of `table` (`NextItemModel`, `ranking.item_columns`).

    Args:
        queries: float `[n, hidden]`.
        table: float `[items, hidden]`.
        targets: int `[n]` the next item of each row, as a row of `table`.
    """
    targets = tf.cast(targets, tf.int32)

    @tf.custom_gradient
    def loss_of(queries, table):
        logits = tf.matmul(queries, table, transpose_b=True)
        probs = tf.nn.softmax(logits)
        target_probs = tf.gather(probs, targets, batch_dims=1)

        def log_sum_exp_form():
            log_sum_exp = (tf.reduce_max(logits, axis=1)
                           - tf.math.log(tf.reduce_max(probs, axis=1)))
            return log_sum_exp - tf.gather(logits, targets, batch_dims=1)

        per_row = tf.cond(
            tf.reduce_all(target_probs >= CE_MIN_TARGET_PROBABILITY),
            lambda: -tf.math.log(target_probs), log_sum_exp_form)
        n = tf.cast(tf.shape(targets)[0], queries.dtype)

        def grad(upstream):
            scale = upstream / n  # d loss / d logits = (probs - onehot) * scale
            d_queries = (tf.matmul(probs, table) - tf.gather(table, targets)) * scale
            d_table = (tf.matmul(probs, queries, transpose_a=True)
                       - tf.math.unsorted_segment_sum(queries, targets,
                                                      tf.shape(table)[0])) * scale
            return d_queries, d_table

        return tf.reduce_mean(per_row), grad

    # read variables into tensors: the gradient reaches them through the read
    return loss_of(tf.convert_to_tensor(queries), tf.convert_to_tensor(table))


def next_item_sampled_ce_loss(pos_logits, neg_logits, neg_log_expected, keep):
    """Sampled softmax cross-entropy with log-Q correction (mean over rows).

    Each row's softmax runs over its target and its negatives, each
    negative's logit lowered by the log of its expected count among the
    negatives (`log(S q_j)` for S draws from a proposal q): the negatives'
    sum `sum_k exp(s_k) / (S q_k)` is then an unbiased estimate of the full
    softmax's sum over the catalogue, and the loss tends to `ce`'s as S
    grows. The target's logit is not corrected.

    `-s_pos + log(exp(s_pos) + sum_k keep_k exp(s_k - log_expected_k))`.

    Args:
        pos_logits: `[n]` the target's score at each row.
        neg_logits: `[n, k]` the negatives' scores.
        neg_log_expected: `[n, k]` (or broadcastable) log of each negative's
            expected count. 0 everywhere (each other item once) gives the
            full softmax.
        keep: bool `[n, k]`. False drops a negative from the row's softmax
            (an accidental hit: a negative that is the row's target).
    """
    pos_logits = tf.convert_to_tensor(pos_logits)
    corrected = neg_logits - tf.cast(neg_log_expected, pos_logits.dtype)
    corrected = tf.where(keep, corrected, tf.constant(-1e9, pos_logits.dtype))
    logits = tf.concat([pos_logits[:, None], corrected], axis=1)
    return tf.reduce_mean(tf.reduce_logsumexp(logits, axis=1) - pos_logits)
