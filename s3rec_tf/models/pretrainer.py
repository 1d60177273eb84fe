"""The S3-Rec pretraining model: four self-supervised objectives on one encoder.

References:
    Zhou et al., S3-Rec, CIKM 2020, https://arxiv.org/abs/2008.07873
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from s3rec_tf import ids, losses
from s3rec_tf.config import PretrainConfig
from s3rec_tf.data.inputs import PRETRAIN_KEYS  # noqa: F401  (the batch keys, re-exported)
from s3rec_tf.models.kernels import DEFAULT_LENGTH_BUCKETS, encode_bucketed, encode_positions
from s3rec_tf.models.layers import SequenceEncoder, gather_rows
from s3rec_tf.models import ranking
from s3rec_tf.models.fitting import DatasetFitMixin

LOSS_NAMES = ("aap", "mip", "map", "sp")
#: The paper's weights, from `s3rec_tf.config.PretrainConfig`.
DEFAULT_LOSS_WEIGHTS = PretrainConfig().loss_weights


def _dense(hidden_size, initializer_range, name):
    """A head's projection: float32 under a mixed-precision policy too, like its losses."""
    return keras.layers.Dense(
        hidden_size, kernel_initializer=keras.initializers.RandomNormal(stddev=initializer_range),
        bias_initializer="zeros", name=name, dtype="float32")


@keras.saving.register_keras_serializable(package="s3rec_tf")
class S3RecPretrainer(DatasetFitMixin, keras.Model):
    """Pretrains a `SequenceEncoder` with AAP, MIP, MAP and SP.

    `fit` consumes batches produced by `s3rec_tf.data.pretrain_dataset`: a dict
    of int tensors `[batch, seq_len]` (`masked_item_sequence`, `pos_items`,
    `neg_items`, `masked_segment_sequence`, `pos_segment`, `neg_segment`).
    Attribute targets are gathered from the item->attribute table given at
    construction, never passed as dense multi-hot tensors.

    The optimised loss is the weighted sum of the four losses summed over the
    batch, as in the original; the reported `aap_loss`, `mip_loss`,
    `map_loss`, `sp_loss` and `loss` are those sums divided by the batch size
    (per-sample values).

    Args:
        encoder: `SequenceEncoder`. The backbone to pretrain.
        item_attributes: int array `[item_size, max_attrs]`: attribute ids of
            each item, padded with 0 (see `s3rec_tf.data.attribute_table`).
        loss_weights: dict | None. Weights of `aap`, `mip`, `map`, `sp`.
            Defaults to the paper's `{aap: 0.2, mip: 1.0, map: 1.0, sp: 0.5}`.
        length_buckets: tuple of ints | None. Encode the batch's items
            without their padding, attention in groups of similar length
            (see `kernels.encode_bucketed`): exact, and much less work on
            short sequences. `None` encodes the padded batch as one block.
            Defaults to `kernels.DEFAULT_LENGTH_BUCKETS`.
        attribute_bce: str. The BCE of AAP and MAP: `"original"` (the
            original's `BCELoss` on probabilities, whose gradient fades for
            saturated logits) or `"softplus"` (BCE on logits). See
            `s3rec_tf.losses`. Defaults to `"original"`.
        segment_loss: str. The SP loss: `"original"` (the authors') or
            `"logit-gap"` (`softplus(neg - pos)`, no saturation). See
            `s3rec_tf.losses.segment_loss`. Defaults to `"original"`.
        mip_loss: str. The MIP loss: `"original"` (the authors', against one
            random item) or `"ce"` (softmax over every item, as fine-tuning's
            `ce`). See `s3rec_tf.losses.masked_item_ce_loss`. Defaults to
            `"original"`.

    Example:
    >>> enc = SequenceEncoder(num_items=20, num_attributes=5, max_length=8)
    >>> model = S3RecPretrainer(enc, item_attributes=np.zeros((22, 1), "int32"))
    >>> model.compile(optimizer=keras.optimizers.Adam(1e-3, epsilon=1e-8))
    """

    def __init__(self, encoder: SequenceEncoder, item_attributes, loss_weights=None,
                 length_buckets=DEFAULT_LENGTH_BUCKETS,
                 attribute_bce: str = losses.ATTRIBUTE_BCE_MODES[0],
                 segment_loss: str = losses.SEGMENT_LOSS_MODES[0],
                 mip_loss: str = losses.MIP_LOSS_MODES[0], **kwargs):
        super().__init__(**kwargs)
        for option, mode in (("attribute_bce", attribute_bce), ("segment_loss", segment_loss),
                             ("mip_loss", mip_loss)):
            losses.check_mode(option, mode)
        self.attribute_bce = attribute_bce
        self.segment_loss = segment_loss
        self.mip_loss = mip_loss
        self.encoder = encoder
        self.length_buckets = tuple(length_buckets) if length_buckets else None
        item_attributes = np.asarray(item_attributes, dtype="int32")
        if item_attributes.ndim != 2 or item_attributes.shape[0] != encoder.item_size:
            raise ValueError(
                "`item_attributes` must have shape [item_size, max_attrs] with item_size="
                f"{encoder.item_size}. Received: shape={item_attributes.shape}")
        if item_attributes.size and item_attributes.max() >= encoder.attribute_size:
            raise ValueError(
                f"`item_attributes` holds attribute id {int(item_attributes.max())}, but the "
                f"encoder has attribute_size={encoder.attribute_size}")
        weights = dict(DEFAULT_LOSS_WEIGHTS)
        for name, value in (loss_weights or {}).items():
            if name not in weights:
                raise ValueError(f"Unknown loss weight {name!r}; expected one of {LOSS_NAMES}")
            weights[name] = float(value)
        self.loss_weights_ = weights
        self.item_attributes = self.add_weight(
            shape=item_attributes.shape, dtype="int32", trainable=False,
            initializer=keras.initializers.Constant(item_attributes), name="item_attributes")
        h, r = encoder.hidden_size, encoder.initializer_range
        self.aap_dense = _dense(h, r, "aap_dense")
        self.mip_dense = _dense(h, r, "mip_dense")
        self.map_dense = _dense(h, r, "map_dense")
        self.sp_dense = _dense(h, r, "sp_dense")
        self.trackers = {name: keras.metrics.Mean(name=f"{name}_loss") for name in LOSS_NAMES}
        self.total_tracker = keras.metrics.Mean(name="loss")
        self.encoder.build()
        for dense in (self.aap_dense, self.mip_dense, self.map_dense, self.sp_dense):
            dense.build((None, h))
        self.built = True

    @property
    def metrics(self):
        return [self.total_tracker, *self.trackers.values()]

    def call(self, inputs, training=None):
        """Bidirectional encoding of `inputs` `[batch, seq_len]` -> `[batch, seq_len, hidden]`."""
        return self.encoder(inputs, causal=False, training=training)

    def segment_logits(self, batch, training=None):
        """The SP logits of the true and the random segment, each `[batch]`.

        The three segment passes of the original (masked segment sequence,
        positive and negative segment) run as one batched pass that computes
        only the last position in the last block, which is all SP reads.
        The logit is `sp_dense(context) . segment` at the last position;
        its sigmoid is the original's `segment_prediction` score.

        Returns:
            `(pos_logit, neg_logit)`.
        """
        hidden = self.encoder.hidden_size
        segments = tf.concat([tf.cast(batch[k], tf.int32) for k in
                              ("masked_segment_sequence", "pos_segment", "neg_segment")], 0)
        if self.length_buckets:
            segment_last = encode_bucketed(self.encoder, segments, False, training,
                                           self.length_buckets, last_only=True)[:, -1]
        else:
            segment_last = self.encoder(segments, causal=False, training=training,
                                        last_only=True)[:, -1]
        segment_last = tf.reshape(segment_last, [-1, hidden])
        context, pos_seg, neg_seg = tf.split(segment_last, 3, axis=0)
        sp_h = self.sp_dense(context)
        return tf.reduce_sum(sp_h * pos_seg, -1), tf.reduce_sum(sp_h * neg_seg, -1)

    def compute_losses(self, batch, training=None):
        """The four losses, each summed over the batch as in the original.

        The masked item sequence and the segment passes (see
        `segment_logits`) are encoded without their padding
        (`kernels.TokenLayout`); the losses read the masked sequence's
        outputs item by item. Heads are applied only at the positions whose
        loss counts.

        Returns:
            dict with `aap`, `mip`, `map`, `sp` scalar sums.
        """
        masked = tf.cast(batch["masked_item_sequence"], tf.int32)
        sequence_output, per_position = encode_positions(self.encoder, masked, False, training,
                                                         self.length_buckets)

        flat_masked = per_position(masked)
        flat_pos = per_position(tf.cast(batch["pos_items"], tf.int32))
        flat_neg = per_position(tf.cast(batch["neg_items"], tf.int32))
        is_masked = tf.equal(flat_masked, self.encoder.mask_id)
        is_item = tf.logical_and(tf.not_equal(flat_masked, ids.PADDING_ID),
                                 tf.logical_not(is_masked))
        attribute_table = self.encoder.attribute_table
        item_table = self.encoder.item_table

        # AAP: attributes of the item at every position that is neither padding nor masked.
        aap_rows = tf.where(is_item)[:, 0]
        aap_h = self.aap_dense(tf.gather(sequence_output, aap_rows))
        aap_targets = tf.gather(self.item_attributes, tf.gather(flat_pos, aap_rows))
        aap = tf.reduce_sum(losses.attribute_loss(
            tf.matmul(aap_h, attribute_table, transpose_b=True), aap_targets, self.attribute_bce))

        # MIP and MAP: at masked positions only.
        mask_rows = tf.where(is_masked)[:, 0]
        masked_h = tf.gather(sequence_output, mask_rows)
        masked_pos = tf.gather(flat_pos, mask_rows)
        mip_h = self.mip_dense(masked_h)
        if self.mip_loss == "ce":  # the softmax over the items alone, as fine-tuning's `ce`
            columns = ranking.item_columns(self.encoder.num_items)
            mip = losses.masked_item_ce_loss(mip_h, item_table[columns], masked_pos - columns.start)
        else:
            pos_logit = tf.reduce_sum(mip_h * gather_rows(item_table, masked_pos), -1)
            neg_logit = tf.reduce_sum(
                mip_h * gather_rows(item_table, tf.gather(flat_neg, mask_rows)), -1)
            mip = tf.reduce_sum(losses.pairwise_sigmoid_loss(pos_logit, neg_logit))
        map_logits = tf.matmul(self.map_dense(masked_h), attribute_table, transpose_b=True)
        map_ = tf.reduce_sum(losses.attribute_loss(
            map_logits, tf.gather(self.item_attributes, masked_pos), self.attribute_bce))

        # SP: the last position's output of the masked-segment sequence against
        # the true and a random segment.
        pos_score, neg_score = self.segment_logits(batch, training=training)
        sp = tf.reduce_sum(losses.segment_loss(pos_score, neg_score, self.segment_loss))
        return {"aap": aap, "mip": mip, "map": map_, "sp": sp}

    def _weighted(self, parts):
        return tf.add_n([self.loss_weights_[k] * parts[k] for k in LOSS_NAMES])

    def _update(self, parts, total, batch_size):
        n = tf.cast(batch_size, tf.float32)
        for name in LOSS_NAMES:
            self.trackers[name].update_state(parts[name] / n)
        self.total_tracker.update_state(total / n)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        batch = data[0] if isinstance(data, tuple) else data
        with tf.GradientTape() as tape:
            parts = self.compute_losses(batch, training=True)
            total = self._weighted(parts)
        variables = self.trainable_variables
        grads = tape.gradient(total, variables)
        self.optimizer.apply(grads, variables)
        return self._update(parts, total, tf.shape(batch["masked_item_sequence"])[0])

    def test_step(self, data):
        batch = data[0] if isinstance(data, tuple) else data
        parts = self.compute_losses(batch, training=False)
        return self._update(parts, self._weighted(parts),
                            tf.shape(batch["masked_item_sequence"])[0])

    def get_config(self):
        return {"encoder": keras.layers.serialize(self.encoder),
                "item_attributes_shape": list(self.item_attributes.shape),
                "loss_weights": dict(self.loss_weights_),
                "length_buckets": list(self.length_buckets) if self.length_buckets else None,
                "attribute_bce": self.attribute_bce,
                "segment_loss": self.segment_loss,
                "mip_loss": self.mip_loss,
                "name": self.name}

    @classmethod
    def from_config(cls, config):
        encoder = keras.layers.deserialize(config["encoder"])
        table = np.zeros(config["item_attributes_shape"], "int32")
        return cls(encoder, table, loss_weights=config.get("loss_weights"),
                   length_buckets=config.get("length_buckets", DEFAULT_LENGTH_BUCKETS),
                   attribute_bce=config.get("attribute_bce", losses.ATTRIBUTE_BCE_MODES[0]),
                   segment_loss=config.get("segment_loss", losses.SEGMENT_LOSS_MODES[0]),
                   mip_loss=config.get("mip_loss", losses.MIP_LOSS_MODES[0]),
                   name=config.get("name"))
