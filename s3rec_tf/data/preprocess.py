"""Beam preprocessing: raw interactions and item attributes -> training-ready data.

Reads the paper's format, CSV/Parquet interaction logs (`user_id,item_id,
timestamp`, ids any strings) with an optional item-attribute table
(`item_id,attribute`, one row per pair), or RecBole atomic files (`.inter`,
`.item`). Steps: parse (malformed rows dropped and counted, or a failure with
`strict`), drop duplicate events, order each user's events by time, optional
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

import csv
import dataclasses
import glob
import hashlib
import io
import json
import os
import shutil
import tempfile

import numpy as np

from s3rec_tf.errors import DataError

FORMATS = ("s3rec", "csv", "parquet", "recbole")
MIN_EVENTS = 3
NUM_NEGATIVES = 99


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


def _split_csv(line: str, path: str = "?"):
    try:
        return next(csv.reader(io.StringIO(line)), [])
    except csv.Error as e:
        raise Malformed(f"{path}: unreadable CSV row {line[:80]!r} ({e})") from None


def parse_csv_interaction(element):
    """`(path, line)` -> `(user, item, timestamp)`; raises `Malformed`."""
    path, line = element
    fields = _split_csv(line, path) if line.strip() else []
    if len(fields) != 3:
        raise Malformed(f"{path}: expected 3 fields user_id,item_id,timestamp, got "
                        f"{len(fields)} in {line[:80]!r}")
    user, item, ts = (f.strip() for f in fields)
    if not user or not item:
        raise Malformed(f"{path}: empty user_id or item_id in {line[:80]!r}")
    try:
        timestamp = float(ts)
    except ValueError:
        raise Malformed(f"{path}: timestamp {ts!r} is not a number in {line[:80]!r}") from None
    if not np.isfinite(timestamp):
        raise Malformed(f"{path}: timestamp {ts!r} is not finite")
    return user, item, timestamp


def parse_csv_attribute(element):
    path, line = element
    fields = _split_csv(line, path) if line.strip() else []
    if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
        raise Malformed(f"{path}: expected item_id,attribute in {line[:80]!r}")
    return fields[0].strip(), fields[1].strip()


def parse_s3rec_line(element):
    """`(path, line)` -> events `(user, item, position)` of one user."""
    path, line = element
    tokens = line.split()
    if len(tokens) < 2:
        raise Malformed(f"{path}: a line needs a user and at least one item: {line[:80]!r}")
    for t in tokens:
        if not t.isdigit() or int(t) <= 0:
            raise Malformed(f"{path}: id {t!r} is not a positive integer in line "
                            f"starting {line[:40]!r}")
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
    pairs = []
    for item, attrs in obj.items():
        if not isinstance(attrs, list):
            raise Malformed(f"{path}: attributes of item {item} must be a list")
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


def _recbole_columns(path):
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
    return [h.split(":")[0] for h in header]


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
        _check_parquet(inter, ("user_id", "item_id", "timestamp"))
        if attrs:
            _check_parquet(attrs, ("item_id", "attribute"))
    return inter, attrs


def _check_parquet(path: str, columns) -> None:
    import pyarrow.parquet as pq
    try:
        names = pq.read_schema(path).names
    except Exception as e:  # pyarrow raises several types on non-Parquet bytes
        raise DataError(path, f"not a readable Parquet file ({type(e).__name__})") from None
    missing = [c for c in columns if c not in names]
    if missing:
        raise DataError(path, f"missing column(s) {missing}; has {names}", field=missing[0])


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
                    if isinstance(line, bytes):
                        try:
                            element = (path, line.decode("utf-8"))
                        except UnicodeDecodeError as e:
                            raise Malformed(f"{path}: row is not valid UTF-8 (byte "
                                            f"0x{line[e.start]:02x}): {line[:60]!r}") from None
                    out = fn(element)
                except Malformed as e:
                    if strict:
                        raise DataError(element[0], str(e).split(": ", 1)[-1]) from None
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
        parsed = read_lines(inter_path, 1) | "ParseCsv" >> beam.ParDo(
            guarded(parse_csv_interaction, "interactions")).with_outputs("malformed",
                                                                          main="events")
    elif fmt == "recbole":
        columns = _recbole_columns(inter_path)
        parsed = read_lines(inter_path, 1) | "ParseInter" >> beam.ParDo(
            guarded(lambda e: parse_recbole_interaction(e, columns), "interactions")
        ).with_outputs("malformed", main="events")
    else:
        def parquet_row(row, p=inter_path):
            return (p, ",".join(str(row.get(k, "")) for k in ("user_id", "item_id", "timestamp")))
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
                           | "LoadAttrJson" >> beam.Map(lambda p: (p, open(p).read()))
                           | "ParseAttrJson" >> beam.ParDo(
                               guarded(parse_s3rec_attributes, "attributes", flat=True)
                           ).with_outputs("malformed", main="pairs"))
        elif fmt == "recbole":
            cols = _recbole_columns(attr_path)

            def recbole_item(element, cols=cols):
                path, line = element
                row = dict(zip(cols, line.rstrip("\n").split("\t")))
                if "item_id" not in row:
                    raise Malformed(f"{path}: no item_id in {line[:80]!r}")
                others = [c for c in cols if c != "item_id"]
                return [(row["item_id"], a) for c in others for a in row.get(c, "").split()]
            attr_parsed = read_lines(attr_path, 1) | "ParseItem" >> beam.ParDo(
                guarded(recbole_item, "attributes", flat=True)).with_outputs("malformed",
                                                                             main="pairs")
        elif fmt == "csv":
            attr_parsed = read_lines(attr_path, 1) | "ParseAttrCsv" >> beam.ParDo(
                guarded(parse_csv_attribute, "attributes")).with_outputs("malformed",
                                                                         main="pairs")
        else:
            def attr_row(row, p=attr_path):
                return (p, f"{row.get('item_id', '')},{row.get('attribute', '')}")
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
        The stats dict (also in `<output_dir>/stats.json`).
    """
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    config = config or PrepareConfig()
    _input_files(input_dir, config)  # fail early and clearly
    parent = os.path.dirname(os.path.abspath(output_dir)) or "."
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(output_dir)}.tmp-", dir=parent)
    try:
        options = PipelineOptions(beam_args if beam_args is not None else default_beam_args())
        try:
            with beam.Pipeline(options=options) as p:
                build_pipeline(p, input_dir, staging, config)
        except Exception as e:
            data_error = _find_data_error(e)
            if data_error is not None:
                raise data_error from None
            raise
        with open(os.path.join(staging, "stats.json")) as f:
            stats = json.load(f)
        if stats["users"] == 0:
            raise DataError(_input_files(input_dir, config)[0],
                            f"no user has {MIN_EVENTS} or more valid events "
                            f"({stats['malformed_interactions']} malformed rows, "
                            f"{stats['users_too_short']} users too short)")
        if os.path.exists(output_dir):
            shutil.rmtree(output_dir)
        os.replace(staging, output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return stats


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
