"""Property-based and corpus tests of the readers: bad input never crashes oddly."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s3rec_tf.data import reader
from s3rec_tf.errors import DataError

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(st.binary(max_size=300))
def test_any_bytes_either_parse_or_give_a_located_data_error(tmp_path, data):
    path = tmp_path / "X.txt"
    path.write_bytes(data)
    try:
        users, seqs = reader.read_sequences(str(path))
    except DataError as e:
        assert str(e).startswith(str(path))
        assert e.reason
    else:
        assert len(users) == len(seqs)
        assert all(len(s) >= 3 and (s > 0).all() for s in seqs)


@SETTINGS
@given(st.lists(st.lists(st.integers(min_value=1, max_value=reader.MAX_ID), min_size=3,
                         max_size=12), min_size=1, max_size=8))
def test_valid_files_round_trip(tmp_path, rows):
    text = "".join(f"{u + 1} " + " ".join(map(str, r)) + "\n" for u, r in enumerate(rows))
    path = tmp_path / "V.txt"
    path.write_text(text)
    users, seqs = reader.read_sequences(str(path))
    assert users.tolist() == list(range(1, len(rows) + 1))
    assert [s.tolist() for s in seqs] == rows


@SETTINGS
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c,
                                                                        max_size=3),
                    max_leaves=8))
def test_any_json_value_either_parses_or_names_the_reason(tmp_path, value):
    path = tmp_path / "A_item2attributes.json"
    path.write_text(json.dumps(value))
    try:
        table = reader.read_item_attributes(str(path))
    except DataError as e:
        assert str(e).startswith(str(path))
    else:
        assert all(isinstance(k, int) and k > 0 for k in table)
        assert all((v > 0).all() for v in table.values())


CORPUS = {
    "truncated line": ("1 2 3 4\n2 5", "at least 3 are needed"),
    "negative id": ("1 2 -3 4\n", "must be a positive integer"),
    "duplicated user": ("1 2 3 4\n1 2 3 4\n", "appears again"),
    "empty file": ("", "file is empty"),
    "float id": ("1 2 3.5 4\n", "is not an integer"),
    "blank middle line": ("1 2 3 4\n   \n", "empty line"),
}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_bad_file_corpus(tmp_path, case):
    content, reason = CORPUS[case]
    path = tmp_path / "C.txt"
    path.write_text(content)
    with pytest.raises(DataError, match=reason):
        reader.read_sequences(str(path))


def test_ids_up_to_the_int32_limit_are_accepted_and_one_more_is_refused(tmp_path):
    path = tmp_path / "H.txt"
    path.write_text(f"{10 ** 15} 2 3 {reader.MAX_ID}\n")
    users, seqs = reader.read_sequences(str(path))
    assert users[0] == 10 ** 15 and seqs[0][-1] == reader.MAX_ID
    path.write_text(f"1 2 3 {reader.MAX_ID + 1}\n")
    with pytest.raises(DataError, match=r"H.txt:1: item id '2147483646' is out of range"):
        reader.read_sequences(str(path))
