"""The id layout: how items and attributes are numbered, and their vocabularies.

One layout serves the data readers, the input pipelines, the layers, the
serving export and the import of the authors' weights (as in the original
code):

- items are numbered `1..num_items`; `PADDING_ID` (0) pads sequences and
  `mask_id(num_items) = num_items + 1` replaces masked items, so the item
  embedding table has `item_size(num_items) = num_items + 2` rows;
- attributes are numbered `1..num_attributes` with 0 as padding, so the
  attribute table has `attribute_size(num_attributes) = num_attributes + 1`
  rows;
- a vocabulary is a list of raw ids: entry `i` (line `i` of a vocabulary
  file) is index `i + FIRST_ID`. The paper's format keeps its ids
  (`paper_vocabulary`: raw id `"i"` is index `i`), which is what the
  authors' checkpoints need.

Example:
>>> item_size(10), mask_id(10), attribute_size(4)
(12, 11, 5)
>>> vocabulary_index(["b12", "a7"])
{'b12': 1, 'a7': 2}
"""

from __future__ import annotations

import re

import numpy as np

from s3rec_tf.errors import DataError
from s3rec_tf.textio import read_text

#: The index that pads sequences (and attribute lists); never an item.
PADDING_ID = 0
#: The index of the first real item (attribute), and of a vocabulary's first entry.
FIRST_ID = 1
#: Largest item or attribute id. Ids are int32 indices into tables that also
#: hold the padding row and (items) the mask id `largest + 1`, so
#: `item_size(MAX_ID)` rows must fit an int32.
MAX_ID = int(np.iinfo(np.int32).max) - 2
#: Largest user id (users are never embedded; they are kept as int64).
MAX_USER_ID = int(np.iinfo(np.int64).max)


_DECIMAL = re.compile(r"[0-9]+", re.ASCII)


def id_problem(token: str, limit: int = MAX_ID) -> str | None:
    """Why `token` is not an id (`None` when it is one).

    An id is a plain decimal integer in `1..limit`: ASCII digits only, no
    sign, spaces, exponent, decimal point, digit separators or leading zeros.
    This is the one rule for ids read from files; `parse_id` applies it.
    """
    if not isinstance(token, str) or not _DECIMAL.fullmatch(token.removeprefix("-")):
        return "is not an integer (plain decimal digits expected)"
    if token[0] == "-":
        return "must be a positive integer (ids start at 1)"
    if token[0] == "0":
        return ("must be a positive integer (ids start at 1)" if token.strip("0") == ""
                else "has leading zeros (plain decimal digits expected)")
    if len(token) > 20 or int(token) > limit:
        return f"is out of range (ids go up to {limit})"
    return None


def parse_id(token: str, path: str, what: str = "id", line: int | None = None,
             field: str | None = None, limit: int = MAX_ID) -> int:
    """`token` as an id in `1..limit`, or a `DataError` naming file, line and token."""
    problem = id_problem(token, limit)
    if problem:
        raise DataError(path, f"{what} {token!r} {problem}", line=line, field=field)
    return int(token)


def parse_int(token: str, path: str, line: int, what: str) -> int:
    """`parse_id` of a token of a text file: a user id (`what == "user id"`) may go up to
    `MAX_USER_ID`, any other id up to `MAX_ID`."""
    return parse_id(token, path, what, line=line,
                    limit=MAX_USER_ID if what == "user id" else MAX_ID)


def item_size(num_items: int) -> int:
    """Rows of the item table: padding 0, items `1..num_items` and the mask id."""
    return num_items + 2


def mask_id(num_items: int) -> int:
    """The id that replaces masked items: `num_items + 1`."""
    return num_items + 1


def attribute_size(num_attributes: int) -> int:
    """Rows of the attribute table: padding 0 and attributes `1..num_attributes`."""
    return num_attributes + 1


def num_items_of_table(rows: int) -> int:
    """Items of an item table with `rows` rows (the inverse of `item_size`)."""
    return rows - 2


def num_attributes_of_table(rows: int) -> int:
    """Attributes of an attribute table with `rows` rows (the inverse of `attribute_size`)."""
    return rows - 1


def item_rows(num_items: int) -> slice:
    """The rows of the item table that hold real items: `FIRST_ID..num_items`."""
    return slice(FIRST_ID, mask_id(num_items))


def natural_key(raw: str):
    """Sort key of raw ids: numbers first, in numeric order, then other ids in text order."""
    return (0, int(raw), "") if raw.isdigit() else (1, 0, raw)


def vocabulary_index(vocabulary) -> dict:
    """`{raw id: index}` of a vocabulary: entry `i` is index `i + FIRST_ID`."""
    return {raw: i + FIRST_ID for i, raw in enumerate(vocabulary)}


def paper_vocabulary(num_items: int) -> list:
    """The paper format's vocabulary: index `i` has raw id `str(i)`."""
    return [str(i) for i in range(FIRST_ID, num_items + FIRST_ID)]


def vocabulary_text(vocabulary) -> str:
    """A vocabulary file's contents: one raw id per line, in index order."""
    return "".join(f"{raw}\n" for raw in vocabulary)


def read_vocabulary(path: str) -> list:
    """Reads a vocabulary file (see `vocabulary_text`); blank lines are skipped.

    Raises:
        DataError: a missing, unreadable or non-UTF-8 file, naming it.
    """
    return [line.rstrip("\r") for line in read_text(path).split("\n") if line.strip()]


def vocabulary(num_items: int, num_attributes: int, fingerprint: str | None = None,
               dataset: str | None = None) -> dict:
    """The id spaces a model is bound to, as model manifests record them.

    Args:
        num_items: int. Items `1..num_items`.
        num_attributes: int. Attributes `1..num_attributes`.
        fingerprint: str | None. `SequenceData.fingerprint()`, when known.
        dataset: str | None. The dataset's name, when known.
    """
    return {"dataset": dataset, "num_items": int(num_items),
            "num_attributes": int(num_attributes), "fingerprint": fingerprint}


def vocabulary_of(data) -> dict:
    """`vocabulary` of a `SequenceData`."""
    return vocabulary(data.num_items, data.num_attributes, data.fingerprint(), data.name)
