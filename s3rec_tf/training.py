"""Pretraining and fine-tuning runs: seeded, checkpointed, resumable.

`run_pretraining` and `run_finetuning` are what the CLI and the TFX
components call. Each writes into an output directory:

- `_resume/`: a `tf.train.Checkpoint` of model, optimizer and run state,
  saved every epoch; rerunning the same command resumes from it (after an
  interruption, or with a larger `--epochs` to train further).
- pretraining: the pretrained model directory at `<output>/` (plus
  `<output>/epochs-N/` snapshots every `save_every` epochs, and
  `history.jsonl`: the per-sample losses of each epoch, one JSON line each);
- fine-tuning: the best model by validation metric (`<output>/best/`, kept
  in `_resume/best/` while the run goes on) and `metrics.json`, both written
  when the run completes;
- `config.json`: the run's resolved configuration, written when the run
  completes;
- `<Name>_sample.txt`: the sampled negatives, when they were drawn rather
  than read from the data directory, written when the run completes.

A refused run (bad data, a missing or mismatched pretrained model, a resume
whose data or settings differ) writes nothing: every check runs before the
first file is written.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time

import keras
import numpy as np
import tensorflow as tf

from s3rec_tf import artifacts
from s3rec_tf import config as config_lib
from s3rec_tf.config import EncoderConfig, FinetuneConfig, PretrainConfig
from s3rec_tf.data import inputs as inputs_lib
from s3rec_tf.data import streaming
from s3rec_tf.data.reader import SequenceData, write_generated_negatives
from s3rec_tf.errors import ArtifactError
from s3rec_tf.evaluation import RankingEvaluator
from s3rec_tf.layers import SequenceEncoder
from s3rec_tf.models import NextItemModel, S3RecPretrainer
from s3rec_tf.monitoring import TensorBoardLogger, epoch_line, fit_verbosity

RESUME_DIR = "_resume"


@keras.saving.register_keras_serializable(package="s3rec_tf")
class DenseGradientAdam(keras.optimizers.Adam):
    """Keras Adam that sums the duplicate rows of a sparse gradient first.

    The gradient of an embedding lookup is a `tf.IndexedSlices` with one
    slice per lookup. Keras's Adam squares those slices before adding them
    up, so a row looked up `k` times in a batch gets the second moment
    `sum(g_i^2)` instead of `(sum g_i)^2`, and a step up to `sqrt(k)` times
    the learning rate: the mask id's embedding (hundreds of lookups per
    pretraining batch) moved 20x faster than in the original, whose PyTorch
    gradients are dense. Summing the rows first gives PyTorch's Adam.
    """

    def update_step(self, gradient, variable, learning_rate):
        if isinstance(gradient, tf.IndexedSlices):
            gradient = tf.convert_to_tensor(gradient)
        super().update_step(gradient, variable, learning_rate)


def adam(learning_rate: float):
    """Adam with PyTorch's defaults (betas 0.9/0.999, eps 1e-8) and dense gradients,
    as the original (see `DenseGradientAdam`)."""
    return DenseGradientAdam(learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8)


def _log(verbose, *args):
    if verbose:
        print(*args, flush=True)


class _Resume:
    """Model + optimizer + run state in `<output>/_resume`, guarded by a config check."""

    def __init__(self, output_dir: str, model, signature: dict, state: dict):
        self.dir = os.path.join(output_dir, RESUME_DIR)
        self.signature = signature
        self.state = {k: tf.Variable(v, dtype=tf.float64 if isinstance(v, float) else tf.int64,
                                     trainable=False, name=k) for k, v in state.items()}
        # Dropout seed-generator states are not reachable through the model's
        # tracked attributes: list every variable so resuming is exact.
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer,
                                              variables=list(model.variables), **self.state)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.dir, max_to_keep=2)

    def restore(self, model) -> bool:
        latest = self.manager.latest_checkpoint
        if not latest:
            return False
        sig_path = os.path.join(self.dir, "signature.json")
        try:
            with open(sig_path) as f:
                saved = json.load(f)
        except (OSError, ValueError) as e:
            raise ArtifactError(f"{sig_path}: missing or corrupt ({type(e).__name__}); cannot "
                                f"resume: use a new --output or delete {self.dir}") from None
        if not isinstance(saved, dict):
            raise ArtifactError(f"{sig_path}: corrupt (not a JSON object); cannot resume: use "
                                f"a new --output or delete {self.dir}")
        diffs = [f"{k}: checkpoint {saved.get(k)!r} vs now {v!r}"
                 for k, v in self.signature.items() if saved.get(k) != v]
        if diffs:
            raise ArtifactError(f"{self.dir}: cannot resume, the run differs from the "
                                f"checkpointed one ({'; '.join(diffs)}); use a new --output "
                                f"or delete {self.dir}")
        model.optimizer.build(model.trainable_variables)
        try:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
        except Exception as e:
            raise ArtifactError(f"{latest}: corrupt or incompatible checkpoint ({e})") from None
        return True

    def save(self, **values):
        for k, v in values.items():
            self.state[k].assign(v)
        os.makedirs(self.dir, exist_ok=True)
        artifacts.write_json_atomic(os.path.join(self.dir, "signature.json"), self.signature)
        self.manager.save()

    def value(self, key):
        return self.state[key].numpy().item()


class _EpochCallback(keras.callbacks.Callback):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def on_epoch_end(self, epoch, logs=None):
        self.fn(epoch, logs if logs is not None else {})


def save_run_config(output_dir: str, encoder_config: EncoderConfig, config) -> str:
    """Writes the run's resolved hyperparameters to `<output>/config.json`.

    The file is flat, with the flags' keys, so `--config <output>/config.json`
    repeats the run's recipe.
    """
    path = config_lib.saved_config_path(output_dir)
    os.makedirs(output_dir, exist_ok=True)
    artifacts.write_json_atomic(path, {**config_lib.to_dict(encoder_config),
                                       **config_lib.to_dict(config)})
    return path


def _callbacks(on_epoch_end, tensorboard_dir, progress_bar):
    # the progress bar first, so that it ends its line before the epoch's own output
    callbacks = [keras.callbacks.ProgbarLogger()] if progress_bar else []
    callbacks.append(_EpochCallback(on_epoch_end))
    if tensorboard_dir:  # after the epoch callback, which adds validation metrics to the logs
        callbacks.append(TensorBoardLogger(tensorboard_dir))
    return callbacks


def build_encoder(data: SequenceData, config: EncoderConfig) -> SequenceEncoder:
    return SequenceEncoder(num_items=data.num_items, num_attributes=data.num_attributes,
                           **dataclasses.asdict(config))


def run_pretraining(data: SequenceData, output_dir: str,
                    encoder_config: EncoderConfig | None = None,
                    config: PretrainConfig | None = None, verbose: int = 1,
                    tensorboard_dir: str | None = None) -> dict:
    """Pretrains S3-Rec on `data` and saves the pretrained model in `output_dir`.

    Rerunning with the same arguments resumes from the last completed epoch.
    The resolved hyperparameters are saved as `<output>/config.json`.

    Args:
        verbose: int. 0: silent; otherwise Keras's progress bar in a
            terminal and one line per epoch elsewhere.
        tensorboard_dir: str | None. Write TensorBoard scalars here: the four
            losses, their weighted sum (`loss`) and the learning rate.

    Returns:
        A summary dict (epochs, final losses, wall time, paths).
    """
    encoder_config = encoder_config or EncoderConfig()
    config = config or PretrainConfig()
    keras.utils.set_random_seed(config.seed)
    encoder = build_encoder(data, encoder_config)
    model = S3RecPretrainer(encoder, data.attribute_table(), loss_weights=config.loss_weights,
                            attribute_bce=config.attribute_bce)
    model.compile(optimizer=adam(config.learning_rate), jit_compile=config.jit_compile)
    vocabulary = artifacts.vocabulary_of(data)
    hyper = {**dataclasses.asdict(encoder_config), **dataclasses.asdict(config)}
    signature = {"vocabulary": vocabulary,
                 **{k: v for k, v in hyper.items() if k not in ("epochs", "save_every")}}
    resume = _Resume(output_dir, model, signature, {"epoch": 0})
    first_epoch = 0
    if resume.restore(model):
        first_epoch = int(resume.value("epoch"))
        _log(verbose, f"Resuming pretraining from epoch {first_epoch} ({resume.dir})")
    if config.shuffle_buffer:  # streamed from the prepared TFRecords
        arrays = None
        num_samples = streaming.count_samples(streaming.prepared_dir_of(data),
                                              encoder_config.max_length)
    else:
        arrays = inputs_lib.pretrain_arrays(data, encoder_config.max_length)
        num_samples = arrays.num_samples
    steps = inputs_lib.steps_per_epoch(num_samples, config.batch_size)
    _log(verbose, f"Pretraining on {data.name}: {data.num_users} users, {data.num_items} items, "
                  f"{data.num_attributes} attributes, {num_samples} samples/epoch, "
                  f"{steps} steps/epoch, epochs {first_epoch + 1}..{config.epochs}")
    history = {}
    history_path = os.path.join(output_dir, "history.jsonl")
    start = time.time()
    lines = verbose and not fit_verbosity(verbose)  # no progress bar: one line per epoch
    epoch_start = [start]

    def on_epoch_end(epoch, logs):
        history.update({k: float(v) for k, v in logs.items()})
        now = time.time()
        _log(lines, epoch_line(epoch + 1, config.epochs, history, now - epoch_start[0]))
        epoch_start[0] = now
        os.makedirs(output_dir, exist_ok=True)
        with open(history_path, "a") as f:  # per-epoch losses, for the plots
            f.write(json.dumps({"epoch": epoch + 1, **history,
                                "wall_time_s": round(time.time() - start, 2)}) + "\n")
        resume.save(epoch=epoch + 1)
        if config.save_every and (epoch + 1) % config.save_every == 0:
            artifacts.save_model(os.path.join(output_dir, f"epochs-{epoch + 1}"), model,
                                 "pretrained", vocabulary, hyper, {"epochs_done": epoch + 1})

    if first_epoch < config.epochs:
        dataset = (streaming.pretrain_stream(
            data.prepared_dir, data.num_items, encoder_config.max_length, config.batch_size,
            config.mask_p, config.seed, first_epoch, config.epochs, config.shuffle_buffer,
            config.segment_negatives, config.trim_padding) if arrays is None else
            inputs_lib.pretrain_dataset(
            arrays, config.batch_size, config.mask_p, config.seed, first_epoch, config.epochs,
            trim=config.trim_padding))
        model.fit(dataset, epochs=config.epochs, initial_epoch=first_epoch,
                  steps_per_epoch=steps, verbose=fit_verbosity(verbose), shuffle=False,
                  callbacks=_callbacks(on_epoch_end, tensorboard_dir, fit_verbosity(verbose)))
    wall = time.time() - start
    summary = {"epochs": config.epochs, "resumed_from_epoch": first_epoch,
               "final_losses": history, "wall_time_s": round(wall, 2),
               "samples_per_epoch": num_samples,
               "seeds": {"init_dropout_masks_segments_negatives": config.seed}}
    _save_model_into(output_dir, model, "pretrained", vocabulary, hyper,
                     {"epochs_done": config.epochs, "summary": summary})
    write_generated_negatives(data, output_dir)
    save_run_config(output_dir, encoder_config, config)
    _log(verbose, f"Pretraining done in {wall:.1f}s: " +
         ", ".join(f"{k}={v:.4f}" for k, v in history.items()) + f" -> {output_dir}")
    return summary


def _save_model_into(output_dir, model, kind, vocabulary, hyper, extra):
    """Writes the model files into `output_dir` itself (beside _resume/, snapshots)."""
    staging = os.path.join(output_dir, ".model-staging")
    artifacts.save_model(staging, model, kind, vocabulary, hyper, extra)
    # manifest last: the directory only reads as a model once both files are in place
    os.replace(os.path.join(staging, artifacts.WEIGHTS),
               os.path.join(output_dir, artifacts.WEIGHTS))
    os.replace(os.path.join(staging, artifacts.MANIFEST),
               os.path.join(output_dir, artifacts.MANIFEST))
    shutil.rmtree(staging, ignore_errors=True)


def import_original_weights(weights_path: str, output_dir: str, data: SequenceData | None = None,
                            num_heads: int = 2) -> str:
    """Turns the authors' `.npz` weights into a pretrained model directory."""
    from s3rec_tf import original_weights as ow
    weights = ow.read_npz(weights_path)
    cfg = ow.encoder_config_from_weights(weights, num_heads)
    encoder = SequenceEncoder(**cfg)
    if data is not None:
        artifacts.check_vocabulary({"vocabulary": {"num_items": cfg["num_items"],
                                                   "num_attributes": cfg["num_attributes"]}},
                                   {"num_items": data.num_items,
                                    "num_attributes": data.num_attributes},
                                   f"weights {weights_path}")
        table = data.attribute_table()
        vocabulary = artifacts.vocabulary_of(data)
    else:
        table = np.zeros((encoder.item_size, 1), "int32")
        vocabulary = {"dataset": None, "num_items": cfg["num_items"],
                      "num_attributes": cfg["num_attributes"], "fingerprint": None}
    model = S3RecPretrainer(encoder, table)
    ow.load_into_pretrainer(model, weights)
    artifacts.save_model(output_dir, model, "pretrained", vocabulary, cfg,
                         {"imported_from": os.path.abspath(weights_path)})
    return output_dir


def load_pretrained_encoder(path: str, data: SequenceData,
                            encoder_config: EncoderConfig) -> SequenceEncoder:
    """Loads the encoder of a pretrained model dir, refusing any mismatch."""
    if not os.path.exists(path):
        raise ArtifactError(f"{path}: pretrained model not found (pass --pretrained none to "
                            f"train without pretraining)")
    pretrainer, manifest = artifacts.load_pretrainer(path)
    artifacts.check_vocabulary(manifest, artifacts.vocabulary_of(data), f"pretrained model {path}")
    enc = pretrainer.encoder
    diffs = [f"{k}: pretrained {getattr(enc, k)} vs requested {v}"
             for k, v in dataclasses.asdict(encoder_config).items()
             if k in ("hidden_size", "num_layers", "num_heads", "max_length")
             and getattr(enc, k) != v]
    if diffs:
        raise ArtifactError(f"pretrained model {path} does not match ({'; '.join(diffs)})")
    config = enc.get_config()
    config.update(dropout=encoder_config.dropout,
                  attention_dropout=encoder_config.attention_dropout)
    encoder = SequenceEncoder.from_config(config)
    encoder.build()
    encoder.set_weights(enc.get_weights())
    return encoder


def evaluate_model(model, data: SequenceData, protocols=("full", "sampled"),
                   splits=("valid", "test"), max_length: int | None = None) -> dict:
    """Metrics of `model` on `data` for each split and protocol.

    `max_length` defaults to the model's own maximum length.
    """
    max_length = max_length or model.encoder.max_length
    evaluator = RankingEvaluator(model)
    out = {}
    for split in splits:
        arrays = inputs_lib.eval_arrays(data, split, max_length)
        for protocol in protocols:
            out[f"{split}/{protocol}"] = evaluator.evaluate(arrays, protocol)
    return out


def run_finetuning(data: SequenceData, output_dir: str, pretrained: str | None,
                   encoder_config: EncoderConfig | None = None,
                   config: FinetuneConfig | None = None, verbose: int = 1,
                   tensorboard_dir: str | None = None) -> dict:
    """Fine-tunes a next-item model, keeping the best epoch by validation metric.

    The resolved hyperparameters are saved as `<output>/config.json`.

    Args:
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
    keras.utils.set_random_seed(config.seed)
    if pretrained:
        encoder = load_pretrained_encoder(pretrained, data, encoder_config)
    else:
        encoder = build_encoder(data, encoder_config)
    model = NextItemModel(encoder, loss=config.loss)
    model.compile(optimizer=adam(config.learning_rate), jit_compile=config.jit_compile)
    vocabulary = artifacts.vocabulary_of(data)
    hyper = {**dataclasses.asdict(encoder_config), **dataclasses.asdict(config),
             "pretrained": os.path.abspath(pretrained) if pretrained else None}
    signature = {"vocabulary": vocabulary,
                 **{k: v for k, v in hyper.items() if k not in ("epochs", "patience")}}
    resume = _Resume(output_dir, model, signature,
                     {"epoch": 0, "best_epoch": -1, "best_score": -1.0, "wait": 0})
    first_epoch = 0
    best_dir = os.path.join(output_dir, "best")
    # the best model so far lives with the checkpoint until the run completes,
    # so an interrupted or crashed run leaves nothing that reads as its output
    running_best = os.path.join(resume.dir, "best")
    if resume.restore(model):
        first_epoch = int(resume.value("epoch"))
        _log(verbose, f"Resuming fine-tuning from epoch {first_epoch} ({resume.dir})")
        if not os.path.exists(running_best) and os.path.exists(best_dir):
            running_best = best_dir  # a checkpoint from before best/ moved under _resume
    best = {"epoch": int(resume.value("best_epoch")), "score": resume.value("best_score"),
            "wait": int(resume.value("wait"))}
    if config.shuffle_buffer:  # streamed from the prepared TFRecords
        arrays = None
        evaluator = streaming.StreamEvaluator(model)
        valid = streaming.StreamSplit(streaming.prepared_dir_of(data), "valid",
                                      encoder_config.max_length)
    else:
        arrays = inputs_lib.finetune_arrays(data, encoder_config.max_length)
        valid = inputs_lib.eval_arrays(data, "valid", encoder_config.max_length)
        evaluator = RankingEvaluator(model)
    metric = config.valid_metric
    steps = inputs_lib.steps_per_epoch(data.num_users, config.batch_size)
    _log(verbose, f"Fine-tuning on {data.name} ({'from ' + pretrained if pretrained else 'no pretraining'}, "
                  f"loss {config.loss}): {data.num_users} sequences, {steps} steps/epoch, "
                  f"up to {config.epochs} epochs, early stopping on valid {config.valid_protocol} "
                  f"{metric} (patience {config.patience})")
    history_path = os.path.join(output_dir, "history.jsonl")
    start = time.time()

    def on_epoch_end(epoch, logs):
        scores = evaluator.evaluate(valid, config.valid_protocol)
        logs.update({f"valid_{config.valid_protocol}/{k}": v for k, v in scores.items()})
        improved = scores[metric] > best["score"]
        if improved:
            best.update(epoch=epoch, score=scores[metric], wait=0)
            artifacts.save_model(running_best, model, "finetuned", vocabulary, hyper,
                                 {"best_epoch": epoch + 1, "valid": scores})
        else:
            best["wait"] += 1
        with open(history_path, "a") as f:
            f.write(json.dumps({"epoch": epoch + 1, "loss": float(logs.get("loss", np.nan)),
                                **{f"valid_{config.valid_protocol}/{k}": v
                                   for k, v in scores.items()}}) + "\n")
        _log(verbose, f"epoch {epoch + 1}/{config.epochs}: loss="
                      f"{float(logs.get('loss', np.nan)):.4f} valid " +
             " ".join(f"{k}={v:.4f}" for k, v in scores.items()) +
             (" *best*" if improved else f" (no gain {best['wait']}/{config.patience})"))
        resume.save(epoch=epoch + 1, best_epoch=best["epoch"], best_score=best["score"],
                    wait=best["wait"])
        if best["wait"] >= config.patience:
            model.stop_training = True

    if first_epoch < config.epochs and best["wait"] < config.patience:
        dataset = (streaming.finetune_stream(
            data.prepared_dir, data.num_items, encoder_config.max_length, config.batch_size,
            config.seed, first_epoch, config.epochs, config.loss == "bce",
            config.shuffle_buffer, config.trim_padding) if arrays is None else
            inputs_lib.finetune_dataset(
            arrays, config.batch_size, config.seed, first_epoch, config.epochs,
            negatives=config.loss == "bce", trim=config.trim_padding))
        model.fit(dataset, epochs=config.epochs, initial_epoch=first_epoch,
                  steps_per_epoch=steps, verbose=fit_verbosity(verbose), shuffle=False,
                  callbacks=_callbacks(on_epoch_end, tensorboard_dir, fit_verbosity(verbose)))
    train_time = time.time() - start
    best_model, _ = artifacts.load_next_item_model(running_best)
    results = (streaming.evaluate_stream(best_model, data.prepared_dir,
                                         max_length=encoder_config.max_length)
               if arrays is None else
               evaluate_model(best_model, data, max_length=encoder_config.max_length))
    summary = {"dataset": data.name, "best_epoch": best["epoch"] + 1,
               "valid_metric": f"{config.valid_protocol}/{metric}",
               "train_wall_time_s": round(train_time, 2), "metrics": results,
               "negatives": data.sample_source, "seed": config.seed,
               "pretrained": hyper["pretrained"], "loss": config.loss}
    artifacts.write_atomic_dir(best_dir, lambda tmp: shutil.copytree(running_best, tmp,
                                                                    dirs_exist_ok=True))
    write_generated_negatives(data, output_dir)
    save_run_config(output_dir, encoder_config, config)
    artifacts.write_json_atomic(os.path.join(output_dir, "metrics.json"), summary)
    _log(verbose, f"Fine-tuning done in {train_time:.1f}s; best epoch {best['epoch'] + 1}; "
                  f"model -> {best_dir}")
    return summary
