"""Compiles the same pipeline to a Kubeflow Pipelines V2 / Vertex AI spec (JSON).

    python pipeline/kubeflow_v2_runner.py --output pipeline.json \\
        --image gcr.io/PROJECT/s3rec-tf:latest --pipeline-root gs://BUCKET/root \\
        --data-dir gs://BUCKET/data --dataset Beauty --serving-dir gs://BUCKET/serving

Submit the JSON with the Vertex AI SDK (`aiplatform.PipelineJob(template_path=...)`)
or the KFP client. The Beam components (ExampleGen, StatisticsGen, PrepareSequences) can
run on Dataflow
with `--beam-arg=--runner=DataflowRunner --beam-arg=--project=P
--beam-arg=--region=R --beam-arg=--temp_location=gs://BUCKET/tmp` (the image
must contain this repository: `pip install -r requirements.txt -e .`).

Several training workers: `--training-workers N` (N > 1) runs both Trainers as
Vertex AI custom jobs (TFX's Vertex training executor) with N replicas of
`--image`: a chief (worker pool 0) and N - 1 workers (pool 1), each
`--machine-type`, in `--project` / `--region`; the Trainers train with
`{"strategy": "multi-worker"}` (Vertex sets each replica's `TF_CONFIG`). The
`batch_size` hyperparameter is then per worker: the global batch is
`batch_size x N`.
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if sys.path[:1] != [ROOT]:  # first: the tfx CLI puts pipeline/ (holding pipeline.py) first
    sys.path.insert(0, ROOT)

from s3rec_tf import quiet  # noqa: E402

quiet.install()  # before TFX is imported: its import prints a library notice

from tfx import v1 as tfx  # noqa: E402

from pipeline import configs  # noqa: E402
from pipeline.pipeline import create_pipeline  # noqa: E402


def worker_pool_specs(image: str, workers: int, machine_type: str) -> list:
    """Vertex AI worker pools of `workers` replicas: the chief, then the other workers."""
    if workers < 1:
        raise ValueError(f"`workers` must be >= 1. Received: {workers}")
    pool = {"machine_spec": {"machine_type": machine_type},
            "container_spec": {"image_uri": image}}
    pools = [{**pool, "replica_count": 1}]
    if workers > 1:
        pools.append({**pool, "replica_count": workers - 1})
    return pools


def compile_pipeline(output: str, image: str, pipeline_root: str, data_dir: str, dataset: str,
                     serving_dir: str, beam_args: list | None = None,
                     input_format: str = configs.INPUT_FORMAT,
                     enable_tuner: bool = configs.ENABLE_TUNER, training_workers: int = 1,
                     project: str = configs.VERTEX_PROJECT, region: str = configs.VERTEX_REGION,
                     machine_type: str = configs.TRAINING_MACHINE_TYPE) -> str:
    """Writes the pipeline spec; the input files are named, not looked up (remote bucket).

    `training_workers` > 1: both Trainers run on Vertex AI with that many
    replicas and the `multi-worker` strategy (see the module doc).
    """
    from pipeline.pipeline import input_files
    pretrain, finetune = dict(configs.PRETRAIN_HPARAMS), dict(configs.FINETUNE_HPARAMS)
    vertex = None
    if training_workers > 1:
        pretrain["strategy"] = finetune["strategy"] = "multi-worker"
        vertex = {"project": project, "region": region,
                  "worker_pool_specs": worker_pool_specs(image, training_workers, machine_type)}
    pipeline = create_pipeline(
        pipeline_name=configs.PIPELINE_NAME, pipeline_root=pipeline_root, data_dir=data_dir,
        dataset=dataset, serving_dir=serving_dir, input_format=input_format,
        files=input_files(data_dir, dataset, input_format, check=False),
        k_core=configs.K_CORE, seed=configs.NEGATIVES_SEED, schema_path=configs.SCHEMA_PATH,
        pretrain_hparams=pretrain, finetune_hparams=finetune, vertex_training=vertex,
        enable_tuner=enable_tuner, tuner_config=configs.TUNER_CONFIG,
        thresholds=configs.THRESHOLDS, compare_metric=configs.COMPARE_METRIC,
        enable_batch_recommendations=configs.ENABLE_BATCH_RECOMMENDATIONS,
        batch_recommendations=configs.BATCH_RECOMMENDATIONS,
        beam_pipeline_args=beam_args or [])
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=os.path.dirname(os.path.abspath(output)),
        output_filename=os.path.basename(output))
    runner.run(pipeline, write_out=True)
    return output


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="pipeline.json")
    parser.add_argument("--image", default="s3rec-tf:latest")
    parser.add_argument("--pipeline-root", default="gs://YOUR_BUCKET/s3rec-tf")
    parser.add_argument("--data-dir", default="gs://YOUR_BUCKET/data")
    parser.add_argument("--dataset", default=configs.DATASET)
    parser.add_argument("--serving-dir", default="gs://YOUR_BUCKET/serving")
    parser.add_argument("--input-format", default=configs.INPUT_FORMAT)
    parser.add_argument("--tuner", action="store_true", default=configs.ENABLE_TUNER)
    parser.add_argument("--beam-arg", action="append", default=[], dest="beam_args")
    parser.add_argument("--training-workers", type=int, default=1,
                        help="replicas of each Trainer on Vertex AI (> 1: multi-worker)")
    parser.add_argument("--project", default=configs.VERTEX_PROJECT,
                        help="Google Cloud project of the Vertex AI training jobs")
    parser.add_argument("--region", default=configs.VERTEX_REGION)
    parser.add_argument("--machine-type", default=configs.TRAINING_MACHINE_TYPE)
    args = parser.parse_args(argv)
    if args.training_workers < 1:
        parser.error(f"argument --training-workers: must be >= 1. Received: "
                     f"{args.training_workers}")
    compile_pipeline(args.output, args.image, args.pipeline_root, args.data_dir, args.dataset,
                     args.serving_dir, args.beam_args, args.input_format, args.tuner,
                     args.training_workers, args.project, args.region, args.machine_type)
    print(f"Wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
