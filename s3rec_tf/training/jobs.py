"""The training job: `(config, data) -> model, datasets, optimizer, callbacks`.

One builder for everything that trains a model: the two runs
(`run_pretraining` and `run_finetuning`, so the command line, the pipeline's
Trainer `run_fn` and its Tuner), the user's `s3rec-tf bench` and the
benchmarks. Each gets the same model, optimizer and batches for the same
config and data:

>>> job = pretraining_job(PretrainConfig(epochs=2), data)
>>> job.model.fit(job.train_dataset(), epochs=2, steps_per_epoch=job.steps_per_epoch,
...               callbacks=job.callbacks())

What a run adds around a job (resuming, the best model, early stopping, the
files it writes) stays in the run.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Callable

import keras
import tensorflow as tf

from s3rec_tf.config import EncoderConfig, FinetuneConfig, PretrainConfig
from s3rec_tf.data import inputs as inputs_lib
from s3rec_tf.data.reader import SequenceData
from s3rec_tf.data.source import DataSource, data_source
from s3rec_tf.evaluation import eval_batch_size
from s3rec_tf.models import NextItemModel, S3RecPretrainer
from s3rec_tf.models.ranking_metrics import ranking_metrics
from s3rec_tf.monitoring import TensorBoardLogger
from s3rec_tf.training import distribute
from s3rec_tf.training.encoders import build_encoder, load_pretrained_encoder
from s3rec_tf.training.optim import learning_rate_schedule, make_optimizer


@dataclasses.dataclass
class Job:
    """A compiled model and the batches that train it.

    Attributes:
        config: the job's `PretrainConfig` or `FinetuneConfig`, as applied
            (pretraining on data without attributes has AAP and MAP off).
        encoder_config: the encoder's `EncoderConfig`.
        source: the data, as a `DataSource` (in memory or streamed).
        model: the compiled model, its optimizer built (`job.optimizer`).
        distribution: where it trains (`s3rec_tf.training.distribute`).
        batch_size: the global batch size (the config's, times the replicas).
        examples_per_epoch: samples (pretraining) or rows (fine-tuning) per epoch.
        steps_per_epoch: batches per epoch.
    """

    config: PretrainConfig | FinetuneConfig
    encoder_config: EncoderConfig
    source: DataSource
    model: keras.Model
    distribution: distribute.Distribution
    batch_size: int
    examples_per_epoch: int
    steps_per_epoch: int
    _train: Callable = dataclasses.field(repr=False, default=None)
    _validation: Callable | None = dataclasses.field(repr=False, default=None)

    @property
    def optimizer(self) -> keras.optimizers.Optimizer:
        """The model's optimizer (built, so a checkpoint can restore its slots)."""
        return self.model.optimizer

    def train_dataset(self, first_epoch: int = 0, epochs: int | None = None) -> tf.data.Dataset:
        """The training batches of epochs `first_epoch + 1 .. epochs`.

        Args:
            first_epoch: epochs already done (a resumed run draws the later
                epochs' masks and shuffles, as an uninterrupted one).
            epochs: the last epoch; defaults to `config.epochs`.
        """
        config = (self.config if epochs is None
                  else dataclasses.replace(self.config, epochs=epochs))
        return self._train(config, first_epoch)

    @property
    def validates_in_fit(self) -> bool:
        """Whether `fit` validates (`validation_dataset()` is not None)."""
        return self._validation is not None

    def validation_dataset(self) -> tf.data.Dataset | None:
        """The valid split's ranking batches for `fit(validation_data=...)`, or None
        where the job validates outside `fit` (pretraining; several workers)."""
        return self._validation() if self._validation else None

    def callbacks(self, *extra: keras.callbacks.Callback, progress_bar: bool = False,
                  tensorboard_dir: str | None = None) -> list:
        """The job's `fit` callbacks around a caller's `extra` ones.

        Args:
            extra: callbacks of the caller (a run's epoch callback), in order.
            progress_bar: Keras's progress bar, first, so that it ends its line
                before the epoch's own output.
            tensorboard_dir: TensorBoard scalars, after `extra` (which may add
                validation metrics to the logs).
        """
        callbacks = [keras.callbacks.ProgbarLogger()] if progress_bar else []
        callbacks.extend(extra)
        if tensorboard_dir:
            callbacks.append(TensorBoardLogger(tensorboard_dir))
        return callbacks


def without_attribute_tasks(data: SequenceData, config: PretrainConfig,
                            verbose: int = 1) -> PretrainConfig:
    """`config` with AAP and MAP off (weights 0) when `data` has no attributes.

    AAP and MAP predict item attributes: with none they have nothing to
    learn. Said on stderr when `verbose`.
    """
    if data.num_attributes or not (config.aap_weight or config.map_weight):
        return config
    if verbose:
        print(f"Pretraining: {data.name} has no item attributes: AAP and MAP are switched "
              f"off (aap_weight=0, map_weight=0, recorded in config.json)", file=sys.stderr,
              flush=True)
    return dataclasses.replace(config, aap_weight=0.0, map_weight=0.0)


def next_item_loss_options(config: FinetuneConfig, arrays) -> dict:
    """`NextItemModel` keyword arguments of `config`'s loss (`arrays`: the training arrays)."""
    return _loss_options(config, lambda: inputs_lib.target_counts(arrays))


def finetune_sampling(config: FinetuneConfig, arrays) -> dict:
    """`finetune_dataset` keyword arguments for the negatives `config`'s loss needs."""
    return _sampling(config, lambda: inputs_lib.target_counts(arrays))


def _loss_options(config: FinetuneConfig, counts) -> dict:
    """`next_item_loss_options`, `counts()` giving the target counts where the loss needs them."""
    options = {"loss": config.loss}
    if config.loss == "sampled-ce":
        options.update(sampled_negatives=config.sampled_negatives, proposal=config.proposal,
                       in_batch_negatives=config.in_batch_negatives, item_counts=counts())
    return options


def _sampling(config: FinetuneConfig, counts) -> dict:
    """`finetune_sampling`, `counts()` giving the target counts where the loss needs them."""
    if config.loss == "sampled-ce" and config.sampled_negatives:
        return {"negatives": False, "sampled_negatives": config.sampled_negatives,
                "proposal": inputs_lib.proposal_weights(config.proposal, counts())}
    return {"negatives": config.loss == "bce"}


def _distribution(config, dist):
    return dist if dist is not None else distribute.distribution(config.strategy)


def pretraining_job(config: PretrainConfig, data: SequenceData | DataSource,
                    encoder_config: EncoderConfig | None = None, *,
                    dist: distribute.Distribution | None = None, verbose: int = 0) -> Job:
    """The pretraining job of `config` on `data`: an `S3RecPretrainer` and its batches.

    Seeds Keras with `config.seed` before building the model. The learning
    rate follows `config.lr_schedule` over `config.epochs` epochs.

    Args:
        config: the pretraining config. On data without attributes AAP and
            MAP are switched off (`without_attribute_tasks`, said on stderr
            when `verbose`).
        data: the users (`SequenceData`, `StreamedData` or a `DataSource`).
        encoder_config: the encoder; defaults to the paper's.
        dist: the distribution; defaults to `config.strategy`'s.

    Raises:
        DataError: `config` asks for what the data cannot give (streaming
            options on data in memory, for example).
    """
    encoder_config = encoder_config or EncoderConfig()
    source = data_source(data)
    config = without_attribute_tasks(source.data, config, verbose)
    source.check(config)
    dist = _distribution(config, dist)
    max_length = encoder_config.max_length
    num_samples = source.pretrain_samples(max_length, config.prefix_sampling)
    batch_size = dist.global_batch(config.batch_size)
    steps = inputs_lib.steps_per_epoch(num_samples, batch_size)
    learning_rate = learning_rate_schedule(config.lr_schedule, config.learning_rate, steps,
                                           config.epochs, config.warmup_epochs)
    keras.utils.set_random_seed(config.seed)
    with dist.scope():
        model = S3RecPretrainer(build_encoder(source.data, encoder_config),
                                source.data.attribute_table(),
                                loss_weights=config.loss_weights,
                                attribute_bce=config.attribute_bce,
                                segment_loss=config.segment_loss, mip_loss=config.mip_loss)
        model.compile(optimizer=make_optimizer(config.optimizer, learning_rate),
                      jit_compile=config.jit_compile)
        model.optimizer.build(model.trainable_variables)
    return Job(config, encoder_config, source, model, dist, batch_size, num_samples, steps,
               lambda cfg, first: source.pretrain_dataset(max_length, batch_size, cfg, first))


def finetuning_job(config: FinetuneConfig, data: SequenceData | DataSource,
                   encoder_config: EncoderConfig | None = None, *,
                   pretrained: str | None = None,
                   dist: distribute.Distribution | None = None) -> Job:
    """The fine-tuning job of `config` on `data`: a `NextItemModel` and its batches.

    Seeds Keras with `config.seed` before building the model. With one
    worker the model is compiled with the ranking metrics of
    `config.valid_protocol` and `validation_dataset()` gives the valid
    split's ranking batches, so Keras's `fit` validates; several workers
    validate outside `fit` (no metrics, no validation dataset).

    Args:
        config: the fine-tuning config.
        data: the users (`SequenceData`, `StreamedData` or a `DataSource`).
        encoder_config: the encoder; defaults to the paper's. With
            `pretrained`, its architecture must be the pretrained model's
            (its dropout rates apply).
        pretrained: a pretrained model directory, or None (no pretraining:
            SASRec).
        dist: the distribution; defaults to `config.strategy`'s.

    Raises:
        ArtifactError: `pretrained` is missing or does not fit.
        DataError: `config` asks for what the data cannot give.
    """
    encoder_config = encoder_config or EncoderConfig()
    source = data_source(data)
    source.check(config)
    dist = _distribution(config, dist)
    max_length = encoder_config.max_length
    keras.utils.set_random_seed(config.seed)

    def counts():  # the training targets' counts, for the sampled-ce loss
        return source.target_counts(max_length, config.training_rows)

    keras_validation = dist.name != "multi-worker"
    with dist.scope():
        encoder = (load_pretrained_encoder(pretrained, source.data, encoder_config)
                   if pretrained else build_encoder(source.data, encoder_config))
        model = NextItemModel(encoder, **_loss_options(config, counts))
        model.compile(optimizer=make_optimizer(config.optimizer, config.learning_rate),
                      jit_compile=config.jit_compile, history_rule=config.history_rule,
                      metrics=ranking_metrics(config.valid_protocol) if keras_validation else None)
        model.optimizer.build(model.trainable_variables)
    batch_size = dist.global_batch(config.batch_size)
    num_rows = source.finetune_rows(max_length, config.training_rows)

    def train(cfg, first):
        return source.finetune_dataset(max_length, batch_size, cfg, first,
                                       _sampling(cfg, counts))

    def validation():
        return source.ranking_dataset("valid", config.valid_protocol, max_length,
                                      eval_batch_size(encoder.item_size))

    return Job(config, encoder_config, source, model, dist, batch_size, num_rows,
               inputs_lib.steps_per_epoch(num_rows, batch_size), train,
               validation if keras_validation else None)
