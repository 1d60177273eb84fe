"""The s3rec-tf TFX pipeline: prepare -> pretrain -> fine-tune -> evaluate -> push."""

from __future__ import annotations

import json

from tfx import v1 as tfx

from components.s3rec_components import Finetune, Pretrain, PrepareData, RankingEvaluator


def create_pipeline(pipeline_name: str, pipeline_root: str, data_dir: str, dataset: str,
                    serving_dir: str, input_format: str = "s3rec", k_core: int = 0,
                    input_fingerprint: str = "", pretrain_hparams: dict | None = None,
                    finetune_hparams: dict | None = None, thresholds: dict | None = None,
                    compare_metric: str = "test/full/NDCG@10",
                    metadata_connection_config=None, beam_pipeline_args: list | None = None,
                    enable_cache: bool = True) -> tfx.dsl.Pipeline:
    """Builds the pipeline (pure: no I/O, no running).

    Args:
        pipeline_name: str.
        pipeline_root: str. Root of the pipeline's artifacts.
        data_dir: str. Directory of the raw data.
        dataset: str. Dataset name (file stem).
        serving_dir: str. Base directory the `Pusher` writes to
            (`<serving_dir>/<version>/saved_model.pb`).
        input_format: `s3rec`, `csv`, `parquet` or `recbole`.
        k_core: int. k-core filter in preprocessing (0: off).
        input_fingerprint: str. Changes when the input files change (cache key).
        pretrain_hparams / finetune_hparams: dict. Encoder and training
            hyperparameters (paper defaults for what is absent).
        thresholds: dict. Minimum metrics for the blessing.
        compare_metric: str. Must not regress against the last blessed model.
        metadata_connection_config: MLMD connection (the runner's choice).
        beam_pipeline_args: list. Beam options (runner, workers, ...).
        enable_cache: bool. Reuse outputs of unchanged steps.
    """
    prepare = PrepareData(input_dir=data_dir, name=dataset, input_format=input_format,
                          k_core=k_core, input_fingerprint=input_fingerprint)
    pretrain = Pretrain(examples=prepare.outputs["examples"],
                        hyperparameters=json.dumps(pretrain_hparams or {}, sort_keys=True))
    finetune = Finetune(examples=prepare.outputs["examples"],
                        base_model=pretrain.outputs["model"],
                        hyperparameters=json.dumps(finetune_hparams or {}, sort_keys=True))
    latest_blessed = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    evaluate = RankingEvaluator(examples=prepare.outputs["examples"],
                                model=finetune.outputs["model"],
                                baseline_model=latest_blessed.outputs["model"],
                                thresholds=json.dumps(thresholds or {}, sort_keys=True),
                                compare_metric=compare_metric)
    pusher = tfx.components.Pusher(
        model=finetune.outputs["model"], model_blessing=evaluate.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_dir)))
    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name, pipeline_root=pipeline_root,
        components=[prepare, pretrain, finetune, latest_blessed, evaluate, pusher],
        enable_cache=enable_cache, metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args or [])
