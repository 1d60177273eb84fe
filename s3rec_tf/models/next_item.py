"""The next-item (fine-tuning) model on a pretrained `SequenceEncoder`."""

from __future__ import annotations

import keras
import tensorflow as tf

from s3rec_tf import losses
from s3rec_tf.layers import DEFAULT_LENGTH_BUCKETS, SequenceEncoder, encode_bucketed

LOSSES = ("bce", "ce")


@keras.saving.register_keras_serializable(package="s3rec_tf")
class NextItemModel(keras.Model):
    """SASRec-style next-item prediction with causal attention.

    Scores are dot products of the last position's output with the item
    embedding table (shared with the input embedding), as in the original.

    Args:
        encoder: `SequenceEncoder`, usually pretrained by `S3RecPretrainer`.
        loss: str. `"bce"`: the paper's loss, binary cross-entropy with one
            random negative per position (batches must carry `target_neg`).
            `"ce"`: full softmax cross-entropy over all items (an improvement
            beyond the paper). Defaults to `"bce"`.
        length_buckets: tuple of ints | None. Encode rows in groups of
            similar length (exact; see `layers.encode_bucketed`). `None`
            encodes each batch as one block. Defaults to
            `layers.DEFAULT_LENGTH_BUCKETS`.

    Batches are dicts of int `[batch, seq_len]` tensors: `input_ids`,
    `target_pos` (the next item per position, 0 = no target) and, for `bce`,
    `target_neg`.
    """

    def __init__(self, encoder: SequenceEncoder, loss: str = "bce",
                 length_buckets=DEFAULT_LENGTH_BUCKETS, **kwargs):
        super().__init__(**kwargs)
        self.length_buckets = tuple(length_buckets) if length_buckets else None
        if loss not in LOSSES:
            raise ValueError(f"`loss` must be one of {LOSSES}. Received: loss={loss!r}")
        self.encoder = encoder
        self.loss_name = loss
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.encoder.build()
        self.built = True

    @property
    def metrics(self):
        return [self.loss_tracker]

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

    def call(self, input_ids, training=None):
        """Causal encoding `[batch, seq_len]` -> `[batch, seq_len, hidden]`."""
        if self.length_buckets:
            return encode_bucketed(self.encoder, input_ids, True, training, self.length_buckets)
        return self.encoder(input_ids, causal=True, training=training)

    def item_logit_bias(self):
        """`[item_size]` bias that removes padding 0 and the mask id from rankings."""
        size = self.encoder.item_size
        non_item = tf.one_hot(0, size) + tf.one_hot(self.encoder.mask_id, size)
        return non_item * -1e9

    def score_last(self, input_ids, training=None):
        """Scores of every item id for the next item: `[batch, item_size]`.

        Columns 0 (padding) and `mask_id` are raw dot products; rankers
        exclude them (see `s3rec_tf.evaluation`).
        """
        out = self(input_ids, training=training)[:, -1]
        return tf.matmul(out, self.encoder.item_table, transpose_b=True)

    def compute_loss_value(self, batch, training=None):
        input_ids = tf.cast(batch["input_ids"], tf.int32)
        target_pos = tf.cast(batch["target_pos"], tf.int32)
        out = self(input_ids, training=training)
        table = self.encoder.item_table
        if self.loss_name == "bce":
            pos_logits = tf.reduce_sum(out * tf.gather(table, target_pos), -1)
            neg_logits = tf.reduce_sum(
                out * tf.gather(table, tf.cast(batch["target_neg"], tf.int32)), -1)
            return losses.next_item_bce_loss(pos_logits, neg_logits, target_pos > 0)
        flat_targets = tf.reshape(target_pos, [-1])
        rows = tf.where(flat_targets > 0)[:, 0]
        h = tf.gather(tf.reshape(out, [-1, self.encoder.hidden_size]), rows)
        logits = tf.matmul(h, table, transpose_b=True) + self.item_logit_bias()
        return losses.next_item_ce_loss(logits, tf.gather(flat_targets, rows))

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

    def test_step(self, data):
        batch = data[0] if isinstance(data, tuple) else data
        self.loss_tracker.update_state(self.compute_loss_value(batch, training=False))
        return {"loss": self.loss_tracker.result()}

    def get_config(self):
        return {"encoder": keras.layers.serialize(self.encoder), "loss": self.loss_name,
                "length_buckets": list(self.length_buckets) if self.length_buckets else None,
                "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(keras.layers.deserialize(config["encoder"]), loss=config.get("loss", "bce"),
                   length_buckets=config.get("length_buckets", DEFAULT_LENGTH_BUCKETS),
                   name=config.get("name"))
