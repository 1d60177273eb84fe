"""The paper's format: `<Name>.txt` (a user and their items per line) and
`<Name>_item2attributes.json`, ids plain decimal integers (`s3rec_tf.ids.id_problem`).

One parser per file, used by the strict reader (`s3rec_tf.data.reader`: a
`DataError` at the first bad row) and by the Beam step and the ExampleGen
(rows dropped and counted, or fatal with `strict`).
"""

from __future__ import annotations

import json

import numpy as np

from s3rec_tf.data import negatives as negatives_lib
from s3rec_tf.data.formats.base import ATTRIBUTES, EVENTS, NEGATIVES, Format, Malformed, \
    beam_lines, file_rows
from s3rec_tf.errors import DataError
from s3rec_tf.ids import MAX_USER_ID, id_problem
from s3rec_tf.textio import read_lines


def line_ids(text: str) -> tuple:
    """`(user, [items])` of one line, ids as text; `Malformed` (reason only) names the
    first token that is not an id (users may go up to `MAX_USER_ID`)."""
    tokens = text.split()
    for n, t in enumerate(tokens):
        problem = id_problem(t, MAX_USER_ID) if n == 0 else id_problem(t)
        if problem:
            raise Malformed(f"{'user' if n == 0 else 'item'} id {t!r} {problem}")
    return tokens[0], tokens[1:]


def parse_line(element):
    """`(path, line)` -> events `(user, item, position)` of one user; raises `Malformed`."""
    path, line = element
    if len(line.split()) < 2:
        raise Malformed(f"{path}: a line needs a user and at least one item: {line[:80]!r}")
    try:
        user, items = line_ids(line)
    except Malformed as e:
        raise Malformed(f"{path}: {e} in line starting {line[:40]!r}") from None
    return [(user, item, float(pos)) for pos, item in enumerate(items)]


def attribute_lists(text: str, path: str) -> list:
    """`[(item, [attributes])]` of an attribute file's JSON text, ids as ints.

    Raises:
        Malformed: malformed JSON, not an object `{item: [attributes]}`, or an
            id that is not one (with the JSON line, or the item as `field`).
    """
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise Malformed(f"{path}: malformed JSON: {e.msg} (column {e.colno})",
                        line=e.lineno) from None
    if not isinstance(obj, dict):
        raise Malformed(f"{path}: expected a JSON object {{item: [attributes]}}, "
                        f"got {type(obj).__name__}")
    out = []
    for key, value in obj.items():
        problem = id_problem(key)
        if problem:
            raise Malformed(f"{path}: item id {key!r} {problem}", field=key)
        if not isinstance(value, list):
            raise Malformed(f"{path}: attributes of item {key} must be a list, "
                            f"got {type(value).__name__}", field=key)
        for a in value:
            if isinstance(a, bool) or not isinstance(a, int):
                raise Malformed(f"{path}: attribute {a!r} of item {key} is not an integer",
                                field=key)
            problem = id_problem(str(a))
            if problem:
                raise Malformed(f"{path}: attribute of item {key} {str(a)!r} {problem}",
                                field=key)
        out.append((int(key), value))
    return out


def parse_attributes(element):
    """`(path, JSON text)` -> `(item, attribute)` pairs, ids as text; raises `Malformed`."""
    path, text = element
    return [(str(item), str(a)) for item, attrs in attribute_lists(text, path) for a in attrs]


def read_sequences(path: str, min_length: int):
    """Reads `<Name>.txt` strictly: `(user ids, [item id arrays])` in file order.

    Raises:
        DataError: naming file and line: a missing, empty or non-UTF-8 file, an
            empty line, an id that is not one (`line_ids`), a duplicated user,
            or a user with fewer than `min_length` items.
    """
    user_ids, sequences, seen = [], [], {}
    for number, text in enumerate(read_lines(path), start=1):
        if not text.split():
            raise DataError(path, "empty line", line=number)
        try:
            user_token, item_tokens = line_ids(text)
        except Malformed as e:
            raise DataError(path, str(e), line=number) from None
        user = int(user_token)
        if user in seen:
            raise DataError(path, f"user {user} appears again (first on line {seen[user]})",
                            line=number)
        seen[user] = number
        items = [int(t) for t in item_tokens]
        if len(items) < min_length:
            raise DataError(path, f"user {user} has {len(items)} item(s); at least "
                                  f"{min_length} are needed for the leave-one-out split",
                            line=number)
        user_ids.append(user)
        sequences.append(np.asarray(items, dtype=np.int64))
    return np.asarray(user_ids, dtype=np.int64), sequences


def read_item_attributes(path: str) -> dict:
    """Reads `<Name>_item2attributes.json` strictly into `{item: sorted unique attributes}`.

    Raises:
        DataError: as `attribute_lists`, naming the file (and line or item).
    """
    try:
        lists = attribute_lists("\n".join(read_lines(path)), path)
    except Malformed as e:
        raise DataError(path, str(e).removeprefix(f"{path}: "), line=e.line,
                        field=e.field) from None
    return {item: np.asarray(sorted(set(attrs)), dtype=np.int32) for item, attrs in lists}


class PaperFormat(Format):
    name = "s3rec"

    def file_names(self, dataset: str) -> dict:
        return {EVENTS: [f"{dataset}.txt"],
                ATTRIBUTES: [f"{dataset}_item2attributes.json"],
                NEGATIVES: [negatives_lib.sample_file_name(dataset)]}

    def parser(self, path: str, kind: str):
        return (parse_line if kind == "interactions" else parse_attributes), True

    def rows(self, path: str, kind: str):
        if kind == "interactions":
            return file_rows(path, 1)
        with open(path, "rb") as f:  # one JSON object per file: one record (row None)
            return [(None, f.read())]

    def beam_rows(self, pipeline, path: str, kind: str):
        import apache_beam as beam
        if kind == "interactions":
            return beam_lines(pipeline, path)
        from apache_beam.io.filesystems import FileSystems

        def load(p):
            with FileSystems.open(p) as f:
                return p, f.read()
        return (pipeline | "ReadAttrJson" >> beam.Create([path])
                | "LoadAttrJson" >> beam.Map(load))


FORMAT = PaperFormat()
