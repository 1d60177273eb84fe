"""The prepared dataset: the one format between data preparation and training.

Written by the Beam step (`s3rec_tf.data.prepare`: `s3rec-tf prepare` and
the pipeline's `PrepareSequences` component), read by `read_prepared` (the
command line with `--data <prepared dir>`, the pipeline's Trainers and
ranking evaluator). A directory, laid out as a TFX `Examples` artifact with
two splits so standard components can read it too:

- `Split-sequences/sequences-*.tfrecord`: one `tf.Example` per user:
  `user_id` (bytes, the raw id), `items` (int64 indices in time order),
  `negatives` (99 int64 indices: the sampled-ranking negatives);
- `Split-item_attributes/item_attributes-*.tfrecord`: `item` (int64),
  `attributes` (int64 list);
- `item_vocabulary.txt`, `attribute_vocabulary.txt`: raw id per line, line
  `i` is index `i + 1` (the id layout of `s3rec_tf.ids`: index 0 is
  padding, `num_items + 1` the mask id);
- `stats.json`: counts of every step, the parameters, the id layout and
  where the negatives came from.

Id layouts: `paper` (the paper's format: ids are kept, items `1..N` with N
the largest item id, attributes `1..M` with M the largest attribute id, so
the authors' checkpoints fit) and `vocabulary` (any raw ids, indexed from 1
in natural order).

The leave-one-out split is positional (the last two items are the
validation and test answers), so the split is the sequence itself.
"""

from __future__ import annotations

import glob
import json
import os
import re

import numpy as np

from s3rec_tf import ids
from s3rec_tf.data import negatives as negatives_lib
from s3rec_tf.data.reader import SequenceData
from s3rec_tf.errors import DataError
from s3rec_tf.ids import natural_key

SEQUENCES_SPLIT = "sequences"
ATTRIBUTES_SPLIT = "item_attributes"
SPLITS = (SEQUENCES_SPLIT, ATTRIBUTES_SPLIT)
ITEM_VOCABULARY = "item_vocabulary.txt"
ATTRIBUTE_VOCABULARY = "attribute_vocabulary.txt"
STATS = "stats.json"
ID_LAYOUTS = ("paper", "vocabulary")


def split_dir(prepared_dir: str, split: str) -> str:
    return os.path.join(prepared_dir, f"Split-{split}")


def is_prepared(path: str) -> bool:
    return os.path.isfile(os.path.join(path, STATS)) and os.path.isdir(
        split_dir(path, SEQUENCES_SPLIT))


def root_of(file_pattern: str) -> str:
    """The prepared directory of a split's file pattern (`<dir>/Split-sequences/*`)."""
    folder = os.path.dirname(file_pattern.rstrip("/")) if not os.path.isdir(file_pattern) \
        else file_pattern.rstrip("/")
    if not os.path.basename(folder).startswith("Split-"):
        raise DataError(file_pattern, "not a split of a prepared dataset (expected "
                                      "<prepared>/Split-<name>/...)")
    return os.path.dirname(folder)


def sequence_example(user: str, items, negatives) -> bytes:
    import tensorflow as tf
    feature = {
        "user_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[user.encode()])),
        "items": tf.train.Feature(int64_list=tf.train.Int64List(value=list(items))),
        "negatives": tf.train.Feature(int64_list=tf.train.Int64List(value=list(negatives))),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def attribute_example(item: int, attributes) -> bytes:
    import tensorflow as tf
    feature = {
        "item": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(item)])),
        "attributes": tf.train.Feature(int64_list=tf.train.Int64List(value=list(attributes))),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def read_stats(prepared_dir: str) -> dict:
    path = os.path.join(prepared_dir, STATS)
    if not os.path.exists(path):
        raise DataError(prepared_dir, f"not a prepared data directory (no {STATS})")
    with open(path) as f:
        return json.load(f)


def _records(prepared_dir: str, split: str):
    import tensorflow as tf
    files = sorted(glob.glob(os.path.join(split_dir(prepared_dir, split), "*")))
    return tf.data.TFRecordDataset(files, compression_type="GZIP"
                                   if files and files[0].endswith(".gz") else None)


def _read_records(prepared_dir: str, split: str):
    """The records of a split, file by file; a damaged file is a `DataError` naming it."""
    import tensorflow as tf
    files = sorted(glob.glob(os.path.join(split_dir(prepared_dir, split), "*")))
    for path in files:
        try:
            yield from tf.data.TFRecordDataset(
                [path], compression_type="GZIP" if path.endswith(".gz") else None)
        except tf.errors.DataLossError as e:
            found = re.search(r"(corrupted|truncated) record at \d+", e.message)
            raise DataError(path, f"corrupt or truncated TFRecord file "
                                  f"({found.group(0) if found else 'unreadable'}); prepare "
                                  f"the data again") from None


def negatives_label(stats: dict) -> str:
    """Where a prepared directory's sampled-protocol negatives came from."""
    return stats.get("negatives", negatives_lib.source_label(stats["config"]["seed"]))


def open_prepared(prepared_dir: str, name: str | None = None, stream: bool = False):
    """A prepared directory as training and evaluation read it.

    `stream=False`: every user in memory (`read_prepared`). `stream=True`: a
    `StreamedData` (id spaces, counts and attribute table only; the
    users are read as a stream, with bounded memory).
    """
    if stream:
        return StreamedData(prepared_dir, name)
    return read_prepared(prepared_dir, name)


def read_prepared(prepared_dir: str, name: str | None = None):
    """Reads a prepared directory into a `SequenceData` (users in natural id order)."""
    import tensorflow as tf

    stats = read_stats(prepared_dir)
    items = ids.read_vocabulary(os.path.join(prepared_dir, ITEM_VOCABULARY))
    attributes = ids.read_vocabulary(os.path.join(prepared_dir, ATTRIBUTE_VOCABULARY))
    spec = {"user_id": tf.io.FixedLenFeature([], tf.string),
            "items": tf.io.VarLenFeature(tf.int64),
            "negatives": tf.io.VarLenFeature(tf.int64)}
    users = []
    for record in _read_records(prepared_dir, SEQUENCES_SPLIT):
        ex = tf.io.parse_single_example(record, spec)
        users.append((ex["user_id"].numpy().decode(),
                      tf.sparse.to_dense(ex["items"]).numpy(),
                      tf.sparse.to_dense(ex["negatives"]).numpy()))
    users.sort(key=lambda u: natural_key(u[0]))
    item_attributes = {}
    aspec = {"item": tf.io.FixedLenFeature([], tf.int64),
             "attributes": tf.io.VarLenFeature(tf.int64)}
    for record in _read_records(prepared_dir, ATTRIBUTES_SPLIT):
        ex = tf.io.parse_single_example(record, aspec)
        item_attributes[int(ex["item"])] = np.sort(
            tf.sparse.to_dense(ex["attributes"]).numpy()).astype(np.int32)
    raw_users = [u[0] for u in users]
    user_ids = (np.asarray([int(u) for u in raw_users], np.int64)
                if all(u.isdigit() for u in raw_users) else np.arange(1, len(users) + 1))
    data = SequenceData(name or stats["config"]["name"], user_ids,
                        [u[1].astype(np.int64) for u in users], len(items), len(attributes),
                        item_attributes, np.stack([u[2] for u in users]) if users else None,
                        negatives_label(stats),
                        users_too_short=int(stats.get("users_too_short", 0)))
    data.raw_user_ids = raw_users
    data.item_vocabulary = items
    data.attribute_vocabulary = attributes
    return data


class StreamedData(SequenceData):
    """A prepared dataset's id spaces and counts, without its users.

    Has what training needs of a `SequenceData` (name, item and attribute
    counts, attribute table, fingerprint, user count) and the prepared
    directory the users are streamed from.
    """

    def __init__(self, prepared_dir: str, name: str | None = None):
        import tensorflow as tf
        stats = read_stats(prepared_dir)
        items = ids.read_vocabulary(os.path.join(prepared_dir, ITEM_VOCABULARY))
        attributes = ids.read_vocabulary(os.path.join(prepared_dir, ATTRIBUTE_VOCABULARY))
        item_attributes = {}
        spec = {"item": tf.io.FixedLenFeature([], tf.int64),
                "attributes": tf.io.VarLenFeature(tf.int64)}
        for ex in _records(prepared_dir, ATTRIBUTES_SPLIT).map(
                lambda r: tf.io.parse_single_example(r, spec)):
            item_attributes[int(ex["item"])] = np.sort(
                ex["attributes"].values.numpy()).astype(np.int32)
        # the negatives stay in the prepared files: a run has none of its own to save
        super().__init__(name or stats["config"]["name"], None, (), len(items), len(attributes),
                         item_attributes, None, negatives_label(stats),
                         users_too_short=int(stats.get("users_too_short", 0)))
        self.prepared_dir = prepared_dir
        self.item_vocabulary, self.attribute_vocabulary = items, attributes
        self._num_users = int(stats["users"])

    @property
    def num_users(self) -> int:
        return self._num_users

    def num_interactions(self) -> int:
        import tensorflow as tf
        return int(sequence_records(self.prepared_dir).map(
            lambda r: tf.size(r["items"], tf.int64)).reduce(tf.constant(0, tf.int64),
                                                            lambda a, b: a + b))


def sequence_records(prepared_dir: str):
    """The users of a prepared directory, in file order: `{user_id, items, negatives}`."""
    import tensorflow as tf
    if not glob.glob(os.path.join(split_dir(prepared_dir, SEQUENCES_SPLIT), "*")):
        raise DataError(prepared_dir, "no sequence files (expected Split-sequences/*)")
    spec = {"user_id": tf.io.FixedLenFeature([], tf.string),
            "items": tf.io.VarLenFeature(tf.int64),
            "negatives": tf.io.VarLenFeature(tf.int64)}

    def parse(record):
        ex = tf.io.parse_single_example(record, spec)
        return {"user_id": ex["user_id"], "items": tf.cast(ex["items"].values, tf.int32),
                "negatives": tf.cast(ex["negatives"].values, tf.int32)}

    return _records(prepared_dir, SEQUENCES_SPLIT).map(
        parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
