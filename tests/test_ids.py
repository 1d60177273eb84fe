import numpy as np
import pytest

from s3rec_tf import ids
from s3rec_tf.data.reader import SequenceData
from s3rec_tf.errors import DataError
from s3rec_tf.models.layers import SequenceEncoder


def test_layout_of_items_and_attributes():
    assert (ids.PADDING_ID, ids.FIRST_ID) == (0, 1)
    assert (ids.item_size(10), ids.mask_id(10), ids.attribute_size(4)) == (12, 11, 5)
    assert ids.num_items_of_table(12) == 10 and ids.num_attributes_of_table(5) == 4
    assert list(range(12))[ids.item_rows(10)] == list(range(1, 11))
    assert ids.item_size(ids.MAX_ID) == np.iinfo(np.int32).max  # the row count fits an int32


def test_data_and_encoder_follow_the_layout():
    data = SequenceData("T", np.array([1]), [np.array([1, 2, 3])], 7, 2, {})
    encoder = SequenceEncoder(7, 2, max_length=4, hidden_size=8)
    for holder in (data, encoder):
        assert (holder.item_size, holder.mask_id, holder.attribute_size) == (9, 8, 3)


def test_vocabularies():
    assert ids.paper_vocabulary(3) == ["1", "2", "3"]
    assert ids.vocabulary_index(ids.paper_vocabulary(3)) == {"1": 1, "2": 2, "3": 3}
    assert sorted(["b", "10", "2", "a"], key=ids.natural_key) == ["2", "10", "a", "b"]
    assert ids.vocabulary(5, 2) == {"dataset": None, "num_items": 5, "num_attributes": 2,
                                    "fingerprint": None}


def test_vocabulary_file_round_trip(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text(ids.vocabulary_text(["x-1", "y 2", "3"]))
    assert path.read_text() == "x-1\ny 2\n3\n"
    assert ids.read_vocabulary(str(path)) == ["x-1", "y 2", "3"]
    path.write_bytes(b"a\r\n\r\nb\r\n")  # Windows line ends, a blank line
    assert ids.read_vocabulary(str(path)) == ["a", "b"]
    with pytest.raises(DataError, match="file not found"):
        ids.read_vocabulary(str(tmp_path / "none.txt"))
