import json
import os

import numpy as np
import pytest

from s3rec_tf.data import reader
from s3rec_tf.errors import DataError


def _write(tmp_path, name, lines, attrs=None):
    (tmp_path / f"{name}.txt").write_text(lines)
    (tmp_path / f"{name}_item2attributes.json").write_text(
        attrs if attrs is not None else json.dumps({"1": [1], "2": [2, 2, 1]}))
    return str(tmp_path)


def test_reads_sequences_attributes_and_generates_negatives(tmp_path):
    lines = "".join(f"{u} " + " ".join(str(i) for i in range(u, u + 5)) + "\n"
                    for u in range(1, 4))
    d = _write(tmp_path, "D", lines.replace("\n", " 150\n"))
    out = tmp_path / "out"
    before = sorted(os.listdir(d))
    data = reader.read_dataset(d, "D", negatives_seed=5)
    assert sorted(os.listdir(d)) == before and not out.exists(), "reading writes nothing"
    assert data.num_users == 3 and data.num_items == 150 and data.num_attributes == 2
    assert data.item_attributes[2].tolist() == [1, 2]  # repeated attributes are a set
    assert data.sample_negatives.shape == (3, 99)
    assert data.sample_source == "generated(per-user, seed=5)"
    assert reader.write_generated_negatives(data, str(out)) == str(out / "D_sample.txt")
    again = reader.read_sample_negatives(str(out / "D_sample.txt"), data.user_ids, 150)
    np.testing.assert_array_equal(again, data.sample_negatives)
    data.sample_source = str(out / "D_sample.txt")  # read from a file: nothing to save
    assert reader.write_generated_negatives(data, str(tmp_path / "other")) is None
    assert not (tmp_path / "other").exists()
    # 7 items cannot give 99 negatives per user
    small = tmp_path / "small"
    small.mkdir()
    _write(small, "D", lines)
    with pytest.raises(DataError, match="cannot draw sampled negatives"):
        reader.read_dataset(str(small), "D")


def test_short_users_are_dropped_and_counted(tmp_path):
    lines = "".join(f"{u} " + " ".join(str(i) for i in range(u, u + 5)) + " 150\n"
                    for u in range(1, 4)) + "9 1 2\n"
    d = _write(tmp_path, "D", lines)
    data = reader.read_dataset(d, "D")
    assert data.user_ids.tolist() == [1, 2, 3] and data.users_too_short == 1


def test_generated_negatives_are_seeded_saved_and_outside_history(tmp_path, tiny_data):
    negs = tiny_data.sample_negatives
    assert negs.shape == (tiny_data.num_users, 99)
    for seq, row in zip(tiny_data.sequences, negs):
        assert not set(row.tolist()) & set(seq.tolist())
        assert len(set(row.tolist())) == 99
    again = reader.generate_negatives(tiny_data.sequences, tiny_data.num_items, seed=1)
    np.testing.assert_array_equal(again, negs)
    path = tmp_path / "Tiny_sample.txt"
    reader.write_sample_negatives(str(path), tiny_data.user_ids, negs)
    back = reader.read_sample_negatives(str(path), tiny_data.user_ids, tiny_data.num_items)
    np.testing.assert_array_equal(back, negs)


def test_sample_file_is_used_when_present(tmp_path, synthetic_dir, tiny_data):
    import shutil
    for f in os.listdir(synthetic_dir):
        shutil.copy(os.path.join(synthetic_dir, f), tmp_path / f)
    fixed = np.tile(np.arange(101, 200), (tiny_data.num_users, 1))
    reader.write_sample_negatives(str(tmp_path / "Tiny_sample.txt"), tiny_data.user_ids, fixed)
    data = reader.read_dataset(str(tmp_path), "Tiny")
    np.testing.assert_array_equal(data.sample_negatives, fixed)
    assert data.sample_source.endswith("Tiny_sample.txt")


@pytest.mark.parametrize("content, line, reason", [
    ("1 2 3 4\n\n2 3 4 5\n", 2, "empty line"),
    ("1 2 x 4\n", 1, "item id 'x' is not an integer"),
    ("1 2 3 -4\n", 1, "must be a positive integer"),
    ("1 2 3\n", 1, "at least 3 are needed"),
    ("1 2 3 4\n1 5 6 7\n", 2, "appears again"),
    ("u1 2 3 4\n", 1, "user id 'u1' is not an integer"),
])
def test_sequence_errors_name_file_line_and_reason(tmp_path, content, line, reason):
    path = tmp_path / "Bad.txt"
    path.write_text(content)
    with pytest.raises(DataError) as e:
        reader.read_sequences(str(path))
    assert e.value.line == line
    assert reason in str(e.value)
    assert f"Bad.txt:{line}" in str(e.value)


@pytest.mark.parametrize("content, reason", [
    ('{"1": [1, 2', "malformed JSON"),
    ('[1, 2]', "expected a JSON object"),
    ('{"1": 3}', "must be a list"),
    ('{"1": ["a"]}', "is not an integer"),
    ('{"x": [1]}', "item id 'x' is not an integer"),
    ('{"1": [0]}', "must be a positive integer"),
])
def test_attribute_errors(tmp_path, content, reason):
    path = tmp_path / "A_item2attributes.json"
    path.write_text(content)
    with pytest.raises(DataError, match=reason):
        reader.read_item_attributes(str(path))


def test_missing_empty_and_non_utf8_files(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        reader.read_sequences(str(tmp_path / "nope.txt"))
    (tmp_path / "e.txt").write_text("")
    with pytest.raises(DataError, match="file is empty"):
        reader.read_sequences(str(tmp_path / "e.txt"))
    (tmp_path / "b.txt").write_bytes(b"1 2 3 4\n2 3 \xff 5\n")
    with pytest.raises(DataError, match="not valid UTF-8") as e:
        reader.read_sequences(str(tmp_path / "b.txt"))
    assert e.value.line == 2


def test_sample_file_errors(tmp_path):
    users = np.array([1, 2])
    path = tmp_path / "S_sample.txt"
    path.write_text("1 " + " ".join(["5"] * 99) + "\n")
    with pytest.raises(DataError, match="no negatives for 1 user.*user 2"):
        reader.read_sample_negatives(str(path), users, 10)
    path.write_text("1 " + " ".join(["5"] * 98) + "\n2 " + " ".join(["5"] * 99) + "\n")
    with pytest.raises(DataError, match="98 negatives"):
        reader.read_sample_negatives(str(path), users, 10)


def test_attribute_table_is_padded_and_fingerprint_is_stable(tiny_data):
    table = tiny_data.attribute_table()
    assert table.shape[0] == tiny_data.item_size
    assert table[0].sum() == 0 and table[tiny_data.mask_id].sum() == 0
    for item, attrs in tiny_data.item_attributes.items():
        row = table[item]
        assert row[row > 0].tolist() == attrs.tolist()
    assert tiny_data.fingerprint() == tiny_data.fingerprint()


def test_pad_left_keeps_last_items():
    out = reader.pad_left([np.array([1, 2, 3]), np.array([4])], 2)
    np.testing.assert_array_equal(out, [[2, 3], [0, 4]])


def test_sequence_data_refuses_ids_beyond_the_int32_tables():
    seqs = [np.array([1, 2, 3])]
    reader.SequenceData("T", np.array([1]), seqs, 3, 0, {})
    with pytest.raises(DataError, match=r"T: num_items 2147483646 is outside"):
        reader.SequenceData("T", np.array([1]), seqs, reader.MAX_ID + 1, 0, {})
    with pytest.raises(DataError, match=r"num_attributes 1099511627776 is outside"):
        reader.SequenceData("T", np.array([1]), seqs, 3, 2 ** 40, {})
