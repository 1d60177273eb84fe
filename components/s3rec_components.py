"""TFX components: they parse parameters and call the `s3rec_tf` library.

- `PrepareData` (Beam): raw data -> prepared TFRecords + vocabularies.
- `Pretrain`: S3-Rec pretraining -> a pretrained `Model`.
- `Finetune`: next-item fine-tuning from `base_model` (the pretrained model,
  so ML Metadata links each fine-tuned model to its base) -> a `Model` with
  the library's model under `model/` and the serving SavedModel under
  `Format-Serving/` (what the standard `Pusher` ships).
- `RankingEvaluator`: full and sampled ranking on the test split -> a
  `ModelEvaluation` (readable `metrics.json`) and a `ModelBlessing`.
"""


import json
import os
import time

import apache_beam as beam
from tfx import v1 as tfx
from tfx.dsl.component.experimental.annotations import (BeamComponentParameter,
                                                        InputArtifact, OutputArtifact,
                                                        Parameter)
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

Examples = standard_artifacts.Examples
Model = standard_artifacts.Model
ModelEvaluation = standard_artifacts.ModelEvaluation
ModelBlessing = standard_artifacts.ModelBlessing

MODEL_SUBDIR = "model"


def _progress(name, message):
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {message}", flush=True)


@component(use_beam=True)
def PrepareData(
    input_dir: Parameter[str],
    name: Parameter[str],
    examples: OutputArtifact[Examples],
    input_format: Parameter[str] = "s3rec",
    k_core: Parameter[int] = 0,
    strict: Parameter[int] = 0,
    seed: Parameter[int] = 0,
    input_fingerprint: Parameter[str] = "",
    beam_pipeline: BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    """Beam preprocessing (`s3rec_tf.data.preprocess`) into `examples.uri`.

    `input_fingerprint` (sizes and times of the input files, computed by the
    runner) makes a changed input invalidate the cache.
    """
    from s3rec_tf.data import preprocess
    start = time.time()
    _progress("PrepareData", f"{input_format} data {name!r} from {input_dir}")
    config = preprocess.PrepareConfig(input_format=input_format, name=name, k_core=k_core,
                                      strict=bool(strict), seed=seed)
    with beam_pipeline as pipeline:
        preprocess.build_pipeline(pipeline, input_dir, examples.uri, config)
    with open(os.path.join(examples.uri, "stats.json")) as f:
        stats = json.load(f)
    examples.set_string_custom_property("dataset", name)
    examples.set_int_custom_property("num_users", stats["users"])
    examples.set_int_custom_property("num_items", stats["items"])
    _progress("PrepareData", f"{stats['users']} users, {stats['items']} items, "
                             f"{stats['interactions']} interactions "
                             f"({stats['malformed_interactions']} malformed rows dropped) "
                             f"in {time.time() - start:.1f}s")


def _configs(hyperparameters: str, run_config, component: str):
    """Parses the `hyperparameters` JSON; an unknown or misspelt key is an error naming it."""
    from s3rec_tf import config
    source = f"{component}.hyperparameters"
    try:
        params = json.loads(hyperparameters or "{}")
    except json.JSONDecodeError as e:
        raise config.ConfigError(None, hyperparameters, f"not JSON ({e})", source=source)
    return config.configs_from_mapping((config.EncoderConfig, run_config), params, source)


@component
def Pretrain(
    examples: InputArtifact[Examples],
    model: OutputArtifact[Model],
    hyperparameters: Parameter[str] = "{}",
) -> None:
    """S3-Rec pretraining (`s3rec_tf.training.run_pretraining`).

    `hyperparameters` is a JSON object of `EncoderConfig` and `PretrainConfig`
    fields (paper defaults for the rest).
    """
    from s3rec_tf import training
    from s3rec_tf.data.preprocess import read_prepared
    enc, config = _configs(hyperparameters, training.PretrainConfig, "Pretrain")
    data = read_prepared(examples.uri)
    _progress("Pretrain", f"{config.epochs} epochs on {data.name}")
    summary = training.run_pretraining(data, os.path.join(model.uri, MODEL_SUBDIR), enc, config,
                                       verbose=1)
    model.set_string_custom_property("kind", "pretrained")
    model.set_float_custom_property("wall_time_s", summary["wall_time_s"])


@component
def Finetune(
    examples: InputArtifact[Examples],
    model: OutputArtifact[Model],
    base_model: InputArtifact[Model] = None,
    hyperparameters: Parameter[str] = "{}",
    default_k: Parameter[int] = 10,
) -> None:
    """Next-item fine-tuning (`s3rec_tf.training.run_finetuning`) from `base_model`.

    Writes the fine-tuned model (with `best/`, `metrics.json`) under
    `model/` and the serving SavedModel under `Format-Serving/`.
    """
    from s3rec_tf import serving, training
    from s3rec_tf.data.preprocess import read_prepared
    enc, config = _configs(hyperparameters, training.FinetuneConfig, "Finetune")
    data = read_prepared(examples.uri)
    pretrained = os.path.join(base_model.uri, MODEL_SUBDIR) if base_model else None
    _progress("Finetune", f"up to {config.epochs} epochs, loss {config.loss}, from "
                          f"{pretrained or 'scratch'}")
    out = os.path.join(model.uri, MODEL_SUBDIR)
    summary = training.run_finetuning(data, out, pretrained, enc, config, verbose=1)
    serving.export_serving_model(os.path.join(out, "best"), None,
                                 vocabulary=data.item_vocabulary, default_k=default_k,
                                 target_dir=os.path.join(model.uri, "Format-Serving"))
    model.set_string_custom_property("kind", "finetuned")
    model.set_int_custom_property("best_epoch", summary["best_epoch"])
    _progress("Finetune", f"best epoch {summary['best_epoch']}; serving export in "
                          f"{os.path.join(model.uri, 'Format-Serving')}")


@component
def RankingEvaluator(
    examples: InputArtifact[Examples],
    model: InputArtifact[Model],
    evaluation: OutputArtifact[ModelEvaluation],
    blessing: OutputArtifact[ModelBlessing],
    baseline_model: InputArtifact[Model] = None,
    thresholds: Parameter[str] = "{}",
    compare_metric: Parameter[str] = "test/full/NDCG@10",
) -> None:
    """Full and sampled ranking on validation and test; blesses or not.

    Blessed when every threshold (`{"test/full/NDCG@10": 0.01, ...}`, minimum
    values) is met and `compare_metric` is not below the baseline's (the last
    blessed model, evaluated on the same data), when there is one.
    """
    from s3rec_tf import artifacts
    from s3rec_tf.data.preprocess import read_prepared
    from s3rec_tf.evaluation_gate import bless, flatten
    from s3rec_tf.training import evaluate_model
    data = read_prepared(examples.uri)

    def metrics_of(artifact):
        loaded, _ = artifacts.load_next_item_model(
            os.path.join(artifact.uri, MODEL_SUBDIR, "best"))
        return flatten(evaluate_model(loaded, data))

    current = metrics_of(model)
    baseline = metrics_of(baseline_model) if baseline_model else None
    decision = bless(current, json.loads(thresholds or "{}"), compare_metric, baseline)
    report = {"model": model.uri, "metrics": current, "baseline_model":
              baseline_model.uri if baseline_model else None, "baseline_metrics": baseline,
              **decision}
    with open(os.path.join(evaluation.uri, "metrics.json"), "w") as f:
        json.dump(report, f, indent=2, sort_keys=True)
    blessing.set_int_custom_property("blessed", int(decision["blessed"]))
    blessing.set_string_custom_property("current_model", model.uri)
    blessing.set_int_custom_property("current_model_id", model.id)
    if baseline_model:
        blessing.set_int_custom_property("baseline_model_id", baseline_model.id)
    open(os.path.join(blessing.uri, "BLESSED" if decision["blessed"] else "NOT_BLESSED"),
         "w").close()
    _progress("RankingEvaluator", ("BLESSED" if decision["blessed"] else "NOT BLESSED") +
              f" ({'; '.join(decision['reasons']) or 'all checks passed'}); "
              f"{compare_metric}={current.get(compare_metric, float('nan')):.4f}")


__all__ = ["PrepareData", "Pretrain", "Finetune", "RankingEvaluator", "tfx"]
