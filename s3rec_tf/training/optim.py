"""Adam as the original's PyTorch Adam (dense gradients, PyTorch's defaults)."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="s3rec_tf")
class DenseGradientAdam(keras.optimizers.Adam):
    """Keras Adam that sums the duplicate rows of a sparse gradient first.

    The gradient of an embedding lookup is a `tf.IndexedSlices` with one
    slice per lookup. Keras's Adam squares those slices before adding them
    up, so a row looked up `k` times in a batch gets the second moment
    `sum(g_i^2)` instead of `(sum g_i)^2`, and a step up to `sqrt(k)` times
    the learning rate: the mask id's embedding (hundreds of lookups per
    pretraining batch) moved 20x faster than in the original, whose PyTorch
    gradients are dense. Summing the rows first gives PyTorch's Adam.
    """

    def update_step(self, gradient, variable, learning_rate):
        if isinstance(gradient, tf.IndexedSlices):
            gradient = tf.convert_to_tensor(gradient)
        super().update_step(gradient, variable, learning_rate)


def adam(learning_rate: float):
    """Adam with PyTorch's defaults (betas 0.9/0.999, eps 1e-8) and dense gradients,
    as the original (see `DenseGradientAdam`)."""
    return DenseGradientAdam(learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8)
