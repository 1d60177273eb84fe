"""Serving: the TF Serving export of a fine-tuned model, and answers from it.

`export_serving_model` writes the SavedModel (`s3rec_tf.serving.export`,
which documents its signatures); `Recommender` answers from one and
`rest_to_signature_inputs` maps a TF Serving REST body onto a signature's
inputs (`s3rec_tf.serving.client`).
"""

from s3rec_tf.serving.client import Recommender, resolve_export_dir, rest_to_signature_inputs
from s3rec_tf.serving.export import (FILL_ID, FILL_SCORE, MAX_SCORES_PER_REQUEST, MODEL_CARD,
                                     SIGNATURES, VOCABULARY_ASSET, WARMUP_FILE,
                                     export_serving_model, has_feature)

__all__ = ["FILL_ID", "FILL_SCORE", "MAX_SCORES_PER_REQUEST", "MODEL_CARD", "Recommender",
           "SIGNATURES", "VOCABULARY_ASSET", "WARMUP_FILE", "export_serving_model",
           "has_feature", "resolve_export_dir", "rest_to_signature_inputs"]
