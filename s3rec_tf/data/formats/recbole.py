"""RecBole atomic files: `<Name>.inter` and `<Name>.item`, tab-separated, with a typed
header (`name:type`); other columns are allowed and ignored (`.inter`) or read as the
item's attribute tokens (`.item`)."""

from __future__ import annotations

from s3rec_tf.data.formats.base import ATTRIBUTES, EVENTS, Format, Malformed, beam_lines, \
    file_rows
from s3rec_tf.errors import DataError

#: Columns a RecBole `.inter` / `.item` header must have (others allowed).
INTERACTION_COLUMNS = ("user_id", "item_id")
ITEM_COLUMNS = ("item_id",)


def header_columns(path, wanted=INTERACTION_COLUMNS):
    """Column names of a RecBole header (`name:type`); refuses one lacking `wanted`."""
    try:
        with open(path, "rb") as f:
            header = f.readline().decode("utf-8-sig").rstrip("\r\n").split("\t")
    except UnicodeDecodeError:
        raise DataError(path, "header is not valid UTF-8", line=1) from None
    except OSError as e:
        raise DataError(path, f"cannot read ({e.strerror})") from None
    columns = [h.split(":")[0] for h in header]
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise DataError(path, f"header columns {columns} lack {missing}", line=1,
                        field=missing[0])
    return columns


def parse_interaction(element, columns):
    """`(path, line)` of a `.inter` file -> `(user, item, timestamp)`; raises `Malformed`."""
    path, line = element
    fields = line.rstrip("\n").split("\t")
    if len(fields) != len(columns):
        raise Malformed(f"{path}: expected {len(columns)} tab-separated fields, got "
                        f"{len(fields)} in {line[:80]!r}")
    row = dict(zip(columns, fields))
    try:
        ts = float(row.get("timestamp", "0") or 0)
    except ValueError:
        raise Malformed(f"{path}: timestamp {row.get('timestamp')!r} is not a number") from None
    if not row.get("user_id") or not row.get("item_id"):
        raise Malformed(f"{path}: empty user_id or item_id in {line[:80]!r}")
    return row["user_id"], row["item_id"], ts


def parse_item(element, cols):
    """`(path, line)` of a RecBole `.item` file -> `(item, attribute)` pairs
    (the tokens of every column but `item_id`)."""
    path, line = element
    row = dict(zip(cols, line.rstrip("\n").split("\t")))
    if not row.get("item_id"):
        raise Malformed(f"{path}: no item_id in {line[:80]!r}")
    others = [c for c in cols if c != "item_id"]
    return [(row["item_id"], a) for c in others for a in row.get(c, "").split()]


class RecboleFormat(Format):
    name = "recbole"

    def file_names(self, dataset: str) -> dict:
        return {EVENTS: [f"{dataset}.inter"], ATTRIBUTES: [f"{dataset}.item"]}

    def check(self, path: str, kind: str) -> None:
        header_columns(path, INTERACTION_COLUMNS if kind == "interactions" else ITEM_COLUMNS)

    def parser(self, path: str, kind: str):
        if kind == "interactions":
            columns = header_columns(path, INTERACTION_COLUMNS)
            return (lambda e: parse_interaction(e, columns)), False
        columns = header_columns(path, ITEM_COLUMNS)
        return (lambda e: parse_item(e, columns)), True

    def rows(self, path: str, kind: str):
        return file_rows(path, 2)

    def beam_rows(self, pipeline, path: str, kind: str):
        return beam_lines(pipeline, path, 1)


FORMAT = RecboleFormat()
