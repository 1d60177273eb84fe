"""Runs the pipeline locally with `LocalDagRunner` (MLMD in SQLite, Beam DirectRunner).

Used three ways:

- `python pipeline/local_runner.py [--data-dir DIR --dataset NAME ...]`;
- `tfx pipeline create --engine local --pipeline_path pipeline/local_runner.py`
  then `tfx run create --engine local --pipeline_name s3rec-tf` (settings
  from `pipeline/configs.py` and `S3REC_*` environment variables);
- `run(...)` from Python (tests).

Importing this file builds the pipeline and calls `LocalDagRunner().run`,
as the `tfx` CLI expects of a DSL file.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# First, even when PYTHONPATH already lists ROOT: this file's own directory
# (sys.path[0]) holds pipeline/pipeline.py, which would shadow the package.
sys.path.insert(0, ROOT)

import s3rec_tf  # noqa: E402,F401  (Keras backend, log level)
from s3rec_tf import quiet, runtime  # noqa: E402

quiet.install()  # before TFX is imported: its import prints a library notice

# Before TensorFlow loads: the settings of the pipeline's longest step, pretraining
# (no effect when TensorFlow is already running, e.g. under tests).
runtime.configure("pretrain")

from tfx import v1 as tfx  # noqa: E402

from pipeline import configs  # noqa: E402
from pipeline.pipeline import create_pipeline  # noqa: E402


def input_fingerprint(data_dir: str, dataset: str) -> str:
    """Sizes and modification times of the dataset's files."""
    digest = hashlib.sha256()
    for path in sorted(glob.glob(os.path.join(data_dir, f"{dataset}*"))):
        st = os.stat(path)
        digest.update(f"{os.path.basename(path)}:{st.st_size}:{st.st_mtime_ns};".encode())
    return digest.hexdigest()[:16]


def paths(local_root: str) -> dict:
    root = os.path.abspath(local_root)
    return {"pipeline_root": os.path.join(root, "tfx"),
            "metadata": os.path.join(root, "metadata.sqlite"),
            "serving": os.path.join(root, "serving")}


def build(local_root: str = configs.LOCAL_ROOT, data_dir: str = configs.DATA_DIR,
          dataset: str = configs.DATASET, **overrides) -> tfx.dsl.Pipeline:
    p = paths(local_root)
    kwargs = dict(
        pipeline_name=configs.PIPELINE_NAME, pipeline_root=p["pipeline_root"],
        data_dir=os.path.abspath(data_dir), dataset=dataset, serving_dir=p["serving"],
        input_format=configs.INPUT_FORMAT, k_core=configs.K_CORE,
        input_fingerprint=input_fingerprint(data_dir, dataset),
        pretrain_hparams=configs.PRETRAIN_HPARAMS, finetune_hparams=configs.FINETUNE_HPARAMS,
        thresholds=configs.THRESHOLDS, compare_metric=configs.COMPARE_METRIC,
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
    ensure_demo_data(data_dir, dataset)
    tfx.orchestration.LocalDagRunner().run(build(local_root, data_dir, dataset, **overrides))


def component_times(local_root: str = configs.LOCAL_ROOT) -> list:
    """`(component, state, seconds)` of every execution in ML Metadata, oldest first."""
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
    args = parser.parse_args(argv)
    if hasattr(tfx.orchestration.LocalDagRunner.run, "__wrapped__"):
        run()  # `tfx pipeline create` patched the runner: it only records the pipeline
        return 0
    pre = dict(configs.PRETRAIN_HPARAMS)
    fine = dict(configs.FINETUNE_HPARAMS)
    if args.pretrain_epochs is not None:
        pre["epochs"] = args.pretrain_epochs
    if args.finetune_epochs is not None:
        fine["epochs"] = args.finetune_epochs
    start = time.time()
    run(args.local_root, args.data_dir, args.dataset, input_format=args.input_format,
        k_core=args.k_core, pretrain_hparams=pre, finetune_hparams=fine)
    result = summary(args.local_root)
    print(f"\nPipeline finished in {time.time() - start:.0f}s. This run's components:")
    times = component_times(args.local_root)
    for name, state, seconds in times[-6:]:
        print(f"  {name:<18} {state:<9} {seconds:7.1f}s")
    if result["evaluation"]:
        ev = result["evaluation"]
        print("Blessed" if ev["blessed"] else f"Not blessed: {'; '.join(ev['reasons'])}")
        for key in ("test/full/HR@10", "test/full/NDCG@10", "test/sampled/HR@10",
                    "test/sampled/NDCG@10", "test/sampled/MRR"):
            print(f"  {key:<22} {ev['metrics'][key]:.4f}")
    print(f"Pushed model: {result['pushed'] or 'none (not blessed)'}")
    return 0


if __name__ == "__main__":
    # `tfx pipeline create` and `tfx run create` execute this file too.
    sys.exit(main())
