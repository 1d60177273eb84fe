"""The pretraining run (see `s3rec_tf.training`)."""

from __future__ import annotations

import dataclasses
import json
import os
import time

from s3rec_tf import artifacts
from s3rec_tf.config import EncoderConfig, PretrainConfig
from s3rec_tf.data.reader import SequenceData, write_generated_negatives
from s3rec_tf.data.source import DataSource, data_source
from s3rec_tf.monitoring import epoch_line, fit_verbosity
from s3rec_tf.training import distribute
from s3rec_tf.training.jobs import pretraining_job, without_attribute_tasks
from s3rec_tf.training.resume import _Resume
from s3rec_tf.training.runs import _EpochCallback, _log, save_run_config


def run_pretraining(data: SequenceData | DataSource, output_dir: str,
                    encoder_config: EncoderConfig | None = None,
                    config: PretrainConfig | None = None, verbose: int = 1,
                    tensorboard_dir: str | None = None) -> dict:
    """Pretrains S3-Rec on `data` and saves the pretrained model in `output_dir`.

    Rerunning with the same arguments resumes from the last completed epoch.
    The resolved hyperparameters are saved as `<output>/config.json`.
    Data without attributes (an attribute file `{}`) pretrains with AAP and
    MAP switched off: their weights are set to 0, said on stderr and
    recorded in `config.json`.
    `config.strategy` spreads the run over devices or workers
    (`s3rec_tf.training.distribute`); only the chief writes `output_dir`.

    Args:
        data: the users in memory (`SequenceData`) or streamed from a
            prepared directory (`StreamedData`, with `config.shuffle_buffer`),
            or a `DataSource` of either (`s3rec_tf.data.source`).
        verbose: int. 0: silent; otherwise Keras's progress bar in a
            terminal and one line per epoch elsewhere.
        tensorboard_dir: str | None. Write TensorBoard scalars here: the four
            losses, their weighted sum (`loss`) and the learning rate.

    Returns:
        A summary dict (epochs, final losses, wall time, paths).
    """
    encoder_config = encoder_config or EncoderConfig()
    source = data_source(data)
    config = without_attribute_tasks(source.data, config or PretrainConfig(), verbose)
    source.check(config)
    dist = distribute.distribution(config.strategy)
    with distribute.write_dir(dist, output_dir) as write_to:
        return _pretrain(source, output_dir, write_to, dist, encoder_config, config, verbose,
                         tensorboard_dir if dist.is_chief else None)


def _pretrain(source, output_dir, write_to, dist, encoder_config, config, verbose,
              tensorboard_dir):
    """`run_pretraining`, resuming from `output_dir` and writing to `write_to`."""
    job = pretraining_job(config, source, encoder_config, dist=dist)
    data, model = source.data, job.model
    vocabulary = artifacts.vocabulary_of(data)
    hyper = {**dataclasses.asdict(encoder_config), **dataclasses.asdict(config)}
    signature = {"vocabulary": vocabulary,
                 **{k: v for k, v in hyper.items()
                    if k not in ("epochs", "save_every", "strategy")}, **dist.signature()}
    resume = _Resume(write_to, model, signature, {"epoch": 0}, read_from=output_dir,
                     configs=(EncoderConfig, PretrainConfig))
    first_epoch = 0
    with dist.scope():
        restored = resume.restore(model)
    if restored:
        first_epoch = int(resume.value("epoch"))
        _log(verbose, f"Resuming pretraining from epoch {first_epoch} ({resume.read_dir})")
    num_samples, steps = job.examples_per_epoch, job.steps_per_epoch
    _log(verbose, f"Pretraining on {data.name}: {data.num_users} users, {data.num_items} items, "
                  f"{data.num_attributes} attributes, {num_samples} samples/epoch, "
                  f"{steps} steps/epoch, epochs {first_epoch + 1}..{config.epochs}"
                  f"{dist.describe(config.batch_size)}")
    history = {}
    history_path = os.path.join(write_to, "history.jsonl")
    start = time.time()
    lines = verbose and not fit_verbosity(verbose)  # no progress bar: one line per epoch
    epoch_start = [start]

    def on_epoch_end(epoch, logs):
        history.update({k: float(v) for k, v in logs.items()})
        now = time.time()
        _log(lines, epoch_line(epoch + 1, config.epochs, history, now - epoch_start[0]))
        epoch_start[0] = now
        os.makedirs(write_to, exist_ok=True)
        with open(history_path, "a") as f:  # per-epoch losses, for the plots
            f.write(json.dumps({"epoch": epoch + 1, **history,
                                "wall_time_s": round(time.time() - start, 2)}) + "\n")
        resume.save(epoch=epoch + 1)
        if config.save_every and (epoch + 1) % config.save_every == 0:
            artifacts.save_model(os.path.join(write_to, f"epochs-{epoch + 1}"), model,
                                 "pretrained", vocabulary, hyper, {"epochs_done": epoch + 1},
                                 replace=True)  # the run's own snapshot

    if first_epoch < config.epochs:
        distribute.fit(model, job.train_dataset(first_epoch), dist, epochs=config.epochs,
                       initial_epoch=first_epoch, steps_per_epoch=steps,
                       verbose=fit_verbosity(verbose),
                       callbacks=job.callbacks(_EpochCallback(on_epoch_end),
                                               progress_bar=fit_verbosity(verbose),
                                               tensorboard_dir=tensorboard_dir))
    wall = time.time() - start
    summary = {"epochs": config.epochs, "resumed_from_epoch": first_epoch,
               "final_losses": history, "wall_time_s": round(wall, 2),
               "samples_per_epoch": num_samples,
               "seeds": {"init_dropout_masks_segments_negatives": config.seed}}
    # into the output directory itself, beside _resume/ and the snapshots
    artifacts.save_model(write_to, model, "pretrained", vocabulary, hyper,
                         {"epochs_done": config.epochs, "summary": summary}, merge=True)
    write_generated_negatives(data, write_to)
    save_run_config(write_to, encoder_config, config)
    _log(verbose, f"Pretraining done in {wall:.1f}s: " +
         ", ".join(f"{k}={v:.4f}" for k, v in history.items()) + f" -> {output_dir}")
    return summary
