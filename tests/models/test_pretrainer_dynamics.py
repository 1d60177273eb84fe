"""Pretraining dynamics: Segment Prediction must learn, not saturate (issue 17).

`benchmarks/compare_original_training.py` compares the training steps with the
original code; these tests pin the causes it found.
"""

import math
import os

import keras
import pytest
import numpy as np
import tensorflow as tf

from s3rec_tf.training import adam

USERS, HIDDEN, BATCH, STEPS = 100, 64, 100, 150
#: The reported SP loss is the mean over this many last steps.
LAST = 50


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


FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "original_pretrain_steps.npz")


def test_training_steps_track_the_original_code():
    """20 steps from the original's initial weights on its batches: the same losses.

    `fixtures/original_pretrain_steps.npz` holds a freshly initialised
    original `S3RecModel` (hidden 16) on the synthetic `Tiny` set of
    `conftest.py`, 20 of the original `PretrainDataset`'s batches (batch 32,
    the 25 non-empty columns of 50) and the original's four losses before
    each update, dropout off; made with `benchmarks/compare_original_training.py
    --side original --data <synth Tiny> --name Tiny --users 120 --steps 20
    --batch-size 32 --hidden-size 16`. Measured: the largest relative gap
    is 2.5e-6; with Keras's own Adam (repeated embedding rows stepping up
    to sqrt(k) times too far) it is 1.3e-2 (AAP, step 19), 2.3e-3 by step 3.
    """
    from s3rec_tf import original_weights as ow
    from s3rec_tf.models.layers import SequenceEncoder
    from s3rec_tf.models import S3RecPretrainer
    from s3rec_tf.models.pretrainer import PRETRAIN_KEYS
    with np.load(FIXTURE) as f:
        fixture = {k: f[k] for k in f.files}
    weights = {k[len("init/"):]: v for k, v in fixture.items() if k.startswith("init/")}
    encoder = SequenceEncoder(**ow.encoder_config_from_weights(weights), dropout=0.0,
                              attention_dropout=0.0)
    model = S3RecPretrainer(encoder, fixture["attribute_table"])
    ow.load_into_pretrainer(model, weights)
    model.compile(optimizer=adam(1e-3))
    expected = fixture["original_losses"]
    batch_size = fixture["batch/pos_items"].shape[1]
    for step in range(len(expected)):
        batch = {k: tf.constant(fixture[f"batch/{k}"][step], tf.int32) for k in PRETRAIN_KEYS}
        got = [float(v) / batch_size for v in model.compute_losses(batch).values()]
        np.testing.assert_allclose(got, expected[step], rtol=1e-4, err_msg=f"step {step}")
        model.train_step(batch)


def _beauty_slice(users: int):
    from s3rec_tf.data.reader import SequenceData, read_dataset
    from tests.conftest import shared_file
    full = read_dataset(shared_file("data", "s3rec"), "Beauty")
    return SequenceData("Beauty", full.user_ids[:users], full.sequences[:users],
                        full.num_items, full.num_attributes, full.item_attributes)


def train_segment_prediction(optimizer, **pretrainer_kwargs):
    """`STEPS` pretraining steps on a Beauty slice, dropout off.

    Returns:
        `(sp_loss over the last LAST steps, share of saturated SP scores on a
        probe batch)`.
    """
    from s3rec_tf.data import inputs
    from s3rec_tf.models.layers import SequenceEncoder
    from s3rec_tf.models import S3RecPretrainer
    data = _beauty_slice(USERS)
    keras.utils.set_random_seed(0)
    encoder = SequenceEncoder(data.num_items, data.num_attributes, hidden_size=HIDDEN,
                              dropout=0.0, attention_dropout=0.0)
    model = S3RecPretrainer(encoder, data.attribute_table(), **pretrainer_kwargs)
    model.compile(optimizer=optimizer)
    arrays = inputs.pretrain_arrays(data, 50)
    dataset = inputs.pretrain_dataset(arrays, BATCH, seed=0, epochs=10**4)
    # one pass over the batches; each Keras epoch averages its own LAST steps
    history = model.fit(dataset, epochs=STEPS // LAST, steps_per_epoch=LAST, verbose=0).history
    probe = next(iter(inputs.pretrain_dataset(arrays, 400, seed=1)))
    pos, neg = model.segment_logits(probe, training=False)
    p = tf.sigmoid(tf.concat([pos, neg], 0)).numpy()
    return history["sp_loss"][-1], float(np.mean((p > 0.999) | (p < 0.001)))


def test_segment_prediction_learns_on_a_short_sequence_dataset():
    """150 steps on a 100-user Beauty slice (dropout off) take SP below ln 2, unsaturated.

    Measured (one seed): now SP 0.590 with 37% of the scores saturated (the
    same to three decimals with one or two intra-op threads, oneDNN on or
    off); with the previous Keras Adam and softplus BCE, 0.685 with 82%
    saturated, so both bounds separate them. A SP loss held at ln 2 fails the
    first bound. The dynamics depend on the seed (fixed here): with 300 users and
    300 steps, seed 1 stays saturated at ln 2, seed 2 learns but is 57% saturated.
    (With the paper's dropout both this code and the original stay saturated
    far longer; `--segment-loss logit-gap` is the remedy measured in
    `benchmarks/results/sp-dynamics/`.)
    """
    sp_loss, saturated = train_segment_prediction(adam(1e-3))
    assert sp_loss < math.log(2) - 0.05, sp_loss
    assert saturated < 0.5, saturated
