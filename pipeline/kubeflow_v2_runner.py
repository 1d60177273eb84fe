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


def compile_pipeline(output: str, image: str, pipeline_root: str, data_dir: str, dataset: str,
                     serving_dir: str, beam_args: list | None = None,
                     input_format: str = configs.INPUT_FORMAT,
                     enable_tuner: bool = configs.ENABLE_TUNER) -> str:
    """Writes the pipeline spec; the input files are named, not looked up (remote bucket)."""
    from pipeline.pipeline import input_files
    pipeline = create_pipeline(
        pipeline_name=configs.PIPELINE_NAME, pipeline_root=pipeline_root, data_dir=data_dir,
        dataset=dataset, serving_dir=serving_dir, input_format=input_format,
        files=input_files(data_dir, dataset, input_format, check=False),
        k_core=configs.K_CORE, seed=configs.NEGATIVES_SEED, schema_path=configs.SCHEMA_PATH,
        pretrain_hparams=configs.PRETRAIN_HPARAMS, finetune_hparams=configs.FINETUNE_HPARAMS,
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
    args = parser.parse_args(argv)
    compile_pipeline(args.output, args.image, args.pipeline_root, args.data_dir, args.dataset,
                     args.serving_dir, args.beam_args, args.input_format, args.tuner)
    print(f"Wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
