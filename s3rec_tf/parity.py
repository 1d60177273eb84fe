"""Numerical parity with the original S3-Rec code on fixed batches."""

from __future__ import annotations

import numpy as np

from s3rec_tf import original_weights as ow
from s3rec_tf.data.reader import attribute_table
from s3rec_tf.errors import ArtifactError
from s3rec_tf.models.layers import SequenceEncoder
from s3rec_tf.models import NextItemModel, S3RecPretrainer
from s3rec_tf.models.pretrainer import PRETRAIN_KEYS

DEFAULT_TOLERANCE = 1e-4


def max_relative_error(actual, expected) -> float:
    """`max|a - e| / max|e|` (a scale-aware relative error for whole tensors)."""
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    scale = max(float(np.max(np.abs(expected))), 1e-12)
    return float(np.max(np.abs(actual - expected)) / scale)


def table_from_dense(attributes: np.ndarray, items: np.ndarray, item_size: int) -> np.ndarray:
    """Item->attribute table from the golden file's dense multi-hot targets."""
    table = {}
    for item, row in zip(items.reshape(-1), attributes.reshape(-1, attributes.shape[-1])):
        if item > 0:
            table[int(item)] = np.flatnonzero(row).astype(np.int32)
    return attribute_table(table, item_size)


def run_parity(weights_path: str, golden_path: str, num_heads: int = 2) -> dict:
    """Loads the authors' weights and compares with `golden_<Name>.npz`.

    Returns:
        `{quantity: max relative error}` for the four pretraining losses
        (original sums), the fine-tuning encoder output and the full-ranking
        scores.
    """
    weights = ow.read_npz(weights_path)
    golden = ow.read_npz(golden_path)
    cfg = ow.encoder_config_from_weights(weights, num_heads)
    encoder = SequenceEncoder(**cfg)
    if int(golden["item_size"]) != encoder.item_size or \
            int(golden["attribute_size"]) != encoder.attribute_size:
        raise ArtifactError(f"{golden_path}: item/attribute sizes "
                            f"{int(golden['item_size'])}/{int(golden['attribute_size'])} do not "
                            f"match the weights' {encoder.item_size}/{encoder.attribute_size}")
    table = table_from_dense(golden["attributes"], golden["pos_items"], encoder.item_size)
    pretrainer = S3RecPretrainer(encoder, table)
    ow.load_into_pretrainer(pretrainer, weights)
    batch = {k: golden[k] for k in PRETRAIN_KEYS}
    # The padded layout of the original (no trimming): the golden batch is used as is.
    losses = pretrainer.compute_losses(batch, training=False)  # original BCE: the default
    errors = {f"{k}_loss": max_relative_error(float(v), golden[f"{k}_loss"])
              for k, v in losses.items()}
    # The golden output covers padded positions too, so encode as one block
    # (bucketed encoding leaves padded positions at 0).
    model = NextItemModel(encoder, length_buckets=None)
    ids = golden["finetune_input_ids"]
    errors["finetune_sequence_output"] = max_relative_error(
        model(ids, training=False), golden["finetune_sequence_output"])
    errors["finetune_last_scores"] = max_relative_error(
        model.score_last(ids, training=False), golden["finetune_last_scores"])
    return errors
