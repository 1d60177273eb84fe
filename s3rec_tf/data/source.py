"""One interface to a dataset's users, in memory or streamed: `DataSource`.

Training and evaluation read the users only through a `DataSource`:

- batches for training: `pretrain_dataset` and `finetune_dataset`, with
  their sizes `pretrain_samples` and `finetune_rows` (steps per epoch);
- batches for ranking in Keras: `ranking_dataset` (`validation_data` of
  fine-tuning, `s3rec_tf.data.ranking_inputs`);
- chunks for evaluation: `eval_chunks`, the `EvalArrays` of a split a chunk
  of users at a time, which `RankingEvaluator` ranks and combines.

Two implementations give the same rows, counts and metrics:

- `InMemorySource`: a `SequenceData` with every user (`read_dataset`,
  `read_prepared`), through `s3rec_tf.data.inputs`; its arrays are built
  once per source;
- `StreamedSource`: a `StreamedData` (a prepared directory's id spaces), the
  users read as a `tf.data` stream (`s3rec_tf.data.streaming`): memory does
  not grow with them.

`data_source` wraps either kind of data (or returns a `DataSource` as it
is): it is the one place that tells them apart.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import tensorflow as tf

from s3rec_tf.config import PREFIX_SAMPLING
from s3rec_tf.data import inputs as inputs_lib
from s3rec_tf.data import streaming
from s3rec_tf.data.inputs import EvalArrays
from s3rec_tf.data.prepared import StreamedData
from s3rec_tf.data.ranking_inputs import ranking_dataset
from s3rec_tf.data.reader import SequenceData
from s3rec_tf.errors import DataError


class DataSource:
    """A dataset's users, as training and evaluation read them.

    Attributes:
        data: `SequenceData`. The id spaces, counts, attribute table,
            vocabularies and negatives label of the dataset (for streamed
            data a `StreamedData`, which holds no users).

    The `config` arguments are the run's `PretrainConfig` or
    `FinetuneConfig` (`s3rec_tf.config`); `max_length` is the encoder's.
    """

    def __init__(self, data: SequenceData):
        self.data = data

    @property
    def name(self) -> str:
        return self.data.name

    @property
    def num_users(self) -> int:
        return self.data.num_users

    @property
    def num_items(self) -> int:
        return self.data.num_items

    def check(self, config) -> None:
        """Raises `DataError` when this source cannot train with `config`.

        Called before a run writes anything.
        """

    def pretrain_samples(self, max_length: int, prefix_sampling: str = PREFIX_SAMPLING[0]) -> int:
        """Pretraining samples per epoch: one per prefix of each user's training part
        (`every`), or one per user (`one-per-user`)."""
        raise NotImplementedError

    def pretrain_dataset(self, max_length: int, batch_size: int, config,
                         first_epoch: int = 0) -> tf.data.Dataset:
        """Pretraining batches of epochs `first_epoch..config.epochs - 1`,
        `ceil(pretrain_samples / batch_size)` per epoch."""
        raise NotImplementedError

    def finetune_rows(self, max_length: int, rows: str) -> int:
        """Fine-tuning rows per epoch (`rows`: one of `s3rec_tf.config.TRAINING_ROWS`)."""
        raise NotImplementedError

    def target_counts(self, max_length: int, rows: str) -> np.ndarray:
        """`inputs.target_counts` of the fine-tuning rows (the `sampled-ce` loss's)."""
        raise NotImplementedError

    def finetune_dataset(self, max_length: int, batch_size: int, config, first_epoch: int = 0,
                         sampling: dict | None = None) -> tf.data.Dataset:
        """Next-item batches of epochs `first_epoch..config.epochs - 1`,
        `ceil(finetune_rows / batch_size)` per epoch.

        Args:
            sampling: the negatives the loss needs: `inputs.finetune_dataset`'s
                `negatives`, `sampled_negatives` and `proposal`
                (`s3rec_tf.training.finetune_sampling`).
        """
        raise NotImplementedError

    def eval_chunks(self, split: str, max_length: int,
                    chunk: int = 1024) -> Iterator[EvalArrays]:
        """The `EvalArrays` of `split` (`valid` or `test`), `chunk` users at a time."""
        raise NotImplementedError

    def ranking_dataset(self, split: str, protocol: str, max_length: int,
                        batch_size: int) -> tf.data.Dataset:
        """One pass over `split` in the ranking batches of `ranking_inputs.ranking_dataset`."""
        raise NotImplementedError


class InMemorySource(DataSource):
    """Every user in memory (a `SequenceData`), through `s3rec_tf.data.inputs`."""

    def __init__(self, data: SequenceData):
        super().__init__(data)
        self._arrays = {}  # built once: (what, arguments) -> arrays

    def _cached(self, key, build):
        if key not in self._arrays:
            self._arrays[key] = build()
        return self._arrays[key]

    def _pretrain_arrays(self, max_length):
        return self._cached(("pretrain", max_length),
                            lambda: inputs_lib.pretrain_arrays(self.data, max_length))

    def _finetune_arrays(self, max_length, rows):
        return self._cached(("finetune", max_length, rows),
                            lambda: inputs_lib.finetune_arrays(self.data, max_length, rows))

    def _eval_arrays(self, split, max_length):
        return self._cached(("eval", split, max_length),
                            lambda: inputs_lib.eval_arrays(self.data, split, max_length))

    def check(self, config) -> None:
        if getattr(config, "shuffle_buffer", 0):
            raise DataError(self.name, "streaming input (shuffle_buffer > 0) reads a prepared "
                                       "directory (`s3rec-tf prepare` output) as --data")

    def pretrain_samples(self, max_length: int, prefix_sampling: str = PREFIX_SAMPLING[0]) -> int:
        return self._pretrain_arrays(max_length).samples_per_epoch(prefix_sampling)

    def pretrain_dataset(self, max_length, batch_size, config, first_epoch=0):
        return inputs_lib.pretrain_dataset(
            self._pretrain_arrays(max_length), batch_size, config.mask_p, config.seed,
            first_epoch, config.epochs, trim=config.trim_padding,
            prefix_sampling=config.prefix_sampling)

    def finetune_rows(self, max_length: int, rows: str) -> int:
        return len(self._finetune_arrays(max_length, rows).input_ids)

    def target_counts(self, max_length: int, rows: str) -> np.ndarray:
        return inputs_lib.target_counts(self._finetune_arrays(max_length, rows))

    def finetune_dataset(self, max_length, batch_size, config, first_epoch=0, sampling=None):
        return inputs_lib.finetune_dataset(
            self._finetune_arrays(max_length, config.training_rows), batch_size, config.seed,
            first_epoch, config.epochs, trim=config.trim_padding, **(sampling or {}))

    def eval_chunks(self, split, max_length, chunk=1024):
        arrays = self._eval_arrays(split, max_length)
        for lo in range(0, len(arrays.answers), chunk):
            hi = lo + chunk
            yield EvalArrays(arrays.input_ids[lo:hi], arrays.answers[lo:hi],
                             arrays.history[lo:hi],
                             None if arrays.negatives is None else arrays.negatives[lo:hi])

    def ranking_dataset(self, split, protocol, max_length, batch_size):
        return ranking_dataset(self._eval_arrays(split, max_length), protocol, batch_size)


class StreamedSource(DataSource):
    """The users of a prepared directory read as a stream (a `StreamedData`).

    Training shuffles through the config's `shuffle_buffer` (0: file order;
    `s3rec_tf.data.streaming`). Streaming reads one fine-tuning row per user
    and has no target counts: `training_rows` `prefixes` and the `sampled-ce`
    loss need the users in memory.
    """

    def __init__(self, data: StreamedData):
        super().__init__(data)
        self.prepared_dir = data.prepared_dir
        self._samples = {}  # (max_length, prefix_sampling) -> samples per epoch

    def check(self, config) -> None:
        rows = getattr(config, "training_rows", "sequences")
        if rows != "sequences":
            raise DataError(self.name, f"training_rows {rows!r} needs the users in memory "
                                       f"(shuffle_buffer 0, a dataset read whole): streaming "
                                       f"reads one row per user")
        if getattr(config, "loss", None) == "sampled-ce":
            raise DataError(self.name, "the sampled-ce loss needs the users in memory "
                                       "(shuffle_buffer 0, a dataset read whole): its proposal "
                                       "counts every training target")

    def pretrain_samples(self, max_length: int, prefix_sampling: str = PREFIX_SAMPLING[0]) -> int:
        key = (max_length, prefix_sampling)
        if key not in self._samples:  # one pass over the files: counted once
            self._samples[key] = streaming.count_samples(self.prepared_dir, max_length,
                                                         prefix_sampling)
        return self._samples[key]

    def pretrain_dataset(self, max_length, batch_size, config, first_epoch=0):
        return streaming.pretrain_stream(
            self.prepared_dir, self.num_items, max_length, batch_size, config.mask_p,
            config.seed, first_epoch, config.epochs, config.shuffle_buffer,
            config.segment_negatives, config.trim_padding,
            prefix_sampling=config.prefix_sampling, num_users=self.num_users)

    def finetune_rows(self, max_length: int, rows: str) -> int:
        return self.num_users

    def target_counts(self, max_length: int, rows: str) -> np.ndarray:
        raise DataError(self.name, "target counts need the users in memory")

    def finetune_dataset(self, max_length, batch_size, config, first_epoch=0, sampling=None):
        sampling = dict(sampling or {})
        negatives = bool(sampling.pop("negatives", False))
        if sampling.get("sampled_negatives"):
            raise DataError(self.name, "sampled negatives need the users in memory")
        return streaming.finetune_stream(
            self.prepared_dir, self.num_items, max_length, batch_size, config.seed,
            first_epoch, config.epochs, negatives, config.shuffle_buffer, config.trim_padding)

    def eval_chunks(self, split, max_length, chunk=1024):
        return streaming.eval_chunks(self.prepared_dir, split, max_length, chunk)

    def ranking_dataset(self, split, protocol, max_length, batch_size):
        return inputs_lib.with_cardinality(  # known: Keras's `fit` validates to its end
            streaming.ranking_stream(self.prepared_dir, split, protocol, max_length, batch_size),
            inputs_lib.steps_per_epoch(self.num_users, batch_size))


def data_source(data) -> DataSource:
    """`data` as a `DataSource`: a `StreamedData` streamed, any other `SequenceData`
    in memory; a `DataSource` as it is."""
    if isinstance(data, DataSource):
        return data
    if isinstance(data, StreamedData):
        return StreamedSource(data)
    return InMemorySource(data)
