"""The resume state of a run: model, optimizer and run state in `<output>/_resume`."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import tensorflow as tf

from s3rec_tf.errors import ArtifactError
from s3rec_tf.io import write_json_atomic
from s3rec_tf.outputs import RESUME_DIR


def _field_defaults(config_class) -> dict:
    return {f.name: f.default for f in dataclasses.fields(config_class)
            if f.default is not dataclasses.MISSING}


class _Resume:
    """Model + optimizer + run state in `<output>/_resume`, guarded by a config check."""

    def __init__(self, output_dir: str, model, signature: dict, state: dict,
                 read_from: str | None = None, configs=()):
        """`read_from`: the output directory to resume from, when it is not `output_dir`
        (a multi-worker run's other workers resume from the chief's, and save apart).
        `configs`: the config dataclasses whose fields make up the signature."""
        self.dir = os.path.join(output_dir, RESUME_DIR)
        self.read_dir = os.path.join(read_from, RESUME_DIR) if read_from else self.dir
        self.signature = signature
        # A setting added after a checkpoint was written is absent from its
        # signature: the checkpointed run had that setting's default.
        self.defaults = {k: v for c in configs for k, v in _field_defaults(c).items()}
        self.state = {k: tf.Variable(v, dtype=tf.float64 if isinstance(v, float) else tf.int64,
                                     trainable=False, name=k) for k, v in state.items()}
        # Dropout seed-generator states are not reachable through the model's
        # tracked attributes: list every variable so resuming is exact.
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer,
                                              variables=list(model.variables), **self.state)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.dir, max_to_keep=2)

    def restore(self, model) -> bool:
        latest = tf.train.latest_checkpoint(self.read_dir)
        if not latest:
            return False
        sig_path = os.path.join(self.read_dir, "signature.json")
        try:
            with open(sig_path) as f:
                saved = json.load(f)
        except (OSError, ValueError) as e:
            raise ArtifactError(f"{sig_path}: missing or corrupt ({type(e).__name__}); cannot "
                                f"resume: use a new --output or delete {self.read_dir}") from None
        if not isinstance(saved, dict):
            raise ArtifactError(f"{sig_path}: corrupt (not a JSON object); cannot resume: use "
                                f"a new --output or delete {self.read_dir}")
        diffs = [f"{k}: checkpoint {saved.get(k)!r} vs now {v!r}"
                 for k, v in self.signature.items() if saved.get(k, self.defaults.get(k)) != v]
        if diffs:
            raise ArtifactError(f"{self.read_dir}: cannot resume, the run differs from the "
                                f"checkpointed one ({'; '.join(diffs)}); use a new --output "
                                f"or delete {self.read_dir}")
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
        write_json_atomic(os.path.join(self.dir, "signature.json"), self.signature)
        try:
            self.manager.save()
        except BaseException:  # a full disk, Ctrl-C: the last complete checkpoint stays
            for name in os.listdir(self.dir):
                if name.endswith("_temp"):  # TensorFlow's partial checkpoint
                    shutil.rmtree(os.path.join(self.dir, name), ignore_errors=True)
            raise

    def value(self, key):
        return self.state[key].numpy().item()
