"""Answers from a serving export: `Recommender` and TF Serving's REST request mapping.

Loads the SavedModel that `s3rec_tf.serving.export` writes (its signatures
are described there) through TensorFlow alone; no Keras model is built.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from s3rec_tf.config import SERVING_K
from s3rec_tf.errors import ArtifactError


def resolve_export_dir(path: str) -> str:
    """`<base>` (takes the highest numeric version) or `<base>/<version>`."""
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    if os.path.isdir(path):
        versions = sorted((int(v) for v in os.listdir(path) if v.isdigit()), reverse=True)
        for v in versions:
            candidate = os.path.join(path, str(v))
            if os.path.exists(os.path.join(candidate, "saved_model.pb")):
                return candidate
    raise ArtifactError(f"{path}: no SavedModel (expected <base>/<version>/saved_model.pb)")


class Recommender:
    """Answers from an export directory (what `s3rec-tf recommend` uses).

    Args:
        export_dir: an export base or version directory.
        index: `"brute"` (default): the export scores the whole catalogue;
            `"scann"`: a ScaNN index over the export's item embeddings
            (`s3rec_tf.ann`; needs the optional `scann` package and an export
            with `serve_query_embedding`).
        scann_config: `s3rec_tf.ann.ScannConfig` | None, for `index="scann"`.
    """

    def __init__(self, export_dir: str, index: str = "brute", scann_config=None):
        from s3rec_tf import ann
        if index not in ann.INDEXES:
            raise ValueError(f"`index` must be one of {ann.INDEXES}. Received: {index!r}")
        if index == "scann":
            ann.require_scann()
        self.path = resolve_export_dir(export_dir)
        self.index = index
        try:
            self.saved = tf.saved_model.load(self.path)
            self._top_k = self.saved.signatures["serve_top_k"]
        except Exception as e:  # TF raises several types on a damaged SavedModel
            raise ArtifactError(f"{self.path}: not a loadable s3rec-tf export "
                                f"({type(e).__name__})") from None
        self._scann = None
        if index == "scann":
            if "serve_query_embedding" not in self.saved.signatures:
                raise ArtifactError(f"{self.path}: export has no serve_query_embedding "
                                    f"signature (written by an older s3rec-tf); export the "
                                    f"model again to use --index scann")
            self._query_embedding = self.saved.signatures["serve_query_embedding"]
            table = self.saved.signatures["item_embeddings"]()
            self._scann = ann.ScannIndex([i.decode() for i in table["item_ids"].numpy()],
                                         table["embeddings"].numpy(), scann_config)

    def close(self) -> None:
        """Drops the loaded SavedModel (a process that exits with its functions still
        loaded prints TensorFlow's `AtomicFunction.__del__` errors)."""
        import gc
        self.saved = self._top_k = self._scann = None
        self.__dict__.pop("_query_embedding", None)
        gc.collect()

    def query(self, histories, k: int = SERVING_K, exclude_history: bool = True) -> list:
        """Top-k answers with their counts, one dict per history.

        Each dict has `items` (the `num_results` real `(item_id, score)`
        pairs, best first; fill entries are not included), `num_results`,
        `num_known` and `num_unknown` (ids of the history the model does not
        know, ignored).

        Raises:
            ValueError: `k < 1`, or an empty id in a history.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1. Received: k={k}")
        for r, h in enumerate(histories):
            for position, item in enumerate(h):
                if not str(item).strip():
                    raise ValueError(f"history {r + 1}, position {position + 1}: empty item id")
        width = max([len(h) for h in histories] + [1])
        batch = [[str(i) for i in h] + [""] * (width - len(h)) for h in histories]
        if self._scann is not None:
            out = self._query_embedding(history=tf.constant(batch, tf.string))
            rows = self._scann.top_k(out["query"].numpy(), histories, k, exclude_history)
            return [{"items": row, "num_results": len(row),
                     "num_known": int(out["num_known"][r]),
                     "num_unknown": int(out["num_unknown"][r])}
                    for r, row in enumerate(rows)]
        try:
            out = self._top_k(history=tf.constant(batch, tf.string),
                              k=tf.constant(k, tf.int32),
                              exclude_history=tf.constant(bool(exclude_history)))
        except tf.errors.InvalidArgumentError as e:
            raise ValueError(e.message.splitlines()[0]) from None
        ids, scores = out["item_ids"].numpy(), out["scores"].numpy()
        counts = {n: out[n].numpy() for n in ("num_known", "num_unknown")}
        # exports written before `num_results` existed: their fill scores are -inf
        counts["num_results"] = (out["num_results"].numpy() if "num_results" in out
                                 else np.isfinite(scores).sum(axis=1))
        return [{"items": [(i.decode(), float(s)) for i, s in
                           zip(ids[r][:counts["num_results"][r]],
                               scores[r][:counts["num_results"][r]])],
                 **{n: int(v[r]) for n, v in counts.items()}}
                for r in range(len(histories))]

    def recommend(self, histories, k: int = SERVING_K, exclude_history: bool = True) -> list:
        """Top-k `(item_id, score)` lists for a batch of raw-id histories.

        Only real results: a list is shorter than `k` when fewer items are
        eligible (see `query` for the counts).
        """
        return [a["items"] for a in self.query(histories, k, exclude_history)]


def rest_to_signature_inputs(body: dict, signature_inputs: dict) -> dict:
    """Maps a TF Serving REST `predict` body onto a signature's inputs.

    Supports the row format `{"instances": [...]}` (each instance a dict of
    named inputs, or a bare value when the signature has one input) and the
    columnar format `{"inputs": {...}}` (or a bare value for one input), as
    TF Serving does. Histories of different lengths are right-padded with ""
    (string ids) or 0 (integer ids).

    Args:
        body: the parsed JSON request.
        signature_inputs: `{name: tf.TensorSpec}` of the target signature
            (`loaded.signatures[name].structured_input_signature[1]`).

    Returns:
        `{name: tf.Tensor}` to call the signature with.

    Raises:
        ValueError: a malformed request, with the reason.
    """
    if not isinstance(body, dict) or ("instances" in body) == ("inputs" in body):
        raise ValueError('request must have exactly one of "instances" or "inputs"')
    names = list(signature_inputs)
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise ValueError('"instances" must be a non-empty list')
        if all(isinstance(i, dict) for i in instances):
            columns = {n: [i.get(n) for i in instances] for n in names}
            missing = [n for n in names if any(v is None for v in columns[n])]
            if missing:
                raise ValueError(f"instances lack input(s) {missing}")
        elif len(names) == 1:
            columns = {names[0]: instances}
        else:
            raise ValueError(f"instances must be objects with keys {names}")
    else:
        inputs = body["inputs"]
        columns = inputs if isinstance(inputs, dict) else {names[0]: inputs}
        missing = [n for n in names if n not in columns]
        if missing:
            raise ValueError(f"inputs lack {missing}")
    out = {}
    for name in names:
        spec = signature_inputs[name]
        value = columns[name]
        if spec.shape.rank == 2:
            if not isinstance(value, list) or not all(isinstance(r, list) for r in value):
                raise ValueError(f"input {name!r} must be a list of lists")
            pad = "" if spec.dtype == tf.string else 0
            width = max([len(r) for r in value] + [1])
            value = [r + [pad] * (width - len(r)) for r in value]
        try:
            if spec.dtype == tf.string:
                if spec.shape.rank == 2:
                    value = [[str(v) for v in r] for r in value]
                out[name] = tf.constant(value, tf.string)
            else:
                out[name] = tf.constant(value, spec.dtype)
        except (TypeError, ValueError) as e:
            raise ValueError(f"input {name!r} does not fit {spec.dtype.name}: {e}") from None
        if spec.shape.rank is not None and out[name].shape.rank != spec.shape.rank:
            raise ValueError(f"input {name!r} has rank {out[name].shape.rank}, expected "
                             f"{spec.shape.rank}")
    return out
