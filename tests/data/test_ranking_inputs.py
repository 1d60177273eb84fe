import numpy as np
import pytest

from s3rec_tf.data import inputs
from s3rec_tf.data.ranking_inputs import ranking_dataset


def test_full_ranking_batches_hold_every_user_once(tiny_data):
    arrays = inputs.eval_arrays(tiny_data, "valid", 10)
    dataset = ranking_dataset(arrays, "full", batch_size=50)
    assert int(dataset.cardinality()) == -(-tiny_data.num_users // 50)
    batches = list(dataset.as_numpy_iterator())
    assert set(batches[0]) == {"input_ids", "answers", "history"}
    np.testing.assert_array_equal(np.concatenate([b["answers"] for b in batches]), arrays.answers)
    np.testing.assert_array_equal(np.concatenate([b["history"] for b in batches]), arrays.history)


def test_sampled_batches_put_the_answer_before_its_negatives(tiny_data):
    arrays = inputs.eval_arrays(tiny_data, "test", 10)
    batch = next(ranking_dataset(arrays, "sampled", batch_size=8).as_numpy_iterator())
    assert set(batch) == {"input_ids", "candidates"}
    np.testing.assert_array_equal(batch["candidates"][:, 0], arrays.answers[:8])
    np.testing.assert_array_equal(batch["candidates"][:, 1:], arrays.negatives[:8])


def test_bad_arguments_are_refused(tiny_data):
    arrays = inputs.eval_arrays(tiny_data, "valid", 10)
    with pytest.raises(ValueError, match="protocol"):
        ranking_dataset(arrays, "top")
    with pytest.raises(ValueError, match="batch_size"):
        ranking_dataset(arrays, batch_size=0)
    arrays.negatives = None
    with pytest.raises(ValueError, match="negatives"):
        ranking_dataset(arrays, "sampled")
