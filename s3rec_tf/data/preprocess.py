"""Beam preprocessing: raw interactions and item attributes -> training-ready data.

Reads the paper's format, CSV/Parquet interaction logs (`user_id,item_id,
timestamp`, ids any strings) with an optional item-attribute table
(`item_id,attribute`, one row per pair), or RecBole atomic files (`.inter`,
`.item`). CSV and Parquet columns are matched by their header names, in any
order; a header that lacks a wanted column or has an unexpected one (a CSV
without a header line included) is refused, naming the columns found and
wanted. Steps: parse (malformed rows dropped and counted, the first few named
in the stats as `file:row: reason`; or, with `strict`, a failure naming the
first malformed row), drop duplicate events, order each user's events by time, optional
k-core filtering, item and attribute vocabularies (raw id <-> index), users
with fewer than 3 events dropped and counted, seeded sampled negatives, and
TFRecord output. Only the vocabularies (and per-item counts and attributes)
are ever gathered in one place; user sequences stay distributed.

Output directory (written to a temporary sibling, renamed at the end):

- `sequences-*.tfrecord`: one `tf.Example` per user: `user_id` (bytes),
  `items` (int64 indices in time order), `negatives` (99 int64 indices);
- `item_attributes-*.tfrecord`: `item` (int64), `attributes` (int64 list);
- `item_vocabulary.txt`, `attribute_vocabulary.txt`: raw id per line, line
  `i` is index `i + 1`;
- `stats.json`: counts of every step, and the parameters.

The leave-one-out split is positional (the last two items are the
validation and test answers), so the split is the sequence itself.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import glob
import hashlib
import io
import json
import logging
import os

import numpy as np

from s3rec_tf.errors import DataError

FORMATS = ("s3rec", "csv", "parquet", "recbole")
MIN_EVENTS = 3
NUM_NEGATIVES = 99
#: Header of an interaction table (CSV, Parquet), in any order.
INTERACTION_COLUMNS = ("user_id", "item_id", "timestamp")
#: Header of an item-attribute table (CSV, Parquet), in any order.
ATTRIBUTE_COLUMNS = ("item_id", "attribute")
#: How many dropped rows the stats name (`dropped_rows`).
NUM_DROPPED_NAMED = 5


@dataclasses.dataclass
class PrepareConfig:
    """Parameters of the preprocessing pipeline."""

    input_format: str = "s3rec"
    name: str = "Synthetic"
    k_core: int = 0            # 0: off (the paper's data is already 5-core)
    k_core_rounds: int = 10
    strict: bool = False       # fail on the first malformed row instead of dropping it
    seed: int = 0              # seed of the sampled negatives
    num_negatives: int = NUM_NEGATIVES


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
                              f"{'; '.join(problems)}{hint}", field=(missing or unexpected
                                                                      or repeated)[0])


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
    columns = tuple(c.strip() for c in _split_csv(text.rstrip("\r\n"), path))
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


def parse_csv_interaction(element, columns=INTERACTION_COLUMNS):
    """`(path, line)` -> `(user, item, timestamp)`; raises `Malformed`.

    `columns` is the file's header (`csv_header`): fields are taken by name.
    """
    path, line = element
    row = _fields(path, line, columns)
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


def parse_csv_attribute(element, columns=ATTRIBUTE_COLUMNS):
    """`(path, line)` -> `(item, attribute)`; fields by the header's names."""
    path, line = element
    fields = _split_csv(line, path) if line.strip() else []
    row = dict(zip(columns, (f.strip() for f in fields)))
    if len(fields) != len(columns) or not all(row.get(c) for c in ATTRIBUTE_COLUMNS):
        raise Malformed(f"{path}: expected {','.join(columns)} in {line[:80]!r}")
    return row["item_id"], row["attribute"]


def parse_s3rec_line(element):
    """`(path, line)` -> events `(user, item, position)` of one user.

    Ids follow the reader's rule (`reader.id_problem`): plain decimal
    integers in `1..MAX_ID` (users up to `MAX_USER_ID`).
    """
    from s3rec_tf.data.reader import MAX_USER_ID, id_problem
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
    path, text = element
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise Malformed(f"{path}: malformed JSON: {e.msg}") from None
    if not isinstance(obj, dict):
        raise Malformed(f"{path}: expected a JSON object {{item: [attributes]}}")
    from s3rec_tf.data.reader import id_problem
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
    """`(path, line)` of a RecBole `.item` file -> `(item, attribute)` pairs."""
    path, line = element
    row = dict(zip(cols, line.rstrip("\n").split("\t")))
    if not row.get("item_id"):
        raise Malformed(f"{path}: no item_id in {line[:80]!r}")
    others = [c for c in cols if c != "item_id"]
    return [(row["item_id"], a) for c in others for a in row.get(c, "").split()]


def _recbole_columns(path, required=("user_id", "item_id")):
    try:
        with open(path, "rb") as f:
            header = f.readline().decode("utf-8-sig").rstrip("\r\n").split("\t")
    except UnicodeDecodeError:
        raise DataError(path, "header is not valid UTF-8", line=1) from None
    columns = [h.split(":")[0] for h in header]
    missing = [c for c in required if c not in columns]
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

def _natural_key(raw: str):
    return (0, int(raw), "") if raw.isdigit() else (1, 0, raw)


def sample_negatives(user: str, history: set, num_items: int, seed: int, count: int):
    """Seeded per user (hash of seed and user id): same result on any worker."""
    if num_items - len(history) < count:
        return None
    from s3rec_tf.data.reader import draw_negatives
    digest = hashlib.sha256(f"{seed}:{user}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    return draw_negatives(rng, history, num_items, count)


def _sequence_example(user, items, negatives):
    import tensorflow as tf
    feature = {
        "user_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[user.encode()])),
        "items": tf.train.Feature(int64_list=tf.train.Int64List(value=items)),
        "negatives": tf.train.Feature(int64_list=tf.train.Int64List(value=negatives)),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _attribute_example(item, attributes):
    import tensorflow as tf
    feature = {
        "item": tf.train.Feature(int64_list=tf.train.Int64List(value=[item])),
        "attributes": tf.train.Feature(int64_list=tf.train.Int64List(value=attributes)),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _input_files(input_dir: str, config: PrepareConfig):
    name, fmt = config.name, config.input_format
    def first(*patterns):
        for p in patterns:
            hits = sorted(glob.glob(os.path.join(input_dir, p)))
            if hits:
                return hits[0]
        return None
    if fmt == "s3rec":
        inter, attrs = first(f"{name}.txt"), first(f"{name}_item2attributes.json")
    elif fmt == "csv":
        inter = first(f"{name}.csv", f"{name}_interactions.csv")
        attrs = first(f"{name}_attributes.csv", f"{name}_item_attributes.csv")
    elif fmt == "parquet":
        inter = first(f"{name}.parquet", f"{name}_interactions.parquet")
        attrs = first(f"{name}_attributes.parquet", f"{name}_item_attributes.parquet")
    elif fmt == "recbole":
        inter, attrs = first(f"{name}.inter"), first(f"{name}.item")
    else:
        raise ValueError(f"`input_format` must be one of {FORMATS}. Received: {fmt!r}")
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
        _recbole_columns(inter)
        if attrs:
            _recbole_columns(attrs, ("item_id",))
    return inter, attrs


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
             | f"Sort{label}" >> beam.Map(lambda xs: sorted(xs, key=_natural_key)))
    index = vocab | f"Index{label}" >> beam.Map(lambda xs: {x: i + 1 for i, x in enumerate(xs)})
    return vocab, index


def build_pipeline(pipeline, input_dir: str, output_dir: str, config: PrepareConfig):
    """Adds the preprocessing transforms to `pipeline`, writing into `output_dir`.

    Returns a dict of PCollections of counts (for tests with `assert_that`).
    """
    import apache_beam as beam
    from apache_beam import pvalue

    inter_path, attr_path = _input_files(input_dir, config)
    strict = config.strict
    counters = {}

    def guarded(fn, tag, flat=False):
        counter = beam.metrics.Metrics.counter("s3rec_prepare", f"malformed_{tag}")

        class _Parse(beam.DoFn):
            def process(self, element):
                try:
                    path, line = element
                    element = (path, decode_row(path, line))
                    out = fn(element)
                except Malformed as e:
                    if strict:  # the driver names the row (`find_bad_rows`)
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

    def read_lines(path, skip_header=0):
        # bytes, decoded row by row, so one bad row is reported, not fatal
        return (pipeline | f"Read {os.path.basename(path)}" >> beam.io.ReadFromText(
                    path, skip_header_lines=skip_header, coder=beam.coders.BytesCoder())
                | f"Tag {os.path.basename(path)}" >> beam.Map(lambda line, p=path: (p, line)))

    fmt = config.input_format
    if fmt == "s3rec":
        parsed = read_lines(inter_path) | "ParseS3Rec" >> beam.ParDo(
            guarded(parse_s3rec_line, "interactions", flat=True)).with_outputs(
            "malformed", main="events")
    elif fmt == "csv":
        header = csv_header(inter_path, INTERACTION_COLUMNS)
        parsed = read_lines(inter_path, 1) | "ParseCsv" >> beam.ParDo(
            guarded(lambda e: parse_csv_interaction(e, header), "interactions")).with_outputs(
            "malformed", main="events")
    elif fmt == "recbole":
        columns = _recbole_columns(inter_path)
        parsed = read_lines(inter_path, 1) | "ParseInter" >> beam.ParDo(
            guarded(lambda e: parse_recbole_interaction(e, columns), "interactions")
        ).with_outputs("malformed", main="events")
    else:
        def parquet_row(row, p=inter_path):
            return (p, _parquet_row_line(row, INTERACTION_COLUMNS))
        parsed = (pipeline | "ReadParquet" >> beam.io.ReadFromParquet(inter_path)
                  | "RowToCsv" >> beam.Map(parquet_row)
                  | "ParseParquet" >> beam.ParDo(
                      guarded(parse_csv_interaction, "interactions")).with_outputs(
                      "malformed", main="events"))
    events = parsed.events
    counters["malformed_interactions"] = parsed.malformed | "CountBadEvents" >> \
        beam.combiners.Count.Globally()

    # item attributes (raw item id, raw attribute)
    if attr_path is None:
        attribute_pairs = pipeline | "NoAttributes" >> beam.Create([])
        counters["malformed_attributes"] = pipeline | "ZeroBadAttrs" >> beam.Create([0])
    else:
        if fmt == "s3rec":
            attr_parsed = (pipeline | "ReadAttrJson" >> beam.Create([attr_path])
                           | "LoadAttrJson" >> beam.Map(lambda p: (p, open(p, "rb").read()))
                           | "ParseAttrJson" >> beam.ParDo(
                               guarded(parse_s3rec_attributes, "attributes", flat=True)
                           ).with_outputs("malformed", main="pairs"))
        elif fmt == "recbole":
            cols = _recbole_columns(attr_path, ("item_id",))
            attr_parsed = read_lines(attr_path, 1) | "ParseItem" >> beam.ParDo(
                guarded(lambda e, cols=cols: parse_recbole_item(e, cols), "attributes",
                        flat=True)).with_outputs("malformed", main="pairs")
        elif fmt == "csv":
            attr_header = csv_header(attr_path, ATTRIBUTE_COLUMNS)
            attr_parsed = read_lines(attr_path, 1) | "ParseAttrCsv" >> beam.ParDo(
                guarded(lambda e: parse_csv_attribute(e, attr_header), "attributes")
            ).with_outputs("malformed", main="pairs")
        else:
            def attr_row(row, p=attr_path):
                return (p, _parquet_row_line(row, ATTRIBUTE_COLUMNS))
            attr_parsed = (pipeline | "ReadAttrParquet" >> beam.io.ReadFromParquet(attr_path)
                           | "AttrRowToCsv" >> beam.Map(attr_row)
                           | "ParseAttrParquet" >> beam.ParDo(
                               guarded(parse_csv_attribute, "attributes")).with_outputs(
                               "malformed", main="pairs"))
        attribute_pairs = attr_parsed.pairs | "DistinctPairs" >> beam.Distinct()
        counters["malformed_attributes"] = attr_parsed.malformed | "CountBadAttrs" >> \
            beam.combiners.Count.Globally()

    # duplicates
    counters["events_read"] = events | "CountRead" >> beam.combiners.Count.Globally()
    events = events | "DropDuplicates" >> beam.Distinct()
    counters["events_distinct"] = events | "CountDistinct" >> beam.combiners.Count.Globally()

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

    # per-user sequences in time order (ties keep the input order of equal times)
    sequences = (events | "KeyUser" >> beam.Map(lambda e: (e[0], (e[2], e[1])))
                 | "GroupByUser" >> beam.GroupByKey()
                 | "Order" >> beam.Map(lambda kv: (kv[0], [i for _, i in sorted(kv[1])])))
    long_enough = sequences | "MinEvents" >> beam.Filter(lambda kv: len(kv[1]) >= MIN_EVENTS)
    counters["users_too_short"] = (sequences | "Short" >> beam.Filter(
        lambda kv: len(kv[1]) < MIN_EVENTS) | "CountShort" >> beam.combiners.Count.Globally())

    # vocabularies (gathered: the only global collections)
    item_vocab, item_index = _vocabulary(
        long_enough | "Items" >> beam.FlatMap(lambda kv: kv[1]), "Items")
    known_pairs = attribute_pairs | "KnownItemAttrs" >> beam.Filter(
        lambda p, index: p[0] in index, index=beam.pvalue.AsSingleton(item_index))
    counters["attribute_rows_unseen_items"] = (
        attribute_pairs | "UnseenItemAttrs" >> beam.Filter(
            lambda p, index: p[0] not in index, index=beam.pvalue.AsSingleton(item_index))
        | "CountUnseen" >> beam.combiners.Count.Globally())
    attr_vocab, attr_index = _vocabulary(
        known_pairs | "Attrs" >> beam.Map(lambda p: p[1]), "Attrs")

    seed, count = config.seed, config.num_negatives

    def to_example(kv, index):
        user, raw_items = kv
        items = [index[i] for i in raw_items]
        negatives = sample_negatives(user, set(items), len(index), seed, count)
        if negatives is None:
            raise DataError(inter_path, f"user {user!r}: fewer than {count} items outside "
                                        f"the history remain for sampled negatives")
        return _sequence_example(user, items, negatives)

    (long_enough | "ToExample" >> beam.Map(to_example, index=beam.pvalue.AsSingleton(item_index))
     | "WriteSequences" >> beam.io.WriteToTFRecord(os.path.join(output_dir, "sequences"),
                                                   file_name_suffix=".tfrecord"))

    def item_attr_examples(kv, items, attrs):
        item, raw_attrs = kv
        return _attribute_example(items[item], sorted({attrs[a] for a in raw_attrs}))

    (known_pairs | "GroupAttrs" >> beam.GroupByKey()
     | "AttrExample" >> beam.Map(item_attr_examples, items=beam.pvalue.AsSingleton(item_index),
                                 attrs=beam.pvalue.AsSingleton(attr_index))
     | "WriteAttrs" >> beam.io.WriteToTFRecord(os.path.join(output_dir, "item_attributes"),
                                               file_name_suffix=".tfrecord"))

    def write_vocab(xs, name):
        from apache_beam.io.filesystems import FileSystems
        with FileSystems.create(FileSystems.join(output_dir, name)) as f:
            f.write("".join(f"{x}\n" for x in xs).encode())
        return len(xs)

    counters["items"] = item_vocab | "WriteItemVocab" >> beam.Map(
        write_vocab, "item_vocabulary.txt")
    counters["attributes"] = attr_vocab | "WriteAttrVocab" >> beam.Map(
        write_vocab, "attribute_vocabulary.txt")
    counters["users"] = long_enough | "CountUsers" >> beam.combiners.Count.Globally()
    counters["interactions"] = (long_enough | "Lengths" >> beam.Map(lambda kv: len(kv[1]))
                                | "SumLengths" >> beam.CombineGlobally(sum))

    def write_stats(_, **counts):
        stats = {k: int(v) for k, v in counts.items()}
        stats["config"] = dataclasses.asdict(config)
        stats["input"] = {"interactions": inter_path, "attributes": attr_path}
        from apache_beam.io.filesystems import FileSystems
        with FileSystems.create(FileSystems.join(output_dir, "stats.json")) as f:
            f.write(json.dumps(stats, indent=2, sort_keys=True).encode())
        return stats

    (pipeline | "StatsTrigger" >> beam.Create([None])
     | "WriteStats" >> beam.Map(write_stats, **{
         k: beam.pvalue.AsSingleton(v) for k, v in counters.items()}))
    return counters


def default_beam_args(num_workers: int = 2) -> list:
    """DirectRunner in multi-processing mode: what the local runs use."""
    return ["--runner=DirectRunner", "--direct_running_mode=multi_processing",
            f"--direct_num_workers={num_workers}"]


def prepare(input_dir: str, output_dir: str, config: PrepareConfig | None = None,
            beam_args: list | None = None) -> dict:
    """Runs the preprocessing pipeline; the output appears only when complete.

    Args:
        input_dir: directory with the raw files (see `_input_files` for names:
            `<name>.txt` + `<name>_item2attributes.json`; `<name>.csv` +
            `<name>_attributes.csv`; `<name>.parquet` +
            `<name>_attributes.parquet`; `<name>.inter` + `<name>.item`).
        output_dir: where the prepared data goes.
        config: `PrepareConfig`.
        beam_args: Beam pipeline options (default: DirectRunner, 2 processes).

    Returns:
        The stats dict (also in `<output_dir>/stats.json`); `dropped_rows`
        names the first `NUM_DROPPED_NAMED` malformed rows as
        `file:row: reason`.

    Raises:
        DataError: a missing input, a header that does not match, no usable
            user, or (with `strict`) the first malformed row, as
            `file:row: reason`. Nothing is written then.
    """
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from s3rec_tf.artifacts import write_atomic_dir, write_json_atomic

    config = config or PrepareConfig()
    inter_path, _ = _input_files(input_dir, config)  # fail early and clearly
    result = {}

    def fill(staging):
        options = PipelineOptions(beam_args if beam_args is not None else default_beam_args())
        try:
            with _quiet_beam_logs(), beam.Pipeline(options=options) as p:
                build_pipeline(p, input_dir, staging, config)
        except Exception as e:
            if config.strict:
                bad = find_bad_rows(input_dir, config, 1)
                if bad:
                    path, row, reason = bad[0]
                    raise DataError(path, reason, line=row) from None
            data_error = _find_data_error(e)
            if data_error is not None:
                raise data_error from None
            raise
        with open(os.path.join(staging, "stats.json")) as f:
            stats = json.load(f)
        if stats["malformed_interactions"] or stats["malformed_attributes"]:
            stats["dropped_rows"] = [f"{p}:{r}: {why}" if r else f"{p}: {why}" for p, r, why
                                     in find_bad_rows(input_dir, config, NUM_DROPPED_NAMED)]
            write_json_atomic(os.path.join(staging, "stats.json"), stats)
        if stats["users"] == 0:
            raise DataError(inter_path, f"no user has {MIN_EVENTS} or more valid events "
                                        f"({stats['malformed_interactions']} malformed rows, "
                                        f"{stats['users_too_short']} users too short)")
        result.update(stats)

    write_atomic_dir(output_dir, fill)
    return result


@contextlib.contextmanager
def _quiet_beam_logs():
    """Beam logs a worker's failure (with its traceback, many times over) at
    ERROR before raising it; the raised error is what `prepare` reports, as
    one line for bad data, so those logs are held back while it runs."""
    logger = logging.getLogger("apache_beam")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


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
        wanted = INTERACTION_COLUMNS if kind == "interactions" else ATTRIBUTE_COLUMNS
        header = csv_header(path, wanted)
        fn = parse_csv_interaction if kind == "interactions" else parse_csv_attribute
        return _file_rows(path, 2), lambda e: fn(e, header)
    if fmt == "recbole":
        if kind == "interactions":
            cols = _recbole_columns(path)
            return _file_rows(path, 2), lambda e: parse_recbole_interaction(e, cols)
        cols = _recbole_columns(path, ("item_id",))
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


def _find_data_error(error):
    """A `DataError` raised inside a Beam worker arrives wrapped; unwrap it."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, DataError):
            return error
        error = error.__cause__ or error.__context__
    text = str(error) if error is not None else ""
    marker = "DataError: "
    if marker in text:
        line = text.split(marker, 1)[1].splitlines()[0]
        path, _, reason = line.partition(": ")
        return DataError(path, reason)
    return None


def read_prepared(prepared_dir: str, name: str | None = None):
    """Reads a prepared directory into a `SequenceData` (users sorted by id)."""
    import tensorflow as tf
    from s3rec_tf.data.reader import SequenceData

    stats_path = os.path.join(prepared_dir, "stats.json")
    if not os.path.exists(stats_path):
        raise DataError(prepared_dir, "not a prepared data directory (no stats.json)")
    with open(stats_path) as f:
        stats = json.load(f)
    with open(os.path.join(prepared_dir, "item_vocabulary.txt")) as f:
        items = [line.rstrip("\n") for line in f]
    with open(os.path.join(prepared_dir, "attribute_vocabulary.txt")) as f:
        attributes = [line.rstrip("\n") for line in f]
    spec = {"user_id": tf.io.FixedLenFeature([], tf.string),
            "items": tf.io.VarLenFeature(tf.int64),
            "negatives": tf.io.VarLenFeature(tf.int64)}
    users = []
    for record in tf.data.TFRecordDataset(sorted(glob.glob(os.path.join(
            prepared_dir, "sequences-*.tfrecord")))):
        ex = tf.io.parse_single_example(record, spec)
        users.append((ex["user_id"].numpy().decode(),
                      tf.sparse.to_dense(ex["items"]).numpy(),
                      tf.sparse.to_dense(ex["negatives"]).numpy()))
    users.sort(key=lambda u: _natural_key(u[0]))
    item_attributes = {}
    aspec = {"item": tf.io.FixedLenFeature([], tf.int64),
             "attributes": tf.io.VarLenFeature(tf.int64)}
    for record in tf.data.TFRecordDataset(sorted(glob.glob(os.path.join(
            prepared_dir, "item_attributes-*.tfrecord")))):
        ex = tf.io.parse_single_example(record, aspec)
        item_attributes[int(ex["item"])] = np.sort(
            tf.sparse.to_dense(ex["attributes"]).numpy()).astype(np.int32)
    user_ids = np.arange(1, len(users) + 1)
    data = SequenceData(name or stats["config"]["name"], user_ids,
                        [u[1].astype(np.int64) for u in users], len(items), len(attributes),
                        item_attributes, np.stack([u[2] for u in users]) if users else None,
                        f"prepared(seed={stats['config']['seed']})")
    data.raw_user_ids = [u[0] for u in users]
    data.item_vocabulary = items
    data.attribute_vocabulary = attributes
    return data
