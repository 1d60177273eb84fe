import keras
import numpy as np
import pytest

from s3rec_tf.data import inputs
from s3rec_tf.models.layers import SequenceEncoder
from s3rec_tf.models import S3RecPretrainer
from s3rec_tf.training import adam


def _model(data, **kw):
    enc = SequenceEncoder(data.num_items, data.num_attributes, max_length=20, hidden_size=16,
                          num_layers=1, dropout=0.0, attention_dropout=0.0)
    return S3RecPretrainer(enc, data.attribute_table(), **kw)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_fit_one_step_reports_every_loss(tiny_data):
    model = _model(tiny_data)
    model.compile(optimizer=adam(1e-3))
    ds = inputs.pretrain_dataset(inputs.pretrain_arrays(tiny_data, 20), 32, seed=0).take(2)
    hist = model.fit(ds, epochs=1, verbose=0)
    assert set(hist.history) == {"loss", "aap_loss", "mip_loss", "map_loss", "sp_loss"}
    logs = model.evaluate(ds, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "aap_loss", "mip_loss", "map_loss", "sp_loss"}
    expected = (0.2 * logs["aap_loss"] + logs["mip_loss"] + logs["map_loss"]
                + 0.5 * logs["sp_loss"])
    assert logs["loss"] == pytest.approx(expected, rel=1e-4)


def test_losses_against_a_numpy_reference(tiny_data):
    """Each head's loss recomputed by hand from the encoder outputs."""
    model = _model(tiny_data)
    arrays = inputs.pretrain_arrays(tiny_data, 20)
    batch = {k: v.numpy() for k, v in
             next(iter(inputs.pretrain_dataset(arrays, 8, seed=4, trim=False))).items()}
    got = {k: float(v) for k, v in model.compute_losses(batch, training=False).items()}

    enc = model.encoder
    mask_id = enc.mask_id
    seq = enc(batch["masked_item_sequence"]).numpy()
    attr_emb = enc.attribute_table.numpy()
    item_emb = enc.item_table.numpy()
    table = tiny_data.attribute_table()

    def dense(layer, x):
        w, b = layer.get_weights()
        return x @ w + b

    def multi_hot(item):
        t = np.zeros(enc.attribute_size)
        t[table[item][table[item] > 0]] = 1
        return t

    aap = mip = map_ = 0.0
    for r in range(seq.shape[0]):
        for c in range(seq.shape[1]):
            m = batch["masked_item_sequence"][r, c]
            item = batch["pos_items"][r, c]
            if m == 0:
                continue
            target = multi_hot(item)
            if m != mask_id:
                p = sigmoid(attr_emb @ dense(model.aap_dense, seq[r, c]))
                aap += -(target * np.log(p) + (1 - target) * np.log(1 - p)).sum()
            else:
                h = dense(model.mip_dense, seq[r, c])
                d = sigmoid(sigmoid(h @ item_emb[item]) -
                            sigmoid(h @ item_emb[batch["neg_items"][r, c]]))
                mip += -np.log(d)
                p = sigmoid(attr_emb @ dense(model.map_dense, seq[r, c]))
                map_ += -(target * np.log(p) + (1 - target) * np.log(1 - p)).sum()
    ctx = dense(model.sp_dense, enc(batch["masked_segment_sequence"]).numpy()[:, -1])
    pos = enc(batch["pos_segment"]).numpy()[:, -1]
    neg = enc(batch["neg_segment"]).numpy()[:, -1]
    sp = -np.log(sigmoid(sigmoid((ctx * pos).sum(-1)) - sigmoid((ctx * neg).sum(-1)))).sum()
    for name, value in (("aap", aap), ("mip", mip), ("map", map_), ("sp", sp)):
        assert got[name] == pytest.approx(value, rel=1e-4), name


def test_mip_ce_is_the_softmax_over_the_items_at_masked_positions(tiny_data):
    """`mip_loss="ce"` changes MIP alone: the summed softmax cross-entropy over items."""
    original, model = _model(tiny_data), _model(tiny_data, mip_loss="ce")
    model.set_weights(original.get_weights())
    arrays = inputs.pretrain_arrays(tiny_data, 20)
    batch = {k: v.numpy() for k, v in
             next(iter(inputs.pretrain_dataset(arrays, 8, seed=4, trim=False))).items()}
    got = {k: float(v) for k, v in model.compute_losses(batch, training=False).items()}
    base = {k: float(v) for k, v in original.compute_losses(batch, training=False).items()}
    for name in ("aap", "map", "sp"):
        assert got[name] == pytest.approx(base[name], rel=1e-5), name

    enc = model.encoder
    seq = enc(batch["masked_item_sequence"]).numpy()
    items = enc.item_table.numpy()[1:enc.num_items + 1]  # padding and the mask id left out
    w, b = model.mip_dense.get_weights()
    rows = batch["masked_item_sequence"] == enc.mask_id
    assert rows.any()
    logits = (seq[rows] @ w + b) @ items.T
    top = logits.max(-1)
    log_z = top + np.log(np.exp(logits - top[:, None]).sum(-1))
    target = logits[np.arange(len(logits)), batch["pos_items"][rows] - 1]
    assert got["mip"] == pytest.approx((log_z - target).sum(), rel=1e-4)

    model.compile(optimizer=adam(1e-3))
    ds = inputs.pretrain_dataset(arrays, 32, seed=0).take(2)
    assert np.isfinite(model.fit(ds, epochs=1, verbose=0).history["mip_loss"][0])


def test_trimmed_and_padded_batches_give_the_same_losses(tiny_data):
    model = _model(tiny_data)
    arrays = inputs.pretrain_arrays(tiny_data, 20)
    a = next(iter(inputs.pretrain_dataset(arrays, 16, seed=9, trim=True)))
    b = next(iter(inputs.pretrain_dataset(arrays, 16, seed=9, trim=False)))
    la = model.compute_losses(a, training=False)
    lb = model.compute_losses(b, training=False)
    for k in la:
        assert float(la[k]) == pytest.approx(float(lb[k]), rel=1e-4)


def test_loss_weights_and_table_are_validated(tiny_data):
    with pytest.raises(ValueError, match="Unknown loss weight"):
        _model(tiny_data, loss_weights={"xyz": 1.0})
    enc = SequenceEncoder(tiny_data.num_items, tiny_data.num_attributes)
    with pytest.raises(ValueError, match="item_attributes"):
        S3RecPretrainer(enc, np.zeros((3, 1)))


def test_config_round_trip(tiny_data):
    model = _model(tiny_data, loss_weights={"sp": 0.7}, attribute_bce="softplus",
                   segment_loss="logit-gap", mip_loss="ce")
    clone = S3RecPretrainer.from_config(model.get_config())
    assert clone.mip_loss == "ce"
    assert _model(tiny_data).mip_loss == "original"
    with pytest.raises(ValueError, match="mip_loss"):
        _model(tiny_data, mip_loss="bpr")
    assert clone.loss_weights_["sp"] == 0.7
    assert clone.attribute_bce == "softplus"
    assert clone.segment_loss == "logit-gap"
    assert _model(tiny_data).attribute_bce == "original"
    assert _model(tiny_data).segment_loss == "original"
    with pytest.raises(ValueError, match="attribute_bce"):
        _model(tiny_data, attribute_bce="logits")
    with pytest.raises(ValueError, match="segment_loss"):
        _model(tiny_data, segment_loss="bpr")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert restored.encoder.get_config() == model.encoder.get_config()
