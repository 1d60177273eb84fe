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

