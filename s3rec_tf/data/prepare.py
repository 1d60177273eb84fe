"""The Beam step: events and item attributes -> the prepared dataset.

Two entrances, one graph (`build_sequences`):

- raw files (`s3rec-tf prepare`, `build_pipeline`), read by the format's
  parser (`s3rec_tf.data.formats`: the paper's format with its
  `<Name>_sample.txt` when present, CSV, Parquet, RecBole). Malformed rows
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
sequences stay distributed. Running it (options, error reporting) is
`s3rec_tf.data.beam_runtime`.

Attribute rows: for the paper's format, rows of items above the largest
item id are dropped and counted (as the original code); for other formats a
row naming an item that has no event is an error, and rows of items removed
by the filters (k-core, short users) are dropped and counted.
"""

from __future__ import annotations

import dataclasses
import json
import os

from s3rec_tf import ids as ids_lib
from s3rec_tf.config import PrepareConfig  # noqa: F401  (the Beam step's parameters)
from s3rec_tf.data import formats
from s3rec_tf.data import negatives as negatives_lib
from s3rec_tf.data import prepared as prepared_lib
from s3rec_tf.data.beam_runtime import default_beam_args, quiet_beam_logs, run_beam
from s3rec_tf.data.reader import MIN_SEQUENCE_LENGTH as MIN_EVENTS
from s3rec_tf.errors import DataError
from s3rec_tf.ids import id_problem

#: How many dropped rows the stats name (`dropped_rows`).
NUM_DROPPED_NAMED = 5


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
                element = (path, formats.decode_row(path, line))
                out = fn(element)
            except formats.Malformed as e:
                if strict:  # `prepare` names the row (`formats.find_bad_rows`)
                    raise formats.to_data_error(e, element[0]) from None
                counter.inc()
                yield pvalue.TaggedOutput("malformed", str(e))
                return
            if flat:
                yield from out
            else:
                yield out
    return _Parse()


def read_raw(pipeline, input_dir: str, config: PrepareConfig) -> Inputs:
    """The raw files of `input_dir` (`formats.input_files` names them) as `Inputs`."""
    import apache_beam as beam

    fmt = formats.get(config.input_format)
    inter_path, attr_path = formats.input_files(input_dir, config.name, config.input_format)
    counters = {}

    def parse(path, kind):
        """`path`'s rows as `kind` records of the format: the parsed records; malformed
        rows are counted (or fatal with `strict`)."""
        label = kind.capitalize()
        fn, flat = fmt.parser(path, kind)
        parsed = fmt.beam_rows(pipeline, path, kind) | f"Parse{label}" >> beam.ParDo(
            _guarded(fn, kind, config.strict, flat=flat)).with_outputs("malformed",
                                                                       main="records")
        counters[f"malformed_{kind}"] = parsed.malformed | f"CountMalformed{label}" >> \
            beam.combiners.Count.Globally()
        return parsed.records

    events = parse(inter_path, "interactions")
    if attr_path is None:
        attribute_pairs = pipeline | "NoAttributes" >> beam.Create([])
        counters["malformed_attributes"] = pipeline | "ZeroBadAttrs" >> beam.Create([0])
    else:
        attribute_pairs = parse(attr_path, "attributes")

    sample_path = formats.sample_file(input_dir, config.name, config.input_format)
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
        input_dir: directory with the raw files (`s3rec_tf.data.formats` names them:
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
    inter_path, _ = formats.input_files(input_dir, config.name,  # fail early and clearly
                                       config.input_format)
    result = {}

    def fill(staging):
        options = PipelineOptions(beam_args if beam_args is not None else default_beam_args())
        try:
            with quiet_beam_logs():
                run_beam(lambda p: build_pipeline(p, input_dir, staging, config), options)
        except Exception:
            if config.strict:  # a worker's error names the file; this names the row
                bad = formats.find_bad_rows(input_dir, config.name, config.input_format, 1)
                if bad:
                    path, row, reason = bad[0]
                    raise DataError(path, reason, line=row) from None
            raise
        stats = prepared_lib.read_stats(staging)
        if stats["malformed_interactions"] or stats["malformed_attributes"]:
            stats["dropped_rows"] = [f"{p}:{r}: {why}" if r else f"{p}: {why}" for p, r, why
                                     in formats.find_bad_rows(input_dir, config.name,
                                                             config.input_format,
                                                             NUM_DROPPED_NAMED)]
            write_json_atomic(os.path.join(staging, prepared_lib.STATS), stats)
        try:
            result.update(check_prepared(staging, {"interactions": inter_path}))
        except DataError as e:  # no user left: name the first dropped row and its reason
            bad = (formats.find_bad_rows(input_dir, config.name, config.input_format, 1)
                   if stats["malformed_interactions"] else [])
            if not bad:
                raise
            path, row, reason = bad[0]
            raise DataError(path, f"{reason}; {e.reason}", line=row) from None

    write_atomic_dir(output_dir, fill, replace=replace)
    return result
