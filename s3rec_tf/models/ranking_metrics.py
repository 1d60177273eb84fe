"""Ranking metrics as Keras metrics, for `NextItemModel.compile(metrics=...)`.

`NextItemModel.test_step` turns a ranking batch (`s3rec_tf.data.ranking_inputs`)
into keras-rs's list convention: `y_true` `[batch, list]` relevance (1 at
the answer, 0 elsewhere, -1 at the ids the ranking leaves out), `y_pred` the
scores of the same columns. Full ranking lists every id of the item table
(excluded: padding, the mask id and the input history, the history rule
`remove`); the sampled protocol lists the answer and its 99 negatives.

The metrics here compute each list's 0-based answer rank as
`s3rec_tf.models.ranking.answer_ranks` does (the eligible ids scoring
strictly higher: a tie counts for the answer) and average the formulas of
`s3rec_tf.metrics`: the numbers of `s3rec_tf.evaluation.RankingEvaluator`.
keras-rs 0.1.0's `RecallAtK`, `NDCG` and `MeanReciprocalRank` take the same
inputs and give the same numbers (HR@k is `RecallAtK` with one answer)
where no item ties with the answer, but they sort each list, and break ties
at random whatever `shuffle_ties` says (they always pass a mask);
`ranking_metrics(implementation="keras-rs")` builds them.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from s3rec_tf import metrics as metrics_lib

IMPLEMENTATIONS = ("s3rec", "keras-rs")


def answer_ranks(y_true, y_pred):
    """0-based rank of each list's answer, and whether the list has one.

    Args:
        y_true: `[batch, list]` relevance: 1 at the answer, 0 at the other
            eligible ids, negative at ids left out.
        y_pred: float `[batch, list]` scores.

    Returns:
        `(ranks, has_answer)`: float32 `[batch]` (the eligible ids scoring
        strictly higher than the answer) and bool `[batch]`.
    """
    y_true = tf.convert_to_tensor(y_true)
    y_pred = tf.convert_to_tensor(y_pred)
    answer = y_true > 0
    has_answer = tf.reduce_any(answer, axis=1)
    answer_score = tf.reduce_max(
        tf.where(answer, y_pred, tf.constant(float("-inf"), y_pred.dtype)), axis=1, keepdims=True)
    higher = tf.logical_and(tf.logical_and(y_true >= 0, tf.logical_not(answer)),
                            y_pred > answer_score)
    return tf.reduce_sum(tf.cast(higher, tf.float32), axis=1), has_answer


class AnswerRankMetric(keras.metrics.Mean):
    """Mean over lists of a function of the answer's 0-based rank.

    `update_state(y_true, y_pred)` takes lists (lists without an answer are
    not counted); `update_from_ranks(ranks)` takes the ranks themselves, as
    `NextItemModel.answer_ranks` computes them without building the lists
    (what `NextItemModel.test_step` does when every metric is one of these).
    """

    def value(self, ranks):
        """The per-list value, float32 `[batch]`, of float32 `ranks`."""
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None):
        ranks, has_answer = answer_ranks(y_true, y_pred)
        weight = tf.cast(has_answer, tf.float32)
        if sample_weight is not None:
            weight *= tf.reshape(tf.cast(sample_weight, tf.float32), [-1])
        return self.update_from_ranks(ranks, weight)

    def update_from_ranks(self, ranks, sample_weight=None):
        """Adds lists by their answer's 0-based rank, `[batch]`."""
        return super().update_state(self.value(tf.cast(ranks, tf.float32)),
                                    sample_weight=sample_weight)


class _AtK(AnswerRankMetric):
    """A metric with a cut-off `k`, named `<PREFIX>@<k>` unless named otherwise."""

    PREFIX = ""

    def __init__(self, k: int, name: str | None = None, **kwargs):
        if int(k) < 1:
            raise ValueError(f"`k` must be >= 1. Received: k={k!r}")
        super().__init__(name=name or f"{self.PREFIX}@{k}", **kwargs)
        self.k = int(k)

    def get_config(self):
        return {**super().get_config(), "k": self.k}


@keras.saving.register_keras_serializable(package="s3rec_tf")
class HitRate(_AtK):
    """HR@k: the share of answers ranked in the top `k` (`s3rec_tf.metrics.hit_rate`).

    Args:
        k: int. The cut-off.
        name: str | None. Defaults to `"HR@<k>"`.
    """

    PREFIX = "HR"

    def value(self, ranks):
        return tf.cast(ranks < self.k, tf.float32)


@keras.saving.register_keras_serializable(package="s3rec_tf")
class NDCG(_AtK):
    """NDCG@k with one answer per list, `[rank < k] / log2(rank + 2)` (`s3rec_tf.metrics.ndcg`).

    Args:
        k: int. The cut-off.
        name: str | None. Defaults to `"NDCG@<k>"`.
    """

    PREFIX = "NDCG"

    def value(self, ranks):
        discount = tf.math.log(2.0) / tf.math.log(ranks + 2.0)
        return tf.where(ranks < self.k, discount, 0.0)


@keras.saving.register_keras_serializable(package="s3rec_tf")
class MRR(AnswerRankMetric):
    """Mean reciprocal rank, `1 / (rank + 1)` (`s3rec_tf.metrics.mrr`).

    Args:
        name: str | None. Defaults to `"MRR"`.
    """

    def __init__(self, name: str | None = None, **kwargs):
        super().__init__(name=name or "MRR", **kwargs)

    def value(self, ranks):
        return 1.0 / (ranks + 1.0)


def ranking_metrics(protocol: str = "full", implementation: str = "s3rec") -> list:
    """The project's metrics of `protocol`, as Keras metrics named as in `s3rec_tf.metrics`.

    Args:
        protocol: str. `"full"`: HR@5/10/20, NDCG@5/10/20, MRR; `"sampled"`:
            HR@1/5/10, NDCG@5/10, MRR. Defaults to `"full"`.
        implementation: str. `"s3rec"`: the classes of this module (the
            evaluator's numbers, ties counted for the answer); `"keras-rs"`:
            keras-rs's `RecallAtK`, `NDCG` and `MeanReciprocalRank` under the
            same names. Defaults to `"s3rec"`.

    Returns:
        A list for `NextItemModel.compile(metrics=...)`: `fit` with a
        ranking `validation_data` logs `val_HR@5`, ..., `val_NDCG@20`,
        `val_MRR`.
    """
    if protocol not in ("full", "sampled"):
        raise ValueError(f"`protocol` must be 'full' or 'sampled'. Received: {protocol!r}")
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"`implementation` must be one of {IMPLEMENTATIONS}. "
                         f"Received: implementation={implementation!r}")
    hr_ks, ndcg_ks = ((metrics_lib.FULL_KS, metrics_lib.FULL_KS) if protocol == "full"
                      else (metrics_lib.SAMPLED_HR_KS, metrics_lib.SAMPLED_NDCG_KS))
    hr, ndcg, mrr = HitRate, NDCG, MRR
    if implementation == "keras-rs":
        import keras_rs
        hr = lambda k: keras_rs.metrics.RecallAtK(k=k, name=f"HR@{k}")  # noqa: E731
        ndcg = lambda k: keras_rs.metrics.NDCG(k=k, name=f"NDCG@{k}")  # noqa: E731
        mrr = lambda: keras_rs.metrics.MeanReciprocalRank(name="MRR")  # noqa: E731
    if protocol == "full":  # in the order of `s3rec_tf.metrics`'s dicts
        out = [metric(k) for k in metrics_lib.FULL_KS for metric in (hr, ndcg)]
    else:
        out = [hr(k) for k in hr_ks] + [ndcg(k) for k in ndcg_ks]
    return out + [mrr()]
