"""Keras 3 layers of the S3-Rec encoder.

The encoder follows the original S3-Rec code (a BERT-style post-LayerNorm
transformer): item + position embeddings, LayerNorm (eps 1e-12) and dropout,
then blocks of multi-head self-attention and a 4x GELU feed-forward network,
each followed by dropout, a residual connection and LayerNorm.

The speed kernels that run these layers without a batch's padding (packing
and length buckets) are in `s3rec_tf.models.kernels`.

References:
    - Zhou et al., S3-Rec, CIKM 2020, https://arxiv.org/abs/2008.07873
    - Kang & McAuley, SASRec, ICDM 2018, https://arxiv.org/abs/1808.09781
"""

from __future__ import annotations

import dataclasses
import math

import keras
import tensorflow as tf
from keras import ops

from s3rec_tf import ids
from s3rec_tf.config import EncoderConfig

#: The paper's encoder defaults (`s3rec_tf.config.EncoderConfig`), which the
#: constructors below take as theirs.
_PAPER = EncoderConfig()

#: Additive attention bias of padded keys in pretraining (original: -1e8).
PRETRAIN_MASK_VALUE = -1e8
#: Additive attention bias of masked keys in fine-tuning (original: -10000).
FINETUNE_MASK_VALUE = -10000.0


def _initializer(stddev: float):
    return keras.initializers.RandomNormal(stddev=stddev)


def gather_rows(table, ids):
    """`table[ids]`, reading only those rows of an embedding table.

    A Keras variable is read through its backend variable, so `tf.gather`
    becomes a `ResourceGather` of the rows instead of a read of the whole
    table followed by a gather. Once an optimizer has updated a variable
    row by row (`--optimizer lazy-adam`), TensorFlow copies the whole
    variable at each dense read; reading rows keeps a step's cost
    independent of the catalogue. Values and gradients are the same.
    """
    if isinstance(table, keras.Variable):
        table = table.value
    return tf.gather(table, ids)


#: Random bits behind each element of a dropout mask (`dropout_mask`): the
#: fewest of these that hold the rate exactly, else the most.
DROPOUT_MASK_BITS = (8, 16)


def dropout_mask(shape, rate: float, seed, dtype=tf.float32):
    """A dropout mask: `0` with probability `rate`, else `1 / (1 - rate)`.

    Each element reads 8 random bits where `rate` is a multiple of 2^-8 (the
    paper's 0.5), else 16 (four or two per 32-bit word of TensorFlow's
    stateless Philox generator): a quarter or half of the random numbers of
    a float32 uniform draw per element; the mask is made in one select. An
    element is dropped when its bits fall below `round(rate * 2^bits)`, so a
    rate that is not a multiple of 2^-16 is applied as the nearest one
    (`0.2` as 0.199997; README "Differences from the original code").

    Args:
        shape: int `[rank]` the mask's shape.
        rate: float in `[0, 1)`.
        seed: int32 `[2]` stateless seed.
        dtype: the mask's dtype.
    """
    bits = next((b for b in DROPOUT_MASK_BITS if float(rate * 2 ** b).is_integer()),
                DROPOUT_MASK_BITS[-1])
    levels, per_word = 2 ** bits, 32 // bits
    unit = tf.uint8 if bits == 8 else tf.uint16
    threshold = min(levels - 1, int(round(rate * levels)))
    size = tf.reduce_prod(shape)
    words = tf.random.stateless_uniform([(size + per_word - 1) // per_word], seed,
                                        dtype=tf.uint32, minval=None, maxval=None)
    draws = tf.reshape(tf.bitcast(words, unit), [-1])[:size]
    keep = draws >= tf.constant(threshold, unit)
    mask = tf.where(keep, tf.constant(1.0 / (1.0 - rate), dtype), tf.constant(0.0, dtype))
    return tf.reshape(mask, shape)


@keras.saving.register_keras_serializable(package="s3rec_tf")
class Dropout(keras.layers.Dropout):
    """`keras.layers.Dropout` whose masks come from `dropout_mask`.

    The same layer (rate, seed generator, `training` flag) with a cheaper
    mask: in the profiled pretraining step, Keras's dropout (a float32
    uniform draw, a comparison, a cast and two multiplies per element) took
    about a seventh of the kernel time. Masks are as random; they are not
    the masks Keras draws from the same seed.
    """

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        if self.noise_shape is not None:
            return super().call(inputs, training=training)
        seed = self.seed_generator.next()
        seed = tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)
        return inputs * dropout_mask(tf.shape(inputs), self.rate, seed, inputs.dtype)


@keras.saving.register_keras_serializable(package="s3rec_tf")
class ItemPositionEmbedding(keras.layers.Layer):
    """Item + absolute position embedding, LayerNorm and dropout.

    Positions are right-aligned as in the original code: a sequence padded on
    the left to `max_length` gives its last item position `max_length - 1`.
    A batch whose left padding was cut to `T < max_length` columns keeps the
    original position ids `max_length - T ... max_length - 1`, so cutting
    padding never changes the result at real positions.

    Args:
        item_size: int. Rows of the item table (items + padding 0 + mask id).
        max_length: int. Number of position embeddings.
        hidden_size: int. Embedding width. Defaults to `64`.
        dropout: float. Dropout rate after LayerNorm. Defaults to `0.5`.
        initializer_range: float. Std of the normal initializer.
            Defaults to `0.02`.
        layer_norm_epsilon: float. Defaults to `1e-12`.
    """

    def __init__(self, item_size: int, max_length: int, hidden_size: int = _PAPER.hidden_size,
                 dropout: float = _PAPER.dropout,
                 initializer_range: float = _PAPER.initializer_range,
                 layer_norm_epsilon: float = 1e-12, **kwargs):
        super().__init__(**kwargs)
        if item_size < 3:
            raise ValueError(f"`item_size` must be >= 3. Received: item_size={item_size}")
        if max_length < 1:
            raise ValueError(f"`max_length` must be >= 1. Received: max_length={max_length}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        self.item_size = int(item_size)
        self.max_length = int(max_length)
        self.hidden_size = int(hidden_size)
        self.dropout = float(dropout)
        self.initializer_range = float(initializer_range)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        init = _initializer(self.initializer_range)
        self.item_embedding = keras.layers.Embedding(
            self.item_size, self.hidden_size, embeddings_initializer=init,
            name="item_embedding")
        self.position_embedding = keras.layers.Embedding(
            self.max_length, self.hidden_size, embeddings_initializer=init,
            name="position_embedding")
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="embedding_layer_norm")
        self.dropout_layer = Dropout(self.dropout, name="embedding_dropout")

    def build(self, input_shape):
        self.item_embedding.build((None, None))
        self.position_embedding.build((None,))
        self.layer_norm.build((None, None, self.hidden_size))
        self.built = True

    @property
    def item_table(self):
        """The item embedding matrix, `[item_size, hidden]`."""
        return self.item_embedding.embeddings

    def call(self, item_ids, training=None, positions=None):
        """Embeds `item_ids` `[batch, seq_len]` into `[batch, seq_len, hidden]`.

        `positions`: the position id of each entry of `item_ids` (same shape),
        for items given without their padding (`s3rec_tf.models.kernels.TokenLayout`);
        by default the columns' right-aligned ids.
        """
        if positions is None:
            seq_len = ops.shape(item_ids)[1]
            positions = ops.arange(self.max_length - seq_len, self.max_length, dtype="int32")
        items = tf.cast(gather_rows(self.item_embedding.embeddings, item_ids),
                        self.item_embedding.compute_dtype)  # as `self.item_embedding(item_ids)`
        x = items + self.position_embedding(positions)
        x = self.layer_norm(x)
        return self.dropout_layer(x, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(item_size=self.item_size, max_length=self.max_length,
                      hidden_size=self.hidden_size, dropout=self.dropout,
                      initializer_range=self.initializer_range,
                      layer_norm_epsilon=self.layer_norm_epsilon)
        return config


def _dense(rows, layers):
    """`rows @ [W_1 | W_2 | ...] + [b_1 | b_2 | ...]` for Keras `Dense` layers."""
    # variables stay float32; under a mixed-precision policy they compute in the rows' dtype
    # (a cast to the same dtype is no op)
    if len(layers) == 1:
        kernel, bias = layers[0].kernel, layers[0].bias
    else:
        kernel = tf.concat([layer.kernel for layer in layers], axis=1)
        bias = tf.concat([layer.bias for layer in layers], axis=0)
    return tf.nn.bias_add(tf.matmul(rows, tf.cast(kernel, rows.dtype)), tf.cast(bias, rows.dtype))


def _layer_norm(rows, layer):
    """The original's LayerNorm over the last axis with a Keras layer's weights."""
    dtype = rows.dtype  # normalised in float32 under a mixed-precision policy too
    rows = tf.cast(rows, tf.float32)
    mean, variance = tf.nn.moments(rows, axes=[-1], keepdims=True)
    return tf.cast((rows - mean) * tf.math.rsqrt(variance + layer.epsilon) * layer.gamma
                   + layer.beta, dtype)



@keras.saving.register_keras_serializable(package="s3rec_tf")
class TransformerBlock(keras.layers.Layer):
    """The original's post-LayerNorm transformer block.

    `h = LN(x + Dropout(Dense(MHA(x))))`, then
    `y = LN(h + Dropout(Dense_2(GELU(Dense_1(h)))))` with a 4x inner width
    and the exact (erf) GELU.

    Args:
        hidden_size: int. Model width. Defaults to `64`.
        num_heads: int. Attention heads; must divide `hidden_size`.
            Defaults to `2`.
        dropout: float. Hidden dropout. Defaults to `0.5`.
        attention_dropout: float. Dropout on attention probabilities.
            Defaults to `0.5`.
        initializer_range: float. Defaults to `0.02`.
        layer_norm_epsilon: float. Defaults to `1e-12`.
    """

    def __init__(self, hidden_size: int = _PAPER.hidden_size, num_heads: int = _PAPER.num_heads,
                 dropout: float = _PAPER.dropout,
                 attention_dropout: float = _PAPER.attention_dropout,
                 initializer_range: float = _PAPER.initializer_range,
                 layer_norm_epsilon: float = 1e-12, **kwargs):
        super().__init__(**kwargs)
        if hidden_size % num_heads:
            raise ValueError(
                "`hidden_size` must be a multiple of `num_heads`. Received: "
                f"hidden_size={hidden_size}, num_heads={num_heads}")
        self.hidden_size = int(hidden_size)
        self.num_heads = int(num_heads)
        self.dropout = float(dropout)
        self.attention_dropout = float(attention_dropout)
        self.initializer_range = float(initializer_range)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.head_size = self.hidden_size // self.num_heads

        def dense(units, name):
            return keras.layers.Dense(
                units, kernel_initializer=_initializer(self.initializer_range),
                bias_initializer="zeros", name=name)

        self.query_dense = dense(self.hidden_size, "query")
        self.key_dense = dense(self.hidden_size, "key")
        self.value_dense = dense(self.hidden_size, "value")
        self.attention_output_dense = dense(self.hidden_size, "attention_output")
        self.attention_layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="attention_layer_norm")
        self.feedforward_intermediate_dense = dense(4 * self.hidden_size, "feedforward_intermediate")
        self.feedforward_output_dense = dense(self.hidden_size, "feedforward_output")
        self.feedforward_layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="feedforward_layer_norm")
        self.attention_dropout_layer = Dropout(self.attention_dropout)
        self.attention_output_dropout = Dropout(self.dropout)
        self.feedforward_dropout = Dropout(self.dropout)

    def build(self, input_shape):
        shape = (None, None, self.hidden_size)
        for layer in (self.query_dense, self.key_dense, self.value_dense,
                      self.attention_output_dense, self.feedforward_intermediate_dense):
            layer.build(shape)
        self.feedforward_output_dense.build((None, None, 4 * self.hidden_size))
        self.attention_layer_norm.build(shape)
        self.feedforward_layer_norm.build(shape)
        self.built = True

    def _split_heads(self, x, batch, length):
        """`[batch * length, hidden]` or `[batch, length, hidden]` ->
        `[batch, heads, length, head_size]`."""
        x = tf.reshape(x, (batch, length, self.num_heads, self.head_size))
        return tf.transpose(x, (0, 2, 1, 3))

    def _attend(self, q, k, v, attention_bias, training, batch, q_length, length):
        """Multi-head attention of `q` over `k`, `v`: context rows `[batch * q_length, hidden]`."""
        q = self._split_heads(q, batch, q_length)
        k = self._split_heads(k, batch, length)
        v = self._split_heads(v, batch, length)
        scores = tf.matmul(q, k, transpose_b=True) / math.sqrt(self.head_size)
        scores += tf.cast(attention_bias, scores.dtype)  # compute dtype under mixed precision
        probs = tf.nn.softmax(scores, axis=-1)
        probs = self.attention_dropout_layer(probs, training=training)
        return tf.reshape(tf.transpose(tf.matmul(probs, v), (0, 2, 1, 3)), (-1, self.hidden_size))

    def _output(self, context, query_rows, training):
        """Attention output, residual and LayerNorm, then the feed-forward half: rows."""
        h = self.attention_output_dropout(_dense(context, (self.attention_output_dense,)),
                                          training=training)
        h = _layer_norm(h + query_rows, self.attention_layer_norm)
        f = _dense(h, (self.feedforward_intermediate_dense,))
        f = 0.5 * f * (1.0 + tf.math.erf(f * (1.0 / math.sqrt(2.0))))
        f = self.feedforward_dropout(_dense(f, (self.feedforward_output_dense,)),
                                     training=training)
        return _layer_norm(f + h, self.feedforward_layer_norm)

    def call(self, x, attention_bias, training=None, last_query_only=False):
        """Applies the block.

        The dense layers hold the weights; the block applies them to the
        flattened `[batch * seq_len, hidden]` rows with plain matmuls and
        computes Q, K and V in one matmul over the concatenated kernels
        (the same arithmetic as three `Dense` calls, in far fewer ops).

        Args:
            x: `[batch, seq_len, hidden]` input.
            attention_bias: additive bias broadcastable to
                `[batch, heads, seq_len, seq_len]` (0 where a key is visible).
            last_query_only: bool. Compute only the last position's output
                (all positions still serve as keys and values).

        Returns:
            `[batch, seq_len, hidden]`, or `[batch, 1, hidden]` with
            `last_query_only`.
        """
        x = tf.convert_to_tensor(x)
        shape = tf.shape(x)
        batch, length, hidden = shape[0], shape[1], self.hidden_size
        rows = tf.reshape(x, (-1, hidden))
        if last_query_only:
            query_rows = x[:, -1]
            attention_bias = attention_bias[:, :, -1:]
            q_length = 1
            k, v = tf.split(_dense(rows, (self.key_dense, self.value_dense)), 2, axis=-1)
            q = _dense(query_rows, (self.query_dense,))
        else:
            query_rows = rows
            q_length = length
            q, k, v = tf.split(
                _dense(rows, (self.query_dense, self.key_dense, self.value_dense)), 3, axis=-1)
        context = self._attend(q, k, v, attention_bias, training, batch, q_length, length)
        y = self._output(context, query_rows, training)
        return tf.reshape(y, (batch, q_length, hidden))

    def call_tokens(self, x, layout, training=None, last_query_only=False):
        """Applies the block to a batch's items without their padding.

        Every per-position layer (the dense layers, LayerNorms, GELU,
        dropout) runs on the `[tokens, hidden]` rows of `layout` at once;
        only attention puts each bucket's rows back on its `[rows, width]`
        grid. Padded keys are masked, so the result at every token is the
        one `call` gives on the padded batch, up to float rounding.

        Args:
            x: `[tokens, hidden]`: the rows of `layout.token_ids`, in its order.
            layout: `TokenLayout`.
            last_query_only: bool. Compute only each row's last token
                (see `call`).

        Returns:
            `[tokens, hidden]`, or `[rows, hidden]` (bucket by bucket, as
            `layout.rows_to_batch` takes them) with `last_query_only`.
        """
        hidden = self.hidden_size
        if last_query_only:
            query_rows = tf.gather(x, layout.last_tokens)
            projected = _dense(x, (self.key_dense, self.value_dense))
            queries = tf.split(_dense(query_rows, (self.query_dense,)), layout.row_counts,
                               num=layout.num_buckets)
        else:
            query_rows = x
            projected = _dense(x, (self.query_dense, self.key_dense, self.value_dense))
        contexts = []
        for k, (bucket, chunk) in enumerate(zip(
                layout.buckets, tf.split(projected, layout.token_counts, num=layout.num_buckets))):
            grid = bucket.to_grid(chunk)
            if last_query_only:
                keys, values = tf.split(grid, 2, axis=-1)
                contexts.append(self._attend(queries[k], keys, values, bucket.bias[:, :, -1:],
                                             training, bucket.rows, 1, bucket.width))
            else:
                q, keys, values = tf.split(grid, 3, axis=-1)
                context = self._attend(q, keys, values, bucket.bias, training, bucket.rows,
                                       bucket.width, bucket.width)
                contexts.append(bucket.from_grid(
                    tf.reshape(context, (bucket.rows, bucket.width, hidden))))
        return self._output(tf.concat(contexts, 0), query_rows, training)

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, num_heads=self.num_heads,
                      dropout=self.dropout, attention_dropout=self.attention_dropout,
                      initializer_range=self.initializer_range,
                      layer_norm_epsilon=self.layer_norm_epsilon)
        return config


def padding_attention_bias(item_ids, mask_value: float = PRETRAIN_MASK_VALUE):
    """Bidirectional bias `[batch, 1, 1, seq_len]`: `mask_value` on padded keys."""
    pad = ops.cast(ops.equal(item_ids, ids.PADDING_ID), "float32")
    return (pad * mask_value)[:, None, None, :]


def causal_attention_bias(item_ids, mask_value: float = FINETUNE_MASK_VALUE):
    """Causal bias `[batch, 1, seq_len, seq_len]`: keys after the query or padded."""
    seq_len = ops.shape(item_ids)[1]
    visible_key = ops.cast(ops.greater(item_ids, ids.PADDING_ID), "float32")[:, None, None, :]
    idx = ops.arange(seq_len)
    causal = ops.cast(ops.less_equal(idx[None, :], idx[:, None]), "float32")[None, None]
    return (1.0 - visible_key * causal) * mask_value


@keras.saving.register_keras_serializable(package="s3rec_tf")
class SequenceEncoder(keras.layers.Layer):
    """The S3-Rec backbone: embeddings, attribute table and transformer blocks.

    One encoder is shared by the pretraining model (bidirectional attention)
    and the next-item model (causal attention). It owns the item, position and
    attribute embeddings, as the original `S3RecModel` does.

    Args:
        num_items: int. Number of real items (ids `1..num_items`). The item
            table has `num_items + 2` rows: padding `0` and the mask id
            `num_items + 1`.
        num_attributes: int. Number of real attributes (ids
            `1..num_attributes`); the table has `num_attributes + 1` rows.
        max_length: int. Maximum sequence length. Defaults to `50`.
        hidden_size: int. Defaults to `64`.
        num_layers: int. Defaults to `2`.
        num_heads: int. Defaults to `2`.
        dropout: float. Hidden dropout. Defaults to `0.5`.
        attention_dropout: float. Defaults to `0.5`.
        initializer_range: float. Defaults to `0.02`.

    The arguments other than the id-space sizes are those of an
    `s3rec_tf.config.EncoderConfig`, and are checked as it checks them
    (`ConfigError`, a `ValueError`): `from_encoder_config` builds an encoder
    from one and `encoder_config` gives it back. `get_config` is the Keras
    serialization (the id-space sizes, the same fields, and the layer's own).

    Example:
    >>> enc = SequenceEncoder(num_items=10, num_attributes=4, max_length=5)
    >>> enc(np.array([[0, 0, 3, 4, 5]]), causal=True).shape
    (1, 5, 64)
    >>> SequenceEncoder.from_encoder_config(enc.encoder_config(), 10, 4).max_length
    5
    """

    def __init__(self, num_items: int, num_attributes: int,
                 max_length: int = _PAPER.max_length, hidden_size: int = _PAPER.hidden_size,
                 num_layers: int = _PAPER.num_layers, num_heads: int = _PAPER.num_heads,
                 dropout: float = _PAPER.dropout,
                 attention_dropout: float = _PAPER.attention_dropout,
                 initializer_range: float = _PAPER.initializer_range, **kwargs):
        super().__init__(**kwargs)
        if num_items < 1:
            raise ValueError(f"`num_items` must be >= 1. Received: num_items={num_items}")
        if num_attributes < 0:
            raise ValueError(
                f"`num_attributes` must be >= 0. Received: num_attributes={num_attributes}")
        if num_layers < 1:
            raise ValueError(f"`num_layers` must be >= 1. Received: num_layers={num_layers}")
        self.num_items = int(num_items)
        self.num_attributes = int(num_attributes)
        self.max_length = int(max_length)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.num_heads = int(num_heads)
        self.dropout = float(dropout)
        self.attention_dropout = float(attention_dropout)
        self.initializer_range = float(initializer_range)
        self.encoder_config()  # checks the fields as the config does
        self.embedding = ItemPositionEmbedding(
            self.item_size, self.max_length, self.hidden_size, self.dropout,
            self.initializer_range, name="item_position_embedding")
        self.attribute_embedding = keras.layers.Embedding(
            self.attribute_size, self.hidden_size,
            embeddings_initializer=_initializer(self.initializer_range),
            name="attribute_embedding")
        self.blocks = [
            TransformerBlock(self.hidden_size, self.num_heads, self.dropout,
                             self.attention_dropout, self.initializer_range,
                             name=f"transformer_block_{i}")
            for i in range(self.num_layers)
        ]

    @classmethod
    def from_encoder_config(cls, config: EncoderConfig, num_items: int, num_attributes: int,
                            **kwargs) -> "SequenceEncoder":
        """An encoder of `config`'s architecture and dropout rates over these id spaces.

        Args:
            config: `s3rec_tf.config.EncoderConfig`.
            num_items: int. Number of real items.
            num_attributes: int. Number of real attributes.
            **kwargs: the Keras layer's own arguments (`name`, `dtype`).
        """
        return cls(num_items, num_attributes, **dataclasses.asdict(config), **kwargs)

    def encoder_config(self) -> EncoderConfig:
        """The encoder's architecture and dropout rates, as an `EncoderConfig`."""
        return EncoderConfig(**{f.name: getattr(self, f.name)
                                for f in dataclasses.fields(EncoderConfig)})

    @property
    def item_size(self) -> int:
        """Rows of the item table: items, padding 0 and the mask id (`s3rec_tf.ids`)."""
        return ids.item_size(self.num_items)

    @property
    def mask_id(self) -> int:
        """The id that replaces masked items (`num_items + 1`)."""
        return ids.mask_id(self.num_items)

    @property
    def attribute_size(self) -> int:
        """Rows of the attribute table: attributes and padding 0."""
        return ids.attribute_size(self.num_attributes)

    @property
    def item_table(self):
        """Item embeddings `[item_size, hidden]` (the output layer of scoring)."""
        return self.embedding.item_table

    @property
    def attribute_table(self):
        """Attribute embeddings `[attribute_size, hidden]`."""
        return self.attribute_embedding.embeddings

    def build(self, input_shape=None):
        if self.built:
            return
        self.embedding.build((None, None))
        self.attribute_embedding.build((None,))
        for block in self.blocks:
            block.build((None, None, self.hidden_size))
        self.built = True

    def call(self, item_ids, causal: bool = False, training=None, last_only: bool = False):
        """Encodes `item_ids` `[batch, seq_len]` (left-padded with 0).

        Args:
            item_ids: int tensor `[batch, seq_len]`, `seq_len <= max_length`.
            causal: bool. Causal attention with padding masked (fine-tuning,
                bias -10000) or bidirectional with padding masked
                (pretraining, bias -1e8), as in the original.
            last_only: bool. Return only the last position's output,
                `[batch, 1, hidden]`; the last block then computes that
                position alone (same values, less work).

        Returns:
            `[batch, seq_len, hidden]` (`[batch, 1, hidden]` with `last_only`),
            float32 under a mixed-precision policy too, so that the heads,
            scores and losses are computed in float32.
        """
        item_ids = ops.cast(item_ids, "int32")
        bias = causal_attention_bias(item_ids) if causal else padding_attention_bias(item_ids)
        x = self.embedding(item_ids, training=training)
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x = block(x, bias, training=training, last_query_only=last_only and i == last)
        return ops.cast(x, "float32")

    def encode_tokens(self, layout: "TokenLayout", training=None, last_only: bool = False):
        """Encodes the tokens of `layout` (`encode_bucketed`): `[tokens, hidden]`, or one
        row per sequence `[rows, hidden]` with `last_only`, float32 as `call`'s output."""
        x = self.embedding(layout.token_ids, training=training, positions=layout.positions)
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            with tf.name_scope(block.name):
                x = block.call_tokens(x, layout, training=training,
                                      last_query_only=last_only and i == last)
        return ops.cast(x, "float32")

    def get_config(self):
        config = super().get_config()
        config.update(num_items=self.num_items, num_attributes=self.num_attributes,
                      max_length=self.max_length, hidden_size=self.hidden_size,
                      num_layers=self.num_layers, num_heads=self.num_heads,
                      dropout=self.dropout, attention_dropout=self.attention_dropout,
                      initializer_range=self.initializer_range)
        return config
