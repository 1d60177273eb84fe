"""The custom ExampleGen executor on tiny files of the paper's and RecBole's formats."""

import json

import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from components import example_gen


def _rows(examples):
    out = []
    for ex in examples:
        row = {}
        for name, feature in ex.features.feature.items():
            kind = feature.WhichOneof("kind")
            values = list(getattr(feature, kind).value)
            row[name] = tuple(v.decode() if isinstance(v, bytes) else v for v in values)
        out.append(tuple(sorted(row.items())))
    return out


def _check(tmp_path, file_name, expected):
    import apache_beam as beam
    with TestPipeline() as p:
        rows = (p | example_gen._EventFileToExample({"input_base": str(tmp_path)}, file_name)
                | beam.combiners.ToList() | beam.FlatMap(_rows))
        assert_that(rows, equal_to(expected))


def test_paper_format_events_attributes_and_negatives(tmp_path):
    (tmp_path / "D.txt").write_text("1 5 6 7\n2 8 9\n")
    (tmp_path / "D_item2attributes.json").write_text(json.dumps({"5": [1, 2], "8": [3]}))
    (tmp_path / "D_sample.txt").write_text("1 " + " ".join(["9"] * 99) + "\n")
    _check(tmp_path, "D.txt", [
        (("item_id", (i,)), ("timestamp", (float(t),)), ("user_id", (u,)))
        for u, i, t in [("1", "5", 0), ("1", "6", 1), ("1", "7", 2), ("2", "8", 0),
                        ("2", "9", 1)]])
    _check(tmp_path, "D_item2attributes.json", [
        (("attribute", (a,)), ("item_id", (i,))) for i, a in [("5", "1"), ("5", "2"),
                                                                ("8", "3")]])
    _check(tmp_path, "D_sample.txt", [(("negatives", ("9",) * 99), ("user_id", ("1",)))])


def test_recbole_atomic_files(tmp_path):
    (tmp_path / "R.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n"
                                      "u1\ti1\t10\nu1\ti2\t5\n")
    (tmp_path / "R.item").write_text("item_id:token\tcategories:token_seq\ni1\tx y\n")
    _check(tmp_path, "R.inter", [
        (("item_id", (i,)), ("timestamp", (t,)), ("user_id", ("u1",)))
        for i, t in [("i1", 10.0), ("i2", 5.0)]])
    _check(tmp_path, "R.item", [(("attribute", (a,)), ("item_id", ("i1",))) for a in "xy"])


def test_a_malformed_row_stops_with_the_file_named(tmp_path):
    (tmp_path / "M.txt").write_text("1 5 6 7\n2 8 x\n")
    with pytest.raises(Exception, match="M.txt.*item id 'x' is not an integer"):
        _check(tmp_path, "M.txt", [])


def test_file_kinds_and_input_config():
    assert example_gen.kind_of("Beauty.txt") == "events"
    assert example_gen.kind_of("Beauty_sample.txt") == "negatives"
    assert example_gen.kind_of("Beauty_item2attributes.json") == "item_attributes"
    assert example_gen.kind_of("Shop.item") == "item_attributes"
    with pytest.raises(ValueError, match="not a file of the paper's format"):
        example_gen.kind_of("Shop.csv")
    config = example_gen.input_config({"events": "D.txt", "negatives": "D_sample.txt"})
    assert [(s.name, s.pattern) for s in config.splits] == [("events", "D.txt"),
                                                            ("negatives", "D_sample.txt")]
