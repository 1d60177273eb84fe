"""The one negative rule and the sample-file format."""

import numpy as np
import pytest

from s3rec_tf.data import negatives
from s3rec_tf.errors import DataError


def test_a_users_draw_does_not_depend_on_the_other_users_or_their_order():
    seqs = [np.array([1, 2, 3]), np.array([4, 5, 6, 7]), np.array([8, 9, 10])]
    users = [11, 12, 13]
    forward = negatives.generate_negatives(seqs, 300, seed=4, user_ids=users)
    backward = negatives.generate_negatives(seqs[::-1], 300, seed=4, user_ids=users[::-1])
    np.testing.assert_array_equal(forward, backward[::-1])
    alone = negatives.draw_for_user("12", [4, 5, 6, 7], 300, seed=4)
    assert alone == forward[1].tolist()
    for seq, row in zip(seqs, forward):
        assert len(set(row.tolist())) == 99 and not set(row.tolist()) & set(seq.tolist())
        assert row.min() >= 1 and row.max() <= 300
    assert negatives.draw_for_user("12", [4, 5, 6, 7], 300, seed=5) != alone


def test_too_small_a_catalogue_is_an_error():
    with pytest.raises(ValueError, match="user 7 has 3 distinct items of 50"):
        negatives.draw_for_user("7", [1, 2, 3], 50, seed=0)


def test_sample_file_round_trip_by_user_id(tmp_path):
    path = str(tmp_path / "X_sample.txt")
    rows = np.arange(1, 199).reshape(2, 99)
    negatives.write_sample_file(path, [5, 3], rows)
    back = negatives.read_sample_file(path, [3, 5], 200)
    np.testing.assert_array_equal(back, rows[::-1])
    with pytest.raises(DataError, match="exceeds the largest item id 100"):
        negatives.read_sample_file(path, [3, 5], 100)
    (tmp_path / "Y_sample.txt").write_text("1 " + " ".join(["5"] * 99) + "\n" +
                                           "1 " + " ".join(["6"] * 99) + "\n")
    with pytest.raises(DataError, match="user 1 appears again"):
        negatives.read_sample_file(str(tmp_path / "Y_sample.txt"), [1], 10)
