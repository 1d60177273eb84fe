"""Beam preprocessing on every input format, with Beam's testing utilities."""

import json
import os

import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from s3rec_tf.data import prepare, prepared, reader
from s3rec_tf.data.formats import Malformed, tabular
from s3rec_tf.errors import DataError

# u1: 4 events (one exact duplicate), u2: 3 events, u3: 2 events (too short);
# item "z" appears once (dropped by a 2-core filter together with what it unbalances)
CSV = """user_id,item_id,timestamp
u1,a,3
u1,b,1
u1,c,2
u1,c,2
u1,d,4
u2,b,5
u2,a,6
u2,c,7
u3,a,1
u3,z,2
bad line without commas
u2,,9
u1,e,notatime
"""
ATTRS = """item_id,attribute
a,red
b,blue
c,red
c,red
d,green
z,purple
"""


def _csv_dir(tmp_path):
    (tmp_path / "Shop.csv").write_text(CSV)
    (tmp_path / "Shop_attributes.csv").write_text(ATTRS)
    return str(tmp_path)


def _counts(tmp_path, config):
    out = tmp_path / "out"
    os.makedirs(out, exist_ok=True)
    with TestPipeline() as p:
        counters = prepare.build_pipeline(p, str(tmp_path), str(out), config)
        assert_that(counters["malformed_interactions"], equal_to([3]), label="malformed")
        assert_that(counters["events_read"], equal_to([10]), label="read")
        assert_that(counters["events_distinct"], equal_to([9]), label="duplicates")
        assert_that(counters["users_too_short"], equal_to([1]), label="short")
        assert_that(counters["users"], equal_to([2]), label="users")
        assert_that(counters["attribute_rows_unseen_items"], equal_to([1]), label="unseen")
    return out


def test_csv_counts_with_assert_that(tmp_path):
    _csv_dir(tmp_path)
    _counts(tmp_path, prepare.PrepareConfig(input_format="csv", name="Shop",
                                               num_negatives=0))


def test_csv_end_to_end_vocabularies_order_and_negatives(tmp_path):
    (tmp_path / "in").mkdir()
    d = _csv_dir(tmp_path / "in")
    # a larger catalogue so 99 negatives exist: extra users with many items
    extra = "".join(f"x{u},i{u * 20 + j},{j}\n" for u in range(8) for j in range(20))
    with open(os.path.join(d, "Shop.csv"), "a") as f:
        f.write(extra)
    stats = prepare.prepare(d, str(tmp_path / "out"), prepare.PrepareConfig(
        input_format="csv", name="Shop"), beam_args=["--runner=DirectRunner"])
    assert stats["malformed_interactions"] == 3 and stats["users_too_short"] == 1
    data = prepared.read_prepared(str(tmp_path / "out"))
    vocab = data.item_vocabulary
    u1 = data.raw_user_ids.index("u1")
    # events ordered by timestamp: b(1) c(2) a(3) d(4), the duplicate dropped
    assert [vocab[i - 1] for i in data.sequences[u1]] == ["b", "c", "a", "d"]
    assert "z" not in vocab  # only u3 had it, and u3 was too short
    attrs = data.attribute_vocabulary
    c = vocab.index("c") + 1
    assert [attrs[a - 1] for a in data.item_attributes[c]] == ["red"]
    assert "purple" not in attrs  # attribute of an item dropped with its short user
    for seq, negs in zip(data.sequences, data.sample_negatives):
        assert len(negs) == 99 and not set(negs.tolist()) & set(seq.tolist())
    # seeded: the same negatives again
    prepare.prepare(d, str(tmp_path / "again"), prepare.PrepareConfig(
        input_format="csv", name="Shop"), beam_args=["--runner=DirectRunner"])
    again = prepared.read_prepared(str(tmp_path / "again"))
    np.testing.assert_array_equal(again.sample_negatives, data.sample_negatives)


def test_k_core_filter(tmp_path):
    rows = ["user_id,item_id,timestamp"]
    # three users share items p,q,r; user w has unique items only
    for u in ("u1", "u2", "u3"):
        rows += [f"{u},p,1", f"{u},q,2", f"{u},r,3"]
    rows += ["w,s1,1", "w,s2,2", "w,s3,3"]
    (tmp_path / "K.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    out.mkdir()
    with TestPipeline() as p:
        counters = prepare.build_pipeline(p, str(tmp_path), str(out), prepare.PrepareConfig(
            input_format="csv", name="K", k_core=2, num_negatives=0))
        assert_that(counters["events_after_k_core"], equal_to([9]), label="core")
        assert_that(counters["users"], equal_to([3]), label="users")


def test_s3rec_format_matches_the_reader(tmp_path, synthetic_dir, tiny_data):
    """Same users, ids, attributes and negatives as `reader.read_dataset` (same seed)."""
    stats = prepare.prepare(synthetic_dir, str(tmp_path / "out"), prepare.PrepareConfig(
        input_format="s3rec", name="Tiny", seed=1), beam_args=["--runner=DirectRunner"])
    data = prepared.read_prepared(str(tmp_path / "out"))
    assert stats["users"] == tiny_data.num_users and stats["id_layout"] == "paper"
    assert (data.num_items, data.num_attributes) == (tiny_data.num_items,
                                                     tiny_data.num_attributes)
    assert data.item_vocabulary == [str(i) for i in range(1, data.num_items + 1)]
    np.testing.assert_array_equal(data.user_ids, tiny_data.user_ids)
    for a, b in zip(data.sequences, tiny_data.sequences):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(data.sample_negatives, tiny_data.sample_negatives)
    assert data.fingerprint() == tiny_data.fingerprint()


def test_s3rec_sample_file_is_honoured(tmp_path, synthetic_dir, tiny_data):
    import shutil
    for f in os.listdir(synthetic_dir):
        shutil.copy(os.path.join(synthetic_dir, f), tmp_path / f)
    fixed = np.tile(np.arange(101, 200), (tiny_data.num_users, 1))
    reader.write_sample_negatives(str(tmp_path / "Tiny_sample.txt"), tiny_data.user_ids, fixed)
    stats = prepare.prepare(str(tmp_path), str(tmp_path / "out"), prepare.PrepareConfig(
        input_format="s3rec", name="Tiny"), beam_args=["--runner=DirectRunner"])
    assert stats["negatives"].endswith("Tiny_sample.txt")
    data = prepared.read_prepared(str(tmp_path / "out"))
    np.testing.assert_array_equal(data.sample_negatives, fixed)


def test_unknown_item_in_the_attribute_table_is_an_error(tmp_path):
    _csv_dir(tmp_path)
    with open(tmp_path / "Shop_attributes.csv", "a") as f:
        f.write("ghost,purple\n")
    with pytest.raises(DataError, match="Shop_attributes.csv.*item 'ghost'.*has no event"):
        prepare.prepare(str(tmp_path), str(tmp_path / "o"), prepare.PrepareConfig(
            input_format="csv", name="Shop", num_negatives=0),
            beam_args=["--runner=DirectRunner"])
    assert not (tmp_path / "o").exists()


def test_s3rec_malformed_line_strict_and_lenient(tmp_path):
    lines = "".join(f"{u} " + " ".join(str(i) for i in range(u, u + 5)) + "\n"
                    for u in range(1, 4))
    (tmp_path / "M.txt").write_text(lines + "9 1 x 3\n")
    (tmp_path / "M_item2attributes.json").write_text(json.dumps({"1": [1]}))
    out = tmp_path / "o"
    out.mkdir()
    with TestPipeline() as p:
        counters = prepare.build_pipeline(p, str(tmp_path), str(out), prepare.PrepareConfig(
            input_format="s3rec", name="M", num_negatives=0))
        assert_that(counters["malformed_interactions"], equal_to([1]), label="bad")
    with pytest.raises(DataError, match=r"M.txt:4: item id 'x' is not an integer"):
        prepare.prepare(str(tmp_path), str(tmp_path / "strict"), prepare.PrepareConfig(
            input_format="s3rec", name="M", strict=True), beam_args=["--runner=DirectRunner"])
    assert not (tmp_path / "strict").exists(), "nothing half-written"


def test_parquet_and_recbole_inputs(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    users = [f"u{i}" for i in range(4) for _ in range(3)]
    items = [f"i{(i * 3 + j) % 7}" for i in range(4) for j in range(3)]
    ts = [float(j) for _ in range(4) for j in range(3)]
    pq.write_table(pa.table({"user_id": users, "item_id": items, "timestamp": ts}),
                   tmp_path / "P.parquet")
    pq.write_table(pa.table({"item_id": ["i1", "i2"], "attribute": ["x", "y"]}),
                   tmp_path / "P_attributes.parquet")
    (tmp_path / "R.inter").write_text(
        "user_id:token\titem_id:token\ttimestamp:float\n" +
        "".join(f"{u}\t{i}\t{t}\n" for u, i, t in zip(users, items, ts)) + "bad\n")
    (tmp_path / "R.item").write_text("item_id:token\tcategories:token_seq\ni1\tx y\ni2\ty\n")
    for fmt, name, bad in (("parquet", "P", 0), ("recbole", "R", 1)):
        out = tmp_path / f"out-{fmt}"
        out.mkdir()
        with TestPipeline() as p:
            counters = prepare.build_pipeline(p, str(tmp_path), str(out),
                                                 prepare.PrepareConfig(
                                                     input_format=fmt, name=name,
                                                     num_negatives=0))
            assert_that(counters["users"], equal_to([4]), label=f"users-{fmt}")
            assert_that(counters["malformed_interactions"], equal_to([bad]), label=f"bad-{fmt}")
            assert_that(counters["attributes"], equal_to([2]), label=f"attrs-{fmt}")


def test_non_utf8_rows_are_dropped_and_counted_or_fail_strictly(tmp_path):
    (tmp_path / "N.csv").write_bytes(b"user_id,item_id,timestamp\nu1,a,1\nu1,b\xff,2\n"
                                     b"u1,c,3\nu1,d,4\n")
    out = tmp_path / "out"
    out.mkdir()
    with TestPipeline() as p:
        counters = prepare.build_pipeline(p, str(tmp_path), str(out), prepare.PrepareConfig(
            input_format="csv", name="N", num_negatives=0))
        assert_that(counters["malformed_interactions"], equal_to([1]), label="bad")
        assert_that(counters["interactions"], equal_to([3]), label="kept")
    with pytest.raises(DataError, match="N.csv:3: row is not valid UTF-8"):
        prepare.prepare(str(tmp_path), str(tmp_path / "strict"), prepare.PrepareConfig(
            input_format="csv", name="N", strict=True, num_negatives=0),
            beam_args=["--runner=DirectRunner"])
    assert not (tmp_path / "strict").exists()


def test_bad_parquet_and_empty_inputs_are_clear_errors(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    (tmp_path / "B.parquet").write_bytes(b"this is not parquet")
    with pytest.raises(DataError, match="B.parquet: not a readable Parquet file"):
        prepare.prepare(str(tmp_path), str(tmp_path / "o1"),
                           prepare.PrepareConfig(input_format="parquet", name="B"))
    pq.write_table(pa.table({"user_id": ["u"], "item": ["i"]}), tmp_path / "C.parquet")
    with pytest.raises(DataError, match=r"missing \['item_id', 'timestamp'\]; "
                                         r"unexpected \['item'\]"):
        prepare.prepare(str(tmp_path), str(tmp_path / "o2"),
                           prepare.PrepareConfig(input_format="parquet", name="C"))
    (tmp_path / "E.csv").write_text("user_id,item_id,timestamp\n")
    with pytest.raises(DataError, match="no user has 3 or more valid events"):
        prepare.prepare(str(tmp_path), str(tmp_path / "o3"),
                           prepare.PrepareConfig(input_format="csv", name="E"),
                           beam_args=["--runner=DirectRunner"])
    assert not any((tmp_path / f"o{i}").exists() for i in (1, 2, 3))


def test_missing_input_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no interaction file"):
        prepare.prepare(str(tmp_path), str(tmp_path / "o"),
                           prepare.PrepareConfig(input_format="csv", name="Nope"))


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_any_csv_row_parses_or_is_reported_malformed(line):
    try:
        user, item, ts = tabular.parse_interaction(("log.csv", line))
    except Malformed as e:
        assert str(e).startswith("log.csv: ")
    except Exception as e:  # the csv module on stray quotes/NULs
        raise AssertionError(f"unexpected {type(e).__name__} for {line!r}: {e}")
    else:
        assert user and item and np.isfinite(ts)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=40))
def test_any_attribute_row_parses_or_is_reported_malformed(line):
    try:
        item, attribute = tabular.parse_attribute(("attrs.csv", line))
    except Malformed as e:
        assert str(e).startswith("attrs.csv: ")
    else:
        assert item and attribute


def test_parquet_records_become_csv_lines_without_inventing_ids():
    import datetime
    when = datetime.datetime(2020, 1, 2, tzinfo=datetime.timezone.utc)
    line = tabular.parquet_row_line({"user_id": "a,b", "item_id": "i", "timestamp": when},
                                        tabular.INTERACTION_COLUMNS)
    assert tabular.parse_interaction(("p", line)) == ("a,b", "i", when.timestamp())
    missing = tabular.parquet_row_line({"user_id": "u", "item_id": None, "timestamp": 1},
                                           tabular.INTERACTION_COLUMNS)
    with pytest.raises(Malformed, match="empty user_id or item_id"):
        tabular.parse_interaction(("p", missing))


def test_columns_by_header_name(tmp_path):
    (tmp_path / "S.csv").write_text("\ufefftimestamp, item_id ,user_id\n5,i,u\n")
    header = tabular.csv_header(str(tmp_path / "S.csv"), tabular.INTERACTION_COLUMNS)
    assert header == ("timestamp", "item_id", "user_id")
    assert tabular.parse_interaction(("S.csv", "5,i,u"), header) == ("u", "i", 5.0)
    assert tabular.parse_attribute(("A.csv", "red,i"), ("attribute", "item_id")) == \
        ("i", "red")
    with pytest.raises(DataError, match=r"missing \['attribute'\]"):
        tabular.check_columns("A.csv", ["item_id"], tabular.ATTRIBUTE_COLUMNS)
