"""The fine-tuning run (see `s3rec_tf.training`)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time

import keras
import numpy as np

from s3rec_tf import artifacts
from s3rec_tf.config import EncoderConfig, FinetuneConfig
from s3rec_tf.data.reader import SequenceData, write_generated_negatives
from s3rec_tf.data.source import DataSource, data_source
from s3rec_tf.evaluation import RankingEvaluator
from s3rec_tf.io import write_atomic_dir, write_json_atomic
from s3rec_tf.monitoring import fit_verbosity
from s3rec_tf.training import distribute
from s3rec_tf.training.evaluate import evaluate_model
from s3rec_tf.training.jobs import finetuning_job
from s3rec_tf.training.resume import _Resume
from s3rec_tf.training.runs import _EpochCallback, _log, save_run_config


def run_finetuning(data: SequenceData | DataSource, output_dir: str, pretrained: str | None,
                   encoder_config: EncoderConfig | None = None,
                   config: FinetuneConfig | None = None, verbose: int = 1,
                   tensorboard_dir: str | None = None) -> dict:
    """Fine-tunes a next-item model, keeping the best epoch by validation metric.

    The resolved hyperparameters are saved as `<output>/config.json`.
    `config.strategy` spreads the run over devices or workers
    (`s3rec_tf.training.distribute`); only the chief writes `output_dir`,
    evaluates the best model on the test split and returns the summary (the
    other workers return `{"chief": False, "best_epoch": ...}`).

    The epochs are Keras's `fit`. With one worker, validation runs in `fit`
    too: `validation_data` is the valid split's ranking batches
    (`DataSource.ranking_dataset`) and the model is compiled with
    `ranking_metrics(config.valid_protocol)`; multi-worker runs rank the
    valid split's chunks with the `RankingEvaluator` after each epoch. Both
    give the same numbers. The epoch callback adds the resume checkpoint,
    the best model, `history.jsonl`, learning-rate decay and early stopping.

    Args:
        data: the users in memory (`SequenceData`) or streamed from a
            prepared directory (`StreamedData`, with `config.shuffle_buffer`),
            or a `DataSource` of either (`s3rec_tf.data.source`).
        pretrained: a pretrained model directory, or None for no pretraining
            (SASRec). A path that does not exist is an error.
        verbose: int. 0: silent; otherwise Keras's progress bar in a
            terminal and one line per epoch elsewhere.
        tensorboard_dir: str | None. Write TensorBoard scalars here: the
            training loss, every validation metric (`valid_<protocol>/<metric>`)
            and the learning rate, per epoch.

    Returns:
        A summary with the best epoch, validation history and test metrics
        (full ranking and sampled), also written to `<output>/metrics.json`.
    """
    encoder_config = encoder_config or EncoderConfig()
    config = config or FinetuneConfig()
    source = data_source(data)
    source.check(config)
    dist = distribute.distribution(config.strategy)
    with distribute.write_dir(dist, output_dir) as write_to:
        return _finetune(source, output_dir, write_to, dist, pretrained, encoder_config, config,
                         verbose, tensorboard_dir if dist.is_chief else None)


def _finetune(source, output_dir, write_to, dist, pretrained, encoder_config, config, verbose,
              tensorboard_dir):
    """`run_finetuning`, resuming from `output_dir` and writing to `write_to`."""
    job = finetuning_job(config, source, encoder_config, pretrained=pretrained, dist=dist)
    data, max_length, model = source.data, encoder_config.max_length, job.model
    keras_validation = job.validates_in_fit  # else several workers: the evaluator
    vocabulary = artifacts.vocabulary_of(data)
    hyper = {**dataclasses.asdict(encoder_config), **dataclasses.asdict(config),
             "pretrained": os.path.abspath(pretrained) if pretrained else None}
    signature = {"vocabulary": vocabulary,
                 **{k: v for k, v in hyper.items()
                    if k not in ("epochs", "patience", "strategy")}, **dist.signature()}
    resume = _Resume(write_to, model, signature,
                     {"epoch": 0, "best_epoch": -1, "best_score": -1.0, "wait": 0},
                     read_from=output_dir, configs=(EncoderConfig, FinetuneConfig))
    first_epoch = 0
    best_dir = os.path.join(write_to, "best")
    # the best model so far lives with the checkpoint until the run completes,
    # so an interrupted or crashed run leaves nothing that reads as its output
    running_best = os.path.join(resume.dir, "best")
    with dist.scope():
        restored = resume.restore(model)
    if restored:
        first_epoch = int(resume.value("epoch"))
        _log(verbose, f"Resuming fine-tuning from epoch {first_epoch} ({resume.read_dir})")
        if not os.path.exists(running_best) and os.path.exists(best_dir):
            running_best = best_dir  # a checkpoint from before best/ moved under _resume
    best = {"epoch": int(resume.value("best_epoch")), "score": resume.value("best_score"),
            "wait": int(resume.value("wait"))}
    evaluator = RankingEvaluator(model, history_rule=config.history_rule)
    metric = config.valid_metric
    num_rows, steps = job.examples_per_epoch, job.steps_per_epoch
    _log(verbose, f"Fine-tuning on {data.name} ({'from ' + pretrained if pretrained else 'no pretraining'}, "
                  f"loss {config.loss}): {num_rows} {config.training_rows}, {steps} steps/epoch, "
                  f"up to {config.epochs} epochs, early stopping on valid {config.valid_protocol} "
                  f"{metric} (patience {config.patience}){dist.describe(config.batch_size)}")
    history_path = os.path.join(write_to, "history.jsonl")
    start = time.time()

    def on_epoch_end(epoch, logs):
        if keras_validation:  # Keras's `val_<metric>`, renamed below
            scores = {name: float(logs.pop(f"val_{name}")) for name in ranking_names}
        else:
            scores = evaluator.evaluate(source.eval_chunks("valid", max_length,
                                                           evaluator.batch_size),
                                        config.valid_protocol)
        logs.update({f"valid_{config.valid_protocol}/{k}": v for k, v in scores.items()})
        improved = scores[metric] > best["score"]
        if improved:
            best.update(epoch=epoch, score=scores[metric], wait=0)
            artifacts.save_model(running_best, model, "finetuned", vocabulary, hyper,
                                 {"best_epoch": epoch + 1, "valid": scores}, replace=True)
        else:
            best["wait"] += 1
        # this epoch's (a distributed variable under tf.distribute)
        learning_rate = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
        logs["learning_rate"] = learning_rate  # TensorBoard's, before any decay below
        decay = (not improved and config.lr_decay < 1
                 and best["wait"] % config.lr_decay_patience == 0)
        if decay:  # for the next epoch; the optimizer's variable is in the checkpoint
            model.optimizer.learning_rate.assign(learning_rate * config.lr_decay)
        with open(history_path, "a") as f:
            f.write(json.dumps({"epoch": epoch + 1, "loss": float(logs.get("loss", np.nan)),
                                "learning_rate": learning_rate,
                                **{f"valid_{config.valid_protocol}/{k}": v
                                   for k, v in scores.items()},
                                "wall_time_s": round(time.time() - start, 2)}) + "\n")
        _log(verbose, f"epoch {epoch + 1}/{config.epochs}: loss="
                      f"{float(logs.get('loss', np.nan)):.4f} valid " +
             " ".join(f"{k}={v:.4f}" for k, v in scores.items()) +
             (" *best*" if improved else f" (no gain {best['wait']}/{config.patience})") +
             (f"; learning rate -> {learning_rate * config.lr_decay:.3g}" if decay else ""))
        resume.save(epoch=epoch + 1, best_epoch=best["epoch"], best_score=best["score"],
                    wait=best["wait"])
        if best["wait"] >= config.patience:
            model.stop_training = True

    ranking_names = [m.name for m in model.metrics if m is not model.loss_tracker]
    if first_epoch < config.epochs and best["wait"] < config.patience:
        distribute.fit(model, job.train_dataset(first_epoch), dist, epochs=config.epochs,
                       initial_epoch=first_epoch, steps_per_epoch=steps,
                       verbose=fit_verbosity(verbose),
                       validation_data=job.validation_dataset(),
                       callbacks=job.callbacks(_EpochCallback(on_epoch_end),
                                               progress_bar=fit_verbosity(verbose),
                                               tensorboard_dir=tensorboard_dir))
    train_time = time.time() - start
    if not dist.is_chief:  # the chief tests the best model and writes the outputs
        return {"chief": False, "best_epoch": best["epoch"] + 1}
    best_model, _ = artifacts.load_next_item_model(running_best)
    results = evaluate_model(best_model, source, max_length=max_length,
                             history_rule=config.history_rule)
    summary = {"dataset": data.name, "best_epoch": best["epoch"] + 1,
               "valid_metric": f"{config.valid_protocol}/{metric}",
               "train_wall_time_s": round(train_time, 2), "metrics": results,
               "negatives": data.sample_source, "seed": config.seed,
               "pretrained": hyper["pretrained"], "loss": config.loss,
               "history_rule": config.history_rule}
    write_atomic_dir(best_dir, lambda tmp: shutil.copytree(running_best, tmp, dirs_exist_ok=True),
                     replace=True)  # the run's own best model, from an earlier completion
    write_generated_negatives(data, write_to)
    save_run_config(write_to, encoder_config, config)
    write_json_atomic(os.path.join(write_to, "metrics.json"), summary)
    _log(verbose, f"Fine-tuning done in {train_time:.1f}s; best epoch {best['epoch'] + 1}; "
                  f"model -> {best_dir}")
    return summary
