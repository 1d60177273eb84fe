"""Keras `fit` on the library's datasets: known cardinality, no warning."""

import warnings

import numpy as np
import pytest

from s3rec_tf.data import inputs
from s3rec_tf.models.layers import SequenceEncoder
from s3rec_tf.models import NextItemModel, S3RecPretrainer
from s3rec_tf.training import adam


def _encoder(data):
    return SequenceEncoder(data.num_items, data.num_attributes, max_length=10, hidden_size=8,
                           num_layers=1, num_heads=1)


@pytest.mark.parametrize("first_epoch, epochs", [(0, 1), (0, 3), (2, 3), (3, 3)])
def test_the_training_datasets_know_their_batches(tiny_data, first_epoch, epochs):
    pre = inputs.pretrain_arrays(tiny_data, 10)
    fine = inputs.finetune_arrays(tiny_data, 10)
    built = [(inputs.pretrain_dataset(pre, 64, first_epoch=first_epoch, epochs=epochs),
              inputs.steps_per_epoch(pre.num_samples, 64)),
             (inputs.finetune_dataset(fine, 50, first_epoch=first_epoch, epochs=epochs),
              inputs.steps_per_epoch(len(fine.input_ids), 50))]
    for dataset, steps in built:
        expected = (epochs - first_epoch) * steps
        assert int(dataset.cardinality()) == expected
        assert sum(1 for _ in dataset) == expected  # the declared count is the true one


def _fit_quietly(model, dataset, capsys, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(dataset, **kwargs)
    assert [str(w.message) for w in caught] == []
    return history, capsys.readouterr().out


def test_pretrainer_fit_as_documented_warns_nothing_and_counts_its_steps(tiny_data, capsys):
    arrays = inputs.pretrain_arrays(tiny_data, 10)
    steps = inputs.steps_per_epoch(arrays.num_samples, 100)
    model = S3RecPretrainer(_encoder(tiny_data), item_attributes=tiny_data.attribute_table())
    model.compile(optimizer=adam(1e-3))
    history, out = _fit_quietly(model, inputs.pretrain_dataset(arrays, 100, epochs=1), capsys)
    assert np.isfinite(history.history["loss"][0])
    assert f"{steps}/{steps}" in out and "Unknown" not in out


def test_next_item_fit_over_epochs_warns_nothing(tiny_data, capsys):
    arrays = inputs.finetune_arrays(tiny_data, 10)
    steps = inputs.steps_per_epoch(len(arrays.input_ids), 32)
    model = NextItemModel(_encoder(tiny_data), loss="bce")
    model.compile(optimizer=adam(1e-3))
    history, out = _fit_quietly(model, inputs.finetune_dataset(arrays, 32, epochs=2), capsys,
                                epochs=2, steps_per_epoch=steps, verbose=2)
    assert len(history.history["loss"]) == 2
    assert out.count(f"{steps}/{steps}") == 2


def test_an_explicit_shuffle_is_passed_on(tiny_data):
    model = NextItemModel(_encoder(tiny_data), loss="bce")
    model.compile(optimizer=adam(1e-3))
    dataset = inputs.finetune_dataset(inputs.finetune_arrays(tiny_data, 10), 64)
    with pytest.warns(UserWarning, match="shuffle=True"):  # Keras's, as it reads the data
        model.fit(dataset, shuffle=True, epochs=0, verbose=0)  # no step needed
