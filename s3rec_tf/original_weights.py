"""Loading the authors' released PyTorch weights (as `.npz`) into Keras models.

The `.npz` holds one array per PyTorch state-dict key of the original
`S3RecModel`. PyTorch `Linear.weight` is `[out, in]`; a Keras `Dense` kernel
is its transpose.
"""

from __future__ import annotations

import os
import re

import numpy as np

from s3rec_tf import ids
from s3rec_tf.errors import ArtifactError
from s3rec_tf.models.layers import SequenceEncoder


def read_npz(path: str) -> dict:
    """Reads a weights `.npz` into a dict, with a clear error if unreadable."""
    if not os.path.exists(path):
        raise ArtifactError(f"{path}: weights file not found")
    try:
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    except Exception as e:  # zipfile/np errors on corrupt files
        raise ArtifactError(f"{path}: not a readable .npz weights file ({e})") from None


def encoder_config_from_weights(weights: dict, num_heads: int = 2) -> dict:
    """Infers the `SequenceEncoder` arguments from the array shapes."""
    try:
        item_size, hidden = weights["item_embeddings.weight"].shape
        attribute_size = weights["attribute_embeddings.weight"].shape[0]
        max_length = weights["position_embeddings.weight"].shape[0]
    except KeyError as e:
        raise ArtifactError(f"weights lack the original key {e.args[0]!r}") from None
    layers = {int(m.group(1)) for k in weights
              if (m := re.match(r"item_encoder\.layer\.(\d+)\.", k))}
    return dict(num_items=ids.num_items_of_table(int(item_size)),
                num_attributes=ids.num_attributes_of_table(int(attribute_size)),
                max_length=int(max_length), hidden_size=int(hidden),
                num_layers=len(layers), num_heads=num_heads)


def _linear(dense, weights, key):
    dense.set_weights([weights[f"{key}.weight"].T, weights[f"{key}.bias"]])


def _norm(layer, weights, key):
    layer.set_weights([weights[f"{key}.weight"], weights[f"{key}.bias"]])


def load_into_encoder(encoder: SequenceEncoder, weights: dict) -> None:
    """Copies the original backbone weights into `encoder` (shapes checked)."""
    expected = encoder_config_from_weights(weights, encoder.num_heads)
    for key in ("num_items", "num_attributes", "max_length", "hidden_size", "num_layers"):
        if getattr(encoder, key) != expected[key]:
            raise ArtifactError(f"weights have {key}={expected[key]} but the model has "
                                f"{key}={getattr(encoder, key)}")
    encoder.build()
    emb = encoder.embedding
    emb.item_embedding.set_weights([weights["item_embeddings.weight"]])
    emb.position_embedding.set_weights([weights["position_embeddings.weight"]])
    _norm(emb.layer_norm, weights, "LayerNorm")
    encoder.attribute_embedding.set_weights([weights["attribute_embeddings.weight"]])
    for i, block in enumerate(encoder.blocks):
        p = f"item_encoder.layer.{i}"
        _linear(block.query_dense, weights, f"{p}.attention.query")
        _linear(block.key_dense, weights, f"{p}.attention.key")
        _linear(block.value_dense, weights, f"{p}.attention.value")
        _linear(block.attention_output_dense, weights, f"{p}.attention.dense")
        _norm(block.attention_layer_norm, weights, f"{p}.attention.LayerNorm")
        _linear(block.feedforward_intermediate_dense, weights, f"{p}.intermediate.dense_1")
        _linear(block.feedforward_output_dense, weights, f"{p}.intermediate.dense_2")
        _norm(block.feedforward_layer_norm, weights, f"{p}.intermediate.LayerNorm")


def load_into_pretrainer(pretrainer, weights: dict) -> None:
    """Copies backbone and the four head Dense layers (`*_norm` in the original)."""
    load_into_encoder(pretrainer.encoder, weights)
    for name in ("aap", "mip", "map", "sp"):
        if f"{name}_norm.weight" in weights:
            _linear(getattr(pretrainer, f"{name}_dense"), weights, f"{name}_norm")
