"""The optimizers of `s3rec_tf.training.optim`: the original's Adam and `lazy-adam`."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from s3rec_tf.config import OPTIMIZERS, ConfigError, FinetuneConfig, PretrainConfig
from s3rec_tf.training.optim import DenseGradientAdam, LazyAdam, make_optimizer


def _rows_gradient(rows, shape=(4, 2), value=1.0):
    rows = tf.constant(rows, tf.int32)
    return tf.IndexedSlices(tf.fill([len(rows), shape[1]], value), rows, tf.constant(shape))


def _apply(optimizer, gradients, shape=(4, 2)):
    variable = keras.Variable(np.zeros(shape, "float32"))
    optimizer.build([variable])
    for gradient in gradients:
        optimizer.apply([gradient], [variable])
    return variable.numpy(), optimizer


def test_make_optimizer_builds_each_choice_with_pytorchs_adam_defaults():
    assert [type(make_optimizer(name, 1e-3)) for name in OPTIMIZERS] == [DenseGradientAdam,
                                                                        LazyAdam]
    optimizer = make_optimizer("lazy-adam", 5e-4)
    assert (optimizer.beta_1, optimizer.beta_2, optimizer.epsilon) == (0.9, 0.999, 1e-8)
    assert float(optimizer.learning_rate) == pytest.approx(5e-4)
    with pytest.raises(ValueError, match="Unknown optimizer 'sgd'"):
        make_optimizer("sgd", 1e-3)


def test_lazy_adam_first_step_equals_the_originals_and_sums_duplicate_rows():
    # row 0 looked up 16 times, row 2 once: each moves by lr, as PyTorch's Adam
    gradient = _rows_gradient([0] * 16 + [2])
    lazy, _ = _apply(make_optimizer("lazy-adam", 1e-3), [gradient])
    dense, _ = _apply(make_optimizer("adam", 1e-3), [gradient])
    np.testing.assert_allclose(lazy, dense, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(lazy[[0, 2]], -1e-3, rtol=1e-4)
    np.testing.assert_array_equal(lazy[[1, 3]], 0.0)


def test_lazy_adam_leaves_rows_outside_the_batch_alone():
    """A row seen at step 1 only: the original's Adam keeps moving it on its momentum,
    lazy-adam leaves its weights and moments until it is looked up again."""
    steps = [_rows_gradient([1]), _rows_gradient([3]), _rows_gradient([3])]
    lazy, optimizer = _apply(make_optimizer("lazy-adam", 1e-3), steps)
    dense, _ = _apply(make_optimizer("adam", 1e-3), steps)
    np.testing.assert_allclose(lazy[1], -1e-3, rtol=1e-4)          # its step-1 move only
    assert np.all(dense[1] < lazy[1] - 1e-4)                       # dense: momentum moved it
    momentum = optimizer._momentums[0].numpy()
    np.testing.assert_allclose(momentum[1], 0.1, rtol=1e-5)        # not decayed since
    np.testing.assert_array_equal(momentum[[0, 2]], 0.0)
    # a row looked up at every step since its first: the same steps as the original's
    np.testing.assert_allclose(lazy[3], dense[3], rtol=1e-5)


def test_adam_is_kerass_adam_update_in_one_fused_kernel(rng, monkeypatch):
    """`DenseGradientAdam` applies Keras's Adam formula with TensorFlow's `ApplyAdam`."""
    calls, fused_op = [], tf.raw_ops.ResourceApplyAdam
    monkeypatch.setattr(tf.raw_ops, "ResourceApplyAdam",
                        lambda **kw: calls.append(1) or fused_op(**kw))
    gradients = [tf.constant(rng.normal(size=(4, 2)).astype("float32")) for _ in range(5)]
    fused, optimizer = _apply(make_optimizer("adam", 1e-2), gradients)
    reference = keras.optimizers.Adam(1e-2, beta_1=0.9, beta_2=0.999, epsilon=1e-8)
    keras_adam, _ = _apply(reference, gradients)
    assert len(calls) == 5 and int(optimizer.iterations) == 5
    np.testing.assert_allclose(fused, keras_adam, rtol=1e-5, atol=1e-7)
    assert np.abs(fused).max() > 0.01  # the weights moved


def test_lazy_adam_updates_dense_gradients_as_the_original():
    gradient = tf.constant([[0.5, -1.0], [0.0, 2.0], [1.0, 1.0], [0.0, 0.0]])
    lazy, _ = _apply(make_optimizer("lazy-adam", 1e-2), [gradient, gradient * 0.5])
    dense, _ = _apply(make_optimizer("adam", 1e-2), [gradient, gradient * 0.5])
    np.testing.assert_allclose(lazy, dense, rtol=1e-6)


def test_lazy_adam_serializes():
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(LazyAdam(2e-3)))
    assert isinstance(restored, LazyAdam)
    assert float(restored.learning_rate) == pytest.approx(2e-3)


@pytest.mark.parametrize("config", [PretrainConfig, FinetuneConfig])
def test_both_training_configs_take_the_optimizer_and_refuse_an_unknown_one(config):
    assert config().optimizer == "adam"
    assert config(optimizer="lazy-adam").optimizer == "lazy-adam"
    with pytest.raises(ConfigError, match="optimizer"):
        config(optimizer="sgd")


def test_the_learning_rate_schedules():
    from s3rec_tf.training.optim import learning_rate_schedule
    assert learning_rate_schedule("constant", 1e-3, 10, 5) == 1e-3
    cosine = learning_rate_schedule("cosine", 1e-3, steps_per_epoch=10, epochs=5,
                                    warmup_epochs=1)
    rate = lambda step: float(cosine(step))  # noqa: E731
    assert rate(0) == 0.0 and rate(5) == pytest.approx(5e-4)   # linear warm-up
    assert rate(10) == pytest.approx(1e-3)                      # its target after one epoch
    assert rate(30) == pytest.approx(5e-4, rel=1e-4)            # half way down the cosine
    assert rate(50) == pytest.approx(0.0, abs=1e-9)             # 0 at the last step
    no_warmup = learning_rate_schedule("cosine", 1e-3, 10, 5, warmup_epochs=0)
    assert float(no_warmup(0)) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="lr_schedule"):
        learning_rate_schedule("step", 1e-3, 10, 5)


def test_a_pretraining_job_follows_the_schedule(tiny_data):
    from s3rec_tf.config import EncoderConfig, PretrainConfig
    from s3rec_tf.training import pretraining_job
    job = pretraining_job(PretrainConfig(epochs=3, batch_size=512, lr_schedule="cosine",
                                         warmup_epochs=1), tiny_data,
                          EncoderConfig(hidden_size=16, max_length=10))
    schedule = job.optimizer._learning_rate
    assert float(schedule(job.steps_per_epoch)) == pytest.approx(1e-3)
    assert float(schedule(3 * job.steps_per_epoch)) == pytest.approx(0.0, abs=1e-9)
