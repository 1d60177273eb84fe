"""Training over several devices and workers: `--strategy none|mirrored|multi-worker`.

- `none`: TensorFlow's default strategy (one device) and Keras `fit`.
- `mirrored`: `tf.distribute.MirroredStrategy` over every local GPU, or every
  logical CPU device when there is no GPU, and Keras `fit`.
- `multi-worker`: `tf.distribute.MultiWorkerMirroredStrategy` over the
  workers of `TF_CONFIG`. Keras 3's `fit` does not run under it
  (keras-team/keras#20585), so `fit` runs the model's own `train_step` in a
  custom loop (`strategy.run` in a `tf.function`, `strategy.reduce`).

Batches. `batch_size` is per worker: every worker builds the same seeded
input pipeline with the global batch, `batch_size x workers` (x 1 for `none`
and `mirrored`), and the strategy splits each global batch evenly over all
replicas. Gradients are summed over the replicas (Keras's optimizer under
`tf.distribute`): the pretraining loss is a sum over the batch, as in the
original, so the replicas' sum is the global batch's; the next-item loss is a
mean, which `NextItemModel.train_step` divides by `num_replicas_in_sync`.

Writing. Only the chief (`chief`, or `worker` 0 when there is no chief)
writes the run's files. The other workers run the same code into a private
temporary directory (`write_dir`; every save reads synchronized variables
collectively, so all workers must take part) that is deleted at the end. All
workers resume from the chief's `<output>/_resume/`, so `--output` must be
storage every worker sees (a shared disk, a `gs://` bucket).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile

import keras
import tensorflow as tf

from s3rec_tf.config import STRATEGIES
from s3rec_tf.errors import ConfigError

__all__ = ["STRATEGIES", "Distribution", "distribution", "cluster_from_tf_config", "fit",
           "write_dir", "barrier"]


@dataclasses.dataclass(frozen=True)
class Distribution:
    """A run's strategy and its place in the cluster.

    Attributes:
        name: one of `STRATEGIES`.
        strategy: the `tf.distribute.Strategy`.
        num_workers: int. Processes that train together (1 unless multi-worker).
        is_chief: bool. This process writes the run's files.
    """

    name: str
    strategy: tf.distribute.Strategy
    num_workers: int = 1
    is_chief: bool = True

    @property
    def replicas(self) -> int:
        """Replicas over all workers (`num_replicas_in_sync`)."""
        return self.strategy.num_replicas_in_sync

    def global_batch(self, batch_size: int) -> int:
        """The global batch of a per-worker `batch_size`."""
        return batch_size * self.num_workers

    def signature(self) -> dict:
        """What a resumed run must share with its checkpoint: the number of workers
        (it sets the global batch). Nothing for one worker, so that `none` and
        `mirrored` resume each other's checkpoints."""
        return {"workers": self.num_workers} if self.num_workers > 1 else {}

    def describe(self, batch_size: int) -> str:
        """`""`, or `; multi-worker: 2 workers, 2 replicas, global batch 64 (32 per worker)`."""
        if self.name == "none":
            return ""
        return (f"; {self.name}: {self.num_workers} worker(s), {self.replicas} replica(s), "
                f"global batch {self.global_batch(batch_size)} ({batch_size} per worker)"
                + ("" if self.is_chief else ", not the chief: writes nothing"))

    def scope(self):
        """Where models and optimizers are built."""
        return self.strategy.scope()


_CACHE = {}


def cluster_from_tf_config(text: str | None) -> dict:
    """`{"workers": n, "is_chief": bool}` of a `TF_CONFIG` value.

    Workers are the cluster's `chief` and `worker` tasks; the chief is the
    `chief` task, or `worker` 0 when there is none (TensorFlow's rule).

    Raises:
        ConfigError: `text` is empty or not a cluster with this process's task.
    """
    if not text:
        raise ConfigError("strategy", "multi-worker", "needs the TF_CONFIG environment "
                          "variable (the cluster's workers and this process's task; see "
                          "the README, 'Several devices and workers')")
    try:
        tf_config = json.loads(text)
        cluster, task = tf_config["cluster"], tf_config["task"]
        workers = len(cluster.get("chief", [])) + len(cluster.get("worker", []))
        task_type, task_index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ConfigError("strategy", "multi-worker", f"TF_CONFIG is not a cluster and task "
                          f"({type(e).__name__}: {e})") from None
    if task_type not in ("chief", "worker") or workers < 1:
        raise ConfigError("strategy", "multi-worker", f"TF_CONFIG task {task_type!r} is not "
                          f"a chief or worker of a cluster with workers")
    return {"workers": workers, "is_chief": task_type == "chief" or (
        task_type == "worker" and task_index == 0 and not cluster.get("chief"))}


def distribution(name: str) -> Distribution:
    """The process's `Distribution` for strategy `name` (created once, then reused).

    `multi-worker` must be created before TensorFlow runs its first op (it
    configures collective ops): the command line and the Trainer's `run_fn`
    call this before reading any data.

    Raises:
        ConfigError: an unknown name, or `multi-worker` without a usable `TF_CONFIG`.
    """
    if name not in STRATEGIES:
        raise ConfigError("strategy", name, f"must be one of {', '.join(map(repr, STRATEGIES))}")
    if name in _CACHE:
        return _CACHE[name]
    if name == "none":
        dist = Distribution(name, tf.distribute.get_strategy())
    elif name == "mirrored":
        devices = ([d.name for d in tf.config.list_logical_devices("GPU")]
                   or [d.name for d in tf.config.list_logical_devices("CPU")])
        dist = Distribution(name, tf.distribute.MirroredStrategy(devices))
    else:
        cluster = cluster_from_tf_config(os.environ.get("TF_CONFIG"))
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        dist = Distribution(name, strategy, cluster["workers"], cluster["is_chief"])
    _CACHE[name] = dist
    return dist


@contextlib.contextmanager
def write_dir(dist: Distribution, output_dir: str):
    """`output_dir` on the chief; elsewhere a temporary directory, removed at the end.

    On leaving without an error, every worker waits for the others
    (`barrier`): when a run returns on any worker, the chief's files are
    written, and the next run (fine-tuning from the pretrained model) can read
    them.
    """
    if dist.is_chief:
        yield output_dir
    else:
        tmp = tempfile.mkdtemp(prefix="s3rec-worker-")
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    barrier(dist)


def barrier(dist: Distribution) -> None:
    """Returns once every worker has called it (a collective sum); at once for one worker."""
    if dist.num_workers > 1:
        strategy = dist.strategy
        strategy.reduce(tf.distribute.ReduceOp.SUM,
                        strategy.run(tf.function(lambda: tf.constant(1.0))), axis=None)


def _shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Every worker computes the same stream and keeps its part of each global batch."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def fit(model, dataset: tf.data.Dataset, dist: Distribution, *, epochs: int,
        initial_epoch: int, steps_per_epoch: int, callbacks: list, verbose: int = 0,
        validation_data=None) -> None:
    """Trains `model` (built in `dist.scope()`) on `dataset` of global batches.

    `none` and `mirrored` call Keras `fit` (with `validation_data`, if any);
    `multi-worker` runs the same `model.train_step` per replica in a loop
    that calls the same callbacks (`on_epoch_end` logs, `model.stop_training`)
    and takes no `validation_data`.
    """
    if dist.name != "multi-worker":
        model.fit(dataset, epochs=epochs, initial_epoch=initial_epoch,
                  steps_per_epoch=steps_per_epoch, verbose=verbose, shuffle=False,
                  callbacks=callbacks, validation_data=validation_data)
        return
    if validation_data is not None:
        raise ValueError("`validation_data` is not supported with the multi-worker strategy")
    strategy = dist.strategy
    iterator = iter(strategy.experimental_distribute_dataset(_shard_by_data(dataset)))

    @tf.function
    def train_step(iterator):
        logs = strategy.run(model.train_step, args=(next(iterator),))
        return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                for k, v in logs.items()}

    callback_list = keras.callbacks.CallbackList(callbacks, model=model, verbose=verbose,
                                                 epochs=epochs, steps=steps_per_epoch)
    model.stop_training = False
    logs = {}
    callback_list.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        callback_list.on_epoch_begin(epoch)
        for step in range(steps_per_epoch):
            callback_list.on_train_batch_begin(step)
            logs = train_step(iterator)
            callback_list.on_train_batch_end(step, logs)
        logs = {k: float(v) for k, v in logs.items()}
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end(logs)
