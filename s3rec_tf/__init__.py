"""s3rec-tf: S3-Rec (Zhou et al., CIKM 2020) in Keras 3 / TensorFlow.

Self-supervised pretraining of a self-attentive sequential recommender with
four mutual-information objectives, then next-item fine-tuning.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"
