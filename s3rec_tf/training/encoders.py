"""Encoders of a run: built from a config, loaded from a pretrained model, imported from
the authors' weights."""

from __future__ import annotations

import os

import numpy as np

from s3rec_tf import artifacts, ids
from s3rec_tf.config import EncoderConfig
from s3rec_tf.data.reader import SequenceData
from s3rec_tf.errors import ArtifactError
from s3rec_tf.models.layers import SequenceEncoder
from s3rec_tf.models import S3RecPretrainer


def build_encoder(data: SequenceData, config: EncoderConfig) -> SequenceEncoder:
    """A fresh encoder of `config` over `data`'s items and attributes."""
    return SequenceEncoder.from_encoder_config(config, data.num_items, data.num_attributes)


def import_original_weights(weights_path: str, output_dir: str, data: SequenceData | None = None,
                            num_heads: int = 2, replace: bool = False) -> str:
    """Turns the authors' `.npz` weights into a pretrained model directory.

    `replace`: replace an existing non-empty `output_dir` (else it is refused).
    """
    from s3rec_tf import original_weights as ow
    weights = ow.read_npz(weights_path)
    cfg = ow.encoder_config_from_weights(weights, num_heads)
    encoder = SequenceEncoder(**cfg)
    vocabulary = ids.vocabulary(cfg["num_items"], cfg["num_attributes"])
    if data is not None:
        of_data = ids.vocabulary_of(data)
        artifacts.check_vocabulary({"vocabulary": vocabulary}, of_data, f"weights {weights_path}")
        table, vocabulary = data.attribute_table(), of_data
    else:
        table = np.zeros((encoder.item_size, 1), "int32")
    model = S3RecPretrainer(encoder, table)
    ow.load_into_pretrainer(model, weights)
    artifacts.save_model(output_dir, model, "pretrained", vocabulary, {},
                         {"imported_from": os.path.abspath(weights_path)}, replace=replace)
    return output_dir


def load_pretrained_encoder(path: str, data: SequenceData,
                            encoder_config: EncoderConfig) -> SequenceEncoder:
    """Loads the encoder of a pretrained model directory for fine-tuning.

    The pretrained encoder is the one its manifest records
    (`s3rec_tf.artifacts.encoder_config_of`; the run's `config.json` is not
    read). Every architecture field of `encoder_config`
    (`EncoderConfig.architecture`) must equal the pretrained one; its dropout
    rates are the fine-tuning's own and replace the pretrained ones.

    Args:
        path: str. The pretrained model directory.
        data: the fine-tuning data, whose id spaces must be the model's.
        encoder_config: `EncoderConfig` of the fine-tuning.

    Returns:
        A `SequenceEncoder` with the pretrained weights, whose `encoder_config()`
        is `encoder_config`.

    Raises:
        ArtifactError: the directory is missing or corrupt, or its vocabulary or
            an architecture field differs (each differing field named with both
            values).
    """
    if not os.path.exists(path):
        raise ArtifactError(f"{path}: pretrained model not found (pass --pretrained none to "
                            f"train without pretraining)")
    pretrainer, manifest = artifacts.load_pretrainer(path)
    artifacts.check_vocabulary(manifest, artifacts.vocabulary_of(data), f"pretrained model {path}")
    pretrained = artifacts.encoder_config_of(manifest)
    diffs = [f"{k}: pretrained {mine} vs requested {theirs}"
             for k, mine, theirs in pretrained.architecture_differences(encoder_config)]
    if diffs:
        raise ArtifactError(f"pretrained model {path} does not match ({'; '.join(diffs)})")
    enc = pretrainer.encoder
    encoder = SequenceEncoder.from_encoder_config(
        encoder_config, enc.num_items, enc.num_attributes, name=enc.name,
        dtype=enc.dtype_policy)
    encoder.build()
    encoder.set_weights(enc.get_weights())
    return encoder
