"""Input formats: one parser per format, in a registry.

| `input_format` | files | module |
|---|---|---|
| `s3rec` | `<Name>.txt`, `<Name>_item2attributes.json`, `<Name>_sample.txt` | `paper` |
| `csv` | `<Name>.csv`, `<Name>_attributes.csv` | `tabular` |
| `parquet` | `<Name>.parquet`, `<Name>_attributes.parquet` | `tabular` |
| `recbole` | `<Name>.inter`, `<Name>.item` | `recbole` |

Every reader of raw files goes through here: the strict reader of the
paper's format (`s3rec_tf.data.reader`), the Beam step (`s3rec_tf.data.prepare`),
the pipeline's ExampleGen for the paper's and RecBole's files, and the
bad-row finder (`find_bad_rows`). A row parser raises `Malformed`; whether
that drops and counts the row or stops with a `DataError` is the caller's
`strict` option.
"""

from __future__ import annotations

import glob
import os

from s3rec_tf.config import INPUT_FORMATS
from s3rec_tf.data.formats import paper, recbole, tabular
from s3rec_tf.data.formats.base import (ATTRIBUTES, EVENTS, KINDS, NEGATIVES, Format,
                                        Malformed, decode_row, strict, to_data_error)
from s3rec_tf.errors import DataError

#: `{input_format: Format}`, in `INPUT_FORMATS` order.
FORMATS = {f.name: f for f in (paper.FORMAT, tabular.CSV, tabular.PARQUET, recbole.FORMAT)}

__all__ = ["ATTRIBUTES", "EVENTS", "FORMATS", "Format", "KINDS", "Malformed", "NEGATIVES",
           "decode_row", "find_bad_rows", "get", "input_file_names", "input_files",
           "sample_file", "strict", "to_data_error"]


def get(input_format: str) -> Format:
    """The registered `Format` of `input_format`."""
    if input_format not in FORMATS:
        raise ValueError(f"`input_format` must be one of {INPUT_FORMATS}. "
                         f"Received: {input_format!r}")
    return FORMATS[input_format]


def input_file_names(name: str, input_format: str) -> dict:
    """`{split: [candidate file names, first found wins]}` of an input format.

    Splits: `events` (required), `item_attributes` (optional), `negatives`
    (the authors' sample file; paper format only, optional). The one naming
    rule of the command line and the pipeline's ExampleGens.
    """
    return get(input_format).file_names(name)


def input_files(input_dir: str, name: str, input_format: str) -> tuple:
    """`(interaction file, attribute file or None)` of `input_dir`, headers checked.

    Raises:
        DataError: no interaction file, or a header that does not fit.
    """
    fmt = get(input_format)
    candidates = fmt.file_names(name)

    def first(split):
        for p in candidates.get(split, []):
            hits = sorted(glob.glob(os.path.join(input_dir, p)))
            if hits:
                return hits[0]
        return None
    inter, attrs = first(EVENTS), first(ATTRIBUTES)
    if inter is None:
        raise DataError(os.path.join(input_dir, name + ".*"),
                        f"no interaction file for format {input_format!r}")
    fmt.check(inter, "interactions")
    if attrs:
        fmt.check(attrs, "attributes")
    return inter, attrs


def sample_file(input_dir: str, name: str, input_format: str) -> str | None:
    """The authors' `<Name>_sample.txt` (paper format only), when it exists."""
    for file_name in input_file_names(name, input_format).get(NEGATIVES, []):
        path = os.path.join(input_dir, file_name)
        if os.path.exists(path):
            return path
    return None


def find_bad_rows(input_dir: str, name: str, input_format: str, limit: int) -> list:
    """The first `limit` rows the format's parsers refuse, as `(file, row, reason)`.

    Rows are numbered as an editor shows them (the header of a CSV or RecBole
    file is row 1; Parquet rows count from 1); the s3rec attribute JSON is
    one record (row None). Reads the inputs in order and stops at `limit`.
    """
    fmt, out = get(input_format), []
    for path, kind in zip(input_files(input_dir, name, input_format), KINDS):
        if path is None:
            continue
        parse, _ = fmt.parser(path, kind)
        for number, line in fmt.rows(path, kind):
            try:
                parse((path, decode_row(path, line)))
            except Malformed as e:
                out.append((path, number, str(e).removeprefix(f"{path}: ")))
                if len(out) >= limit:
                    return out
    return out
