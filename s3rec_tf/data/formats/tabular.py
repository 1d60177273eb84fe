"""CSV and Parquet tables: `user_id,item_id,timestamp` interactions (ids any text) and an
optional `item_id,attribute` table (one row per pair).

Columns are matched by their header names, in any order; a header that lacks
a wanted column or has an unexpected one (a CSV without a header line
included) is refused, naming the columns found and wanted. A Parquet record
becomes the CSV row of its columns, so both formats share one row parser.
"""

from __future__ import annotations

import csv
import io

import numpy as np

from s3rec_tf.data.formats.base import ATTRIBUTES, EVENTS, Format, Malformed, beam_lines, \
    file_rows
from s3rec_tf.errors import DataError

#: Header of an interaction table (CSV, Parquet), in any order.
INTERACTION_COLUMNS = ("user_id", "item_id", "timestamp")
#: Header of an item-attribute table (CSV, Parquet), in any order.
ATTRIBUTE_COLUMNS = ("item_id", "attribute")


def columns_of(kind: str) -> tuple:
    return INTERACTION_COLUMNS if kind == "interactions" else ATTRIBUTE_COLUMNS


def check_columns(path: str, found, wanted) -> None:
    """Refuses a header that is not exactly the `wanted` column names (any order)."""
    found = [str(c) for c in found]
    missing = [c for c in wanted if c not in found]
    unexpected = [c for c in found if c not in wanted]
    repeated = sorted({c for c in found if found.count(c) > 1})
    if missing or unexpected or repeated:
        problems = ([f"missing {missing}"] if missing else []) + \
            ([f"unexpected {unexpected}"] if unexpected else []) + \
            ([f"repeated {repeated}"] if repeated else [])
        hint = (" (a header line naming the columns is required)"
                if missing and len(missing) == len(wanted) else "")
        raise DataError(path, f"columns {found} do not match the wanted {list(wanted)}: "
                              f"{'; '.join(problems)}{hint}",
                        field=(missing or unexpected or repeated)[0])


def csv_header(path: str, wanted) -> tuple:
    """The checked column names of a CSV file's first line (see `check_columns`)."""
    try:
        with open(path, "rb") as f:
            first = f.readline()
    except OSError as e:
        raise DataError(path, f"cannot read ({e.strerror})") from None
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(path, f"header is not valid UTF-8 (byte 0x{first[e.start]:02x})",
                        line=1) from None
    if not text.strip():
        raise DataError(path, f"no header line: expected the columns {list(wanted)}", line=1)
    try:
        columns = tuple(c.strip() for c in _split_csv(text.rstrip("\r\n"), path))
    except Malformed as e:
        raise DataError(path, str(e).removeprefix(f"{path}: "), line=1) from None
    check_columns(path, columns, wanted)
    return columns


def _split_csv(line: str, path: str = "?"):
    try:
        return next(csv.reader(io.StringIO(line)), [])
    except csv.Error as e:
        raise Malformed(f"{path}: unreadable CSV row {line[:80]!r} ({e})") from None


def _fields(path, line, columns):
    fields = _split_csv(line, path) if line.strip() else []
    if len(fields) != len(columns):
        raise Malformed(f"{path}: expected {len(columns)} fields {','.join(columns)}, got "
                        f"{len(fields)} in {line[:80]!r}")
    return dict(zip(columns, (f.strip() for f in fields)))


def parse_interaction(element, header=INTERACTION_COLUMNS):
    """`(path, line)` -> `(user, item, timestamp)`; raises `Malformed`.

    `header` is the file's column names (`csv_header`): fields are taken by
    name.
    """
    path, line = element
    row = _fields(path, line, header)
    user, item, ts = (row[c] for c in INTERACTION_COLUMNS)
    if not user or not item:
        raise Malformed(f"{path}: empty user_id or item_id in {line[:80]!r}")
    try:
        timestamp = float(ts)
    except ValueError:
        raise Malformed(f"{path}: timestamp {ts!r} is not a number in {line[:80]!r}") from None
    if not np.isfinite(timestamp):
        raise Malformed(f"{path}: timestamp {ts!r} is not finite")
    return user, item, timestamp


def parse_attribute(element, attr_header=ATTRIBUTE_COLUMNS):
    """`(path, line)` -> `(item, attribute)`; fields by the header's names."""
    path, line = element
    fields = _split_csv(line, path) if line.strip() else []
    row = dict(zip(attr_header, (f.strip() for f in fields)))
    if len(fields) != len(attr_header) or not all(row.get(c) for c in ATTRIBUTE_COLUMNS):
        raise Malformed(f"{path}: expected {','.join(attr_header)} in {line[:80]!r}")
    return row["item_id"], row["attribute"]


def parquet_row_line(row, columns) -> str:
    """A Parquet record -> the CSV line of `columns` (None -> "", times -> seconds)."""
    out = io.StringIO()
    values = []
    for c in columns:
        v = row.get(c)
        if v is None:
            v = ""
        elif hasattr(v, "timestamp"):  # datetime / pandas Timestamp columns
            v = v.timestamp()
        values.append(str(v))
    csv.writer(out, lineterminator="").writerow(values)
    return out.getvalue()


def check_parquet(path: str, columns) -> None:
    import pyarrow.parquet as pq
    try:
        names = pq.read_schema(path).names
    except Exception as e:  # pyarrow raises several types on non-Parquet bytes
        raise DataError(path, f"not a readable Parquet file ({type(e).__name__})") from None
    check_columns(path, names, columns)


class CsvFormat(Format):
    name = "csv"

    def file_names(self, dataset: str) -> dict:
        return {EVENTS: [f"{dataset}.csv", f"{dataset}_interactions.csv"],
                ATTRIBUTES: [f"{dataset}_attributes.csv", f"{dataset}_item_attributes.csv"]}

    def check(self, path: str, kind: str) -> None:
        csv_header(path, columns_of(kind))

    def parser(self, path: str, kind: str):
        header = csv_header(path, columns_of(kind))
        if kind == "interactions":
            return (lambda e: parse_interaction(e, header)), False
        return (lambda e: parse_attribute(e, header)), False

    def rows(self, path: str, kind: str):
        return file_rows(path, 2)

    def beam_rows(self, pipeline, path: str, kind: str):
        return beam_lines(pipeline, path, 1)


class ParquetFormat(Format):
    name = "parquet"

    def file_names(self, dataset: str) -> dict:
        return {EVENTS: [f"{dataset}.parquet", f"{dataset}_interactions.parquet"],
                ATTRIBUTES: [f"{dataset}_attributes.parquet",
                             f"{dataset}_item_attributes.parquet"]}

    def check(self, path: str, kind: str) -> None:
        check_parquet(path, columns_of(kind))

    def parser(self, path: str, kind: str):
        return (parse_interaction if kind == "interactions" else parse_attribute), False

    def rows(self, path: str, kind: str):
        import pyarrow.parquet as pq
        columns = columns_of(kind)
        number = 0
        for batch in pq.ParquetFile(path).iter_batches(columns=list(columns)):
            for record in batch.to_pylist():
                number += 1
                yield number, parquet_row_line(record, columns)

    def beam_rows(self, pipeline, path: str, kind: str):
        import apache_beam as beam
        label, columns = kind.capitalize(), columns_of(kind)
        return (pipeline | f"ReadParquet{label}" >> beam.io.ReadFromParquet(path)
                | f"RowToCsv{label}" >> beam.Map(
                    lambda row, p=path: (p, parquet_row_line(row, columns))))


CSV = CsvFormat()
PARQUET = ParquetFormat()
