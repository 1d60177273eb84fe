import numpy as np
import pytest
import tensorflow as tf

from s3rec_tf import losses


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_attribute_loss_matches_dense_bce():
    logits = np.array([[0.5, -1.0, 2.0, 0.0], [1.5, 0.3, -0.7, 3.0]], "float32")
    targets = np.array([[2, 0], [1, 3]])  # item 0 has attribute 2, item 1 has 1 and 3
    dense = np.zeros_like(logits)
    dense[0, 2] = dense[1, 1] = dense[1, 3] = 1
    p = sigmoid(logits)
    expected = -(dense * np.log(p) + (1 - dense) * np.log(1 - p)).sum(-1)
    for mode in losses.ATTRIBUTE_BCE_MODES:
        got = losses.attribute_loss(tf.constant(logits), tf.constant(targets), mode).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_attribute_loss_original_mode_reproduces_saturated_values():
    logits = tf.constant([[40.0, -40.0]])
    targets = tf.constant([[0]])  # no attributes: both negative
    # original: -log(1 - sigmoid(40)) = -log(0) clamped to 100
    assert abs(losses.attribute_loss(logits, targets, "original").numpy()[0] - 100.0) < 1e-3
    assert abs(losses.attribute_loss(logits, targets, "softplus").numpy()[0] - 40.0) < 1e-3


def _gradient(logits, targets, mode):
    x = tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(losses.attribute_loss(x, tf.constant(targets), mode))
    return tape.gradient(loss, x).numpy()


def test_original_mode_gradient_is_pytorch_bceloss_backward():
    """PyTorch: (p - y) / max(p (1 - p), 1e-12) * p (1 - p), all in float32."""
    logits = np.array([[-120.0, -60.0, -30.0, -20.0, 0.3, 5.0, 16.0, 17.0, 30.0],
                       [-120.0, -60.0, -30.0, -20.0, 0.3, 5.0, 16.0, 17.0, 30.0]], "float32")
    # row 0: attributes 1..8 are targets (attribute 0 is padding); row 1: none
    targets = np.array([list(range(1, 9)), [0] * 8])
    y = np.zeros_like(logits)
    y[0, 1:] = 1
    p = tf.sigmoid(logits).numpy()
    v = p * (np.float32(1) - p)
    expected = (p - y) / np.maximum(v, np.float32(1e-12)) * v
    got = _gradient(logits, targets, "original")
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-30)
    # the saturated terms that stop pushing: wrong side beyond |x| ~ 17..28
    assert got[1, 7] == 0.0 and got[1, 8] == 0.0          # negatives at 17, 30: p == 1
    assert abs(got[0, 2]) < 0.1 and got[0, 1] > -1e-10     # positives at -30, -60
    # softplus keeps a full gradient there
    soft = _gradient(logits, targets, "softplus")
    np.testing.assert_allclose(soft[1, 7:], 1.0, rtol=1e-6)
    np.testing.assert_allclose(soft[0, 1:3], -1.0, rtol=1e-6)


def test_unknown_attribute_bce_mode_is_refused():
    with pytest.raises(ValueError, match="attribute_bce"):
        losses.attribute_loss(tf.zeros((1, 2)), tf.zeros((1, 1), tf.int32), "clamped")


def test_pairwise_sigmoid_loss_hand_computed():
    pos, neg = 3.0, 4.0
    expected = -np.log(sigmoid(sigmoid(pos) - sigmoid(neg)))
    got = losses.pairwise_sigmoid_loss(tf.constant([pos]), tf.constant([neg])).numpy()[0]
    assert abs(got - expected) < 1e-6


def test_segment_loss_modes():
    pos, neg = tf.constant([3.0, 40.0]), tf.constant([4.0, 38.0])
    original = losses.segment_loss(pos, neg).numpy()
    np.testing.assert_allclose(original, losses.pairwise_sigmoid_loss(pos, neg).numpy())
    gap = losses.segment_loss(pos, neg, "logit-gap").numpy()
    np.testing.assert_allclose(gap, -np.log(sigmoid(np.array([-1.0, 2.0]))), rtol=1e-6)
    # both scores saturated: the original's gradient is 0, the gap's is not
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(pos)
        g_original = losses.segment_loss(pos, neg)[1]
        g_gap = losses.segment_loss(pos, neg, "logit-gap")[1]
    assert tape.gradient(g_original, pos).numpy()[1] == 0.0
    assert tape.gradient(g_gap, pos).numpy()[1] < -0.1
    with pytest.raises(ValueError, match="segment_loss"):
        losses.segment_loss(pos, neg, "bpr")


def test_masked_item_ce_loss_is_the_summed_ce_and_empty_is_zero():
    queries = tf.constant([[1.0, 0.0], [0.5, 2.0]])
    table = tf.constant([[1.0, 1.0], [0.0, 1.0], [2.0, 0.0]])
    targets = tf.constant([2, 1])
    mean = float(losses.next_item_ce_loss(queries, table, targets))
    assert float(losses.masked_item_ce_loss(queries, table, targets)) == pytest.approx(2 * mean)
    empty = tf.zeros((0, 2))
    with tf.GradientTape() as tape:
        tape.watch(table)
        loss = losses.masked_item_ce_loss(empty, table, tf.zeros((0,), tf.int32))
    assert float(loss) == 0.0
    grad = tape.gradient(loss, table)
    assert grad is None or not np.any(grad.numpy())
    with pytest.raises(ValueError, match="mip_loss.*must be one of 'original', 'ce'"):
        losses.check_mode("mip_loss", "bpr")


def test_next_item_bce_loss_hand_computed():
    pos = tf.constant([[3.0, 1.0, 9.0]])
    neg = tf.constant([[4.0, -1.0, 9.0]])
    w = tf.constant([[1, 1, 0]])
    expected = (-np.log(sigmoid(3.0)) - np.log(1 - sigmoid(4.0))
                - np.log(sigmoid(1.0)) - np.log(1 - sigmoid(-1.0))) / 2
    assert abs(losses.next_item_bce_loss(pos, neg, w).numpy() - expected) < 1e-5


def test_next_item_ce_loss_hand_computed():
    logits = np.array([[1.0, 2.0, 0.5], [0.0, 0.0, 3.0]], "float32")
    targets = np.array([1, 2])
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -(logp[0, 1] + logp[1, 2]) / 2
    # logits = queries @ table^T with the identity as the table
    assert abs(losses.next_item_ce_loss(tf.constant(logits), tf.eye(3), tf.constant(targets))
               .numpy() - expected) < 1e-6


@pytest.mark.parametrize("scale", [3.0, 60.0])  # 60: some targets' probabilities underflow
def test_next_item_ce_loss_value_and_gradients_are_the_fused_ops(rng, scale):
    queries = tf.constant(rng.normal(size=(6, 4)).astype("float32") * scale)
    table = tf.constant(rng.normal(size=(9, 4)).astype("float32") * 3)
    targets = tf.constant([1, 2, 2, 7, 3, 1])
    logits = tf.matmul(queries, table, transpose_b=True)
    target_probs = tf.gather(tf.nn.softmax(logits), targets, batch_dims=1).numpy()
    assert (target_probs.min() < losses.CE_MIN_TARGET_PROBABILITY) == (scale > 10)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([queries, table])
        got = losses.next_item_ce_loss(queries, table, targets)
        want = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=targets, logits=tf.matmul(queries, table, transpose_b=True)))
    assert np.isfinite(float(got))
    assert float(got) == pytest.approx(float(want), rel=1e-6)
    for g, w in zip(tape.gradient(got, [queries, table]), tape.gradient(want, [queries, table])):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-5, atol=1e-6)


def _sampled_ce(pos, neg, log_expected, keep):
    return float(losses.next_item_sampled_ce_loss(
        tf.constant(pos, tf.float32), tf.constant(neg, tf.float32),
        tf.constant(log_expected, tf.float32), tf.constant(keep)))


def test_sampled_ce_over_every_other_item_is_the_full_ce(rng):
    logits = rng.normal(size=(5, 7)).astype("float32")
    targets = np.array([0, 3, 6, 2, 3])
    full = float(losses.next_item_ce_loss(tf.constant(logits), tf.eye(7), tf.constant(targets)))
    pos = logits[np.arange(5), targets]
    # every item once (expected count 1, log 0); the target itself is an accidental hit
    keep = np.arange(7)[None] != targets[:, None]
    assert _sampled_ce(pos, logits, np.zeros((5, 7)), keep) == pytest.approx(full, rel=1e-6)


def test_sampled_ce_log_q_correction_hand_computed():
    # one row; negatives 1.0, 0.5, 1.0 with expected counts 0.5, 2, 0.5 (e.g. S = 2 draws
    # from q = (0.25, 1, 0.25) over three items): exp(s_k) / (S q_k)
    pos, neg, expected = 2.0, np.array([1.0, 0.5, 1.0]), np.array([0.5, 2.0, 0.5])
    want = -pos + np.log(np.exp(pos) + np.sum(np.exp(neg) / expected))
    got = _sampled_ce([pos], [neg], [np.log(expected)], [[True] * 3])
    assert got == pytest.approx(want, rel=1e-6)
    # without the correction the value differs: the correction is applied
    assert _sampled_ce([pos], [neg], [[0.0] * 3], [[True] * 3]) != pytest.approx(want)


def test_sampled_ce_drops_accidental_hits():
    pos = np.array([1.0, 0.0])
    neg = np.array([[0.3, 5.0, -1.0], [2.0, 0.1, 0.4]])
    keep = np.array([[True, False, True], [True, True, True]])
    dropped = _sampled_ce(pos, neg, np.zeros((2, 3)), keep)
    row0 = -1.0 + np.log(np.exp(1.0) + np.exp(0.3) + np.exp(-1.0))  # as if 5.0 were absent
    row1 = 0.0 + np.log(1.0 + np.exp(neg[1]).sum())
    assert dropped == pytest.approx((row0 + row1) / 2, rel=1e-6)
    x = tf.constant(neg, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = losses.next_item_sampled_ce_loss(tf.constant(pos, tf.float32), x,
                                                tf.zeros((2, 3)), tf.constant(keep))
    assert tape.gradient(loss, x).numpy()[0, 1] == 0.0  # a dropped hit gets no gradient


def _keras_rs_sampled_ce(pos_logits, neg_logits, neg_log_expected, keep):
    """`next_item_sampled_ce_loss` built from keras-rs 0.1.0's retrieval layers.

    Candidates `[target, negatives...]`; each id given relative to the row's
    target (0: the target itself), so that `RemoveAccidentalHits` needs no
    per-row lookup.
    """
    import keras_rs
    pos_logits, neg_logits = tf.convert_to_tensor(pos_logits), tf.convert_to_tensor(neg_logits)
    logits = tf.concat([pos_logits[:, None], neg_logits], 1)
    probability = tf.concat([tf.ones_like(pos_logits)[:, None], tf.broadcast_to(
        tf.exp(tf.cast(neg_log_expected, tf.float32)), tf.shape(neg_logits))], 1)
    logits = keras_rs.layers.SamplingProbabilityCorrection()(logits, probability)
    labels = tf.one_hot(tf.zeros_like(pos_logits, tf.int32), tf.shape(logits)[1])
    candidates = tf.concat([tf.zeros_like(pos_logits, tf.int32)[:, None],
                            tf.cast(keep, tf.int32)], 1)
    logits = keras_rs.layers.RemoveAccidentalHits()(logits, labels, candidates)
    return tf.reduce_mean(tf.reduce_logsumexp(logits, axis=1) - logits[:, 0])


def test_keras_rs_retrieval_layers_agree_without_hits_or_counts_above_one(rng):
    pos = rng.normal(size=5).astype("float32")
    neg = rng.normal(size=(5, 7)).astype("float32")
    log_expected = np.log(rng.uniform(0.01, 1.0, size=(5, 7))).astype("float32")
    keep = np.ones((5, 7), bool)
    np.testing.assert_allclose(_keras_rs_sampled_ce(pos, neg, log_expected, keep),
                               losses.next_item_sampled_ce_loss(pos, neg, log_expected, keep),
                               rtol=1e-6)


def test_keras_rs_retrieval_layers_differ_where_the_loss_needs_them(rng):
    """Why `sampled-ce` keeps its own correction and hit removal (keras-rs 0.1.0).

    `RemoveAccidentalHits` adds `finfo(float32).smallest_normal / 100` (a tiny
    positive number) to an accidental hit's logit, so the hit stays in the
    softmax; `SamplingProbabilityCorrection` clips the probability to
    `[1e-6, 1]`, but the loss corrects by an expected count, which exceeds 1
    for popular items (`S q_j + n p_j`).
    """
    pos = rng.normal(size=4).astype("float32")
    neg = rng.normal(size=(4, 6)).astype("float32")
    zeros = np.zeros((4, 6), "float32")
    keep = np.ones((4, 6), bool)
    hits = keep.copy()
    hits[:, 2] = False  # a negative that is the row's target
    assert float(_keras_rs_sampled_ce(pos, neg, zeros, hits)) == pytest.approx(
        float(_keras_rs_sampled_ce(pos, neg, zeros, keep)), rel=1e-7)  # hit not removed
    assert float(losses.next_item_sampled_ce_loss(pos, neg, zeros, hits)) < float(
        losses.next_item_sampled_ce_loss(pos, neg, zeros, keep))
    above_one = np.full((4, 6), np.log(3.0), "float32")  # each negative expected 3 times
    assert float(_keras_rs_sampled_ce(pos, neg, above_one, keep)) != pytest.approx(
        float(losses.next_item_sampled_ce_loss(pos, neg, above_one, keep)), rel=1e-3)
