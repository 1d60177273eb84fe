"""Beam preprocessing: events and item attributes -> the prepared dataset.

Two entrances, one graph (`build_sequences`):

- raw files (`s3rec-tf prepare`, `build_pipeline`): the paper's format (with
  its `<Name>_sample.txt` when present), CSV/Parquet interaction logs
  (`user_id,item_id,timestamp`, ids any strings) with an optional
  item-attribute table (`item_id,attribute`, one row per pair), or RecBole
  atomic files (`.inter`, `.item`); malformed rows dropped and counted, or a
  failure with `strict`;
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

import csv
import dataclasses
import glob
import io
import json
import os
import shutil
import tempfile

import numpy as np

from s3rec_tf.errors import DataError

from s3rec_tf.data import negatives as negatives_lib
from s3rec_tf.data import prepared as prepared_lib
from s3rec_tf.data.reader import MIN_SEQUENCE_LENGTH as MIN_EVENTS

FORMATS = ("s3rec", "csv", "parquet", "recbole")
NUM_NEGATIVES = negatives_lib.NUM_NEGATIVES


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

    @property
    def id_layout(self) -> str:
        """`paper` keeps the paper format's ids; `vocabulary` indexes any raw ids."""
        return "paper" if self.input_format == "s3rec" else "vocabulary"


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
        raise ValueError(f"`input_format` must be one of {FORMATS}. Received: {fmt!r}")
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
        _check_parquet(inter, ("user_id", "item_id", "timestamp"))
        if attrs:
            _check_parquet(attrs, ("item_id", "attribute"))
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
    missing = [c for c in columns if c not in names]
    if missing:
        raise DataError(path, f"missing column(s) {missing}; has {names}", field=missing[0])


def recbole_item_pairs(element, cols):
    """One `.item` row -> `(item, attribute)` pairs (every non-id column's tokens)."""
    path, line = element
    row = dict(zip(cols, line.rstrip("\n").split("\t")))
    if "item_id" not in row:
        raise Malformed(f"{path}: no item_id in {line[:80]!r}")
    others = [c for c in cols if c != "item_id"]
    return [(row["item_id"], a) for c in others for a in row.get(c, "").split()]


def _vocabulary(ids, label: str):
    """Distinct raw ids -> (sorted vocabulary list, {raw id: index from 1}), as singletons."""
    import apache_beam as beam
    vocab = (ids | f"Distinct{label}" >> beam.Distinct()
             | f"List{label}" >> beam.combiners.ToList()
             | f"Sort{label}" >> beam.Map(lambda xs: sorted(xs, key=prepared_lib.natural_key)))
    index = vocab | f"Index{label}" >> beam.Map(lambda xs: {x: i + 1 for i, x in enumerate(xs)})
    return vocab, index


def _paper_vocabulary(ids, label: str, source: str):
    """The paper's ids kept: vocabulary `1..max`, index the identity."""
    import apache_beam as beam

    def as_int(raw):
        if not raw.isdigit() or int(raw) <= 0:
            raise DataError(source, f"{label.lower()} id {raw!r} is not a positive integer "
                                    f"(the paper's format)")
        return int(raw)
    largest = (ids | f"Int{label}" >> beam.Map(as_int)
               | f"Max{label}" >> beam.CombineGlobally(lambda xs: max(xs, default=0)))
    vocab = largest | f"Range{label}" >> beam.Map(lambda n: [str(i) for i in range(1, n + 1)])
    index = largest | f"Identity{label}" >> beam.Map(
        lambda n: {str(i): i for i in range(1, n + 1)})
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
    if fmt == "s3rec":
        parsed = read_lines(inter_path) | "ParseS3Rec" >> beam.ParDo(
            _guarded(parse_s3rec_line, "interactions", strict, flat=True)).with_outputs(
            "malformed", main="events")
    elif fmt == "csv":
        parsed = read_lines(inter_path, 1) | "ParseCsv" >> beam.ParDo(
            _guarded(parse_csv_interaction, "interactions", strict)).with_outputs(
            "malformed", main="events")
    elif fmt == "recbole":
        columns = _recbole_columns(inter_path)
        parsed = read_lines(inter_path, 1) | "ParseInter" >> beam.ParDo(
            _guarded(lambda e: parse_recbole_interaction(e, columns), "interactions", strict)
        ).with_outputs("malformed", main="events")
    else:
        def parquet_row(row, p=inter_path):
            return (p, ",".join(str(row.get(k, "")) for k in ("user_id", "item_id", "timestamp")))
        parsed = (pipeline | "ReadParquet" >> beam.io.ReadFromParquet(inter_path)
                  | "RowToCsv" >> beam.Map(parquet_row)
                  | "ParseParquet" >> beam.ParDo(
                      _guarded(parse_csv_interaction, "interactions", strict)).with_outputs(
                      "malformed", main="events"))
    counters["malformed_interactions"] = parsed.malformed | "CountBadEvents" >> \
        beam.combiners.Count.Globally()

    if attr_path is None:
        attribute_pairs = pipeline | "NoAttributes" >> beam.Create([])
        counters["malformed_attributes"] = pipeline | "ZeroBadAttrs" >> beam.Create([0])
    else:
        if fmt == "s3rec":
            attr_parsed = (pipeline | "ReadAttrJson" >> beam.Create([attr_path])
                           | "LoadAttrJson" >> beam.Map(lambda p: (p, open(p).read()))
                           | "ParseAttrJson" >> beam.ParDo(
                               _guarded(parse_s3rec_attributes, "attributes", strict, flat=True)
                           ).with_outputs("malformed", main="pairs"))
        elif fmt == "recbole":
            cols = _recbole_columns(attr_path)
            attr_parsed = read_lines(attr_path, 1) | "ParseItem" >> beam.ParDo(
                _guarded(lambda e: recbole_item_pairs(e, cols), "attributes", strict,
                         flat=True)).with_outputs("malformed", main="pairs")
        elif fmt == "csv":
            attr_parsed = read_lines(attr_path, 1) | "ParseAttrCsv" >> beam.ParDo(
                _guarded(parse_csv_attribute, "attributes", strict)).with_outputs(
                "malformed", main="pairs")
        else:
            def attr_row(row, p=attr_path):
                return (p, f"{row.get('item_id', '')},{row.get('attribute', '')}")
            attr_parsed = (pipeline | "ReadAttrParquet" >> beam.io.ReadFromParquet(attr_path)
                           | "AttrRowToCsv" >> beam.Map(attr_row)
                           | "ParseAttrParquet" >> beam.ParDo(
                               _guarded(parse_csv_attribute, "attributes", strict)).with_outputs(
                               "malformed", main="pairs"))
        attribute_pairs = attr_parsed.pairs
        counters["malformed_attributes"] = attr_parsed.malformed | "CountBadAttrs" >> \
            beam.combiners.Count.Globally()

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
    return Inputs(parsed.events, attribute_pairs, sample_rows, counters,
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
    if paper:  # one spelling per id ("007" is item 7)
        events = events | "PaperIds" >> beam.Map(
            lambda e: (str(int(e[0])) if e[0].isdigit() else e[0],
                       str(int(e[1])) if e[1].isdigit() else e[1], e[2]))

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
            f.write("".join(f"{x}\n" for x in xs).encode())
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
        stats["negatives"] = sources.get("negatives") or f"generated(seed={seed})"
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
            beam_args: list | None = None) -> dict:
    """Runs the preprocessing pipeline; the output appears only when complete.

    Args:
        input_dir: directory with the raw files (see `_input_files` for names:
            `<name>.txt` + `<name>_item2attributes.json` (+ `<name>_sample.txt`);
            `<name>.csv` + `<name>_attributes.csv`; `<name>.parquet` +
            `<name>_attributes.parquet`; `<name>.inter` + `<name>.item`).
        output_dir: where the prepared data goes (`s3rec_tf.data.prepared`).
        config: `PrepareConfig`.
        beam_args: Beam pipeline options (default: DirectRunner, 2 processes).

    Returns:
        The stats dict (also in `<output_dir>/stats.json`).
    """
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    config = config or PrepareConfig()
    inter_path, _ = _input_files(input_dir, config)  # fail early and clearly
    parent = os.path.dirname(os.path.abspath(output_dir)) or "."
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(output_dir)}.tmp-", dir=parent)
    try:
        options = PipelineOptions(beam_args if beam_args is not None else default_beam_args())
        run_beam(lambda p: build_pipeline(p, input_dir, staging, config), options)
        stats = check_prepared(staging, {"interactions": inter_path})
        if os.path.exists(output_dir):
            shutil.rmtree(output_dir)
        os.replace(staging, output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return stats


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

