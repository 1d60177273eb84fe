"""The next-item (fine-tuning) model on a pretrained `SequenceEncoder`."""

from __future__ import annotations

import keras
import tensorflow as tf

from s3rec_tf import losses, runtime
from s3rec_tf.config import FINETUNE_LOSSES, FinetuneConfig
from s3rec_tf.data.inputs import proposal_weights
from s3rec_tf.models.kernels import DEFAULT_LENGTH_BUCKETS, encode_bucketed, encode_positions
from s3rec_tf.models.layers import SequenceEncoder, gather_rows
from s3rec_tf.models import ranking
from s3rec_tf.models.fitting import DatasetFitMixin
from s3rec_tf.models.ranking_metrics import AnswerRankMetric

LOSSES = FINETUNE_LOSSES
_DEFAULTS = FinetuneConfig()

#: Recommendations per history of `NextItemModel.predict` (serving's `default_k` too).
DEFAULT_PREDICT_K = 10


@keras.saving.register_keras_serializable(package="s3rec_tf")
class NextItemModel(DatasetFitMixin, keras.Model):
    """SASRec-style next-item prediction with causal attention.

    Scores are dot products of the last position's output with the item
    embedding table (shared with the input embedding), as in the original.

    Args:
        encoder: `SequenceEncoder`, usually pretrained by `S3RecPretrainer`.
        loss: str. `"bce"`: the paper's loss, binary cross-entropy with one
            random negative per position (batches must carry `target_neg`).
            `"ce"`: full softmax cross-entropy over all items (an improvement
            beyond the paper). `"sampled-ce"`: softmax over the target and
            sampled negatives with log-Q correction
            (`losses.next_item_sampled_ce_loss`; batches must carry
            `sampled_neg` unless only in-batch negatives are used). Defaults
            to `"bce"`.
        length_buckets: tuple of ints | None. Encode the batch's items
            without their padding, attention in groups of similar length
            (exact; see `kernels.encode_bucketed`). `None` encodes the padded
            batch as one block. Defaults to
            `kernels.DEFAULT_LENGTH_BUCKETS`.
        sampled_negatives: int. `sampled-ce`: negatives per sequence in the
            batches' `sampled_neg` (0: in-batch negatives only).
        proposal: str. `sampled-ce`: the distribution `sampled_neg` was drawn
            from (`"uniform"` or `"popularity"`, see
            `s3rec_tf.data.inputs.proposal_weights`).
        in_batch_negatives: bool. `sampled-ce`: the targets of the batch's
            other positions are negatives too.
        item_counts: `[item_size]` int counts of each item as a training
            target (`s3rec_tf.data.inputs.target_counts`). Needed to train
            with `sampled-ce` (the log-Q correction); not saved with the model.
        batch_shards: int | None. `bce` and `ce`: encode each training batch
            in this many parts that run side by side (see
            `kernels.encode_positions`); the loss is the same, to float
            rounding. `None`: the process's setting,
            `s3rec_tf.runtime.batch_shards()` (2 for `bce` under the command
            line's 2-core CPU settings; 1 for `ce`, which keeps TensorFlow's
            threading). Defaults to `None`.
        predict_k: int. Items `predict` recommends per history. Defaults to
            `DEFAULT_PREDICT_K` (10).

    Batches are dicts of int `[batch, seq_len]` tensors: `input_ids`,
    `target_pos` (the next item per position, 0 = no target) and, for `bce`,
    `target_neg`.
    """

    def __init__(self, encoder: SequenceEncoder, loss: str = "bce",
                 length_buckets=DEFAULT_LENGTH_BUCKETS,
                 sampled_negatives: int = _DEFAULTS.sampled_negatives,
                 proposal: str = _DEFAULTS.proposal,
                 in_batch_negatives: bool = _DEFAULTS.in_batch_negatives,
                 item_counts=None, batch_shards: int | None = None,
                 predict_k: int = DEFAULT_PREDICT_K, **kwargs):
        super().__init__(**kwargs)
        if int(predict_k) < 1:
            raise ValueError(f"`predict_k` must be >= 1. Received: predict_k={predict_k!r}")
        self.predict_k = int(predict_k)
        if batch_shards is not None and int(batch_shards) < 1:
            raise ValueError(f"`batch_shards` must be >= 1 or None. Received: {batch_shards!r}")
        self.batch_shards = None if batch_shards is None else int(batch_shards)
        self.length_buckets = tuple(length_buckets) if length_buckets else None
        if loss not in LOSSES:
            raise ValueError(f"`loss` must be one of {LOSSES}. Received: loss={loss!r}")
        self.encoder = encoder
        self.loss_name = loss
        self.sampled_negatives = int(sampled_negatives)
        self.proposal = proposal
        self.in_batch_negatives = bool(in_batch_negatives)
        self._log_proposal = self._log_targets = None
        if item_counts is not None:
            counts = tf.constant(item_counts, tf.float64)
            weights = tf.constant(proposal_weights(proposal, item_counts), tf.float64)
            # log q_j and log p_j; -inf for items never drawn (never gathered)
            self._log_proposal = tf.cast(tf.math.log(weights / tf.reduce_sum(weights)),
                                         tf.float32)
            self._log_targets = tf.cast(tf.math.log(counts / tf.reduce_sum(counts)), tf.float32)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        # not tracked as the model's state: model files and checkpoints keep their layout
        object.__setattr__(self, "_ranking_metrics", [])
        self.history_rule = ranking.HISTORY_RULES[0]
        self.encoder.build()
        self.built = True

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                history_rule: str = ranking.HISTORY_RULES[0], **kwargs):
        """Keras `compile`; `metrics` are ranking metrics of validation batches.

        The training loss is the model's own (the constructor's `loss`).
        `metrics` (e.g. `s3rec_tf.models.ranking_metrics.ranking_metrics()`,
        or keras-rs ranking metrics) are updated by `test_step` on ranking
        batches (`s3rec_tf.data.ranking_inputs.ranking_dataset`);
        `fit(validation_data=...)` logs them as `val_<name>`.

        Args:
            history_rule: str. How full ranking treats the user's history
                (`s3rec_tf.models.ranking.answer_ranks`), one of
                `HISTORY_RULES`. Defaults to `"remove"`.
        """
        self.history_rule = ranking.check_history_rule(history_rule)
        object.__setattr__(self, "_ranking_metrics", list(metrics or []))
        super().compile(optimizer=optimizer, loss=loss, loss_weights=loss_weights, **kwargs)

    def get_compile_config(self):
        config = super().get_compile_config()
        if config:
            config["history_rule"] = self.history_rule
            if self._ranking_metrics:
                config["metrics"] = [keras.saving.serialize_keras_object(m)
                                     for m in self._ranking_metrics]
        return config

    def compile_from_config(self, config):
        """Compiles as `get_compile_config` recorded (`keras.models.load_model`)."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    @property
    def metrics(self):
        return [self.loss_tracker, *self._ranking_metrics]

    @property
    def finetuned_variables(self):
        """The variables next-item training updates.

        Every trainable variable but the encoder's attribute embedding: only
        the pretraining heads (AAP, MAP) read it, so it gets no gradient here
        and is not trained. It stays a trainable weight of the shared
        encoder, so model files, `_resume/` checkpoints and the optimizer's
        slots keep their layout (`train_step` builds the optimizer over all
        trainable variables).
        """
        attribute_table = self.encoder.attribute_table
        return [v for v in self.trainable_variables if v is not attribute_table]

    def call(self, input_ids, training=None, last_only=False):
        """Causal encoding `[batch, seq_len]` -> `[batch, seq_len, hidden]`.

        `last_only`: only the last position, `[batch, 1, hidden]`; the last
        block then computes that position alone (same values, less work).
        """
        if self.length_buckets:
            return encode_bucketed(self.encoder, input_ids, True, training, self.length_buckets,
                                   last_only=last_only)
        return self.encoder(input_ids, causal=True, training=training, last_only=last_only)

    def last_output(self, input_ids, training=None):
        """The last position's output, the query of the next item: `[batch, hidden]`."""
        return self(input_ids, training=training, last_only=True)[:, -1]

    def score_last(self, input_ids, training=None):
        """Scores of every item id for the next item: `[batch, item_size]`.

        Columns 0 (padding) and `mask_id` are raw dot products; rankers
        exclude them (`s3rec_tf.models.ranking.excluded_items`).
        """
        return tf.matmul(self.last_output(input_ids, training=training),
                         self.encoder.item_table, transpose_b=True)

    def predict_step(self, data):
        """Top-k recommendations: `model.predict(histories)`.

        Each history is ranked over the whole catalogue under the history
        rule `remove`: the history's own items, padding and the mask id are
        never recommended (`s3rec_tf.models.ranking.excluded_items`), as in
        serving's `serving_default`.

        Args:
            data: int `[batch, length]` item ids (`1..num_items`, oldest
                first, left-padded with 0, `length <= max_length`), or a
                dict with them as `input_ids` (a fine-tuning or validation
                batch).

        Returns:
            dict: `item_ids` int32 `[batch, k]` (best first) and `scores`
            float32 `[batch, k]`, `k = min(predict_k, num_items)`. Where
            fewer than `k` items are eligible, the rest of the row has id 0
            (padding, never an item) and score `-inf`.
        """
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        if isinstance(x, dict):
            x = x["input_ids"]
        input_ids = tf.cast(x, tf.int32)
        scores = self.score_last(input_ids, training=False)
        excluded = ranking.excluded_items(self.encoder.num_items, input_ids)
        scores = tf.where(excluded, tf.constant(float("-inf"), scores.dtype), scores)
        top_scores, top_ids = tf.math.top_k(scores, min(self.predict_k, self.encoder.num_items))
        eligible = top_scores > float("-inf")
        return {"item_ids": tf.where(eligible, top_ids, 0), "scores": top_scores}

    def compute_loss_value(self, batch, training=None):
        input_ids = tf.cast(batch["input_ids"], tf.int32)
        target_pos = tf.cast(batch["target_pos"], tf.int32)
        table = self.encoder.item_table
        if self.loss_name == "sampled-ce":  # its negatives' scores need the padded output
            out = self(input_ids, training=training)
            out_rows = tf.reshape(out, [-1, self.encoder.hidden_size])
            per_position = lambda values: tf.reshape(values, [-1])  # noqa: E731
        else:
            shards = self.batch_shards or runtime.batch_shards()
            out_rows, per_position = encode_positions(self.encoder, input_ids, True, training,
                                                      self.length_buckets, shards)
        # every loss reads only the positions with a target (the rest is padding)
        flat_targets = per_position(target_pos)
        rows = tf.where(flat_targets > 0)[:, 0]
        h = tf.gather(out_rows, rows)
        targets = tf.gather(flat_targets, rows)
        if self.loss_name == "bce":
            negatives = tf.gather(per_position(tf.cast(batch["target_neg"], tf.int32)), rows)
            pos_logits = tf.reduce_sum(h * gather_rows(table, targets), -1)
            neg_logits = tf.reduce_sum(h * gather_rows(table, negatives), -1)
            return losses.next_item_bce_loss(pos_logits, neg_logits, tf.ones_like(pos_logits))
        if self.loss_name == "sampled-ce":
            return self._sampled_ce(batch, out, h, rows, targets)
        # the softmax over the items alone: padding 0 and the mask id are left out
        columns = ranking.item_columns(self.encoder.num_items)
        return losses.next_item_ce_loss(h, table[columns], targets - columns.start)

    def _sampled_ce(self, batch, out, h, rows, targets):
        """`sampled-ce` on the counted positions: `h` `[n, hidden]`, `targets` `[n]`.

        Negatives of a position: its sequence's `sampled_neg` and, with
        in-batch negatives, the targets of all counted positions of the
        batch (as distinct items, each logit raised by the log of its count:
        the same sum as one column per position). Each negative's logit is
        lowered by the log of its expected count among the negatives,
        `S q_j + n p_j` (S sampled per sequence from the proposal q, n
        in-batch targets from the target frequencies p).
        """
        if self._log_proposal is None:
            raise ValueError("the `sampled-ce` loss needs `item_counts` (the training "
                             "targets' frequencies) for its log-Q correction")
        table = self.encoder.item_table
        pos_logits = tf.reduce_sum(h * gather_rows(table, targets), -1)
        n = tf.cast(tf.shape(targets)[0], tf.float32)
        expected = tf.zeros_like(self._log_proposal)
        if self.sampled_negatives:
            expected += self.sampled_negatives * tf.exp(self._log_proposal)
        if self.in_batch_negatives:
            expected += n * tf.exp(self._log_targets)
        log_expected = tf.math.log(expected)
        neg_logits, neg_ids, neg_log_expected = [], [], []
        if self.sampled_negatives:
            sampled = tf.cast(batch["sampled_neg"], tf.int32)         # [batch, S]
            scores = tf.einsum("blh,bsh->bls", out, gather_rows(table, sampled))
            scores = tf.reshape(scores, [-1, self.sampled_negatives])
            seq = rows // tf.cast(tf.shape(out)[1], rows.dtype)
            ids = tf.gather(sampled, seq)                               # [n, S]
            neg_logits.append(tf.gather(scores, rows))
            neg_ids.append(ids)
            neg_log_expected.append(tf.gather(log_expected, ids))
        if self.in_batch_negatives:
            items, _, counts = tf.unique_with_counts(targets)
            logits = tf.matmul(h, gather_rows(table, items), transpose_b=True)
            neg_logits.append(logits)
            neg_ids.append(tf.broadcast_to(items[None], tf.shape(logits)))
            neg_log_expected.append(tf.broadcast_to(
                (tf.gather(log_expected, items)
                 - tf.math.log(tf.cast(counts, tf.float32)))[None], tf.shape(logits)))
        ids = tf.concat(neg_ids, 1)
        return losses.next_item_sampled_ce_loss(
            pos_logits, tf.concat(neg_logits, 1), tf.concat(neg_log_expected, 1),
            tf.not_equal(ids, targets[:, None]))

    @staticmethod
    def _replica_share(loss, batch):
        """This replica's part of the global batch's mean loss.

        Under `tf.distribute` the optimizer sums the replicas' gradients, and
        `loss` is the mean over this replica's target positions: weighted by
        its share of all replicas' positions, the sum is the gradient of the
        global batch's mean, as on one device. One replica: `loss` itself.
        """
        if tf.distribute.get_strategy().num_replicas_in_sync == 1:
            return loss
        count = tf.reduce_sum(tf.cast(tf.cast(batch["target_pos"], tf.int32) > 0, loss.dtype))
        total = tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.SUM, count)
        return loss * count / tf.maximum(total, 1.0)

    def train_step(self, data):
        batch = data[0] if isinstance(data, tuple) else data
        with tf.GradientTape() as tape:
            loss = self.compute_loss_value(batch, training=True)
            objective = self._replica_share(loss, batch)
        if not self.optimizer.built:  # slots for all trainable variables, as checkpoints hold
            self.optimizer.build(self.trainable_variables)
        variables = self.finetuned_variables
        self.optimizer.apply(tape.gradient(objective, variables), variables)
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    def ranking_lists(self, batch):
        """`(y_true, y_pred)` of a ranking batch, in keras-rs's list convention.

        Args:
            batch: a batch of `s3rec_tf.data.ranking_inputs.ranking_dataset`.
                Full ranking (`answers`, `history`): the lists are the item
                table's columns, `[batch, item_size]`; padding and the mask
                id are left out, and the input history under the history
                rule `remove` (`keep` ranks it; `original` has no list form
                and is refused). Under `remove` an answer in its own
                history leaves its list without an answer: keras-rs's
                metrics skip such a list, where `RankingEvaluator` counts a
                miss. Sampled (`candidates`): the answer and its negatives,
                `[batch, 100]`.

        Returns:
            float32 `y_true` (1 at the answer, 0 at the other eligible ids,
            -1 at ids left out) and float32 `y_pred` (scores), same shape.
        """
        input_ids = tf.cast(batch["input_ids"], tf.int32)
        if "candidates" in batch:
            candidates = tf.cast(batch["candidates"], tf.int32)
            query = self.last_output(input_ids, training=False)
            scores = tf.einsum("bh,bch->bc", query,
                               gather_rows(self.encoder.item_table, candidates))
            return tf.one_hot(tf.zeros_like(candidates[:, 0]), tf.shape(candidates)[1]), scores
        if self.history_rule == "original":
            raise ValueError("the history rule 'original' ranks ties at drawn places: it has "
                             "no list form; use the s3rec_tf ranking metrics")
        scores = self.score_last(input_ids, training=False)
        answer = tf.one_hot(tf.cast(batch["answers"], tf.int32), tf.shape(scores)[1])
        excluded = ranking.excluded_items(self.encoder.num_items, batch["history"],
                                          self.history_rule == "remove")
        return tf.where(excluded, -1.0, answer), scores

    def answer_ranks(self, batch):
        """0-based rank of each answer of a ranking batch, float64 `[batch]`.

        As `s3rec_tf.evaluation.RankingEvaluator` ranks: full ranking by
        `ranking.answer_ranks` under `history_rule` (`inf` for a miss; no
        `[batch, item_size]` list is built), sampled by counting the
        negatives that score strictly higher.
        """
        input_ids = tf.cast(batch["input_ids"], tf.int32)
        if "candidates" in batch:
            query = self.last_output(input_ids, training=False)
            scores = tf.einsum("bh,bch->bc", query, gather_rows(
                self.encoder.item_table, tf.cast(batch["candidates"], tf.int32)))
            return tf.cast(tf.reduce_sum(tf.cast(scores[:, 1:] > scores[:, :1], tf.int32),
                                         axis=1), tf.float64)
        return ranking.answer_ranks(
            self.score_last(input_ids, training=False), batch["answers"],
            self.encoder.num_items, batch["history"], self.history_rule)

    def test_step(self, data):
        batch = data[0] if isinstance(data, tuple) else data
        if "answers" in batch or "candidates" in batch:  # a ranking batch
            if all(isinstance(m, AnswerRankMetric) for m in self._ranking_metrics):
                ranks = self.answer_ranks(batch)
                for metric in self._ranking_metrics:
                    metric.update_from_ranks(ranks)
            else:  # metrics of lists (keras-rs)
                y_true, y_pred = self.ranking_lists(batch)
                for metric in self._ranking_metrics:
                    metric.update_state(y_true, y_pred)
            return {m.name: m.result() for m in self._ranking_metrics}
        self.loss_tracker.update_state(self.compute_loss_value(batch, training=False))
        return {"loss": self.loss_tracker.result()}

    def get_config(self):
        return {"encoder": keras.layers.serialize(self.encoder), "loss": self.loss_name,
                "length_buckets": list(self.length_buckets) if self.length_buckets else None,
                "sampled_negatives": self.sampled_negatives, "proposal": self.proposal,
                "in_batch_negatives": self.in_batch_negatives,
                "batch_shards": self.batch_shards, "predict_k": self.predict_k,
                "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(keras.layers.deserialize(config["encoder"]), loss=config.get("loss", "bce"),
                   length_buckets=config.get("length_buckets", DEFAULT_LENGTH_BUCKETS),
                   sampled_negatives=config.get("sampled_negatives",
                                                _DEFAULTS.sampled_negatives),
                   proposal=config.get("proposal", _DEFAULTS.proposal),
                   in_batch_negatives=config.get("in_batch_negatives",
                                                 _DEFAULTS.in_batch_negatives),
                   batch_shards=config.get("batch_shards"),
                   predict_k=config.get("predict_k", DEFAULT_PREDICT_K), name=config.get("name"))
