"""Hyperparameters of one training job as a flat dict (pipeline configuration, Tuner).

A thin view of `s3rec_tf.config` by job name: the fields, defaults, ranges and
the unknown-key rule all live there. A key that is not a field of the encoder
or the job's config is an error naming it: `{"epoch": 50}` does not silently
train for the default epochs.
"""

from __future__ import annotations

import dataclasses

from s3rec_tf import config

JOBS = ("pretrain", "finetune")


def config_classes(job: str) -> tuple:
    """`(EncoderConfig, PretrainConfig | FinetuneConfig)` of `job`."""
    if job not in JOBS:
        raise ValueError(f"`job` must be one of {JOBS}. Received: {job!r}")
    return config.EncoderConfig, (config.PretrainConfig if job == "pretrain"
                                  else config.FinetuneConfig)


def known_keys(job: str) -> list:
    """The hyperparameter names `job` accepts."""
    return sorted({f.name for cls in config_classes(job) for f in dataclasses.fields(cls)})


def configs(params: dict | None, job: str, source: str | None = None) -> tuple:
    """`(EncoderConfig, job config)` of a flat dict; unknown keys and bad values are errors.

    Raises:
        ConfigError: (a `ValueError`) naming the unknown key or the bad value.
    """
    return config.configs_from_mapping(config_classes(job), dict(params or {}),
                                       source or f"{job} hyperparameters")


def check(params: dict, job: str, source: str | None = None) -> None:
    """Raises `ConfigError` if `params` holds a key or value `job` does not accept."""
    configs(params, job, source)
