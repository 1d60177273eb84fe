"""Ranking evaluation of a next-item model: full ranking and 99 sampled negatives."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from s3rec_tf import metrics as metrics_lib
from s3rec_tf.config import HISTORY_RULES
from s3rec_tf.data.inputs import EvalArrays
from s3rec_tf.models.layers import gather_rows
from s3rec_tf.models import ranking

PROTOCOLS = ("full", "sampled")

#: Full ranking scores at most this many items x users at once, so that a
#: big catalogue stays in memory (about 0.3 GB of scores and masks at the bound).
SCORES_PER_BATCH = 2 ** 25

#: And at most this many users (Beauty, 12,103 items: 2,772 users per batch).
MAX_USERS_PER_BATCH = 4096


def eval_batch_size(item_size: int) -> int:
    """Users per scoring batch: the most that keep a batch within `SCORES_PER_BATCH`
    scores and `MAX_USERS_PER_BATCH` users. Larger batches pay the per-call cost of
    the many small encoder ops fewer times (README "Performance notes")."""
    return int(max(1, min(MAX_USERS_PER_BATCH, SCORES_PER_BATCH // max(1, item_size))))


class RankingEvaluator:
    """Ranks each user's answer against all items or against sampled negatives.

    Full ranking scores every item and ranks the answer under `history_rule`
    (`ranking.answer_ranks`): by default (`remove`) the non-items (padding,
    mask id) and the items of the user's input history leave the ranking,
    and an answer that is one of them is a miss, as the export serves. The
    sampled protocol ranks the answer among itself and its 99 negatives,
    which are never items of the user's sequence (`s3rec_tf.data.negatives`),
    so no history rule applies to it: the answer is ranked by its own score,
    as in the paper. Outside the `original` rule, an item that ties with the
    answer counts for the answer (the original's order among ties is
    arbitrary: `np.argpartition`, and numpy's default `argsort`, which is not
    stable).

    Args:
        model: `NextItemModel`.
        batch_size: int | None. Users per scoring batch. Defaults to
            `eval_batch_size` of the model's catalogue.
        history_rule: one of `HISTORY_RULES`, for full ranking. Defaults to
            `remove`.
    """

    def __init__(self, model, batch_size: int | None = None,
                 history_rule: str = HISTORY_RULES[0]):
        self.model = model
        self.history_rule = ranking.check_history_rule(history_rule)
        num_items = model.encoder.num_items
        self.batch_size = int(batch_size or eval_batch_size(model.encoder.item_size))

        @tf.function(reduce_retracing=True)
        def full_ranks(input_ids, answers, history):
            scores = self.model.score_last(input_ids, training=False)
            return ranking.answer_ranks(scores, answers, num_items, history, self.history_rule)

        @tf.function(reduce_retracing=True)
        def sampled_ranks(input_ids, candidates):
            out = self.model.last_output(input_ids, training=False)
            emb = gather_rows(self.model.encoder.item_table, candidates)
            scores = tf.einsum("bh,bch->bc", out, emb)
            return tf.reduce_sum(tf.cast(scores[:, 1:] > scores[:, :1], tf.int32), axis=1)

        self._full_ranks = full_ranks
        self._sampled_ranks = sampled_ranks

    def ranks(self, arrays, protocol: str) -> np.ndarray:
        """0-based rank of each user's answer under `protocol` (`full`/`sampled`):
        float64, `inf` for an answer the history rule makes a miss.

        Args:
            arrays: `EvalArrays` of a split, or its chunks: an iterable of
                `EvalArrays` (`DataSource.eval_chunks`), ranked in turn, their
                ranks concatenated. Either gives the same ranks.
            protocol: `full` or `sampled`.
        """
        if protocol not in PROTOCOLS:
            raise ValueError(f"`protocol` must be one of {PROTOCOLS}. Received: {protocol!r}")
        chunks = [arrays] if hasattr(arrays, "answers") else arrays
        out = [r for chunk in chunks for r in self._chunk_ranks(chunk, protocol)]
        return np.concatenate(out) if out else np.zeros(0, np.float64)

    def _chunk_ranks(self, arrays: EvalArrays, protocol: str) -> list:
        """The ranks of one chunk's users, a batch at a time."""
        if protocol == "sampled" and arrays.negatives is None:
            raise ValueError("the sampled protocol needs negatives; none were read or generated")
        out = []
        for lo in range(0, len(arrays.answers), self.batch_size):
            hi = lo + self.batch_size
            x = tf.constant(arrays.input_ids[lo:hi])
            ans = tf.constant(arrays.answers[lo:hi], tf.int32)
            if protocol == "full":
                hist = arrays.history[lo:hi]
                width = max(1, int((hist > 0).sum(axis=1).max()))
                r = self._full_ranks(x, ans, tf.constant(hist[:, -width:], tf.int32))
            else:
                cand = np.concatenate([arrays.answers[lo:hi, None],
                                       arrays.negatives[lo:hi]], axis=1).astype(np.int32)
                r = self._sampled_ranks(x, tf.constant(cand))
            out.append(r.numpy().astype(np.float64))
        return out

    def evaluate(self, arrays, protocol: str) -> dict:
        """Metrics of `protocol` on one split (`EvalArrays`, or its chunks: see `ranks`)."""
        ranks = self.ranks(arrays, protocol)
        if protocol == "full":
            return metrics_lib.full_ranking_metrics(ranks)
        return metrics_lib.sampled_metrics(ranks)
