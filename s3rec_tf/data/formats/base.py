"""What every input format shares: the malformed-row error, row decoding, numbered rows."""

from __future__ import annotations

import os

from s3rec_tf.errors import DataError

#: The parts of a dataset an input format names files for.
EVENTS, ATTRIBUTES, NEGATIVES = "events", "item_attributes", "negatives"
#: What the row parsers read: interaction rows or item-attribute rows.
KINDS = ("interactions", "attributes")


class Malformed(Exception):
    """A row a format's parser refuses: `str()` is `<file>: <reason>`.

    The lenient path drops and counts such a row; the strict path reports it
    as a `DataError` (`to_data_error`).
    """

    def __init__(self, message: str, line: int | None = None, field: str | None = None):
        super().__init__(message)
        self.line, self.field = line, field


def to_data_error(error: Malformed, path: str, line: int | None = None) -> DataError:
    """The `DataError` of a refused row of `path` (`line`: its row number, when known)."""
    return DataError(path, str(error).removeprefix(f"{path}: "),
                     line=line if line is not None else error.line, field=error.field)


def strict(fn):
    """A row parser `(path, row) -> ...` that raises `DataError` instead of `Malformed`."""
    def parse(element):
        try:
            return fn((element[0], decode_row(*element)))
        except Malformed as e:
            raise to_data_error(e, element[0]) from None
    return parse


def decode_row(path, line):
    """A row read as bytes -> str, or `Malformed` naming the first bad byte."""
    if isinstance(line, bytes):
        try:
            return line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise Malformed(f"{path}: row is not valid UTF-8 (byte "
                            f"0x{line[e.start]:02x}): {line[:60]!r}") from None
    return line


def file_rows(path: str, first_row: int):
    """`(row number, bytes)` of a text file's lines, as Beam's `ReadFromText` splits them."""
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for number, line in enumerate(lines, start=1):
        if number >= first_row:
            yield number, line[:-1] if line.endswith(b"\r") else line


def beam_lines(pipeline, path: str, skip_header: int = 0):
    """`(path, bytes)` of each line of a text file, as a PCollection.

    Read as bytes and decoded row by row (`decode_row`), so one bad row is
    reported, not fatal.
    """
    import apache_beam as beam
    name = os.path.basename(path)
    return (pipeline | f"Read {name}" >> beam.io.ReadFromText(
                path, skip_header_lines=skip_header, coder=beam.coders.BytesCoder())
            | f"Tag {name}" >> beam.Map(lambda line, p=path: (p, line)))


class Format:
    """An input format: its file names and one row parser per file kind.

    Attributes:
        name: the `--format` / `input_format` value.
    """

    name = ""

    def file_names(self, dataset: str) -> dict:
        """`{EVENTS | ATTRIBUTES | NEGATIVES: [candidate file names, first found wins]}`."""
        raise NotImplementedError

    def check(self, path: str, kind: str) -> None:
        """Refuses a file whose header does not fit (a `DataError`); reads no row."""

    def parser(self, path: str, kind: str):
        """`(parse, flat)`: the row parser of `path` (`(path, text) -> record`, or a list
        of records when `flat`), raising `Malformed`."""
        raise NotImplementedError

    def rows(self, path: str, kind: str):
        """`(row number, row)` of `path` in order, numbered as an editor shows them."""
        raise NotImplementedError

    def beam_rows(self, pipeline, path: str, kind: str):
        """`(path, row)` of `path` as a PCollection (rows as `rows` gives them)."""
        raise NotImplementedError
