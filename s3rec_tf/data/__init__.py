"""Data: readers, synthetic data and `tf.data` input pipelines."""

from s3rec_tf.data.inputs import (eval_arrays, finetune_dataset, pretrain_arrays,
                                  pretrain_dataset)
from s3rec_tf.data.reader import SequenceData, attribute_table, read_dataset

__all__ = ["SequenceData", "attribute_table", "eval_arrays", "finetune_dataset",
           "pretrain_arrays", "pretrain_dataset", "read_dataset"]
