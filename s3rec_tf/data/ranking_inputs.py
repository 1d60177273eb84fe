"""Ranking batches for Keras: `validation_data` of `NextItemModel.fit` and `evaluate`.

The evaluation splits of `s3rec_tf.data.inputs.eval_arrays` as a `tf.data`
dataset whose batches `NextItemModel.test_step` ranks. With the model
compiled with ranking metrics (`s3rec_tf.models.ranking_metrics`),
`model.fit(train, validation_data=ranking_dataset(...))` logs
`val_NDCG@20`, `val_MRR`, ... each epoch, the numbers of
`s3rec_tf.evaluation.RankingEvaluator`.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from s3rec_tf.data.inputs import EvalArrays

#: `ranking_dataset`'s protocols: as `s3rec_tf.evaluation.PROTOCOLS`.
PROTOCOLS = ("full", "sampled")


def ranking_dataset(arrays: EvalArrays, protocol: str = "full",
                    batch_size: int = 256) -> tf.data.Dataset:
    """One pass over an evaluation split, in batches `NextItemModel` ranks.

    Args:
        arrays: `EvalArrays` of a split (`s3rec_tf.data.eval_arrays`).
        protocol: str. `"full"`: each answer is ranked against every item
            but the user's input history (batches of `input_ids` int32
            `[batch, max_length]`, `answers` int32 `[batch]` and `history`
            int32 `[batch, width]`, 0-padded). `"sampled"`: against its 99
            negatives (`input_ids` and `candidates` int32 `[batch, 100]`,
            the answer first). Defaults to `"full"`.
        batch_size: int. Users per batch. Defaults to `256`.

    Returns:
        A `tf.data.Dataset` of dicts with `ceil(users / batch_size)` batches
        (its cardinality known), users in the split's order.

    Example:

    ```python
    valid = ranking_dataset(eval_arrays(data, "valid", max_length=50))
    model.fit(train, validation_data=valid, ...)
    ```
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"`protocol` must be one of {PROTOCOLS}. Received: protocol={protocol!r}")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1. Received: batch_size={batch_size}")
    features = {"input_ids": np.asarray(arrays.input_ids, np.int32)}
    if protocol == "full":
        features["answers"] = np.asarray(arrays.answers, np.int32)
        features["history"] = np.asarray(arrays.history, np.int32)
    else:
        if arrays.negatives is None:
            raise ValueError("the sampled protocol needs negatives; none were read or generated")
        features["candidates"] = np.concatenate(
            [np.asarray(arrays.answers)[:, None], arrays.negatives], axis=1).astype(np.int32)
    return (tf.data.Dataset.from_tensor_slices(features).batch(batch_size)
            .prefetch(tf.data.AUTOTUNE))
