"""Model directories with a manifest, written atomically and verified on load.

A model directory holds:

- `manifest.json`: kind (`pretrained` / `finetuned`), encoder configuration,
  vocabulary (item/attribute counts and dataset fingerprint),
  hyperparameters, library version and the SHA-256 of the weights file;
- `model.weights.h5`: the Keras weights of the task model.

Directories are written to a temporary sibling and renamed into place, so an
interrupted save never leaves a directory that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile

import numpy as np

import s3rec_tf
from s3rec_tf.errors import ArtifactError

MANIFEST = "manifest.json"
WEIGHTS = "model.weights.h5"
FORMAT = "s3rec_tf.model/1"
KINDS = ("pretrained", "finetuned")


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _missing_ancestors(path: str) -> list:
    """The directories above `path` that do not exist yet, deepest first."""
    missing = []
    parent = os.path.dirname(path)
    while parent and not os.path.exists(parent):
        missing.append(parent)
        up = os.path.dirname(parent)
        if up == parent:
            break
        parent = up
    return missing


def _remove_empty(dirs) -> None:
    for d in dirs:  # deepest first
        try:
            os.rmdir(d)
        except OSError:
            break


def _check_parent(path: str) -> None:
    for ancestor in [os.path.dirname(path), *_ancestors(os.path.dirname(path))]:
        if os.path.exists(ancestor) and not os.path.isdir(ancestor):
            raise ArtifactError(f"{ancestor}: is a file, expected a directory (to hold "
                                f"{path})")


def _ancestors(path: str) -> list:
    out = []
    while True:
        up = os.path.dirname(path)
        if not up or up == path:
            return out
        out.append(up)
        path = up


def write_atomic_dir(path: str, fill, replace: bool = True) -> None:
    """Calls `fill(tmp_dir)` then moves `tmp_dir` to `path`.

    The one way this library writes a directory: nothing appears at `path`
    until `fill` has returned; if `fill` raises (a refusal, a crash, Ctrl-C),
    the temporary directory and any parent directories this call created are
    removed, so a failed write leaves the file system as it was.

    Args:
        path: str. The directory to create.
        fill: callable `fill(tmp_dir)` writing the contents.
        replace: bool. Replace an existing `path` (default); when False an
            existing `path` is refused with an `ArtifactError` before `fill`
            runs.
    """
    path = os.path.abspath(path)
    _check_parent(path)
    if not replace and os.path.lexists(path):
        raise ArtifactError(f"{path} already exists")
    parent = os.path.dirname(path)
    created = _missing_ancestors(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.tmp-", dir=parent)
    try:
        fill(tmp)
        if os.path.lexists(path):
            if not replace:
                raise ArtifactError(f"{path} already exists")
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.old-", dir=parent)
            os.rmdir(old)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        raise


def write_file_atomic(path: str, content) -> None:
    """Writes `content` (str or bytes) to `path` via a temporary sibling and a rename.

    A reader never sees a half-written file; a failure leaves `path` (and its
    directory) as they were.
    """
    path = os.path.abspath(path)
    _check_parent(path)
    if os.path.isdir(path):
        raise ArtifactError(f"{path}: is a directory, expected a file")
    created = _missing_ancestors(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = content.encode() if isinstance(content, str) else content
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.tmp-",
                               dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        _remove_empty(created)
        raise


def write_json_atomic(path: str, obj) -> None:
    """`obj` as indented, key-sorted JSON, written with `write_file_atomic`."""
    write_file_atomic(path, json.dumps(obj, indent=2, sort_keys=True,
                                       default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_model(path: str, model, kind: str, vocabulary: dict, hyperparameters: dict,
               extra: dict | None = None) -> str:
    """Saves a `S3RecPretrainer` (`kind="pretrained"`) or `NextItemModel`.

    Args:
        path: str. The model directory.
        model: the Keras task model.
        kind: `"pretrained"` or `"finetuned"`.
        vocabulary: dict with `num_items`, `num_attributes`, `fingerprint`
            (may be None when unknown) and optionally `dataset`.
        hyperparameters: dict recorded as is.
        extra: dict of more fields (metrics, seeds, ...).
    """
    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {KINDS}. Received: {kind!r}")

    def fill(tmp):
        weights = os.path.join(tmp, WEIGHTS)
        model.save_weights(weights)
        manifest = {
            "format": FORMAT, "kind": kind, "library_version": s3rec_tf.__version__,
            "encoder_config": model.encoder.get_config(),
            "vocabulary": vocabulary, "hyperparameters": hyperparameters,
            "weights_sha256": sha256_file(weights),
        }
        if kind == "pretrained":
            manifest["item_attributes_shape"] = list(model.item_attributes.shape)
            manifest["loss_weights"] = dict(model.loss_weights_)
        else:
            manifest["loss"] = model.loss_name
        manifest.update(extra or {})
        write_json_atomic(os.path.join(tmp, MANIFEST), manifest)

    write_atomic_dir(path, fill)
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
    if manifest.get("format") != FORMAT:
        raise ArtifactError(f"{manifest_path}: unknown format {manifest.get('format')!r}, "
                            f"expected {FORMAT!r}")
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


def load_pretrainer(path: str):
    """Loads a pretrained model directory as a `S3RecPretrainer`."""
    from s3rec_tf.layers import SequenceEncoder
    from s3rec_tf.models import S3RecPretrainer
    manifest = read_manifest(path)
    if manifest["kind"] != "pretrained":
        raise ArtifactError(f"{path}: is a {manifest['kind']} model, expected pretrained")
    encoder = SequenceEncoder.from_config(manifest["encoder_config"])
    model = S3RecPretrainer(encoder, np.zeros(manifest["item_attributes_shape"], "int32"),
                            loss_weights=manifest.get("loss_weights"))
    _load_weights(model, path)
    return model, manifest


def load_next_item_model(path: str):
    """Loads a fine-tuned model directory as a `NextItemModel`."""
    from s3rec_tf.layers import SequenceEncoder
    from s3rec_tf.models import NextItemModel
    manifest = read_manifest(path)
    if manifest["kind"] != "finetuned":
        raise ArtifactError(f"{path}: is a {manifest['kind']} model, expected finetuned")
    encoder = SequenceEncoder.from_config(manifest["encoder_config"])
    model = NextItemModel(encoder, loss=manifest.get("loss", "bce"))
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


def vocabulary_of(data) -> dict:
    return {"dataset": data.name, "num_items": data.num_items,
            "num_attributes": data.num_attributes, "fingerprint": data.fingerprint()}
