"""Adam as the original's PyTorch Adam (dense gradients, PyTorch's defaults), and a
lazy variant for large catalogues.

`make_optimizer(config.optimizer, config.learning_rate)` is how the training jobs
build theirs; `OPTIMIZERS` (in `s3rec_tf.config`) names the choices.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from s3rec_tf.config import LR_SCHEDULES, OPTIMIZERS


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
        if tf.distribute.has_strategy() or self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        # Keras's Adam update in one fused kernel (TensorFlow's `ApplyAdam`: the same
        # formula, `m += (g - m)(1 - b1)`, `v += (g^2 - v)(1 - b2)`,
        # `var -= m lr sqrt(1 - b2^t) / (1 - b1^t) / (sqrt(v) + eps)`) instead of about
        # ten ops per variable
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable), m=_handle(self._momentums[index]),
            v=_handle(self._velocities[index]), beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step), lr=tf.cast(learning_rate, dtype),
            beta1=beta_1, beta2=beta_2, epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype))


def _handle(variable):
    """The resource handle of a Keras (or TensorFlow) variable."""
    return (variable.value if isinstance(variable, keras.Variable) else variable).handle


@keras.saving.register_keras_serializable(package="s3rec_tf")
class LazyAdam(DenseGradientAdam):
    """Adam that updates only the rows a sparse gradient touches.

    `DenseGradientAdam` (the original's behaviour) decays both moments of
    every row of an embedding table and moves every row with a non-zero
    moment at each step, so a step costs time in proportion to the
    catalogue. Here the duplicate rows of a sparse gradient are summed (as
    PyTorch does), and only those rows' moments and weights are updated,
    with the same bias correction; rows not in the batch keep their
    moments and weights until they next appear (as TF Addons' `LazyAdam`
    and PyTorch's `SparseAdam`). Dense gradients get `DenseGradientAdam`'s
    update. Not the original's optimizer: an option for large catalogues.
    """

    def update_step(self, gradient, variable, learning_rate):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        if self.amsgrad:
            raise ValueError("LazyAdam does not implement amsgrad")
        dtype = variable.dtype
        rows, where = tf.unique(tf.cast(gradient.indices, tf.int32))
        values = tf.math.unsorted_segment_sum(tf.cast(gradient.values, dtype), where,
                                              tf.shape(rows)[0])
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        alpha = (tf.cast(learning_rate, dtype) * tf.sqrt(1 - tf.pow(beta_2, step))
                 / (1 - tf.pow(beta_1, step)))
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        # `sparse_read` gathers the rows from the variable itself: reading the whole slot
        # first would leave a reference that makes the scatter below copy the full table
        m_rows = beta_1 * m.value.sparse_read(rows) + (1 - beta_1) * values
        v_rows = beta_2 * v.value.sparse_read(rows) + (1 - beta_2) * tf.square(values)
        self.assign(m, tf.IndexedSlices(m_rows, rows))
        self.assign(v, tf.IndexedSlices(v_rows, rows))
        self.assign_sub(variable, tf.IndexedSlices(
            alpha * m_rows / (tf.sqrt(v_rows) + tf.cast(self.epsilon, dtype)), rows))


_OPTIMIZER_CLASSES = {"adam": DenseGradientAdam, "lazy-adam": LazyAdam}
assert tuple(_OPTIMIZER_CLASSES) == OPTIMIZERS


def make_optimizer(name: str, learning_rate: float):
    """The optimizer `name` (one of `OPTIMIZERS`) with PyTorch's Adam defaults
    (betas 0.9/0.999, eps 1e-8), as the original."""
    if name not in _OPTIMIZER_CLASSES:
        raise ValueError(f"Unknown optimizer {name!r}; expected one of {OPTIMIZERS}")
    return _OPTIMIZER_CLASSES[name](learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8)


def learning_rate_schedule(name: str, learning_rate: float, steps_per_epoch: int,
                           epochs: int, warmup_epochs: float = 0.0):
    """The learning rate of a run: a float (`constant`) or a Keras schedule.

    `cosine`: linear warm-up from 0 to `learning_rate` over `warmup_epochs`
    epochs, then a cosine decay to 0 at the end of epoch `epochs`
    (`keras.optimizers.schedules.CosineDecay`). The schedule reads the
    optimizer's step count, which the run's checkpoint holds, so a resumed
    run continues where it stopped.

    Args:
        name: one of `s3rec_tf.config.LR_SCHEDULES`.
    """
    if name == "constant":
        return learning_rate
    if name != "cosine":
        raise ValueError(f"`lr_schedule` must be one of {LR_SCHEDULES}. Received: {name!r}")
    total = max(1, steps_per_epoch * epochs)
    warmup = min(total - 1, int(round(warmup_epochs * steps_per_epoch)))
    return keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else learning_rate, decay_steps=total - warmup, alpha=0.0,
        warmup_target=learning_rate if warmup else None, warmup_steps=warmup)


def adam(learning_rate: float):
    """Adam with PyTorch's defaults and dense gradients, as the original
    (see `DenseGradientAdam`)."""
    return make_optimizer("adam", learning_rate)
