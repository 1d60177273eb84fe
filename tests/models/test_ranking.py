import numpy as np
import pytest
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
    # row 1: the answer 3 is itself in the history
    history = tf.constant([[3], [3]])
    answers = tf.constant([2, 3])
    removed = ranking.answer_ranks(scores, answers, NUM_ITEMS, history, "remove")
    assert removed.numpy().tolist() == [1, np.inf]  # a repeat answer is a miss
    kept = ranking.answer_ranks(scores, answers, NUM_ITEMS, history, "keep")
    assert kept.numpy().tolist() == [2, 0]
    # original: item 3 scores 0, and padding and mask id are ranked (as the original);
    # row 0's answer 2 is below item 1, padding and mask id, and ties with item 4 (the
    # original orders ties arbitrarily); row 1's answer 3 scores 0 too, below items
    # 1, 2, 4 and 5, padding and mask id
    original = ranking.answer_ranks(scores, answers, NUM_ITEMS, history, "original")
    assert original.numpy()[0] in (3, 4) and original.numpy()[1] == 6
    no_history = ranking.answer_ranks(scores, answers, NUM_ITEMS)
    assert no_history.numpy().tolist() == [2, 0]


def test_history_rules_are_checked_and_map_to_serving():
    assert ranking.HISTORY_RULES[0] == "remove"
    assert [ranking.serving_exclusion(r) for r in ranking.HISTORY_RULES] == [True, None, False]
    with pytest.raises(ValueError, match="history_rule"):
        ranking.answer_ranks(tf.zeros([1, 7]), tf.constant([1]), NUM_ITEMS, None, "hybrid")


def test_original_rule_places_the_answer_uniformly_within_its_ties():
    # every score 0 but item 1's: a repeat answer ties with the other history items (0)
    # and with every item scoring 0 itself; the original orders ties arbitrarily
    rng = np.random.default_rng(0)
    rows = 400
    num_items = 50
    scores = np.zeros((rows, num_items + 2), np.float32)
    scores[:, 1] = 1.0
    history = np.stack([rng.choice(np.arange(2, num_items + 1), 9, replace=False)
                        for _ in range(rows)]).astype(np.int32)
    answers = history[:, 0]
    got = ranking.answer_ranks(tf.constant(scores), tf.constant(answers), num_items,
                               tf.constant(history), "original").numpy()
    # item 1 is above; the other num_items - 2 items, padding and mask id tie with it
    assert got.min() >= 1 and got.max() <= 1 + num_items
    assert abs(got.mean() - (1 + num_items / 2)) < 2.5
    again = ranking.answer_ranks(tf.constant(scores[::-1]), tf.constant(answers[::-1]),
                                 num_items, tf.constant(history[::-1]), "original").numpy()
    assert again[::-1].tolist() == got.tolist()  # deterministic, whatever the batch


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
        got = ranking.answer_ranks(scores, answers, NUM_ITEMS, tf.constant(history),
                                   "remove" if exclude else "keep").numpy()
        in_history = (history == answers.numpy()[:, None]).any(axis=1)
        if exclude:
            want_ranks = np.where(in_history, np.inf, want_ranks)
        assert got.tolist() == want_ranks.tolist()
