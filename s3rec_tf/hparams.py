"""Hyperparameters as plain dicts (pipeline configuration, Tuner) -> config dataclasses.

A key that is not a field of the encoder or the job's config is an error
naming it: `{"epoch": 50}` does not silently train for the default epochs.
"""

from __future__ import annotations

import dataclasses

JOBS = ("pretrain", "finetune")


def _config_classes(job: str):
    from s3rec_tf.training import EncoderConfig, FinetuneConfig, PretrainConfig
    if job not in JOBS:
        raise ValueError(f"`job` must be one of {JOBS}. Received: {job!r}")
    return EncoderConfig, PretrainConfig if job == "pretrain" else FinetuneConfig


def known_keys(job: str) -> list:
    encoder_cls, job_cls = _config_classes(job)
    return sorted({f.name for f in dataclasses.fields(encoder_cls)} |
                  {f.name for f in dataclasses.fields(job_cls)})


def check(params: dict, job: str) -> None:
    """Raises `ValueError` naming every key of `params` that `job` does not know."""
    unknown = sorted(set(params) - set(known_keys(job)))
    if unknown:
        raise ValueError(f"unknown {job} hyperparameter(s) {unknown}; known: {known_keys(job)}")


def configs(params: dict | None, job: str):
    """`(EncoderConfig, PretrainConfig | FinetuneConfig)` of a flat dict (defaults elsewhere)."""
    params = dict(params or {})
    check(params, job)
    encoder_cls, job_cls = _config_classes(job)
    encoder_fields = {f.name for f in dataclasses.fields(encoder_cls)}
    return (encoder_cls(**{k: v for k, v in params.items() if k in encoder_fields}),
            job_cls(**{k: v for k, v in params.items() if k not in encoder_fields}))
