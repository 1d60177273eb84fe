"""Encoders of a run: built from a config, loaded from a pretrained model, imported from
the authors' weights."""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from s3rec_tf import artifacts, ids
from s3rec_tf.config import EncoderConfig
from s3rec_tf.data.reader import SequenceData
from s3rec_tf.errors import ArtifactError
from s3rec_tf.layers import SequenceEncoder
from s3rec_tf.models import S3RecPretrainer


def build_encoder(data: SequenceData, config: EncoderConfig) -> SequenceEncoder:
    return SequenceEncoder(num_items=data.num_items, num_attributes=data.num_attributes,
                           **dataclasses.asdict(config))


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
    artifacts.save_model(output_dir, model, "pretrained", vocabulary, cfg,
                         {"imported_from": os.path.abspath(weights_path)}, replace=replace)
    return output_dir


def load_pretrained_encoder(path: str, data: SequenceData,
                            encoder_config: EncoderConfig) -> SequenceEncoder:
    """Loads the encoder of a pretrained model dir, refusing any mismatch."""
    if not os.path.exists(path):
        raise ArtifactError(f"{path}: pretrained model not found (pass --pretrained none to "
                            f"train without pretraining)")
    pretrainer, manifest = artifacts.load_pretrainer(path)
    artifacts.check_vocabulary(manifest, artifacts.vocabulary_of(data), f"pretrained model {path}")
    enc = pretrainer.encoder
    diffs = [f"{k}: pretrained {getattr(enc, k)} vs requested {v}"
             for k, v in dataclasses.asdict(encoder_config).items()
             if k in ("hidden_size", "num_layers", "num_heads", "max_length")
             and getattr(enc, k) != v]
    if diffs:
        raise ArtifactError(f"pretrained model {path} does not match ({'; '.join(diffs)})")
    config = enc.get_config()
    config.update(dropout=encoder_config.dropout,
                  attention_dropout=encoder_config.attention_dropout)
    encoder = SequenceEncoder.from_config(config)
    encoder.build()
    encoder.set_weights(enc.get_weights())
    return encoder
