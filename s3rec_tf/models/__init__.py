"""The two task models that share one `SequenceEncoder`."""

from s3rec_tf.models.layers import SequenceEncoder
from s3rec_tf.models.next_item import NextItemModel
from s3rec_tf.models.pretrainer import S3RecPretrainer

__all__ = ["NextItemModel", "S3RecPretrainer", "SequenceEncoder"]
