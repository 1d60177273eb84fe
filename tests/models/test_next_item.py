import warnings

import numpy as np
import pytest

from s3rec_tf.data import inputs
from s3rec_tf.layers import SequenceEncoder
from s3rec_tf.models import NextItemModel
from s3rec_tf.training import adam


def _model(data, loss):
    enc = SequenceEncoder(data.num_items, data.num_attributes, max_length=20, hidden_size=16)
    return NextItemModel(enc, loss=loss)


@pytest.mark.parametrize("loss", ["bce", "ce"])
def test_fit_one_step(tiny_data, loss):
    model = _model(tiny_data, loss)
    model.compile(optimizer=adam(1e-3))
    ds = inputs.finetune_dataset(inputs.finetune_arrays(tiny_data, 20), 32,
                                 negatives=loss == "bce").take(1)
    hist = model.fit(ds, epochs=1, verbose=0)
    assert list(hist.history) == ["loss"] and np.isfinite(hist.history["loss"][0])
    assert set(model.evaluate(ds, verbose=0, return_dict=True)) == {"loss"}


@pytest.mark.parametrize("loss", ["bce", "ce"])
def test_fine_tuning_leaves_the_attribute_embedding_alone(tiny_data, loss):
    model = _model(tiny_data, loss)
    model.compile(optimizer=adam(1e-2))
    attributes = model.encoder.attribute_table.numpy()
    items = model.encoder.item_table.numpy()
    ds = inputs.finetune_dataset(inputs.finetune_arrays(tiny_data, 20), 32,
                                 negatives=loss == "bce").take(2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(ds, epochs=1, verbose=0)
    assert not [w for w in caught if "Gradients do not exist" in str(w.message)]
    np.testing.assert_array_equal(model.encoder.attribute_table.numpy(), attributes)
    assert not np.array_equal(model.encoder.item_table.numpy(), items)
    # the layout of weights and optimizer state is the one of all trainable variables
    assert any(v is model.encoder.attribute_table for v in model.trainable_variables)
    assert len(model.finetuned_variables) == len(model.trainable_variables) - 1
    assert len(model.optimizer.variables) == 2 + 2 * len(model.trainable_variables)


def test_ce_loss_is_softmax_over_real_items(tiny_data):
    model = _model(tiny_data, "ce")
    x = np.array([[0, 0, 3, 4]])
    y = np.array([[0, 0, 4, 5]])
    got = float(model.compute_loss_value({"input_ids": x, "target_pos": y}))
    out = model(x).numpy()[0]
    table = model.encoder.item_table.numpy()
    total = 0.0
    for pos, target in ((2, 4), (3, 5)):
        logits = out[pos] @ table.T
        logits = logits[1:-1]  # without padding 0 and the mask id
        total += -(logits[target - 1] - np.log(np.exp(logits).sum()))
    assert got == pytest.approx(total / 2, rel=1e-4)


def test_score_last_and_unknown_loss(tiny_data):
    model = _model(tiny_data, "bce")
    scores = model.score_last(np.array([[0, 1, 2]])).numpy()
    assert scores.shape == (1, tiny_data.item_size)
    with pytest.raises(ValueError, match="loss"):
        _model(tiny_data, "hinge")
