"""TFX components of the s3rec-tf pipeline: thin wrappers around `s3rec_tf`."""
