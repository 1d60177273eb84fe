"""Runs the pipeline locally with `LocalDagRunner` (MLMD in SQLite, Beam DirectRunner).

Used three ways:

- `python pipeline/local_runner.py [--data-dir DIR --dataset NAME ...]`;
- `tfx pipeline create --engine local --pipeline_path pipeline/local_runner.py`
  then `tfx run create --engine local --pipeline_name s3rec-tf` (the `tfx`
  CLI executes this file as `__main__`; settings from `pipeline/configs.py`,
  or from a JSON file named by `S3REC_PIPELINE_SETTINGS`, since the CLI
  passes no arguments);
- `run(...)` from Python (tests).

Importing this file has no side effects: it defines constants and functions.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if sys.path[:1] != [ROOT]:  # first: the tfx CLI puts pipeline/ (holding pipeline.py) first
    sys.path.insert(0, ROOT)

from pipeline import configs  # noqa: E402

#: A JSON file of `run` keywords (`local_root`, `data_dir`, `dataset` and those of
#: `create_pipeline`), for the `tfx` CLI, which passes no arguments.
SETTINGS_ENV = "S3REC_PIPELINE_SETTINGS"


def paths(local_root: str) -> dict:
    root = os.path.abspath(local_root)
    return {"pipeline_root": os.path.join(root, "tfx"),
            "metadata": os.path.join(root, "metadata.sqlite"),
            "serving": os.path.join(root, "serving")}


def build(local_root: str = configs.LOCAL_ROOT, data_dir: str = configs.DATA_DIR,
          dataset: str = configs.DATASET, **overrides):
    """The pipeline with `configs` values, `overrides` (keywords of `create_pipeline`) on top."""
    from tfx import v1 as tfx

    from pipeline.pipeline import create_pipeline
    p = paths(local_root)
    kwargs = dict(
        pipeline_name=configs.PIPELINE_NAME, pipeline_root=p["pipeline_root"],
        data_dir=os.path.abspath(data_dir), dataset=dataset, serving_dir=p["serving"],
        input_format=configs.INPUT_FORMAT, k_core=configs.K_CORE, seed=configs.NEGATIVES_SEED,
        schema_path=configs.SCHEMA_PATH, pretrain_hparams=configs.PRETRAIN_HPARAMS,
        finetune_hparams=configs.FINETUNE_HPARAMS, enable_tuner=configs.ENABLE_TUNER,
        tuner_config=configs.TUNER_CONFIG, thresholds=configs.THRESHOLDS,
        compare_metric=configs.COMPARE_METRIC,
        enable_batch_recommendations=configs.ENABLE_BATCH_RECOMMENDATIONS,
        batch_recommendations=configs.BATCH_RECOMMENDATIONS,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            p["metadata"]),
        beam_pipeline_args=configs.BEAM_ARGS)
    kwargs.update(overrides)
    return create_pipeline(**kwargs)


def ensure_demo_data(data_dir: str, dataset: str) -> None:
    """Writes the embedded synthetic dataset when the default demo data is absent."""
    if dataset == "Synthetic" and not os.path.exists(os.path.join(data_dir, "Synthetic.txt")):
        from s3rec_tf.data import synthetic
        seqs, attrs = synthetic.generate(num_users=1000, num_items=500, seed=0)
        synthetic.write(data_dir, seqs, attrs, "Synthetic")


def run(local_root: str = configs.LOCAL_ROOT, data_dir: str = configs.DATA_DIR,
        dataset: str = configs.DATASET, **overrides) -> None:
    """Builds the pipeline and runs it with `LocalDagRunner` (the demo data written first)."""
    from tfx import v1 as tfx
    ensure_demo_data(data_dir, dataset)
    tfx.orchestration.LocalDagRunner().run(build(local_root, data_dir, dataset, **overrides))


def component_times(local_root: str = configs.LOCAL_ROOT) -> list:
    """`(component type, state, seconds)` of every execution in ML Metadata, oldest first."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = paths(local_root)["metadata"]
    store = metadata_store.MetadataStore(config)
    types = {t.id: t.name.split(".")[-1] for t in store.get_execution_types()}
    states = metadata_store_pb2.Execution.State.Name
    return [(types[e.type_id], states(e.last_known_state),
             (e.last_update_time_since_epoch - e.create_time_since_epoch) / 1000.0)
            for e in sorted(store.get_executions(), key=lambda e: e.id)]


def summary(local_root: str = configs.LOCAL_ROOT) -> dict:
    """The newest pushed model and the metrics of its evaluation."""
    p = paths(local_root)
    versions = sorted((int(v) for v in os.listdir(p["serving"]) if v.isdigit())) \
        if os.path.isdir(p["serving"]) else []
    evaluations = sorted(glob.glob(os.path.join(p["pipeline_root"], "RankingEvaluator",
                                                "evaluation", "*", "metrics.json")),
                         key=lambda f: int(f.split(os.sep)[-2]))
    metrics = json.load(open(evaluations[-1])) if evaluations else None
    return {"pushed": os.path.join(p["serving"], str(versions[-1])) if versions else None,
            "evaluation": metrics}


def settings_from_env() -> dict:
    """`run` keywords from the JSON file named by `S3REC_PIPELINE_SETTINGS` ({} without)."""
    path = os.environ.get(SETTINGS_ENV)
    if not path:
        return {}
    with open(path) as f:
        return json.load(f)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--local-root", default=configs.LOCAL_ROOT)
    parser.add_argument("--data-dir", default=configs.DATA_DIR)
    parser.add_argument("--dataset", default=configs.DATASET)
    parser.add_argument("--input-format", default=configs.INPUT_FORMAT)
    parser.add_argument("--k-core", type=int, default=configs.K_CORE)
    parser.add_argument("--pretrain-epochs", type=int)
    parser.add_argument("--finetune-epochs", type=int)
    parser.add_argument("--tuner", action="store_true", default=configs.ENABLE_TUNER,
                        help="add the Tuner (its best values feed both Trainers)")
    args = parser.parse_args(argv)
    from s3rec_tf import quiet, runtime
    quiet.install()  # before TFX is imported: its import prints a library notice
    # Before TensorFlow loads: the settings of the pipeline's longest step,
    # pretraining (no effect when TensorFlow is already running).
    runtime.configure("pretrain")
    pre = dict(configs.PRETRAIN_HPARAMS)
    fine = dict(configs.FINETUNE_HPARAMS)
    if args.pretrain_epochs is not None:
        pre["epochs"] = args.pretrain_epochs
    if args.finetune_epochs is not None:
        fine["epochs"] = args.finetune_epochs
    settings = {"local_root": args.local_root, "data_dir": args.data_dir,
                "dataset": args.dataset, "input_format": args.input_format,
                "k_core": args.k_core, "pretrain_hparams": pre, "finetune_hparams": fine,
                "enable_tuner": args.tuner, **settings_from_env()}
    from tfx import v1 as tfx
    if hasattr(tfx.orchestration.LocalDagRunner.run, "__wrapped__"):
        run(**settings)  # `tfx pipeline create` patched the runner: it only records
        return 0
    start = time.time()
    run(**settings)
    local_root = settings["local_root"]
    result = summary(local_root)
    print(f"\nPipeline finished in {time.time() - start:.0f}s. This run's components:")
    times = component_times(local_root)
    for name, state, seconds in times[-(12 if args.tuner else 11):]:
        print(f"  {name:<30} {state:<9} {seconds:7.1f}s")
    if result["evaluation"]:
        ev = result["evaluation"]
        print("Blessed" if ev["blessed"] else f"Not blessed: {'; '.join(ev['reasons'])}")
        print(f"  negatives: {ev.get('negatives')}")
        for key in ("test/full/HR@10", "test/full/NDCG@10", "test/sampled/HR@10",
                    "test/sampled/NDCG@10", "test/sampled/MRR"):
            print(f"  {key:<22} {ev['metrics'][key]:.4f}")
    print(f"Pushed model: {result['pushed'] or 'none (not blessed)'}")
    return 0


if __name__ == "__main__":
    # `python pipeline/local_runner.py`, and the `tfx` CLI: `tfx pipeline create`
    # executes this file as `__main__` with a recording runner, `tfx run create`
    # runs it as a script.
    sys.exit(main())
