"""Beam preprocessing: events and item attributes -> the prepared dataset.

Two entrances, one graph (`build_sequences`):

- raw files (`s3rec-tf prepare`, `build_pipeline`): the paper's format (with
  its `<Name>_sample.txt` when present), CSV/Parquet interaction logs
  (`user_id,item_id,timestamp`, ids any strings) with an optional
  item-attribute table (`item_id,attribute`, one row per pair), or RecBole
  atomic files (`.inter`, `.item`). CSV and Parquet columns are matched by
  their header names, in any order; a header that lacks a wanted column or
  has an unexpected one (a CSV without a header line included) is refused,
  naming the columns found and wanted. Ids of the paper's format follow the
  reader's strict rule (`s3rec_tf.data.reader.id_problem`). Malformed rows
  (non-UTF-8 ones included) are dropped and counted, the first few named in
  the stats as `file:row: reason`; or, with `strict`, a failure naming the
  first malformed row;
- the validated `Examples` of an ExampleGen (the pipeline's
  `PrepareSequences` component, `read_examples`).

Steps: drop duplicate events, order each user's events by time, optional
k-core filtering, users with fewer than 3 events dropped and counted (the
same rule as `s3rec_tf.data.reader`), item and attribute vocabularies (the
paper's ids kept for the paper's format), the sampled negatives (the
authors' file when given, else the seeded rule of `s3rec_tf.data.negatives`)
and the prepared dataset of `s3rec_tf.data.prepared`. Only the vocabularies
(and per-item counts and attributes) are ever gathered in one place; user
sequences stay distributed.

Attribute rows: for the paper's format, rows of items above the largest
item id are dropped and counted (as the original code); for other formats a
row naming an item that has no event is an error, and rows of items removed
by the filters (k-core, short users) are dropped and counted.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import glob
import io
import json
import logging
import os
import re
import sys
import tempfile

import numpy as np

from s3rec_tf import ids as ids_lib
from s3rec_tf.config import INPUT_FORMATS
from s3rec_tf.errors import DataError
from s3rec_tf.ids import MAX_USER_ID

from s3rec_tf.data import negatives as negatives_lib
from s3rec_tf.data import prepared as prepared_lib
from s3rec_tf.data.reader import id_problem
from s3rec_tf.data.reader import MIN_SEQUENCE_LENGTH as MIN_EVENTS

NUM_NEGATIVES = negatives_lib.NUM_NEGATIVES
#: Header of an interaction table (CSV, Parquet), in any order.
INTERACTION_COLUMNS = ("user_id", "item_id", "timestamp")
#: Header of an item-attribute table (CSV, Parquet), in any order.
ATTRIBUTE_COLUMNS = ("item_id", "attribute")
#: How many dropped rows the stats name (`dropped_rows`).
NUM_DROPPED_NAMED = 5


@dataclasses.dataclass
class PrepareConfig:
    """Parameters of the preprocessing pipeline."""

    input_format: str = INPUT_FORMATS[0]
    name: str = "Synthetic"
    k_core: int = 0            # 0: off (the paper's data is already 5-core)
    k_core_rounds: int = 10
    strict: bool = False       # fail on the first malformed row instead of dropping it
    seed: int = 0              # seed of the sampled negatives
    num_negatives: int = NUM_NEGATIVES

    @property
    def id_layout(self) -> str:
        """`paper` keeps the paper format's ids; `vocabulary` indexes any raw ids."""
        return "paper" if self.input_format == "s3rec" else "vocabulary"


# ---------------------------------------------------------------- parsing ---

class Malformed(Exception):
    pass


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


def parse_csv_interaction(element, header=INTERACTION_COLUMNS):
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


def parse_csv_attribute(element, attr_header=ATTRIBUTE_COLUMNS):
    """`(path, line)` -> `(item, attribute)`; fields by the header's names."""
    path, line = element
    fields = _split_csv(line, path) if line.strip() else []
    row = dict(zip(attr_header, (f.strip() for f in fields)))
    if len(fields) != len(attr_header) or not all(row.get(c) for c in ATTRIBUTE_COLUMNS):
        raise Malformed(f"{path}: expected {','.join(attr_header)} in {line[:80]!r}")
    return row["item_id"], row["attribute"]


def parse_s3rec_line(element):
    """`(path, line)` -> events `(user, item, position)` of one user.

    Ids follow the reader's rule (`reader.id_problem`): plain decimal
    integers in `1..MAX_ID` (users up to `MAX_USER_ID`).
    """
    path, line = element
    tokens = line.split()
    if len(tokens) < 2:
        raise Malformed(f"{path}: a line needs a user and at least one item: {line[:80]!r}")
    for n, t in enumerate(tokens):
        problem = id_problem(t, MAX_USER_ID) if n == 0 else id_problem(t)
        if problem:
            raise Malformed(f"{path}: {'user' if n == 0 else 'item'} id {t!r} {problem} in "
                            f"line starting {line[:40]!r}")
    user = tokens[0]
    return [(user, item, float(pos)) for pos, item in enumerate(tokens[1:])]


def parse_s3rec_attributes(element):
    """`(path, JSON text)` -> `(item, attribute)` pairs; ids by the reader's rule."""
    path, text = element
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise Malformed(f"{path}: malformed JSON: {e.msg}") from None
    if not isinstance(obj, dict):
        raise Malformed(f"{path}: expected a JSON object {{item: [attributes]}}")
    pairs = []
    for item, attrs in obj.items():
        if id_problem(item):
            raise Malformed(f"{path}: item id {item!r} {id_problem(item)}")
        if not isinstance(attrs, list):
            raise Malformed(f"{path}: attributes of item {item} must be a list")
        for a in attrs:
            if isinstance(a, bool) or not isinstance(a, int) or id_problem(str(a)):
                raise Malformed(f"{path}: attribute {a!r} of item {item} "
                                f"{id_problem(str(a)) or 'is not an integer'}")
        pairs.extend((str(item), str(a)) for a in attrs)
    return pairs


def parse_recbole_interaction(element, columns):
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


def parse_recbole_item(element, cols):
    """`(path, line)` of a RecBole `.item` file -> `(item, attribute)` pairs
    (the tokens of every column but `item_id`)."""
    path, line = element
    row = dict(zip(cols, line.rstrip("\n").split("\t")))
    if not row.get("item_id"):
        raise Malformed(f"{path}: no item_id in {line[:80]!r}")
    others = [c for c in cols if c != "item_id"]
    return [(row["item_id"], a) for c in others for a in row.get(c, "").split()]


#: Columns a RecBole `.inter` / `.item` header must have (others allowed).
RECBOLE_INTERACTION_COLUMNS = ("user_id", "item_id")
RECBOLE_ITEM_COLUMNS = ("item_id",)


def _recbole_columns(path, wanted=RECBOLE_INTERACTION_COLUMNS):
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


def decode_row(path, line):
    """A row read as bytes -> str, or `Malformed` naming the first bad byte."""
    if isinstance(line, bytes):
        try:
            return line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise Malformed(f"{path}: row is not valid UTF-8 (byte "
                            f"0x{line[e.start]:02x}): {line[:60]!r}") from None
    return line


def _parquet_row_line(row, columns) -> str:
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


# ------------------------------------------------------------ beam pieces ---

@dataclasses.dataclass
class Inputs:
    """What `build_sequences` consumes (PCollections), and where it came from.

    Attributes:
        events: `(user, item, timestamp)`: raw ids as text, a float time.
        attribute_pairs: `(item, attribute)`: raw ids as text.
        sample_rows: `(user, [raw item ids])` of the authors' sample file, or None.
        counters: PCollections of counts read so far (`malformed_*`).
        sources: `{"interactions", "attributes", "negatives"}`: descriptions
            (paths) for messages and `stats.json`; `negatives` None when drawn.
    """

    events: object
    attribute_pairs: object
    sample_rows: object
    counters: dict
    sources: dict


def input_file_names(name: str, fmt: str) -> dict:
    """`{split: [candidate file names, first found wins]}` of an input format.

    Splits: `events` (required), `item_attributes` (optional), `negatives`
    (the authors' sample file; paper format only, optional). The one naming
    rule of the command line and the pipeline's ExampleGens.
    """
    names = {
        "s3rec": {"events": [f"{name}.txt"],
                  "item_attributes": [f"{name}_item2attributes.json"],
                  "negatives": [negatives_lib.sample_file_name(name)]},
        "csv": {"events": [f"{name}.csv", f"{name}_interactions.csv"],
                "item_attributes": [f"{name}_attributes.csv", f"{name}_item_attributes.csv"]},
        "parquet": {"events": [f"{name}.parquet", f"{name}_interactions.parquet"],
                    "item_attributes": [f"{name}_attributes.parquet",
                                        f"{name}_item_attributes.parquet"]},
        "recbole": {"events": [f"{name}.inter"], "item_attributes": [f"{name}.item"]},
    }
    if fmt not in names:
        raise ValueError(f"`input_format` must be one of {INPUT_FORMATS}. Received: {fmt!r}")
    return names[fmt]


def _input_files(input_dir: str, config: PrepareConfig):
    name, fmt = config.name, config.input_format
    candidates = input_file_names(name, fmt)

    def first(split):
        for p in candidates.get(split, []):
            hits = sorted(glob.glob(os.path.join(input_dir, p)))
            if hits:
                return hits[0]
        return None
    inter, attrs = first("events"), first("item_attributes")
    if inter is None:
        raise DataError(os.path.join(input_dir, name + ".*"),
                        f"no interaction file for format {fmt!r}")
    if fmt == "parquet":
        _check_parquet(inter, INTERACTION_COLUMNS)
        if attrs:
            _check_parquet(attrs, ATTRIBUTE_COLUMNS)
    elif fmt == "csv":
        csv_header(inter, INTERACTION_COLUMNS)
        if attrs:
            csv_header(attrs, ATTRIBUTE_COLUMNS)
    elif fmt == "recbole":
        _recbole_columns(inter, RECBOLE_INTERACTION_COLUMNS)
        if attrs:
            _recbole_columns(attrs, RECBOLE_ITEM_COLUMNS)
    return inter, attrs


def sample_file(input_dir: str, config: PrepareConfig) -> str | None:
    """The authors' `<Name>_sample.txt` (paper format only), when it exists."""
    for file_name in input_file_names(config.name, config.input_format).get("negatives", []):
        path = os.path.join(input_dir, file_name)
        if os.path.exists(path):
            return path
    return None


def _check_parquet(path: str, columns) -> None:
    import pyarrow.parquet as pq
    try:
        names = pq.read_schema(path).names
    except Exception as e:  # pyarrow raises several types on non-Parquet bytes
        raise DataError(path, f"not a readable Parquet file ({type(e).__name__})") from None
    check_columns(path, names, columns)


def _vocabulary(ids, label: str):
    """Distinct raw ids -> (sorted vocabulary list, {raw id: index from 1}), as singletons."""
    import apache_beam as beam
    vocab = (ids | f"Distinct{label}" >> beam.Distinct()
             | f"List{label}" >> beam.combiners.ToList()
             | f"Sort{label}" >> beam.Map(lambda xs: sorted(xs, key=ids_lib.natural_key)))
    index = vocab | f"Index{label}" >> beam.Map(ids_lib.vocabulary_index)
    return vocab, index


def _paper_vocabulary(ids, label: str, source: str):
    """The paper's ids kept: vocabulary `1..max`, index the identity."""
    import apache_beam as beam

    def as_int(raw):
        problem = id_problem(raw)
        if problem:
            raise DataError(source, f"{label.lower()} id {raw!r} {problem} (the paper's "
                                    f"format)")
        return int(raw)
    largest = (ids | f"Int{label}" >> beam.Map(as_int)
               | f"Max{label}" >> beam.CombineGlobally(lambda xs: max(xs, default=0)))
    vocab = largest | f"Range{label}" >> beam.Map(ids_lib.paper_vocabulary)
    index = vocab | f"Identity{label}" >> beam.Map(ids_lib.vocabulary_index)
    return vocab, index


def _guarded(fn, tag, strict, flat=False):
    """A DoFn applying a row parser: `Malformed` rows counted (or fatal with `strict`)."""
    import apache_beam as beam
    from apache_beam import pvalue
    counter = beam.metrics.Metrics.counter("s3rec_prepare", f"malformed_{tag}")

    class _Parse(beam.DoFn):
        def process(self, element):
            try:
                path, line = element
                element = (path, decode_row(path, line))
                out = fn(element)
            except Malformed as e:
                if strict:  # `prepare` names the row (`find_bad_rows`)
                    raise DataError(element[0], str(e).removeprefix(f"{element[0]}: ")) \
                        from None
                counter.inc()
                yield pvalue.TaggedOutput("malformed", str(e))
                return
            if flat:
                yield from out
            else:
                yield out
    return _Parse()


def read_raw(pipeline, input_dir: str, config: PrepareConfig) -> Inputs:
    """The raw files of `input_dir` (see `_input_files` for names) as `Inputs`."""
    import apache_beam as beam

    inter_path, attr_path = _input_files(input_dir, config)
    strict = config.strict
    counters = {}

    def read_lines(path, skip_header=0):
        # bytes, decoded row by row, so one bad row is reported, not fatal
        return (pipeline | f"Read {os.path.basename(path)}" >> beam.io.ReadFromText(
                    path, skip_header_lines=skip_header, coder=beam.coders.BytesCoder())
                | f"Tag {os.path.basename(path)}" >> beam.Map(lambda line, p=path: (p, line)))

    fmt = config.input_format

    def parse(path, kind):
        """`path`'s rows as `kind` ("interactions" or "attributes") records of `fmt`:
        a tagged output of parsed records ("records") and malformed rows' reasons."""
        label, interactions = kind.capitalize(), kind == "interactions"
        csv_columns = INTERACTION_COLUMNS if interactions else ATTRIBUTE_COLUMNS
        parse_csv = parse_csv_interaction if interactions else parse_csv_attribute
        if fmt == "parquet":
            rows = (pipeline | f"ReadParquet{label}" >> beam.io.ReadFromParquet(path)
                    | f"RowToCsv{label}" >> beam.Map(
                        lambda row, p=path: (p, _parquet_row_line(row, csv_columns))))
            fn, flat = parse_csv, False
        elif fmt == "csv":
            header = csv_header(path, csv_columns)
            rows, fn, flat = read_lines(path, 1), (lambda e: parse_csv(e, header)), False
        elif fmt == "s3rec" and interactions:
            rows, fn, flat = read_lines(path), parse_s3rec_line, True
        elif fmt == "s3rec":  # one JSON object per file
            rows = (pipeline | "ReadAttrJson" >> beam.Create([path])
                    | "LoadAttrJson" >> beam.Map(lambda p: (p, open(p, "rb").read())))
            fn, flat = parse_s3rec_attributes, True
        elif interactions:  # recbole
            columns = _recbole_columns(path, RECBOLE_INTERACTION_COLUMNS)
            rows, fn, flat = read_lines(path, 1), (
                lambda e: parse_recbole_interaction(e, columns)), False
        else:
            columns = _recbole_columns(path, RECBOLE_ITEM_COLUMNS)
            rows, fn, flat = read_lines(path, 1), (lambda e: parse_recbole_item(e, columns)), True
        parsed = rows | f"Parse{label}" >> beam.ParDo(
            _guarded(fn, kind, strict, flat=flat)).with_outputs("malformed", main="records")
        counters[f"malformed_{kind}"] = parsed.malformed | f"CountMalformed{label}" >> \
            beam.combiners.Count.Globally()
        return parsed.records

    events = parse(inter_path, "interactions")
    if attr_path is None:
        attribute_pairs = pipeline | "NoAttributes" >> beam.Create([])
        counters["malformed_attributes"] = pipeline | "ZeroBadAttrs" >> beam.Create([0])
    else:
        attribute_pairs = parse(attr_path, "attributes")

    sample_path = sample_file(input_dir, config)
    sample_rows = None
    if sample_path:
        count = config.num_negatives

        def parse_sample(element):
            number, text = element
            user, negs = negatives_lib.parse_sample_line(text.decode("utf-8", "replace"),
                                                         sample_path, number, None, count)
            return user, [str(n) for n in negs]
        sample_rows = (pipeline | "ReadSampleFile" >> beam.Create([sample_path])
                       | "SampleLines" >> beam.FlatMap(
                           lambda p: enumerate(open(p, "rb").read().splitlines(), start=1))
                       | "ParseSample" >> beam.Map(parse_sample))
    return Inputs(events, attribute_pairs, sample_rows, counters,
                  {"interactions": inter_path, "attributes": attr_path,
                   "negatives": sample_path})


def build_sequences(pipeline, inputs: Inputs, output_dir: str, config: PrepareConfig) -> dict:
    """The shared graph: `Inputs` -> the prepared dataset in `output_dir`.

    Returns a dict of PCollections of counts (for tests with `assert_that`).
    """
    import apache_beam as beam

    counters = dict(inputs.counters)
    source = inputs.sources["interactions"]
    attr_source = inputs.sources.get("attributes") or "attribute table"
    paper = config.id_layout == "paper"
    events = inputs.events
    counters["events_read"] = events | "CountRead" >> beam.combiners.Count.Globally()
    events = events | "DropDuplicates" >> beam.Distinct()
    counters["events_distinct"] = events | "CountDistinct" >> beam.combiners.Count.Globally()
    seen_items = (events | "SeenItems" >> beam.Map(lambda e: e[1])
                  | "DistinctSeen" >> beam.Distinct()
                  | "SeenSet" >> beam.combiners.ToList() | "AsSet" >> beam.Map(set))

    # k-core: users and items with fewer than k events removed, repeatedly
    if config.k_core and config.k_core > 1:
        k = config.k_core
        for r in range(config.k_core_rounds):
            item_counts = (events | f"ItemKey{r}" >> beam.Map(lambda e: (e[1], 1))
                           | f"ItemCount{r}" >> beam.CombinePerKey(sum))
            events = (events | f"ByUser{r}" >> beam.Map(lambda e: (e[0], e))
                      | f"GroupUser{r}" >> beam.GroupByKey()
                      | f"FilterCore{r}" >> beam.FlatMap(
                          lambda kv, counts, k=k: [
                              e for e in kv[1] if counts.get(e[1], 0) >= k]
                          if sum(1 for e in kv[1] if counts.get(e[1], 0) >= k) >= k else [],
                          counts=beam.pvalue.AsDict(item_counts)))
        counters["events_after_k_core"] = events | "CountCore" >> beam.combiners.Count.Globally()

    # per-user sequences in time order (ties: item id order)
    sequences = (events | "KeyUser" >> beam.Map(lambda e: (e[0], (e[2], e[1])))
                 | "GroupByUser" >> beam.GroupByKey()
                 | "Order" >> beam.Map(lambda kv: (kv[0], [i for _, i in sorted(kv[1])])))
    long_enough = sequences | "MinEvents" >> beam.Filter(lambda kv: len(kv[1]) >= MIN_EVENTS)
    counters["users_too_short"] = (sequences | "Short" >> beam.Filter(
        lambda kv: len(kv[1]) < MIN_EVENTS) | "CountShort" >> beam.combiners.Count.Globally())

    # vocabularies (gathered: the only global collections)
    kept_items = long_enough | "Items" >> beam.FlatMap(lambda kv: kv[1])
    if paper:
        item_vocab, item_index = _paper_vocabulary(kept_items, "Item", source)
    else:
        item_vocab, item_index = _vocabulary(kept_items, "Items")

    def check_known(pair, index, seen):
        if pair[0] in index:
            return [("known", pair)]
        if not paper and pair[0] not in seen:
            raise DataError(attr_source, f"item {pair[0]!r} of the attribute table has no "
                                         f"event", field="item_id")
        return [("dropped", pair)]
    attribute_pairs = inputs.attribute_pairs | "DistinctPairs" >> beam.Distinct()
    checked = attribute_pairs | "CheckAttrItems" >> beam.FlatMap(
        check_known, index=beam.pvalue.AsSingleton(item_index),
        seen=beam.pvalue.AsSingleton(seen_items))
    known_pairs = (checked | "Known" >> beam.Filter(lambda t: t[0] == "known")
                   | "KnownPairs" >> beam.Map(lambda t: t[1]))
    counters["attribute_rows_unseen_items"] = (
        checked | "Dropped" >> beam.Filter(lambda t: t[0] == "dropped")
        | "CountUnseen" >> beam.combiners.Count.Globally())
    if paper:  # as the original: attribute ids of the whole file count
        attr_vocab, attr_index = _paper_vocabulary(
            attribute_pairs | "Attrs" >> beam.Map(lambda p: p[1]), "Attribute", attr_source)
    else:
        attr_vocab, attr_index = _vocabulary(
            known_pairs | "Attrs" >> beam.Map(lambda p: p[1]), "Attrs")

    seed, count = config.seed, config.num_negatives
    sample_source = inputs.sources.get("negatives")

    def indexed(kv, index):
        user, raw_items = kv
        return user, [index[i] for i in raw_items]
    indexed_sequences = long_enough | "ToIndices" >> beam.Map(
        indexed, index=beam.pvalue.AsSingleton(item_index))

    if inputs.sample_rows is None:
        def with_drawn(kv, index):
            user, items = kv
            try:
                negatives = negatives_lib.draw_for_user(user, items, len(index), seed, count)
            except ValueError as e:
                raise DataError(source, f"cannot draw sampled negatives: {e}") from None
            return prepared_lib.sequence_example(user, items, negatives)
        examples = indexed_sequences | "DrawNegatives" >> beam.Map(
            with_drawn, index=beam.pvalue.AsSingleton(item_index))
    else:
        def with_file(kv, index):
            user, grouped = kv
            if not grouped["items"]:
                return []
            if len(grouped["negatives"]) != 1:
                raise DataError(sample_source, f"{len(grouped['negatives'])} lines of "
                                               f"negatives for user {user}, expected 1")
            items = grouped["items"][0]
            negatives = []
            for raw in grouped["negatives"][0]:
                if raw not in index:
                    raise DataError(sample_source, f"negative item {raw} of user {user} is "
                                                   f"not an item of the catalogue "
                                                   f"(1..{len(index)})")
                negatives.append(index[raw])
            return [prepared_lib.sequence_example(user, items, negatives)]
        examples = ({"items": indexed_sequences, "negatives": inputs.sample_rows}
                    | "JoinNegatives" >> beam.CoGroupByKey()
                    | "WithNegatives" >> beam.FlatMap(
                        with_file, index=beam.pvalue.AsSingleton(item_index)))

    def split_path(split):
        return os.path.join(prepared_lib.split_dir(output_dir, split), split)
    (examples | "WriteSequences" >> beam.io.WriteToTFRecord(
        split_path(prepared_lib.SEQUENCES_SPLIT), file_name_suffix=".tfrecord"))

    def item_attr_examples(kv, items, attrs):
        item, raw_attrs = kv
        return prepared_lib.attribute_example(items[item], sorted({attrs[a] for a in raw_attrs}))

    (known_pairs | "GroupAttrs" >> beam.GroupByKey()
     | "AttrExample" >> beam.Map(item_attr_examples, items=beam.pvalue.AsSingleton(item_index),
                                 attrs=beam.pvalue.AsSingleton(attr_index))
     | "WriteAttrs" >> beam.io.WriteToTFRecord(split_path(prepared_lib.ATTRIBUTES_SPLIT),
                                               file_name_suffix=".tfrecord"))

    def write_vocab(xs, name):
        from apache_beam.io.filesystems import FileSystems
        with FileSystems.create(FileSystems.join(output_dir, name)) as f:
            f.write(ids_lib.vocabulary_text(xs).encode())
        return len(xs)

    counters["items"] = item_vocab | "WriteItemVocab" >> beam.Map(
        write_vocab, prepared_lib.ITEM_VOCABULARY)
    counters["attributes"] = attr_vocab | "WriteAttrVocab" >> beam.Map(
        write_vocab, prepared_lib.ATTRIBUTE_VOCABULARY)
    counters["users"] = long_enough | "CountUsers" >> beam.combiners.Count.Globally()
    counters["interactions"] = (long_enough | "Lengths" >> beam.Map(lambda kv: len(kv[1]))
                                | "SumLengths" >> beam.CombineGlobally(sum))
    sources = dict(inputs.sources)

    def write_stats(_, **counts):
        stats = {k: int(v) for k, v in counts.items()}
        stats["config"] = dataclasses.asdict(config)
        stats["id_layout"] = config.id_layout
        stats["input"] = sources
        stats["negatives"] = sources.get("negatives") or negatives_lib.source_label(seed)
        from apache_beam.io.filesystems import FileSystems
        with FileSystems.create(FileSystems.join(output_dir, prepared_lib.STATS)) as f:
            f.write(json.dumps(stats, indent=2, sort_keys=True).encode())
        return stats

    (pipeline | "StatsTrigger" >> beam.Create([None])
     | "WriteStats" >> beam.Map(write_stats, **{
         k: beam.pvalue.AsSingleton(v) for k, v in counters.items()}))
    return counters


def build_pipeline(pipeline, input_dir: str, output_dir: str, config: PrepareConfig):
    """Raw files of `input_dir` -> the prepared dataset in `output_dir` (see `prepare`)."""
    return build_sequences(pipeline, read_raw(pipeline, input_dir, config), output_dir, config)


# ------------------------------------------------ from an ExampleGen's Examples ---

#: Features of the ExampleGen splits the sequence step reads.
EVENTS_SPLIT, ATTRIBUTES_SPLIT, NEGATIVES_SPLIT = "events", "item_attributes", "negatives"
EVENT_FEATURES = ("user_id", "item_id", "timestamp")
ATTRIBUTE_FEATURES = ("item_id", "attribute")
NEGATIVE_FEATURES = ("user_id", "negatives")


def _values(example, name, split, numeric=False):
    """The values of feature `name` of a `tf.Example` as text (or floats)."""
    feature = example.features.feature.get(name)
    if feature is None or feature.WhichOneof("kind") is None:
        raise DataError(f"split {split!r}", f"an example has no {name!r}", field=name)
    kind = feature.WhichOneof("kind")
    values = list(getattr(feature, kind).value)
    if numeric:
        if kind == "bytes_list":
            raise DataError(f"split {split!r}", f"feature {name!r} holds text "
                                                f"({values[0][:40]!r}); expected a number",
                            field=name)
        return [float(v) for v in values]
    if kind == "float_list":
        raise DataError(f"split {split!r}", f"feature {name!r} holds floats ({values[0]}); "
                                            f"expected an id (integer or text)", field=name)
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def event_of(serialized: bytes):
    import tensorflow as tf
    ex = tf.train.Example.FromString(serialized)
    user = _values(ex, "user_id", EVENTS_SPLIT)
    item = _values(ex, "item_id", EVENTS_SPLIT)
    ts = _values(ex, "timestamp", EVENTS_SPLIT, numeric=True)
    if len(user) != 1 or len(item) != 1 or len(ts) != 1:
        raise DataError(f"split {EVENTS_SPLIT!r}", "an event needs one user_id, one item_id "
                                                   "and one timestamp")
    return user[0], item[0], ts[0]


def attribute_pairs_of(serialized: bytes):
    import tensorflow as tf
    ex = tf.train.Example.FromString(serialized)
    item = _values(ex, "item_id", ATTRIBUTES_SPLIT)
    return [(item[0], a) for a in _values(ex, "attribute", ATTRIBUTES_SPLIT)]


def negatives_row_of(serialized: bytes):
    import tensorflow as tf
    ex = tf.train.Example.FromString(serialized)
    return _values(ex, "user_id", NEGATIVES_SPLIT)[0], _values(ex, "negatives", NEGATIVES_SPLIT)


def read_examples(pipeline, split_patterns: dict, config: PrepareConfig,
                  sources: dict | None = None) -> Inputs:
    """`Inputs` from an ExampleGen's splits (`{split: file pattern}`).

    `events` is required; `item_attributes` and `negatives` are optional.
    """
    import apache_beam as beam

    def read(split):
        return pipeline | f"Read{split}" >> beam.io.ReadFromTFRecord(split_patterns[split])
    events = read(EVENTS_SPLIT) | "ToEvents" >> beam.Map(event_of)
    if ATTRIBUTES_SPLIT in split_patterns:
        pairs = read(ATTRIBUTES_SPLIT) | "ToPairs" >> beam.FlatMap(attribute_pairs_of)
    else:
        pairs = pipeline | "NoAttributes" >> beam.Create([])
    sample_rows = None
    if NEGATIVES_SPLIT in split_patterns:
        sample_rows = read(NEGATIVES_SPLIT) | "ToNegatives" >> beam.Map(negatives_row_of)
    counters = {"malformed_interactions": pipeline | "NoBadEvents" >> beam.Create([0]),
                "malformed_attributes": pipeline | "NoBadAttrs" >> beam.Create([0])}
    sources = dict(sources or {})
    sources.setdefault("interactions", f"split {EVENTS_SPLIT!r}")
    sources.setdefault("attributes", f"split {ATTRIBUTES_SPLIT!r}")
    if NEGATIVES_SPLIT in split_patterns:
        sources.setdefault("negatives", f"split {NEGATIVES_SPLIT!r}")
    else:
        sources["negatives"] = None
    return Inputs(events, pairs, sample_rows, counters, sources)


def default_beam_args(num_workers: int = 2) -> list:
    """DirectRunner in multi-processing mode: what the local runs use."""
    return ["--runner=DirectRunner", "--direct_running_mode=multi_processing",
            f"--direct_num_workers={num_workers}"]


def check_prepared(output_dir: str, sources: dict) -> dict:
    """Stats of a freshly prepared directory; no user left is an error."""
    stats = prepared_lib.read_stats(output_dir)
    if stats["users"] == 0:
        raise DataError(sources.get("interactions") or output_dir,
                        f"no user has {MIN_EVENTS} or more valid events "
                        f"({stats['malformed_interactions']} malformed rows, "
                        f"{stats['users_too_short']} users too short)")
    return stats


def prepare(input_dir: str, output_dir: str, config: PrepareConfig | None = None,
            beam_args: list | None = None, replace: bool = False) -> dict:
    """Runs the preprocessing pipeline; the output appears only when complete.

    Args:
        input_dir: directory with the raw files (see `_input_files` for names:
            `<name>.txt` + `<name>_item2attributes.json` (+ `<name>_sample.txt`);
            `<name>.csv` + `<name>_attributes.csv`; `<name>.parquet` +
            `<name>_attributes.parquet`; `<name>.inter` + `<name>.item`).
        output_dir: where the prepared data goes (`s3rec_tf.data.prepared`),
            written with `s3rec_tf.io.write_atomic_dir`.
        config: `PrepareConfig`.
        beam_args: Beam pipeline options (default: DirectRunner, 2 processes).
        replace: bool. Replace an existing non-empty `output_dir` (else it is
            refused). Defaults to `False`.

    Returns:
        The stats dict (also in `<output_dir>/stats.json`); `dropped_rows`
        names the first `NUM_DROPPED_NAMED` malformed rows as
        `file:row: reason`.

    Raises:
        DataError: a missing input, a header that does not match, no usable
            user, or (with `strict`) the first malformed row, as
            `file:row: reason`. Nothing is written then.
    """
    from apache_beam.options.pipeline_options import PipelineOptions

    from s3rec_tf.io import write_atomic_dir, write_json_atomic

    config = config or PrepareConfig()
    inter_path, _ = _input_files(input_dir, config)  # fail early and clearly
    result = {}

    def fill(staging):
        options = PipelineOptions(beam_args if beam_args is not None else default_beam_args())
        try:
            with _quiet_beam_logs():
                run_beam(lambda p: build_pipeline(p, input_dir, staging, config), options)
        except Exception:
            if config.strict:  # a worker's error names the file; this names the row
                bad = find_bad_rows(input_dir, config, 1)
                if bad:
                    path, row, reason = bad[0]
                    raise DataError(path, reason, line=row) from None
            raise
        stats = prepared_lib.read_stats(staging)
        if stats["malformed_interactions"] or stats["malformed_attributes"]:
            stats["dropped_rows"] = [f"{p}:{r}: {why}" if r else f"{p}: {why}" for p, r, why
                                     in find_bad_rows(input_dir, config, NUM_DROPPED_NAMED)]
            write_json_atomic(os.path.join(staging, prepared_lib.STATS), stats)
        try:
            result.update(check_prepared(staging, {"interactions": inter_path}))
        except DataError as e:  # no user left: name the first dropped row and its reason
            bad = find_bad_rows(input_dir, config, 1) if stats["malformed_interactions"] else []
            if not bad:
                raise
            path, row, reason = bad[0]
            raise DataError(path, f"{reason}; {e.reason}", line=row) from None

    write_atomic_dir(output_dir, fill, replace=replace)
    return result


@contextlib.contextmanager
def _quiet_beam_logs():
    """Beam logs a worker's failure (with its traceback, many times over) at
    ERROR before raising it; the raised error is what `prepare` reports, as
    one line for bad data, so those logs are held back while it runs.

    Workers of the multi-processing DirectRunner are other processes writing
    to the inherited standard error: it is captured too, and written back
    unless the run failed on bad data (a `DataError`, reported as one line).
    """
    logger = logging.getLogger("apache_beam")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    sys.stderr.flush()
    saved = os.dup(2)
    captured = tempfile.TemporaryFile()
    os.dup2(captured.fileno(), 2)
    bad_data = False
    try:
        yield
    except Exception as e:
        bad_data = _find_data_error(e) is not None
        raise
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        logger.setLevel(level)
        captured.seek(0)
        text = captured.read()
        captured.close()
        if text and not bad_data:
            sys.stderr.buffer.write(text)
            sys.stderr.flush()


def _file_rows(path: str, first_row: int):
    """`(row number, bytes)` of a text file's lines, as `ReadFromText` splits them."""
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for number, line in enumerate(lines, start=1):
        if number >= first_row:
            yield number, line[:-1] if line.endswith(b"\r") else line


def _row_parsers(path: str, config: PrepareConfig, kind: str):
    """`(rows, parse)`: the numbered rows of an input file and the pipeline's parser."""
    fmt = config.input_format
    if fmt == "s3rec":
        if kind == "interactions":
            return _file_rows(path, 1), parse_s3rec_line
        with open(path, "rb") as f:
            return [(None, f.read())], parse_s3rec_attributes
    if fmt == "csv":
        if kind == "interactions":
            header = csv_header(path, INTERACTION_COLUMNS)
            return _file_rows(path, 2), lambda e: parse_csv_interaction(e, header)
        attr_header = csv_header(path, ATTRIBUTE_COLUMNS)
        return _file_rows(path, 2), lambda e: parse_csv_attribute(e, attr_header)
    if fmt == "recbole":
        if kind == "interactions":
            cols = _recbole_columns(path, RECBOLE_INTERACTION_COLUMNS)
            return _file_rows(path, 2), lambda e: parse_recbole_interaction(e, cols)
        cols = _recbole_columns(path, RECBOLE_ITEM_COLUMNS)
        return _file_rows(path, 2), lambda e: parse_recbole_item(e, cols)
    import pyarrow.parquet as pq
    columns = INTERACTION_COLUMNS if kind == "interactions" else ATTRIBUTE_COLUMNS
    fn = parse_csv_interaction if kind == "interactions" else parse_csv_attribute

    def rows():
        number = 0
        for batch in pq.ParquetFile(path).iter_batches(columns=list(columns)):
            for record in batch.to_pylist():
                number += 1
                yield number, _parquet_row_line(record, columns)
    return rows(), fn


def find_bad_rows(input_dir: str, config: PrepareConfig, limit: int) -> list:
    """The first `limit` rows the pipeline's parsers refuse, as `(file, row, reason)`.

    Rows are numbered as an editor shows them (the header of a CSV or RecBole
    file is row 1; Parquet rows count from 1); the s3rec attribute JSON is
    one record (row None). Reads the inputs in order and stops at `limit`.
    """
    out = []
    for path, kind in zip(_input_files(input_dir, config), ("interactions", "attributes")):
        if path is None:
            continue
        rows, parse = _row_parsers(path, config, kind)
        for number, line in rows:
            try:
                parse((path, decode_row(path, line)))
            except Malformed as e:
                out.append((path, number, str(e).removeprefix(f"{path}: ")))
                if len(out) >= limit:
                    return out
    return out


def run_beam(build, options=None, pipeline=None) -> None:
    """Builds and runs a Beam pipeline; a `DataError` from a worker surfaces as itself."""
    import apache_beam as beam
    try:
        if pipeline is None:
            pipeline = beam.Pipeline(options=options)
        with pipeline as p:
            build(p)
    except Exception as e:
        data_error = _find_data_error(e)
        if data_error is not None:
            raise data_error from None
        raise


def _find_data_error(error):
    """A `DataError` raised inside a Beam worker arrives wrapped; unwrap it."""
    seen, chain = set(), []
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, DataError):
            return error
        chain.append(error)
        error = error.__cause__ or error.__context__
    # Beam's multi-processing workers send the error back as text only
    marker = "DataError: "
    for link in chain:
        text = str(link)
        if marker in text:
            line = text.split(marker, 1)[1].splitlines()[0]
            line = re.sub(r" \[while running '[^']*'\]$", "", line)
            path, _, reason = line.partition(": ")
            return DataError(path, reason)
    return None

