import warnings

import numpy as np
import pytest

from s3rec_tf.data import inputs
from s3rec_tf.models.layers import SequenceEncoder
from s3rec_tf.models import NextItemModel
from s3rec_tf.training import adam


def _model(data, loss):
    enc = SequenceEncoder(data.num_items, data.num_attributes, max_length=20, hidden_size=16,
                          num_layers=1)
    return NextItemModel(enc, loss=loss)


@pytest.fixture(scope="module", params=["bce", "ce"])
def fitted(request, tiny_data):
    """A model of `request.param`'s loss fitted on two batches: the model, its item and
    attribute tables before the fit, the fit's history and warnings, and the batches."""
    loss = request.param
    model = _model(tiny_data, loss)
    model.compile(optimizer=adam(1e-2))
    before = {"attributes": model.encoder.attribute_table.numpy(),
              "items": model.encoder.item_table.numpy()}
    ds = inputs.finetune_dataset(inputs.finetune_arrays(tiny_data, 20), 32,
                                 negatives=loss == "bce").take(2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(ds, epochs=1, verbose=0)
    return {"model": model, "before": before, "history": history, "warnings": caught,
            "dataset": ds}


def test_fit_one_step(fitted):
    hist, model = fitted["history"], fitted["model"]
    assert list(hist.history) == ["loss"] and np.isfinite(hist.history["loss"][0])
    assert set(model.evaluate(fitted["dataset"], verbose=0, return_dict=True)) == {"loss"}


def test_fine_tuning_leaves_the_attribute_embedding_alone(fitted):
    model = fitted["model"]
    assert not [w for w in fitted["warnings"] if "Gradients do not exist" in str(w.message)]
    np.testing.assert_array_equal(model.encoder.attribute_table.numpy(),
                                  fitted["before"]["attributes"])
    assert not np.array_equal(model.encoder.item_table.numpy(), fitted["before"]["items"])
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


def _assert_same_loss_and_gradients(model, other, data, loss, batch_size, seed):
    """`other` gives `model`'s loss and gradients on a batch (no dropout)."""
    import tensorflow as tf
    batch = next(iter(inputs.finetune_dataset(inputs.finetune_arrays(data, 20), batch_size,
                                              negatives=loss == "bce", seed=seed)))
    results = []
    for m in (model, other):
        with tf.GradientTape() as tape:
            value = m.compute_loss_value(batch, training=False)
        grads = tape.gradient(value, model.finetuned_variables)
        results.append((float(value), [tf.convert_to_tensor(g).numpy() for g in grads]))
    assert results[1][0] == pytest.approx(results[0][0], rel=1e-5)
    for got, expected in zip(results[1][1], results[0][1]):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("loss", ["bce", "ce"])
def test_loss_without_padding_equals_the_padded_batch(tiny_data, loss):
    """The default encodes the batch's items alone (`kernels.TokenLayout`): same loss and
    gradients as the padded batch encoded as one block."""
    model = _model(tiny_data, loss)
    block = NextItemModel(model.encoder, loss=loss, length_buckets=None)
    _assert_same_loss_and_gradients(block, model, tiny_data, loss, 16, seed=3)


@pytest.mark.parametrize("loss", ["bce", "ce"])
def test_batch_shards_give_the_loss_and_gradients_of_the_whole_batch(tiny_data, loss):
    """`batch_shards`: the batch encoded in parts that run side by side, same loss."""
    whole = NextItemModel(_model(tiny_data, loss).encoder, loss=loss, batch_shards=1)
    split = NextItemModel(whole.encoder, loss=loss, batch_shards=2)
    _assert_same_loss_and_gradients(whole, split, tiny_data, loss, 15, seed=4)
    config = split.get_config()
    assert config["batch_shards"] == 2
    assert NextItemModel.from_config(config).batch_shards == 2
    assert NextItemModel(whole.encoder).batch_shards is None  # the process's setting
    with pytest.raises(ValueError, match="batch_shards"):
        NextItemModel(whole.encoder, batch_shards=0)


def test_score_last_and_unknown_loss(tiny_data):
    model = _model(tiny_data, "bce")
    scores = model.score_last(np.array([[0, 1, 2]])).numpy()
    assert scores.shape == (1, tiny_data.item_size)
    with pytest.raises(ValueError, match="loss"):
        _model(tiny_data, "hinge")


def _sampled_model(data, arrays, **options):
    enc = SequenceEncoder(data.num_items, data.num_attributes, max_length=20, hidden_size=16,
                          num_layers=1)
    return NextItemModel(enc, loss="sampled-ce", item_counts=inputs.target_counts(arrays),
                         **options)


def test_sampled_ce_with_every_item_drawn_once_is_the_full_ce(tiny_data):
    arrays = inputs.finetune_arrays(tiny_data, 20)
    n = tiny_data.num_items
    model = _sampled_model(tiny_data, arrays, sampled_negatives=n, proposal="uniform")
    ce = NextItemModel(model.encoder, loss="ce")
    batch = {"input_ids": arrays.input_ids[:8], "target_pos": arrays.target_pos[:8]}
    # uniform proposal, S = num_items: each item's expected count is 1 (no correction)
    every_item = np.tile(np.arange(1, n + 1), (8, 1))
    got = float(model.compute_loss_value({**batch, "sampled_neg": every_item}))
    assert got == pytest.approx(float(ce.compute_loss_value(batch)), rel=1e-5)


@pytest.mark.parametrize("sampled,proposal,in_batch", [
    (3, "popularity", False), (0, "uniform", True), (3, "uniform", True)])
def test_sampled_ce_matches_a_numpy_reference(tiny_data, sampled, proposal, in_batch):
    arrays = inputs.finetune_arrays(tiny_data, 20)
    counts = inputs.target_counts(arrays)
    model = _sampled_model(tiny_data, arrays, sampled_negatives=sampled, proposal=proposal,
                           in_batch_negatives=in_batch)
    x, y = arrays.input_ids[:4, -6:], arrays.target_pos[:4, -6:]
    batch = {"input_ids": x, "target_pos": y}
    if sampled:
        # fixed draws among items the proposals can draw, one twice, and an accidental
        # hit: row 0 draws its own last target
        pool = np.flatnonzero(counts)
        batch["sampled_neg"] = np.array([[y[0, -1], pool[0], pool[1]],
                                         [pool[2], pool[2], pool[3]],
                                         [pool[4], pool[5], pool[6]],
                                         [pool[1], pool[7], pool[8]]])
    out = model(x).numpy()
    table = model.encoder.item_table.numpy()
    q = inputs.proposal_weights(proposal, counts) / inputs.proposal_weights(proposal,
                                                                            counts).sum()
    p = counts / counts.sum()
    positions = [(b, t) for b in range(4) for t in range(6) if y[b, t] > 0]
    expected = sampled * q + (len(positions) * p if in_batch else 0)
    total = 0.0
    for b, t in positions:
        h, target = out[b, t], y[b, t]
        negatives = list(batch["sampled_neg"][b]) if sampled else []
        if in_batch:  # every counted position's target, duplicates included
            negatives += [y[bb, tt] for bb, tt in positions]
        terms = [np.exp(h @ table[j]) / expected[j] for j in negatives if j != target]
        pos = h @ table[target]
        total += -pos + np.log(np.exp(pos) + np.sum(terms))
    got = float(model.compute_loss_value(batch))
    assert np.isfinite(got) and got == pytest.approx(total / len(positions), rel=1e-4)


def test_sampled_ce_fits_and_needs_item_counts(tiny_data):
    arrays = inputs.finetune_arrays(tiny_data, 20)
    model = _sampled_model(tiny_data, arrays, sampled_negatives=5, proposal="popularity",
                           in_batch_negatives=True)
    model.compile(optimizer=adam(1e-3))
    ds = inputs.finetune_dataset(arrays, 32, negatives=False, sampled_negatives=5,
                                 proposal=inputs.proposal_weights(
                                     "popularity", inputs.target_counts(arrays))).take(2)
    assert np.isfinite(model.fit(ds, epochs=1, verbose=0).history["loss"][0])
    config = model.get_config()
    assert (config["sampled_negatives"], config["proposal"], config["in_batch_negatives"]) \
        == (5, "popularity", True)
    bare = NextItemModel(model.encoder, loss="sampled-ce")  # as loaded from a model dir
    with pytest.raises(ValueError, match="item_counts"):
        bare.compute_loss_value(next(iter(ds)))


def _predicting_model(data, predict_k=10):
    enc = SequenceEncoder(data.num_items, data.num_attributes, max_length=10, hidden_size=8,
                          num_layers=1, num_heads=1)
    return NextItemModel(enc, loss="bce", predict_k=predict_k)


def test_predict_recommends_the_top_k_items_outside_the_history(tiny_data):
    model = _predicting_model(tiny_data, predict_k=7)
    histories = inputs.eval_arrays(tiny_data, "test", 10).input_ids[:9]
    out = model.predict(histories, batch_size=4, verbose=0)
    assert set(out) == {"item_ids", "scores"}
    assert out["item_ids"].shape == out["scores"].shape == (9, 7)
    scores = model.score_last(histories).numpy()
    for row, history in enumerate(histories):
        eligible = np.setdiff1d(np.arange(1, tiny_data.num_items + 1), history)
        best = eligible[np.argsort(-scores[row, eligible], kind="stable")[:7]]
        np.testing.assert_array_equal(out["item_ids"][row], best)
        np.testing.assert_allclose(out["scores"][row], scores[row, best], rtol=1e-6)
    # a fine-tuning batch (a dict) is answered for its `input_ids`
    batch = {"input_ids": histories, "target_pos": np.zeros_like(histories)}
    np.testing.assert_array_equal(model.predict_step(batch)["item_ids"], out["item_ids"])


def test_predict_fills_rows_with_fewer_eligible_items_than_k(tiny_data):
    model = _predicting_model(tiny_data, predict_k=tiny_data.num_items)
    history = np.arange(1, 11, dtype=np.int32)[None]  # 10 items: num_items - 10 eligible
    out = model.predict(history, verbose=0)
    eligible = tiny_data.num_items - 10
    assert sorted(out["item_ids"][0, :eligible]) == list(range(11, tiny_data.num_items + 1))
    assert (out["item_ids"][0, eligible:] == 0).all()
    assert np.isneginf(out["scores"][0, eligible:]).all()


def test_predict_k_is_checked_and_saved(tiny_data):
    model = _predicting_model(tiny_data, predict_k=3)
    assert NextItemModel.from_config(model.get_config()).predict_k == 3
    with pytest.raises(ValueError, match="predict_k"):
        _predicting_model(tiny_data, predict_k=0)
