"""Keras `fit` on the library's datasets, as a Keras user calls it."""

from __future__ import annotations

import tensorflow as tf

#: `fit`'s positional arguments after `x`, `y`, up to `shuffle`.
_FIT_ARGS_BEFORE_SHUFFLE = ("batch_size", "epochs", "verbose", "callbacks",
                            "validation_split", "validation_data")


class DatasetFitMixin:
    """`fit` that leaves a `tf.data.Dataset`'s order to the dataset.

    The library's datasets (`s3rec_tf.data.pretrain_dataset`,
    `finetune_dataset`) shuffle in-graph, per epoch and reproducibly from
    their seed; Keras cannot shuffle a dataset and warns when asked to (its
    `shuffle` defaults to `True`). For a dataset, `shuffle` therefore
    defaults to `False`; an explicit `shuffle` is passed on unchanged, and
    other inputs (arrays) keep Keras's default.
    """

    def fit(self, x=None, y=None, *args, **kwargs):
        if (isinstance(x, tf.data.Dataset) and "shuffle" not in kwargs
                and len(args) <= len(_FIT_ARGS_BEFORE_SHUFFLE)):
            kwargs["shuffle"] = False
        return super().fit(x, y, *args, **kwargs)
