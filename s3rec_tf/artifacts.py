"""Model directories with a manifest, written atomically and verified on load.

A model directory holds:

- `manifest.json`: kind (`pretrained` / `finetuned`), the task model's Keras
  configuration (`model`: `keras.saving.serialize_keras_object`, from which
  loading rebuilds it), the encoder's `EncoderConfig` (`encoder`: its
  architecture and dropout rates), vocabulary (item/attribute counts and
  dataset fingerprint), the run's other hyperparameters, library version and
  the SHA-256 of the weights file;
- `model.weights.h5`: the Keras weights of the task model.

The manifest is the record of the model: `encoder` is taken from the model
when it is saved and checked against `model` when it is loaded, and the
encoder's fields are not repeated under `hyperparameters`. A run's
`config.json` (`s3rec_tf.training.save_run_config`) is its recipe, for
`--config`; nothing that loads a model reads it.

Manifests of format 1 (`LEGACY_FORMAT`: the encoder's configuration and a
few fields by kind instead of `model`), and those of format 2 written before
`encoder` was recorded, still load: their `EncoderConfig` is read from the
encoder's configuration.

Directories are written with `s3rec_tf.io.write_atomic_dir` (to a temporary
sibling, then renamed into place), so an interrupted save never leaves a
directory that looks complete.
"""

from __future__ import annotations

import json
import os

import numpy as np

import s3rec_tf
from s3rec_tf import config as config_lib
from s3rec_tf.config import EncoderConfig
from s3rec_tf.errors import ArtifactError, ConfigError
from s3rec_tf.ids import vocabulary_of  # noqa: F401  (the manifests' vocabulary, re-exported)
from s3rec_tf.io import sha256_file, write_atomic_dir, write_json_atomic

MANIFEST = "manifest.json"
WEIGHTS = "model.weights.h5"
FORMAT = "s3rec_tf.model/2"
#: The format before the model's Keras configuration was saved (still read).
LEGACY_FORMAT = "s3rec_tf.model/1"
#: Model kinds and the class of each one's task model.
KINDS = ("pretrained", "finetuned")
_CLASSES = {"pretrained": "S3RecPretrainer", "finetuned": "NextItemModel"}


def serialize_model(model) -> dict:
    """The Keras serialization of a task model, as a manifest's `model` holds it.

    `keras.saving.serialize_keras_object(model)` without the compile
    configuration: a manifest describes the model, not how it was trained.
    """
    import keras
    config = keras.saving.serialize_keras_object(model)
    config.pop("compile_config", None)
    return config


def save_model(path: str, model, kind: str, vocabulary: dict, hyperparameters: dict,
               extra: dict | None = None, merge: bool = False, replace: bool = False) -> str:
    """Saves a `S3RecPretrainer` (`kind="pretrained"`) or `NextItemModel`.

    Args:
        path: str. The model directory.
        model: the Keras task model.
        kind: `"pretrained"` or `"finetuned"`.
        vocabulary: dict with `num_items`, `num_attributes`, `fingerprint`
            (may be None when unknown) and optionally `dataset`
            (`s3rec_tf.ids.vocabulary`).
        hyperparameters: dict of the run's settings. Those that are
            `EncoderConfig` fields are recorded once, under `encoder` (taken
            from `model`), and must agree with it.
        extra: dict of more fields (metrics, seeds, ...).
        merge: bool. Write the model's files into an existing `path`, keeping
            what else it holds (a pretraining run's output directory): the
            weights first, the manifest last (see `write_atomic_dir`).
            Defaults to `False`.
        replace: bool. Replace an existing non-empty `path` (see
            `write_atomic_dir`). Defaults to `False`: it is refused.
    """
    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {KINDS}. Received: {kind!r}")
    from s3rec_tf import models
    if not isinstance(model, getattr(models, _CLASSES[kind])):
        raise ValueError(f"a {kind} model is a {_CLASSES[kind]}. Received: "
                         f"{type(model).__name__}")
    encoder = config_lib.to_dict(model.encoder.encoder_config())
    disagree = [f"{k}: hyperparameters {v!r} vs model {encoder[k]!r}"
                for k, v in hyperparameters.items() if k in encoder and v != encoder[k]]
    if disagree:
        raise ValueError(f"the hyperparameters do not describe the model "
                         f"({'; '.join(disagree)})")
    hyperparameters = {k: v for k, v in hyperparameters.items() if k not in encoder}

    def fill(tmp):
        weights = os.path.join(tmp, WEIGHTS)
        model.save_weights(weights)
        manifest = {
            "format": FORMAT, "kind": kind, "library_version": s3rec_tf.__version__,
            "model": serialize_model(model), "encoder": encoder,
            "vocabulary": vocabulary, "hyperparameters": hyperparameters,
            "weights_sha256": sha256_file(weights),
        }
        manifest.update(extra or {})
        write_json_atomic(os.path.join(tmp, MANIFEST), manifest)
        return [WEIGHTS, MANIFEST]  # the manifest last: it marks the weights complete

    write_atomic_dir(path, fill, replace=replace, merge=merge)
    return path


def read_manifest(path: str) -> dict:
    """Reads and checks a model directory's manifest and weights checksum."""
    if not os.path.isdir(path):
        raise ArtifactError(f"{path}: model directory not found")
    manifest_path = os.path.join(path, MANIFEST)
    weights_path = os.path.join(path, WEIGHTS)
    if not os.path.exists(manifest_path):
        raise ArtifactError(f"{path}: no {MANIFEST}: not an s3rec-tf model directory")
    try:
        with open(manifest_path) as f:
            manifest = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{manifest_path}: corrupt manifest ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") not in (FORMAT, LEGACY_FORMAT):
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise ArtifactError(f"{manifest_path}: unknown format {found!r}, expected {FORMAT!r}")
    if not os.path.exists(weights_path):
        raise ArtifactError(f"{path}: weights file {WEIGHTS} is missing")
    actual = sha256_file(weights_path)
    if actual != manifest.get("weights_sha256"):
        raise ArtifactError(f"{weights_path}: checksum mismatch (file is corrupt or truncated: "
                            f"sha256 {actual[:12]}..., manifest says "
                            f"{str(manifest.get('weights_sha256'))[:12]}...)")
    return manifest


def _load_weights(model, path):
    try:
        model.load_weights(os.path.join(path, WEIGHTS))
    except Exception as e:
        raise ArtifactError(f"{path}: weights do not load into the model ({e})") from None


def task_config(manifest: dict) -> dict:
    """The task model's configuration (its `get_config()`) that a manifest records.

    Format-1 manifests recorded the encoder's configuration (`encoder_config`)
    and, by kind, `item_attributes_shape` and `loss_weights` or `loss`; they
    are read onto the same keys (the encoder's under `encoder["config"]`).
    """
    try:
        if "model" in manifest:
            return manifest["model"]["config"]
        legacy = {"encoder": {"config": manifest["encoder_config"]}}
    except (KeyError, TypeError):
        raise ArtifactError("manifest has no model configuration (`model` or "
                            "`encoder_config`)") from None
    legacy.update({k: manifest[k] for k in ("item_attributes_shape", "loss_weights", "loss")
                   if k in manifest})
    return legacy


def encoder_config(manifest: dict) -> dict:
    """The `SequenceEncoder`'s Keras configuration that a manifest records (either format).

    It holds the id-space sizes as well; `encoder_config_of` gives the
    `EncoderConfig`.
    """
    return task_config(manifest)["encoder"]["config"]


def encoder_config_of(manifest: dict) -> EncoderConfig:
    """The encoder's `EncoderConfig` (architecture and dropout rates) a manifest records.

    Its `encoder`, or, in a manifest written before it was recorded, the
    fields of the encoder's Keras configuration.

    Raises:
        ArtifactError: the recorded values are not a valid `EncoderConfig`.
    """
    if "encoder" in manifest:
        values, where = manifest["encoder"], "`encoder`"
    else:
        keras_config, where = encoder_config(manifest), "encoder configuration"
        values = ({f: keras_config[f] for f in config_lib.to_dict(EncoderConfig())
                   if f in keras_config} if isinstance(keras_config, dict) else keras_config)
    try:
        return config_lib.from_mapping(EncoderConfig, values, f"the manifest's {where}")
    except ConfigError as e:
        raise ArtifactError(str(e)) from None


def _check_encoder(manifest: dict, model) -> None:
    """Refuses a manifest whose `encoder` differs from the encoder its `model` builds."""
    if "encoder" not in manifest:
        return
    recorded, built = encoder_config_of(manifest), model.encoder.encoder_config()
    diffs = [f"{k}: encoder {v!r} vs model {getattr(built, k)!r}"
             for k, v in config_lib.to_dict(recorded).items() if getattr(built, k) != v]
    if diffs:
        raise ArtifactError(f"the manifest's `encoder` disagrees with its model "
                            f"configuration ({'; '.join(diffs)})")


def _build(path: str, manifest: dict, kind: str):
    """The task model a manifest describes, with fresh weights."""
    from s3rec_tf import models
    from s3rec_tf.models.layers import SequenceEncoder
    if manifest.get("kind") != kind:
        raise ArtifactError(f"{path}: is a {manifest.get('kind')} model, expected {kind}")
    cls = getattr(models, _CLASSES[kind])
    try:
        if "model" in manifest:
            import keras
            model = keras.saving.deserialize_keras_object(manifest["model"], safe_mode=True)
        else:  # format 1
            config = task_config(manifest)
            encoder = SequenceEncoder.from_config(config["encoder"]["config"])
            if kind == "pretrained":
                model = cls(encoder, np.zeros(config["item_attributes_shape"], "int32"),
                            loss_weights=config.get("loss_weights"))
            else:
                model = cls(encoder, loss=config.get("loss", "bce"))
    except ArtifactError as e:
        raise ArtifactError(f"{path}: {e}") from None
    except Exception as e:  # Keras raises several types on a config it cannot build
        raise ArtifactError(f"{path}: the manifest's model configuration does not build "
                            f"({type(e).__name__}: {e})") from None
    if not isinstance(model, cls):
        raise ArtifactError(f"{path}: the manifest describes a {type(model).__name__}, "
                            f"expected a {cls.__name__}")
    try:
        _check_encoder(manifest, model)
    except ArtifactError as e:
        raise ArtifactError(f"{path}: {e}") from None
    return model


def load_pretrainer(path: str):
    """Loads a pretrained model directory as a `S3RecPretrainer`."""
    manifest = read_manifest(path)
    model = _build(path, manifest, "pretrained")
    _load_weights(model, path)
    return model, manifest


def load_next_item_model(path: str):
    """Loads a fine-tuned model directory as a `NextItemModel`."""
    manifest = read_manifest(path)
    model = _build(path, manifest, "finetuned")
    _load_weights(model, path)
    return model, manifest


def check_vocabulary(manifest: dict, vocabulary: dict, what: str) -> None:
    """Refuses a model whose id spaces differ from the data's, saying what differs."""
    have = manifest.get("vocabulary", {})
    diffs = []
    for key in ("num_items", "num_attributes"):
        if have.get(key) != vocabulary.get(key):
            diffs.append(f"{key}: model {have.get(key)} vs data {vocabulary.get(key)}")
    if (have.get("fingerprint") and vocabulary.get("fingerprint")
            and have["fingerprint"] != vocabulary["fingerprint"]):
        diffs.append(f"vocabulary fingerprint: model {have['fingerprint']} vs data "
                     f"{vocabulary['fingerprint']}")
    if diffs:
        raise ArtifactError(f"{what} does not match the data ({'; '.join(diffs)})")

