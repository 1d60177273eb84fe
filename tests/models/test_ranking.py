import numpy as np
import tensorflow as tf

from s3rec_tf.models import ranking

# 5 items: ids 1..5, padding 0, mask id 6, so 7 columns
NUM_ITEMS = 5


def test_non_items_are_padding_and_mask_id():
    assert ranking.non_item_mask(NUM_ITEMS).numpy().tolist() == \
        [True, False, False, False, False, False, True]
    assert ranking.excluded_items(NUM_ITEMS).shape == (1, 7)
    # the items' columns are all the others
    columns = np.arange(7)[ranking.item_columns(NUM_ITEMS)]
    assert columns.tolist() == [1, 2, 3, 4, 5]
    assert not ranking.non_item_mask(NUM_ITEMS).numpy()[columns].any()


def test_history_items_are_excluded_when_asked():
    history = tf.constant([[0, 3, 3], [5, 1, 0]])  # padding and repeats
    excluded = ranking.excluded_items(NUM_ITEMS, history).numpy()
    assert excluded.tolist() == [[True, False, False, True, False, False, True],
                                 [True, True, False, False, False, True, True]]
    kept = ranking.excluded_items(NUM_ITEMS, history, tf.constant(False)).numpy()
    assert (kept == ranking.non_item_mask(NUM_ITEMS).numpy()[None]).all()


def test_answer_rank_counts_eligible_items_scoring_strictly_higher():
    scores = tf.constant([[9.0, 5.0, 4.0, 8.0, 4.0, 1.0, 99.0],
                          [9.0, 5.0, 4.0, 8.0, 4.0, 1.0, 99.0]])
    # row 0: item 3 (8.0) is history; padding (9.0) and mask (99.0) never count;
    # item 4 ties with the answer 2 and counts for it -> only item 1 is above
    # row 1: the answer 3 is itself in the history and is ranked by its own score
    history = tf.constant([[3], [3]])
    ranks = ranking.answer_ranks(scores, tf.constant([2, 3]),
                                 ranking.excluded_ids(NUM_ITEMS, history))
    assert ranks.numpy().tolist() == [1, 0]
    no_exclusion = ranking.answer_ranks(scores, tf.constant([2, 3]),
                                        ranking.excluded_ids(NUM_ITEMS))
    assert no_exclusion.numpy().tolist() == [2, 0]


def test_excluded_ids_list_each_excluded_id_once():
    # long histories with repeats, padding and the mask id, against a set per row
    rng = np.random.default_rng(0)
    history = rng.integers(0, NUM_ITEMS + 2, size=(64, 40)).astype(np.int32)
    for exclude in (True, False):
        ids, first = ranking.excluded_ids(NUM_ITEMS, tf.constant(history), tf.constant(exclude))
        ids, first = ids.numpy(), first.numpy()
        for row in range(len(history)):
            want = {0, NUM_ITEMS + 1} | (set(history[row].tolist()) if exclude else set())
            assert sorted(ids[row][first[row]].tolist()) == sorted(want)
        scores = tf.constant(rng.normal(size=(64, NUM_ITEMS + 2)), tf.float32)
        answers = tf.constant(rng.integers(1, NUM_ITEMS + 1, size=64), tf.int32)
        mask = ranking.excluded_items(NUM_ITEMS, tf.constant(history), exclude).numpy()
        above = scores.numpy() > np.take_along_axis(scores.numpy(), answers.numpy()[:, None], 1)
        want_ranks = (above & ~mask).sum(axis=1)
        got = ranking.answer_ranks(scores, answers,
                                   ranking.excluded_ids(NUM_ITEMS, tf.constant(history), exclude))
        assert got.numpy().tolist() == want_ranks.tolist()
