import keras
import numpy as np
import pytest
import tensorflow as tf

from s3rec_tf.models import kernels, layers


def _encoder(**kw):
    args = dict(num_items=30, num_attributes=6, max_length=8, hidden_size=16, num_layers=2,
                num_heads=2, dropout=0.0, attention_dropout=0.0)
    args.update(kw)
    return layers.SequenceEncoder(**args)


def test_encoder_shapes_and_sizes():
    enc = _encoder()
    ids = np.array([[0, 0, 0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6, 7, 8]])
    assert enc(ids, causal=False).shape == (2, 8, 16)
    assert enc(ids, causal=True).shape == (2, 8, 16)
    assert (enc.item_size, enc.mask_id, enc.attribute_size) == (32, 31, 7)
    assert tuple(enc.item_table.shape) == (32, 16)
    assert tuple(enc.attribute_table.shape) == (7, 16)


def test_causal_mask_hides_future_items():
    enc = _encoder()
    a = np.array([[0, 0, 1, 2, 3, 4, 5, 6]])
    b = a.copy()
    b[0, -1] = 9
    out_a, out_b = enc(a, causal=True).numpy(), enc(b, causal=True).numpy()
    # real positions 2..6 do not see item 7 (padded rows are never read)
    np.testing.assert_allclose(out_a[:, 2:-1], out_b[:, 2:-1], atol=1e-6)
    assert not np.allclose(out_a[:, -1], out_b[:, -1])
    # bidirectional: every position sees the change
    bi_a, bi_b = enc(a, causal=False).numpy(), enc(b, causal=False).numpy()
    assert not np.allclose(bi_a[:, 2], bi_b[:, 2])


def test_padding_is_invisible_and_cutting_it_is_exact():
    enc = _encoder()
    padded = np.array([[0, 0, 0, 0, 3, 4, 5, 6]])
    trimmed = padded[:, 4:]
    for causal in (False, True):
        full = enc(padded, causal=causal).numpy()[:, 4:]
        cut = enc(trimmed, causal=causal).numpy()
        np.testing.assert_allclose(full, cut, rtol=1e-5, atol=1e-6)
    # a different padded item id changes nothing at real positions (keys masked)
    other = padded.copy()
    other[0, :4] = 0
    np.testing.assert_allclose(enc(other).numpy()[:, 4:], enc(padded).numpy()[:, 4:])


def test_attention_biases():
    ids = np.array([[0, 1, 2]])
    pad = layers.padding_attention_bias(ids).numpy()
    assert pad.shape == (1, 1, 1, 3)
    np.testing.assert_array_equal(pad[0, 0, 0], [-1e8, 0, 0])
    causal = layers.causal_attention_bias(ids).numpy()[0, 0]
    expected = np.array([[1, 1, 1], [1, 0, 1], [1, 0, 0]]) * -10000.0
    np.testing.assert_array_equal(causal, expected)


def test_config_round_trips():
    for layer in (layers.ItemPositionEmbedding(12, 5, 8, 0.1),
                  layers.TransformerBlock(8, 2, 0.1, 0.2),
                  _encoder()):
        config = layer.get_config()
        clone = layer.__class__.from_config(config)
        assert clone.get_config() == config
        restored = keras.layers.deserialize(keras.layers.serialize(layer))
        assert restored.get_config() == config


def test_invalid_arguments_are_reported():
    import pytest
    with pytest.raises(ValueError, match="num_heads"):
        layers.TransformerBlock(hidden_size=10, num_heads=3)
    with pytest.raises(ValueError, match="dropout"):
        layers.ItemPositionEmbedding(10, 5, dropout=1.5)
    with pytest.raises(ValueError, match="num_items"):
        layers.SequenceEncoder(num_items=0, num_attributes=1)


def test_encoder_takes_and_gives_back_an_encoder_config():
    from s3rec_tf.config import EncoderConfig
    config = EncoderConfig(hidden_size=8, num_layers=3, num_heads=4, dropout=0.1,
                           attention_dropout=0.2, initializer_range=0.05, max_length=7)
    encoder = layers.SequenceEncoder.from_encoder_config(config, 12, 3, name="enc")
    assert encoder.encoder_config() == config
    assert (encoder.num_items, encoder.num_attributes, encoder.name) == (12, 3, "enc")
    assert len(encoder.blocks) == 3 and encoder.embedding.dropout_layer.rate == 0.1
    clone = layers.SequenceEncoder.from_config(encoder.get_config())
    assert clone.encoder_config() == config
    # the Keras configuration keeps its keys: the id-space sizes and the config's fields
    assert {"num_items", "num_attributes", *config.architecture(), "dropout",
            "attention_dropout"} <= set(encoder.get_config())


def test_encoder_arguments_are_checked_as_the_encoder_config_checks_them():
    from s3rec_tf.errors import ConfigError
    with pytest.raises(ConfigError, match="hidden_size.*multiple of num_heads=3"):
        layers.SequenceEncoder(10, 2, hidden_size=8, num_heads=3)
    with pytest.raises(ConfigError, match="attention_dropout"):
        layers.SequenceEncoder(10, 2, attention_dropout=1.0)
    with pytest.raises(TypeError, match="`max_length` must be >= 2"):  # Keras wraps it
        layers.SequenceEncoder.from_config({**_encoder().get_config(), "max_length": 1})


def test_post_layernorm_block_matches_numpy_reference():
    block = layers.TransformerBlock(hidden_size=4, num_heads=1, dropout=0.0,
                                    attention_dropout=0.0)
    x = np.random.default_rng(1).normal(size=(1, 3, 4)).astype("float32")
    y = block(x, np.zeros((1, 1, 1, 3), "float32")).numpy()
    (wq, bq), (wk, bk), (wv, bv) = [d.get_weights() for d in
                                    (block.query_dense, block.key_dense, block.value_dense)]
    wo, bo = block.attention_output_dense.get_weights()
    w1, b1 = block.feedforward_intermediate_dense.get_weights()
    w2, b2 = block.feedforward_output_dense.get_weights()

    def ln(v):
        return (v - v.mean(-1, keepdims=True)) / np.sqrt(v.var(-1, keepdims=True) + 1e-12)

    from math import erf
    gelu = np.vectorize(lambda v: v * 0.5 * (1 + erf(v / np.sqrt(2))))
    q, k, v = x @ wq + bq, x @ wk + bk, x @ wv + bv
    s = q @ k.transpose(0, 2, 1) / 2.0
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    h = ln(p @ v @ wo + bo + x)
    expected = ln(gelu(h @ w1 + b1) @ w2 + b2 + h)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)


def test_bucketed_encoding_equals_plain_encoding():
    enc = _encoder(max_length=12)
    rng = np.random.default_rng(0)
    ids = np.zeros((9, 12), "int32")
    for r, n in enumerate([1, 2, 3, 5, 7, 9, 12, 4, 1]):
        ids[r, 12 - n:] = rng.integers(1, 31, size=n)
    for causal in (False, True):
        plain = enc(ids, causal=causal).numpy()
        bucketed = kernels.encode_bucketed(enc, ids, causal, bucket_edges=(2, 4, 8)).numpy()
        real = ids > 0
        np.testing.assert_allclose(bucketed[real], plain[real], rtol=1e-5, atol=1e-6)
        assert (bucketed[~real] == 0).all()  # padding is not computed
        last = kernels.encode_bucketed(enc, ids, causal, bucket_edges=(2, 4, 8), last_only=True)
        np.testing.assert_allclose(last.numpy()[:, 0], plain[:, -1], rtol=1e-5, atol=1e-6)


def test_token_layout_lists_items_bucket_by_bucket():
    ids = np.array([[0, 0, 0, 5], [0, 3, 4, 6], [0, 0, 0, 0], [0, 0, 7, 8]], "int32")
    layout = kernels.TokenLayout(ids, bucket_edges=(1, 2), max_length=6, causal=False)
    # buckets (0, 1]: rows 0 and 2 (2 has no items: its last column stands in), width 1;
    # (1, 2]: row 3, width 2; (2, 4]: row 1, width 4
    np.testing.assert_array_equal(layout.token_ids, [5, 0, 7, 8, 3, 4, 6])
    np.testing.assert_array_equal(layout.positions, [5, 5, 4, 5, 3, 4, 5])
    np.testing.assert_array_equal(layout.last_tokens, [0, 1, 3, 6])
    np.testing.assert_array_equal(layout.token_counts, [2, 2, 3])
    np.testing.assert_array_equal(layout.gather(ids * 10), [50, 0, 70, 80, 30, 40, 60])
    tokens = np.arange(7, dtype="float32")[:, None] + 1
    np.testing.assert_array_equal(layout.tokens_to_batch(tokens)[..., 0],
                                  [[0, 0, 0, 1], [0, 5, 6, 7], [0, 0, 0, 2], [0, 0, 3, 4]])
    np.testing.assert_array_equal(layout.rows_to_batch(np.array([[1], [2], [3], [4]]))[:, 0],
                                  [1, 4, 2, 3])


def test_bucketed_encoding_has_the_gradients_of_plain_encoding():
    enc = _encoder(max_length=8)
    ids = np.array([[0, 0, 0, 0, 0, 0, 2, 3], [0, 0, 0, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 7, 9]])
    weights = np.random.default_rng(1).normal(size=(3, 8, 16)).astype("float32") * (ids > 0)[..., None]
    grads = []
    for encode in (lambda: enc(ids, causal=True),
                   lambda: kernels.encode_bucketed(enc, ids, True, bucket_edges=(2, 4))):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(encode() * weights)
        grads.append([tf.convert_to_tensor(g).numpy() for g in
                      tape.gradient(loss, enc.trainable_variables) if g is not None])
    assert len(grads[0]) == len(grads[1]) > 10
    for plain, bucketed in zip(*grads):
        np.testing.assert_allclose(bucketed, plain, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("bucket_edges", [(2, 4), None])
def test_sharded_positions_equal_the_whole_batch(bucket_edges):
    """`encode_positions(..., shards=k)`: the same output at every position and the same
    entries of a per-position tensor, in the order of the parts; a part may be empty."""
    enc = _encoder(max_length=8)
    enc.build()
    rng = np.random.default_rng(2)
    ids = np.zeros((5, 8), "int32")
    for r, n in enumerate([1, 8, 3, 5, 2]):
        ids[r, 8 - n:] = rng.integers(1, 31, size=n)
    where = np.arange(ids.size, dtype="int32").reshape(ids.shape)  # names each position

    def by_position(batch, shards):
        rows, per_position = kernels.encode_positions(enc, batch, True, None, bucket_edges,
                                                     shards=shards)
        names = per_position(where[:len(batch)]).numpy()
        assert len(names) == len(set(names)) == rows.shape[0]
        return dict(zip(names, rows.numpy()))

    whole = by_position(ids, 1)
    for shards in (2, 3):
        parts = by_position(ids, shards)
        assert parts.keys() == whole.keys()
        for name, row in whole.items():
            np.testing.assert_allclose(parts[name], row, rtol=1e-5, atol=1e-6)
    one = by_position(ids[:1], 2)  # the first part is empty
    for name, row in one.items():
        np.testing.assert_allclose(row, whole[name], rtol=1e-5, atol=1e-6)


def test_last_only_equals_the_last_position():
    enc = _encoder()
    ids = np.array([[0, 0, 1, 2, 3, 4, 5, 6], [0, 0, 0, 0, 0, 0, 7, 8]])
    for causal in (False, True):
        full = enc(ids, causal=causal).numpy()[:, -1]
        last = enc(ids, causal=causal, last_only=True).numpy()
        assert last.shape == (2, 1, 16)
        np.testing.assert_allclose(last[:, 0], full, rtol=1e-5, atol=1e-6)


def test_gather_rows_reads_only_the_rows_of_a_variable():
    """A gather from the variable itself (ResourceGather), not a read of the whole table:
    after row-wise optimizer updates (lazy-adam) a whole read copies the table."""
    from s3rec_tf.models.layers import gather_rows
    table = keras.Variable(np.arange(12, dtype="float32").reshape(6, 2))
    lookup = tf.function(lambda ids: gather_rows(table, ids))
    np.testing.assert_array_equal(lookup(tf.constant([4, 1])), [[8, 9], [2, 3]])
    graph = lookup.get_concrete_function(tf.TensorSpec([None], tf.int32)).graph
    kinds = {op.type for op in graph.get_operations()}
    assert "ResourceGather" in kinds and "ReadVariableOp" not in kinds
    np.testing.assert_array_equal(gather_rows(tf.constant(table.numpy()), [5]), [[10, 11]])


@pytest.mark.parametrize("rate", [0.5, 0.2, 0.1])  # 8 random bits for 0.5, else 16
def test_dropout_mask_drops_at_the_rate_and_scales_the_rest(rate):
    shape = tf.constant([301, 333])  # an odd size: not a whole number of words
    mask = layers.dropout_mask(shape, rate, tf.constant([3, 4])).numpy()
    assert mask.shape == (301, 333)
    np.testing.assert_allclose(np.unique(mask), [0.0, 1.0 / (1.0 - rate)], rtol=1e-6)
    dropped = (mask == 0).mean()
    assert abs(dropped - rate) < 4 * np.sqrt(rate * (1 - rate) / mask.size)
    # the same seed draws the same mask; another seed another one
    again = layers.dropout_mask(shape, rate, tf.constant([3, 4])).numpy()
    other = layers.dropout_mask(shape, rate, tf.constant([3, 5])).numpy()
    np.testing.assert_array_equal(mask, again)
    assert (mask != other).mean() > rate / 2
    # neighbours in a row are independent, not copies of one draw
    assert abs(((mask[:, 1:] == 0) & (mask[:, :-1] == 0)).mean() - rate ** 2) < 0.01


def test_dropout_layer_masks_in_training_only_and_passes_the_mask_to_the_gradient():
    x = tf.constant(np.random.default_rng(0).uniform(1, 2, size=(64, 50)), tf.float32)
    drop = layers.Dropout(0.5, seed=7)
    np.testing.assert_array_equal(drop(x, training=False).numpy(), x.numpy())
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = drop(x, training=True)
    mask = y.numpy() / x.numpy()
    np.testing.assert_allclose(np.unique(mask.round(5)), [0.0, 2.0])
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), mask, rtol=1e-6)
    # each call draws a new mask; a layer with the same seed draws the same sequence
    assert not np.array_equal(drop(x, training=True).numpy(), y.numpy())
    np.testing.assert_array_equal(layers.Dropout(0.5, seed=7)(x, training=True).numpy(),
                                  y.numpy())
    assert layers.Dropout(0.0)(x, training=True) is x
