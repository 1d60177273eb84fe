"""Reader of the S3-Rec data format, leave-one-out split and sampled negatives.

Format (as released with the original code):

- `<Name>.txt`: one user per line, `user item item ...` in time order, ids
  are positive integers.
- `<Name>_item2attributes.json`: a JSON object `{"item": [attribute, ...]}`
  (repeated attributes are treated as a set).
- `<Name>_sample.txt` (optional): `user neg_1 ... neg_99` per user: the
  negatives of the sampled-ranking protocol (`s3rec_tf.data.negatives`).

Split (original code): training input `items[:-3]` with targets
`items[1:-2]`; validation answer `items[-2]`; test answer `items[-1]`; the
same negatives serve validation and test.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re

import numpy as np

from s3rec_tf import ids as ids_lib
from s3rec_tf.data import negatives as negatives_lib
from s3rec_tf.data.negatives import (NUM_NEGATIVES as NUM_SAMPLED_NEGATIVES,  # noqa: F401
                                     draw_negatives, generate_negatives)  # noqa: F401
from s3rec_tf.data.negatives import read_sample_file as read_sample_negatives  # noqa: F401
from s3rec_tf.data.negatives import write_sample_file as write_sample_negatives  # noqa: F401
from s3rec_tf.errors import DataError
from s3rec_tf.ids import MAX_ID, MAX_USER_ID

#: Users with fewer items are dropped (and counted) by every reader: the
#: leave-one-out split needs a training item, a validation and a test answer.
MIN_SEQUENCE_LENGTH = 3

#: Ids number the items (attributes) `1..N`; a table has `largest id + 1`
#: rows. A largest id above `max(SPARSE_ID_SLACK, SPARSE_ID_FACTOR * distinct
#: ids)` would allocate mostly empty tables (2**40 ids: terabytes), so it is
#: refused before anything is allocated; `s3rec-tf prepare` renumbers raw ids.
SPARSE_ID_SLACK = 1_000_000
SPARSE_ID_FACTOR = 100
_DECIMAL = re.compile(r"[0-9]+", re.ASCII)


@dataclasses.dataclass
class SequenceData:
    """A dataset in memory.

    Attributes:
        name: str. Dataset name (`Beauty`, `LastFM`, ...).
        user_ids: int array `[num_users]`, in file order.
        sequences: list of int arrays, each user's items in time order.
        num_items: int. The largest item id (ids run `1..num_items`).
        num_attributes: int. The largest attribute id.
        item_attributes: dict item id -> sorted unique int array of attributes.
        sample_negatives: int array `[num_users, 99]` or None.
        sample_source: str. Where the negatives came from (a path, or
            `negatives.source_label`).
        users_too_short: int. Users dropped for having fewer than
            `MIN_SEQUENCE_LENGTH` items.
        attribute_rows_dropped: int. Rows of the attribute file dropped for
            naming an item above the largest item id of the interactions.
    """

    name: str
    user_ids: np.ndarray
    sequences: list
    num_items: int
    num_attributes: int
    item_attributes: dict
    sample_negatives: np.ndarray | None = None
    sample_source: str | None = None
    users_too_short: int = 0
    attribute_rows_dropped: int = 0

    def __post_init__(self):
        # the one guard between any source of data and the int32 tensors of the model
        for what, value in (("num_items", self.num_items),
                            ("num_attributes", self.num_attributes)):
            if not 0 <= int(value) <= MAX_ID:
                raise DataError(self.name, f"{what} {value} is outside 0..{MAX_ID}, the ids "
                                           f"the model's int32 tables can index")

    @property
    def num_users(self) -> int:
        return len(self.sequences)

    @property
    def item_size(self) -> int:
        """Rows of the item table: padding 0, items and the mask id (`s3rec_tf.ids`)."""
        return ids_lib.item_size(self.num_items)

    @property
    def mask_id(self) -> int:
        return ids_lib.mask_id(self.num_items)

    @property
    def attribute_size(self) -> int:
        return ids_lib.attribute_size(self.num_attributes)

    def attribute_table(self) -> np.ndarray:
        """`[item_size, max_attrs]` int32 attribute ids per item, 0-padded."""
        return attribute_table(self.item_attributes, self.item_size)

    def fingerprint(self) -> str:
        """A digest of the id spaces (item count, attribute table).

        Two datasets with the same fingerprint index items and attributes
        the same way, so a model trained on one can be used on the other.
        """
        digest = hashlib.sha256()
        digest.update(f"items={self.num_items};attributes={self.num_attributes};".encode())
        digest.update(self.attribute_table().tobytes())
        return digest.hexdigest()[:16]

    def num_interactions(self) -> int:
        return int(sum(len(s) for s in self.sequences))


def attribute_table(item_attributes: dict, item_size: int) -> np.ndarray:
    """Packs `{item: attributes}` into a 0-padded `[item_size, max_attrs]` table."""
    width = max([len(a) for a in item_attributes.values()] + [1])
    table = np.zeros((item_size, width), dtype=np.int32)
    for item, attrs in item_attributes.items():
        if 0 < item < item_size:
            table[item, :len(attrs)] = attrs
    return table


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


def _parse_int(token: str, path: str, line: int, what: str) -> int:
    return parse_id(token, path, what, line=line,
                    limit=MAX_USER_ID if what == "user id" else MAX_ID)


def check_id_density(path: str, what: str, largest: int, distinct: int) -> None:
    """Refuses ids so sparse that `largest + 1` table rows would be mostly empty."""
    bound = max(SPARSE_ID_SLACK, SPARSE_ID_FACTOR * distinct)
    if largest > bound:
        raise DataError(path, f"largest {what} id {largest} but only {distinct} distinct "
                              f"{what}s: tables would have {largest + 1} rows (at most "
                              f"{bound} allowed); number the {what}s 1..N (`s3rec-tf prepare` "
                              f"does)")


def read_text(path: str) -> str:
    """A UTF-8 text file's contents; a missing, unreadable or non-UTF-8 file is a
    `DataError` naming the file (and the line of the first bad byte)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except IsADirectoryError:
        raise DataError(path, "is a directory, expected a file") from None
    except OSError as e:  # NotADirectoryError, PermissionError, ...
        raise DataError(path, f"cannot read ({e.strerror or type(e).__name__})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise DataError(path, f"not valid UTF-8 (byte 0x{raw[e.start]:02x})", line=line) from None


def _read_lines(path: str):
    lines = read_text(path).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise DataError(path, "file is empty")
    return lines


def read_sequences(path: str, min_length: int = MIN_SEQUENCE_LENGTH):
    """Reads `<Name>.txt`.

    Returns:
        `(user_ids, sequences)`.

    Raises:
        DataError: naming the file and line of an empty line, a non-integer or
            non-positive id, a duplicated user, or a user with fewer than
            `min_length` items (the split needs 3).
    """
    user_ids, sequences, seen = [], [], {}
    for number, text in enumerate(_read_lines(path), start=1):
        tokens = text.split()
        if not tokens:
            raise DataError(path, "empty line", line=number)
        user = _parse_int(tokens[0], path, number, "user id")
        if user in seen:
            raise DataError(path, f"user {user} appears again (first on line {seen[user]})",
                            line=number)
        seen[user] = number
        items = [_parse_int(t, path, number, "item id") for t in tokens[1:]]
        if len(items) < min_length:
            raise DataError(path, f"user {user} has {len(items)} item(s); at least "
                                  f"{min_length} are needed for the leave-one-out split",
                            line=number)
        user_ids.append(user)
        sequences.append(np.asarray(items, dtype=np.int64))
    return np.asarray(user_ids, dtype=np.int64), sequences


def user_histories(data_dir: str, name: str) -> list:
    """`[(user_id, [item ids, oldest first]), ...]` of `<data_dir>/<name>.txt`, ids as text.

    The histories `s3rec-tf recommend --user` and `recommend-batch` send to an export.

    Raises:
        DataError: the file is missing or malformed (as `read_sequences`).
    """
    user_ids, sequences = read_sequences(os.path.join(data_dir, f"{name}.txt"))
    return [(str(u), [str(int(i)) for i in seq]) for u, seq in zip(user_ids, sequences)]


def read_item_attributes(path: str) -> dict:
    """Reads `<Name>_item2attributes.json` into `{item: sorted unique attributes}`."""
    lines = _read_lines(path)
    try:
        obj = json.loads("\n".join(lines))
    except json.JSONDecodeError as e:
        raise DataError(path, f"malformed JSON: {e.msg} (column {e.colno})", line=e.lineno) \
            from None
    if not isinstance(obj, dict):
        raise DataError(path, f"expected a JSON object {{item: [attributes]}}, "
                              f"got {type(obj).__name__}")
    table = {}
    for key, value in obj.items():
        item = parse_id(key, path, "item id", field=key)
        if not isinstance(value, list):
            raise DataError(path, f"attributes of item {key} must be a list, "
                                  f"got {type(value).__name__}", field=key)
        attrs = set()
        for a in value:
            if isinstance(a, bool) or not isinstance(a, int):
                raise DataError(path, f"attribute {a!r} of item {key} is not an integer",
                                field=key)
            parse_id(str(a), path, f"attribute of item {key}", field=key)
            attrs.add(a)
        table[item] = np.asarray(sorted(attrs), dtype=np.int32)
    return table


def write_generated_negatives(data: SequenceData, directory: str) -> str | None:
    """Saves negatives that `read_dataset` drew as `<directory>/<name>_sample.txt`.

    Runs call this once their inputs are validated and their output is
    written, so a refused run leaves no file behind. Negatives read from a
    file are not copied, nor those of streamed data (they stay in the
    prepared records).

    Returns:
        The path written, or None.
    """
    if data.sample_negatives is None or not (data.sample_source or "").startswith("generated("):
        return None
    path = os.path.join(directory, negatives_lib.sample_file_name(data.name))
    write_sample_negatives(path, data.user_ids, data.sample_negatives)
    return path


def read_dataset(data_dir: str, name: str, negatives_seed: int = 0) -> SequenceData:
    """Reads `<data_dir>/<name>.txt`, its attributes and its sampled negatives.

    Users with fewer than `MIN_SEQUENCE_LENGTH` items are dropped and
    counted (`users_too_short`), as in `s3rec-tf prepare` and the pipeline.
    Negatives come from `<name>_sample.txt` when present; otherwise they are
    drawn by the one seeded rule of `s3rec_tf.data.negatives` with
    `negatives_seed` (a run saves them beside its output with
    `write_generated_negatives` once it succeeds). Reading writes nothing.

    Raises:
        DataError: for missing or malformed files, ids that are not plain
            decimal integers in `1..MAX_ID`, or ids too sparse to index
            tables (`check_id_density`).
    """
    seq_path = os.path.join(data_dir, f"{name}.txt")
    attr_path = os.path.join(data_dir, f"{name}_item2attributes.json")
    sample_path = os.path.join(data_dir, negatives_lib.sample_file_name(name))
    all_users, all_sequences = read_sequences(seq_path, min_length=1)
    keep = [i for i, s in enumerate(all_sequences) if len(s) >= MIN_SEQUENCE_LENGTH]
    if not keep:
        raise DataError(seq_path, f"no user has {MIN_SEQUENCE_LENGTH} or more items")
    user_ids = all_users[keep]
    sequences = [all_sequences[i] for i in keep]
    item_attributes = read_item_attributes(attr_path)
    num_items = int(max(int(s.max()) for s in sequences))
    check_id_density(seq_path, "item", num_items,
                     len(np.unique(np.concatenate(sequences))))
    # As the original: the attribute count covers the whole JSON file, the
    # item count only the interactions; attributes of items that never occur
    # are not needed.
    num_attributes = int(max([int(a.max()) for a in item_attributes.values() if len(a)] + [0]))
    if item_attributes:
        check_id_density(attr_path, "attribute", num_attributes, len(np.unique(
            np.concatenate([a for a in item_attributes.values()] + [np.zeros(0, np.int32)]))))
    kept = {i: a for i, a in item_attributes.items() if i <= num_items}
    data = SequenceData(name, user_ids, sequences, num_items, num_attributes, kept,
                        users_too_short=len(all_sequences) - len(keep),
                        attribute_rows_dropped=len(item_attributes) - len(kept))
    if os.path.exists(sample_path):
        data.sample_negatives = read_sample_negatives(sample_path, user_ids, num_items)
        data.sample_source = sample_path
    else:
        try:
            data.sample_negatives = generate_negatives(sequences, num_items, negatives_seed,
                                                       user_ids=user_ids)
        except ValueError as e:
            raise DataError(seq_path, f"cannot draw sampled negatives: {e}") from None
        data.sample_source = negatives_lib.source_label(negatives_seed)
    return data


def pad_left(rows, length: int, dtype=np.int32) -> np.ndarray:
    """Keeps the last `length` items of each row and left-pads with 0."""
    out = np.zeros((len(rows), length), dtype=dtype)
    for i, row in enumerate(rows):
        row = row[-length:]
        if len(row):
            out[i, length - len(row):] = row
    return out
