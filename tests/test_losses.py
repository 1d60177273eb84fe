import numpy as np
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
    for clamp in (False, True):
        got = losses.attribute_loss(tf.constant(logits), tf.constant(targets), clamp).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_attribute_loss_clamp_reproduces_saturated_original():
    logits = tf.constant([[40.0, -40.0]])
    targets = tf.constant([[0]])  # no attributes: both negative
    # original: -log(1 - sigmoid(40)) = -log(0) clamped to 100
    assert abs(losses.attribute_loss(logits, targets, True).numpy()[0] - 100.0) < 1e-3
    assert abs(losses.attribute_loss(logits, targets, False).numpy()[0] - 40.0) < 1e-3


def test_pairwise_sigmoid_loss_hand_computed():
    pos, neg = 3.0, 4.0
    expected = -np.log(sigmoid(sigmoid(pos) - sigmoid(neg)))
    got = losses.pairwise_sigmoid_loss(tf.constant([pos]), tf.constant([neg])).numpy()[0]
    assert abs(got - expected) < 1e-6


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
    assert abs(losses.next_item_ce_loss(tf.constant(logits), tf.constant(targets)).numpy()
               - expected) < 1e-6
