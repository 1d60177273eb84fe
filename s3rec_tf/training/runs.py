"""What both training runs share: logging, epoch callbacks, the run's saved files."""

from __future__ import annotations

import os

import keras

from s3rec_tf import config as config_lib
from s3rec_tf.config import EncoderConfig
from s3rec_tf.io import write_json_atomic


def _log(verbose, *args):
    if verbose:
        print(*args, flush=True)


class _EpochCallback(keras.callbacks.Callback):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def on_epoch_end(self, epoch, logs=None):
        self.fn(epoch, logs if logs is not None else {})


def save_run_config(output_dir: str, encoder_config: EncoderConfig, config) -> str:
    """Writes the run's resolved hyperparameters to `<output>/config.json`.

    The file is flat, with the flags' keys, so `--config <output>/config.json`
    repeats the run's recipe. It is the record of what the run was asked to
    do; the record of the model it wrote, the encoder's architecture
    included, is that model's manifest (`s3rec_tf.artifacts`), and nothing
    that loads a model reads this file.
    """
    path = config_lib.saved_config_path(output_dir)
    os.makedirs(output_dir, exist_ok=True)
    write_json_atomic(path, {**config_lib.to_dict(encoder_config),
                                       **config_lib.to_dict(config)})
    return path
