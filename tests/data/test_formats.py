"""The registry of input formats: one parser per format, and TFX's own ExampleGens
(CSV, Parquet) give the same events as the registry's parser for the same files."""

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from s3rec_tf.config import INPUT_FORMATS
from s3rec_tf.data import formats, prepare
from s3rec_tf.errors import DataError

CSV_LOGS = {
    "text ids": "user_id,item_id,timestamp\nu1,a,3\nu1,b,1\nu2,a,2.5\n7,c,4\n",
    "integer ids, columns reordered": "timestamp,item_id,user_id\n3,10,1\n1,11,1\n2,10,2\n",
}


def _registry_events(path: str, input_format: str) -> list:
    fmt = formats.get(input_format)
    parse, flat = fmt.parser(path, "interactions")
    assert not flat
    return [parse((path, formats.decode_row(path, row)))
            for _, row in fmt.rows(path, "interactions")]


def _assert_example_gen_events(transform, input_base: str, pattern: str, expected) -> None:
    with TestPipeline() as p:
        events = (p | transform({"input_base": input_base}, pattern)
                  | beam.Map(lambda ex: prepare.event_of(ex.SerializeToString())))
        assert_that(events, equal_to(expected))


def test_the_registry_has_one_format_per_input_format():
    assert tuple(formats.FORMATS) == INPUT_FORMATS
    with pytest.raises(ValueError, match="input_format"):
        formats.get("xml")


@pytest.mark.parametrize("log", CSV_LOGS.values(), ids=CSV_LOGS.keys())
def test_csv_example_gen_gives_the_registry_events(tmp_path, log):
    from tfx.components.example_gen.csv_example_gen.executor import _CsvToExample
    (tmp_path / "S.csv").write_text(log)
    expected = _registry_events(str(tmp_path / "S.csv"), "csv")
    assert len(expected) == log.count("\n") - 1
    _assert_example_gen_events(_CsvToExample, str(tmp_path), "S.csv", expected)


def test_parquet_example_gen_gives_the_registry_events(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tfx.components.example_gen.custom_executors.parquet_executor import _ParquetToExample
    pq.write_table(pa.table({"user_id": ["u1", "u1", "7"], "item_id": ["a", "b", "a"],
                             "timestamp": [3.0, 1.0, 2.5]}), tmp_path / "P.parquet")
    expected = _registry_events(str(tmp_path / "P.parquet"), "parquet")
    assert expected == [("u1", "a", 3.0), ("u1", "b", 1.0), ("7", "a", 2.5)]
    _assert_example_gen_events(_ParquetToExample, str(tmp_path), "P.parquet", expected)


def test_the_bad_row_finder_and_the_strict_reader_use_the_one_paper_parser(tmp_path):
    from s3rec_tf.data import reader
    (tmp_path / "D.txt").write_text("1 5 6 7\n2 8 x 9\n")
    (tmp_path / "D_item2attributes.json").write_text("{}")
    assert formats.find_bad_rows(str(tmp_path), "D", "s3rec", 5) == [
        (str(tmp_path / "D.txt"), 2, "item id 'x' is not an integer (plain decimal digits "
                                     "expected) in line starting '2 8 x 9'")]
    with pytest.raises(DataError, match=r"D\.txt:2: item id 'x' is not an integer"):
        reader.read_sequences(str(tmp_path / "D.txt"))
