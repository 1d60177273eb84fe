"""Pretraining dynamics: Segment Prediction must learn, not saturate (issue 17).

`scripts/compare_original_training.py` compares the training steps with the
original code; these tests pin the causes it found.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from s3rec_tf.training import adam


def test_adam_sums_duplicate_rows_of_a_sparse_gradient():
    """An embedding row looked up k times moves by lr, as PyTorch's Adam, not sqrt(k) lr."""
    variable = keras.Variable(np.zeros((3, 2), "float32"))
    optimizer = adam(1e-3)
    optimizer.build([variable])
    gradient = tf.IndexedSlices(tf.ones((16, 2)), tf.zeros(16, tf.int32), tf.constant([3, 2]))
    optimizer.apply([gradient], [variable])
    np.testing.assert_allclose(variable.numpy()[0], [-1e-3, -1e-3], rtol=1e-4)
    np.testing.assert_array_equal(variable.numpy()[1:], 0.0)
    # the same gradient given dense: the same step
    dense = keras.Variable(np.zeros((3, 2), "float32"))
    optimizer = adam(1e-3)
    optimizer.build([dense])
    optimizer.apply([tf.convert_to_tensor(gradient)], [dense])
    np.testing.assert_allclose(dense.numpy(), variable.numpy(), rtol=1e-6)
