"""The s3rec-tf TFX pipeline, built from TFX's own components where they exist.

```
ExampleGen -> StatisticsGen -> SchemaGen | ImportSchemaGen -> ExampleValidator
   \\------------------------------------------------------------\\
                                            PrepareSequences (custom, Beam)
                 [Tuner (optional)] -----> Trainer (pretrain) -> Trainer (finetune, base_model)
                                              -> RankingEvaluator (custom) -> Pusher
                                latest blessed model (Resolver) ----^        |
                 [BatchRecommender (custom, Beam RunInference; optional)] <--+
```
"""

from __future__ import annotations

import json
import os

from tfx import v1 as tfx

from s3rec_tf import config as s3rec_config

#: `run_fn` / `tuner_fn` of the standard Trainer and Tuner.
TRAINER_MODULE = "components.trainer_module"
#: The schema of the project's own ExampleGen output (paper format, RecBole).
EVENTS_SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema",
                             "events.pbtxt")
#: ExampleGen splits that are not event logs (validated by the sequence step).
NON_EVENT_SPLITS = ["item_attributes", "negatives"]
#: The formats of `s3rec_tf.config.INPUT_FORMATS`, and TFRecords of tf.Examples.
INPUT_FORMATS = (*s3rec_config.INPUT_FORMATS, "tfrecord")


def input_files(data_dir: str, dataset: str, input_format: str, check: bool = True) -> dict:
    """`{split: file name}` for the ExampleGen (`s3rec_tf.data.preprocess` naming).

    With `check`, the first existing candidate of each split (optional
    splits left out when absent); without (e.g. compiling for a remote
    bucket), the first candidate of `events` and `item_attributes`.
    `tfrecord`: `<dataset>.tfrecord*` and `<dataset>_attributes.tfrecord*`.
    """
    import tensorflow as tf

    from s3rec_tf.data import preprocess
    if input_format == "tfrecord":
        candidates = {"events": [f"{dataset}.tfrecord*"],
                      "item_attributes": [f"{dataset}_attributes.tfrecord*"]}
    else:
        candidates = preprocess.input_file_names(dataset, input_format)
    if not check:
        return {s: c[0] for s, c in candidates.items() if s != "negatives"}
    files = {}
    for split, names in candidates.items():
        found = [n for n in names if tf.io.gfile.glob(os.path.join(data_dir, n))]
        if found:
            files[split] = found[0]
    if "events" not in files:
        from s3rec_tf.errors import DataError
        raise DataError(os.path.join(data_dir, candidates["events"][0]),
                        f"no event file for format {input_format!r} (looked for "
                        f"{candidates['events']})")
    return files


def example_gen(data_dir: str, files: dict, input_format: str):
    """The ExampleGen of a format: standard ones for CSV, TFRecord and Parquet."""
    from tfx.components.example_gen.custom_executors import parquet_executor
    from tfx.dsl.components.base import executor_spec

    from components.example_gen import EventFileExampleGen, input_config
    if input_format == "csv":
        return tfx.components.CsvExampleGen(input_base=data_dir,
                                            input_config=input_config(files))
    if input_format == "tfrecord":
        return tfx.components.ImportExampleGen(input_base=data_dir,
                                               input_config=input_config(files))
    if input_format == "parquet":
        return tfx.components.FileBasedExampleGen(
            input_base=data_dir, input_config=input_config(files),
            custom_executor_spec=executor_spec.BeamExecutorSpec(parquet_executor.Executor))
    if input_format in ("s3rec", "recbole"):
        return EventFileExampleGen(data_dir, files)
    raise ValueError(f"`input_format` must be one of {INPUT_FORMATS}. Received: "
                     f"{input_format!r}")


def vertex_config(project: str, region: str, worker_pool_specs: list) -> dict:
    """The `custom_config` keys of TFX's Vertex AI Trainer for one custom job."""
    ext = tfx.extensions.google_cloud_ai_platform
    return {ext.ENABLE_VERTEX_KEY: True, ext.VERTEX_REGION_KEY: region,
            ext.TRAINING_ARGS_KEY: {"project": project, "worker_pool_specs": worker_pool_specs}}


def create_pipeline(pipeline_name: str, pipeline_root: str, data_dir: str, dataset: str,
                    serving_dir: str, input_format: str = "s3rec", k_core: int = 0,
                    seed: int = 0, files: dict | None = None, schema_path: str | None = None,
                    pretrain_hparams: dict | None = None,
                    finetune_hparams: dict | None = None, enable_tuner: bool = False,
                    tuner_config: dict | None = None, thresholds: dict | None = None,
                    compare_metric: str = "test/full/NDCG@10", default_k: int = 10,
                    metadata_connection_config=None, beam_pipeline_args: list | None = None,
                    enable_cache: bool = True, enable_batch_recommendations: bool = False,
                    batch_recommendations: dict | None = None,
                    vertex_training: dict | None = None) -> tfx.dsl.Pipeline:
    """Builds the pipeline (no running; reads nothing but the names of the input files).

    Args:
        pipeline_name: str.
        pipeline_root: str. Root of the pipeline's artifacts.
        data_dir: str. Directory of the raw data (the ExampleGen's `input_base`).
        dataset: str. Dataset name (file stem).
        serving_dir: str. Base directory the `Pusher` writes to
            (`<serving_dir>/<version>/saved_model.pb`).
        input_format: `s3rec`, `recbole`, `csv`, `parquet` or `tfrecord`.
        k_core: int. k-core filter of the sequence step (0: off).
        seed: int. Seed of the drawn negatives (when there is no sample file).
        files: `{split: file name}`; default `input_files(data_dir, ...)`.
        schema_path: a schema (`.pbtxt`) for `ImportSchemaGen`; default the
            project's `EVENTS_SCHEMA` for `s3rec`/`recbole`, `SchemaGen`
            (inferred) for the others.
        pretrain_hparams / finetune_hparams: dict. Encoder and training
            hyperparameters (paper defaults for what is absent; an unknown key
            is an error naming it).
        enable_tuner: bool. Adds the standard `Tuner`; its best values feed
            both Trainers.
        tuner_config: dict. The Tuner's `custom_config` (`search_space`,
            `max_trials`, `seed`, `pretrain` / `finetune` of each trial).
        thresholds: dict. Minimum metrics for the blessing.
        compare_metric: str. Must not regress against the last blessed model.
        default_k: int. `k` of the serving signature.
        metadata_connection_config: MLMD connection (the runner's choice).
        beam_pipeline_args: list. Beam options (runner, workers, ...).
        enable_cache: bool. Reuse outputs of unchanged steps.
        enable_batch_recommendations: bool. Adds `BatchRecommender`: every
            user's top-k from the pushed model (`s3rec_tf.batch`).
        batch_recommendations: dict. Its parameters, `k` and `index`
            (`brute` | `scann`); an unknown key is an error.
        vertex_training: dict | None. Run both Trainers as Vertex AI custom
            jobs (TFX's Vertex training executor): `project`, `region` and
            `worker_pool_specs` (a Vertex `CustomJob`'s pools; pool 0 is the
            chief, pool 1 the other workers). With several replicas, give the
            Trainers `{"strategy": "multi-worker"}` (see
            `pipeline/kubeflow_v2_runner.py --training-workers`).
    """
    from s3rec_tf import hparams

    from components.prepare_sequences import PrepareSequences
    from components.ranking_evaluator import RankingEvaluator

    pretrain_hparams = dict(pretrain_hparams or {})
    finetune_hparams = dict(finetune_hparams or {})
    hparams.check(pretrain_hparams, "pretrain")
    hparams.check(finetune_hparams, "finetune")
    files = files or input_files(data_dir, dataset, input_format)

    gen = example_gen(data_dir, files, input_format)
    statistics = tfx.components.StatisticsGen(examples=gen.outputs["examples"])
    schema_path = schema_path or (EVENTS_SCHEMA if input_format in ("s3rec", "recbole")
                                  else None)
    if schema_path:
        schema = tfx.components.ImportSchemaGen(schema_file=schema_path)
    else:
        schema = tfx.components.SchemaGen(statistics=statistics.outputs["statistics"],
                                          exclude_splits=NON_EVENT_SPLITS)
    validator = tfx.components.ExampleValidator(statistics=statistics.outputs["statistics"],
                                                schema=schema.outputs["schema"],
                                                exclude_splits=NON_EVENT_SPLITS)
    prepare = PrepareSequences(examples=gen.outputs["examples"],
                               statistics=statistics.outputs["statistics"],
                               anomalies=validator.outputs["anomalies"], dataset=dataset,
                               input_format=input_format,
                               k_core=k_core, seed=seed)
    prepared = prepare.outputs["prepared"]
    split_args = dict(train_args=tfx.proto.TrainArgs(splits=["sequences"]),
                      eval_args=tfx.proto.EvalArgs(splits=["sequences"]))
    components = [gen, statistics, schema, validator, prepare]

    tuned = None
    if enable_tuner:
        config = {"pretrain": pretrain_hparams, "finetune": finetune_hparams,
                  **(tuner_config or {})}
        unknown = sorted(set(config) - {"pretrain", "finetune", "search_space", "max_trials",
                                        "seed"})
        if unknown:
            raise ValueError(f"unknown tuner_config key(s) {unknown}")
        hparams.check(config["pretrain"], "pretrain")
        hparams.check(config["finetune"], "finetune")
        tuner = tfx.components.Tuner(tuner_fn=f"{TRAINER_MODULE}.tuner_fn", examples=prepared,
                                     custom_config=config, **split_args)
        tuned = tuner.outputs["best_hyperparameters"]
        components.append(tuner)

    trainer, on_vertex = tfx.components.Trainer, {}
    if vertex_training:
        trainer, on_vertex = tfx.extensions.google_cloud_ai_platform.Trainer, vertex_config(
            **vertex_training)
    pretrain = trainer(
        run_fn=f"{TRAINER_MODULE}.run_fn", examples=prepared, hyperparameters=tuned,
        custom_config={"job": "pretrain", "hyperparameters": pretrain_hparams, **on_vertex},
        **split_args).with_id("PretrainTrainer")
    finetune = trainer(
        run_fn=f"{TRAINER_MODULE}.run_fn", examples=prepared, hyperparameters=tuned,
        base_model=pretrain.outputs["model"],
        custom_config={"job": "finetune", "hyperparameters": finetune_hparams,
                       "default_k": default_k, **on_vertex},
        **split_args).with_id("FinetuneTrainer")
    latest_blessed = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    evaluate = RankingEvaluator(examples=prepared, model=finetune.outputs["model"],
                                baseline_model=latest_blessed.outputs["model"],
                                thresholds=json.dumps(thresholds or {}, sort_keys=True),
                                compare_metric=compare_metric,
                                # the rule fine-tuning validates with ranks the test too
                                history_rule=hparams.configs(finetune_hparams,
                                                             "finetune")[1].history_rule)
    pusher = tfx.components.Pusher(
        model=finetune.outputs["model"], model_blessing=evaluate.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_dir)))
    components += [pretrain, finetune, latest_blessed, evaluate, pusher]
    if enable_batch_recommendations:
        from components.batch_recommender import BatchRecommender
        settings = dict(batch_recommendations or {})
        unknown = sorted(set(settings) - {"k", "index"})
        if unknown:
            raise ValueError(f"unknown batch_recommendations key(s) {unknown}")
        components.append(BatchRecommender(examples=prepared,
                                           pushed_model=pusher.outputs["pushed_model"],
                                           **settings))
    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name, pipeline_root=pipeline_root, components=components,
        enable_cache=enable_cache, metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args or [])
