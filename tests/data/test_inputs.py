import numpy as np
import pytest
import tensorflow as tf

from s3rec_tf.data import inputs


@pytest.fixture(scope="module")
def batches(tiny_data):
    arrays = inputs.pretrain_arrays(tiny_data, max_length=20)
    ds = inputs.pretrain_dataset(arrays, batch_size=64, mask_p=0.3, seed=11, epochs=1)
    return arrays, [{k: v.numpy() for k, v in b.items()} for b in ds]


def test_every_prefix_of_the_training_part(tiny_data):
    arrays = inputs.pretrain_arrays(tiny_data, max_length=20)
    expected = sum(min(len(s) - 2, 20) for s in tiny_data.sequences)
    assert arrays.num_samples == expected
    # the first user's prefixes are items[-22:-2][:1], [:2], ...
    part = tiny_data.sequences[0][-22:-2]
    for k in range(len(part)):
        s, n = arrays.starts[k], arrays.lengths[k]
        assert arrays.flat_items[s:s + n].tolist() == part[:k + 1].tolist()


def test_epoch_covers_all_samples_once(batches):
    arrays, bs = batches
    assert sum(len(b["pos_items"]) for b in bs) == arrays.num_samples
    got = sorted(tuple(r[r > 0]) for b in bs for r in b["pos_items"])
    want = sorted(tuple(arrays.flat_items[s:s + n]) for s, n in
                  zip(arrays.starts, arrays.lengths))
    assert got == want


def test_masking_rules(batches, tiny_data):
    _, bs = batches
    mask_id = tiny_data.mask_id
    masked_share = []
    for b in bs:
        pos, masked, neg = b["pos_items"], b["masked_item_sequence"], b["neg_items"]
        assert (masked[:, -1] == mask_id).all(), "the last position is always masked"
        real = pos > 0
        assert ((masked == 0) == ~real).all()
        is_masked = masked == mask_id
        unmasked = real & ~is_masked
        assert (masked[unmasked] == pos[unmasked]).all()
        assert (neg[unmasked] == pos[unmasked]).all()
        for r in range(len(pos)):
            prefix = set(pos[r][pos[r] > 0].tolist())
            for c in np.flatnonzero(is_masked[r]):
                assert neg[r, c] not in prefix and 1 <= neg[r, c] <= tiny_data.num_items
        masked_share.append(is_masked[:, :-1][real[:, :-1]].mean())
    assert 0.2 < np.mean(masked_share) < 0.4  # mask_p = 0.3


def test_segment_rules(batches, tiny_data):
    arrays, bs = batches
    mask_id = tiny_data.mask_id
    long_seq = arrays.long_sequence.tolist()
    for b in bs:
        for r in range(len(b["pos_items"])):
            pos = b["pos_items"][r]
            real = pos > 0
            n = int(real.sum())
            mseg, pseg, nseg = (b[k][r] for k in ("masked_segment_sequence", "pos_segment",
                                                  "neg_segment"))
            if n < 2:
                assert (mseg == pos).all() and (pseg == pos).all() and (nseg == pos).all()
                continue
            seg = mseg == mask_id
            length = int(seg.sum())
            assert 1 <= length <= n // 2, "segments are at most half the length"
            idx = np.flatnonzero(seg)
            assert (np.diff(idx) == 1).all(), "one contiguous segment"
            assert (pseg[seg] == pos[seg]).all() and (pseg[real & ~seg] == mask_id).all()
            assert (nseg[real & ~seg] == mask_id).all()
            assert (mseg[real & ~seg] == pos[real & ~seg]).all()
            neg_items = nseg[seg].tolist()
            # the negative segment is a contiguous run of the concatenated sequences
            hits = [i for i in range(len(long_seq) - length + 1)
                    if long_seq[i:i + length] == neg_items]
            assert hits


def test_fresh_each_epoch_reproducible_and_resumable(tiny_data):
    arrays = inputs.pretrain_arrays(tiny_data, max_length=20)

    def first(ds):
        return next(iter(ds))["masked_item_sequence"].numpy()

    a = inputs.pretrain_dataset(arrays, 32, seed=1, epochs=2)
    b = inputs.pretrain_dataset(arrays, 32, seed=1, epochs=2)
    steps = inputs.steps_per_epoch(arrays.num_samples, 32)
    la = [x["masked_item_sequence"].numpy() for x in a]
    lb = [x["masked_item_sequence"].numpy() for x in b]
    assert len(la) == 2 * steps
    assert all(np.array_equal(x, y) for x, y in zip(la, lb))
    assert not np.array_equal(la[0], la[steps]) or la[0].shape != la[steps].shape
    resumed = inputs.pretrain_dataset(arrays, 32, seed=1, first_epoch=1, epochs=2)
    assert np.array_equal(first(resumed), la[steps])


def _prefixes(batches):
    return sorted(tuple(int(v) for v in r[r > 0]) for b in batches for r in b["pos_items"])


def test_one_prefix_per_user_each_epoch_its_length_drawn(tiny_data):
    arrays = inputs.pretrain_arrays(tiny_data, max_length=20)
    users = sum(1 for s in tiny_data.sequences if len(s) > 2)
    assert arrays.samples_per_epoch("one-per-user") == users < arrays.num_samples
    epochs = [[{k: v.numpy() for k, v in b.items()} for b in
               inputs.pretrain_dataset(arrays, 32, seed=3, first_epoch=e, epochs=e + 1,
                                       prefix_sampling="one-per-user")] for e in (0, 1)]
    assert len(epochs[0]) == inputs.steps_per_epoch(users, 32)
    parts = [tuple(int(v) for v in s[-22:-2]) for s in tiny_data.sequences if len(s) > 2]
    for batches in epochs:
        got = _prefixes(batches)
        assert len(got) == users
        # each sample is a non-empty prefix of a distinct user's training part
        firsts = sorted(p[:1] for p in got)
        assert firsts == sorted(p[:1] for p in parts)
        assert all(any(p == part[:len(p)] for part in parts) for p in got)
    assert _prefixes(epochs[0]) != _prefixes(epochs[1])  # lengths drawn again each epoch
    lengths = np.concatenate([(b["pos_items"] > 0).sum(1) for b in epochs[0]])
    assert lengths.min() == 1 and lengths.max() > 10  # uniform over 1..len, not the full part
    # a run resumed at epoch 1 draws epoch 1's samples
    again = inputs.pretrain_dataset(arrays, 32, seed=3, epochs=2, prefix_sampling="one-per-user")
    assert _prefixes([{k: v.numpy() for k, v in b.items()}
                      for b in again.skip(len(epochs[0]))]) == _prefixes(epochs[1])
    with pytest.raises(ValueError, match="prefix_sampling"):
        inputs.pretrain_dataset(arrays, prefix_sampling="some")


def test_trimming_cuts_only_left_padding(tiny_data):
    arrays = inputs.pretrain_arrays(tiny_data, max_length=20)
    trimmed = next(iter(inputs.pretrain_dataset(arrays, 16, seed=2, shuffle=False)))
    padded = next(iter(inputs.pretrain_dataset(arrays, 16, seed=2, shuffle=False, trim=False)))
    width = trimmed["pos_items"].shape[1]
    assert padded["pos_items"].shape[1] == 20
    assert width == int(arrays.lengths[:16].max())
    np.testing.assert_array_equal(padded["pos_items"].numpy()[:, -width:],
                                  trimmed["pos_items"].numpy())
    assert (padded["pos_items"].numpy()[:, :-width] == 0).all()


def test_finetune_batches_follow_the_original_split(tiny_data):
    arrays = inputs.finetune_arrays(tiny_data, max_length=20)
    seq = tiny_data.sequences[0]
    row = arrays.input_ids[0]
    assert row[row > 0].tolist() == seq[:-3][-20:].tolist()
    tgt = arrays.target_pos[0]
    assert tgt[tgt > 0].tolist() == seq[1:-2][-20:].tolist()
    ds = inputs.finetune_dataset(arrays, batch_size=len(arrays.input_ids), seed=0,
                                 shuffle=False)
    b = {k: v.numpy() for k, v in next(iter(ds)).items()}
    assert set(b) == {"input_ids", "target_pos", "target_neg"}
    for u, s in enumerate(tiny_data.sequences):
        negs = b["target_neg"][u][b["target_pos"][u] > 0]
        assert not set(negs.tolist()) & set(s.tolist())
    assert ((b["target_neg"] == 0) == (b["target_pos"] == 0)).all()
    ce = next(iter(inputs.finetune_dataset(arrays, 8, negatives=False)))
    assert "target_neg" not in ce


def test_prefix_rows_hold_the_same_pairs_each_at_the_end_of_its_row(tiny_data):
    by_sequence = inputs.finetune_arrays(tiny_data, max_length=20)
    arrays = inputs.finetune_arrays(tiny_data, max_length=20, rows="prefixes")
    assert len(arrays.input_ids) == sum(len(s) - 3 for s in tiny_data.sequences)
    assert (arrays.target_pos[:, :-1] == 0).all() and (arrays.target_pos[:, -1] > 0).all()
    for r in (0, 1, len(arrays.input_ids) - 1):
        u = arrays.user_index[r]
        s = tiny_data.sequences[u]
        k = r - int(np.flatnonzero(arrays.user_index == u)[0]) + 1  # a user's rows: k = 1, 2, ..
        row = arrays.input_ids[r]
        assert row[row > 0].tolist() == s[:k][-20:].tolist()
        assert arrays.target_pos[r, -1] == s[k]
    # the same next items as the per-user rows, user by user (all of them: no cut here)
    for u, s in enumerate(tiny_data.sequences):
        mine = arrays.target_pos[arrays.user_index == u, -1]
        assert mine.tolist() == s[1:-2].tolist()
        kept = by_sequence.target_pos[u]
        assert kept[kept > 0].tolist() == mine[-20:].tolist()
    # each row's negatives avoid its own user's items
    ds = inputs.finetune_dataset(arrays, batch_size=len(arrays.input_ids), seed=0,
                                 shuffle=False)
    b = {k: v.numpy() for k, v in next(iter(ds)).items()}
    for r in range(len(arrays.input_ids)):
        negs = b["target_neg"][r][b["target_pos"][r] > 0]
        assert not set(negs.tolist()) & set(tiny_data.sequences[arrays.user_index[r]].tolist())
    with pytest.raises(ValueError, match="rows"):
        inputs.finetune_arrays(tiny_data, rows="windows")


def test_eval_arrays(tiny_data):
    valid = inputs.eval_arrays(tiny_data, "valid", 20)
    test = inputs.eval_arrays(tiny_data, "test", 20)
    s = tiny_data.sequences[0]
    assert valid.answers[0] == s[-2] and test.answers[0] == s[-1]
    assert valid.input_ids[0][-1] == s[-3] and test.input_ids[0][-1] == s[-2]
    h = test.history[0]
    assert sorted(h[h > 0].tolist()) == sorted(s[:-1].tolist())
    with pytest.raises(ValueError, match="split"):
        inputs.eval_arrays(tiny_data, "train")


def test_bad_arguments(tiny_data):
    arrays = inputs.pretrain_arrays(tiny_data, 20)
    with pytest.raises(ValueError, match="mask_p"):
        inputs.pretrain_dataset(arrays, mask_p=1.5)
    with pytest.raises(ValueError, match="batch_size"):
        inputs.pretrain_dataset(arrays, batch_size=0)


def test_sample_negatives_rejects_forbidden():
    forbidden = tf.constant([[1, 2, 3, 4, 5, 6, 7, 8]])

    def fn(c):
        return tf.reduce_any(tf.equal(c[:, :, None], forbidden[:, None, :]), -1)

    out = inputs.sample_negatives(fn, [1, 200], tf.constant([1, 2], tf.int64), 10).numpy()
    assert set(out.ravel().tolist()) == {9, 10}


def test_target_counts_and_proposal_weights(tiny_data):
    arrays = inputs.finetune_arrays(tiny_data, max_length=20)
    counts = inputs.target_counts(arrays)
    assert counts.shape == (tiny_data.num_items + 2,) and counts[0] == counts[-1] == 0
    targets = arrays.target_pos[arrays.target_pos > 0]
    assert counts.sum() == targets.size and counts[targets[0]] == (targets == targets[0]).sum()
    uniform = inputs.proposal_weights("uniform", counts)
    assert uniform[0] == uniform[-1] == 0 and (uniform[1:-1] == 1).all()
    np.testing.assert_array_equal(inputs.proposal_weights("popularity", counts), counts)
    with pytest.raises(ValueError, match="proposal"):
        inputs.proposal_weights("zipf", counts)


def test_sample_from_weights_follows_the_weights_and_the_seed():
    weights = np.array([0, 1, 0, 3, 6, 0])
    seed = tf.constant([4, 2], tf.int64)
    draws = inputs.sample_from_weights(weights, tf.constant([400, 50]), seed).numpy()
    assert draws.shape == (400, 50)
    np.testing.assert_array_equal(
        draws, inputs.sample_from_weights(weights, tf.constant([400, 50]), seed).numpy())
    freq = np.bincount(draws.ravel(), minlength=6) / draws.size
    assert freq[[0, 2, 5]].sum() == 0  # zero weight: never drawn
    np.testing.assert_allclose(freq[[1, 3, 4]], [0.1, 0.3, 0.6], atol=0.01)
    other = inputs.sample_from_weights(weights, tf.constant([400, 50]),
                                       tf.constant([4, 3], tf.int64)).numpy()
    assert not np.array_equal(draws, other)


def test_finetune_batches_carry_sampled_negatives(tiny_data):
    arrays = inputs.finetune_arrays(tiny_data, max_length=20)
    weights = inputs.proposal_weights("popularity", inputs.target_counts(arrays))
    steps = inputs.steps_per_epoch(len(arrays.input_ids), 32)

    def draws(first_epoch=0):
        ds = inputs.finetune_dataset(arrays, 32, seed=5, first_epoch=first_epoch, epochs=2,
                                     negatives=False, sampled_negatives=7, proposal=weights)
        return [b["sampled_neg"].numpy() for b in ds]

    a = draws()
    assert len(a) == 2 * steps and a[0].shape == (32, 7)
    assert all(np.array_equal(x, y) for x, y in zip(a, draws()))       # reproducible
    assert not np.array_equal(a[0], a[1])                              # fresh each batch
    np.testing.assert_array_equal(draws(first_epoch=1)[0], a[steps])   # resumable
    assert (weights[np.concatenate([x.ravel() for x in a])] > 0).all()
    with pytest.raises(ValueError, match="proposal"):
        inputs.finetune_dataset(arrays, 32, sampled_negatives=7)
