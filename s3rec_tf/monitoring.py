"""What a training run shows while it runs: progress output and TensorBoard logs.

`run_pretraining` and `run_finetuning` use these, and so can a TFX Trainer's
`run_fn` (`TensorBoardLogger(fn_args.model_run_dir)`).
"""

from __future__ import annotations

import sys

import keras
import tensorflow as tf


def fit_verbosity(verbose: int, stream=None) -> int:
    """Keras `fit(verbose=...)` for a run: the progress bar only in a terminal.

    Outside a terminal (a log file, CI) Keras stays silent and the run prints
    one line per epoch itself (`epoch_line`).

    Args:
        verbose: int. 0 prints nothing.
        stream: the output stream. Defaults to `sys.stdout`.

    Returns:
        1 (Keras's progress bar) when `verbose` and `stream` is a terminal,
        else 0.
    """
    if not verbose:
        return 0
    stream = sys.stdout if stream is None else stream
    try:
        return 1 if stream.isatty() else 0
    except (AttributeError, ValueError):  # closed, or file-like without isatty
        return 0


def epoch_line(epoch: int, epochs: int, logs: dict, seconds: float | None = None) -> str:
    """`epoch 3/10: loss=0.1234 mip_loss=... (2.1s)`: one epoch in one line."""
    values = " ".join(f"{k}={float(v):.4f}" for k, v in logs.items())
    took = f" ({seconds:.1f}s)" if seconds is not None else ""
    return f"epoch {epoch}/{epochs}: {values}{took}"


class TensorBoardLogger(keras.callbacks.Callback):
    """Writes every epoch's logs and the learning rate as TensorBoard scalars.

    The step is the 1-based epoch. Tags are the Keras log names: `loss`,
    `aap_loss`, `mip_loss`, `map_loss`, `sp_loss` in pretraining; `loss` and
    the validation metrics (`valid_sampled/MRR`, `valid_full/NDCG@20`, ...)
    in fine-tuning, which callbacks placed before this one add to the logs;
    and `learning_rate`.

    Args:
        log_dir: str. The event files' directory (created if missing).

    Example:
    >>> model.fit(dataset, callbacks=[TensorBoardLogger("runs/tb")])  # doctest: +SKIP
    """

    def __init__(self, log_dir: str):
        super().__init__()
        self.log_dir = log_dir
        self._writer = None

    def on_train_begin(self, logs=None):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_epoch_end(self, epoch, logs=None):
        scalars = {k: float(v) for k, v in (logs or {}).items()
                   if isinstance(v, (int, float)) or getattr(v, "shape", None) == ()}
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and "learning_rate" not in scalars:
            scalars["learning_rate"] = float(keras.ops.convert_to_numpy(
                optimizer.learning_rate))
        self.write(epoch + 1, scalars)

    def write(self, step: int, scalars: dict) -> None:
        """Writes `{tag: value}` at `step`."""
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default():
            for tag, value in scalars.items():
                tf.summary.scalar(tag, value, step=step)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
