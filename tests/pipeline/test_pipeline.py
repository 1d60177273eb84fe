"""End to end: the TFX pipeline on a tiny fixture with LocalDagRunner and the tfx CLI."""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY_PRE = {"epochs": 1, "hidden_size": 16, "max_length": 20, "save_every": 0}
TINY_FINE = {"epochs": 2, "hidden_size": 16, "max_length": 20}


@pytest.fixture(scope="module")
def tiny_raw(tmp_path_factory):
    from s3rec_tf.data import synthetic
    d = tmp_path_factory.mktemp("raw")
    seqs, attrs = synthetic.generate(num_users=150, num_items=200, num_topics=8,
                                     num_attributes=20, max_length=20, seed=5)
    synthetic.write(str(d), seqs, attrs, "Synthetic")
    return str(d)


def _executions(metadata_path):
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    store = metadata_store.MetadataStore(config)
    types = {t.id: t.name for t in store.get_execution_types()}
    return store, [(types[e.type_id].split(".")[-1], e) for e in store.get_executions()]


@pytest.fixture(scope="module")
def pipeline_runs(tiny_raw, tmp_path_factory):
    from pipeline import local_runner
    root = str(tmp_path_factory.mktemp("pipeline"))
    kwargs = dict(pretrain_hparams=TINY_PRE, finetune_hparams=TINY_FINE, thresholds={})
    local_runner.run(root, tiny_raw, "Synthetic", **kwargs)
    first = local_runner.summary(root)
    local_runner.run(root, tiny_raw, "Synthetic", **kwargs)
    return root, first


def test_every_component_ran_and_the_model_was_pushed(pipeline_runs):
    from ml_metadata.proto import metadata_store_pb2
    from pipeline import local_runner
    root, first = pipeline_runs
    _, executions = _executions(local_runner.paths(root)["metadata"])
    first_run = {}
    for name, e in executions:
        first_run.setdefault(name, e)
    for name in ("PrepareData", "Pretrain", "Finetune", "RankingEvaluator", "Pusher"):
        assert name in first_run, f"{name} did not run"
        assert first_run[name].last_known_state == metadata_store_pb2.Execution.COMPLETE
    pushed = first["pushed"]
    assert pushed and os.path.exists(os.path.join(pushed, "saved_model.pb"))
    loaded = tf.saved_model.load(pushed)
    out = loaded.signatures["serving_default"](history=tf.constant([["3", "17", "42"]]))
    assert out["item_ids"].shape == (1, 10)
    assert out["num_known"].numpy().tolist() == [3]


def test_evaluation_artifact_holds_the_metrics(pipeline_runs):
    _, first = pipeline_runs
    ev = first["evaluation"]
    for key in ("test/full/HR@10", "test/full/NDCG@20", "test/sampled/MRR",
                "valid/sampled/HR@1"):
        assert 0.0 <= ev["metrics"][key] <= 1.0
    assert ev["blessed"] is True


def test_lineage_links_finetuned_model_to_its_pretrained_base(pipeline_runs):
    from ml_metadata.proto import metadata_store_pb2
    from pipeline import local_runner
    root, _ = pipeline_runs
    store, executions = _executions(local_runner.paths(root)["metadata"])
    pretrain = next(e for n, e in executions if n == "Pretrain")
    finetune = next(e for n, e in executions if n == "Finetune")
    events = store.get_events_by_execution_ids([pretrain.id, finetune.id])
    pretrained_outputs = {ev.artifact_id for ev in events if ev.execution_id == pretrain.id
                          and ev.type == metadata_store_pb2.Event.OUTPUT}
    finetune_inputs = {ev.artifact_id for ev in events if ev.execution_id == finetune.id
                       and ev.type == metadata_store_pb2.Event.INPUT}
    assert pretrained_outputs & finetune_inputs, "fine-tuning did not consume the pretrained model"


def test_second_run_is_served_from_cache(pipeline_runs):
    from ml_metadata.proto import metadata_store_pb2
    from pipeline import local_runner
    root, _ = pipeline_runs
    _, executions = _executions(local_runner.paths(root)["metadata"])
    for name in ("PrepareData", "Pretrain", "Finetune"):
        states = [e.last_known_state for n, e in executions if n == name]
        assert states[-1] == metadata_store_pb2.Execution.CACHED, name


def test_tfx_cli_pipeline_create_and_run_create(tiny_raw, tmp_path):
    env = dict(os.environ, HOME=str(tmp_path / "home"), S3REC_LOCAL_ROOT=str(tmp_path / "root"),
               S3REC_DATA_DIR=tiny_raw, S3REC_PIPELINE_NAME="s3rec-cli-test",
               S3REC_PRETRAIN_HPARAMS=json.dumps(TINY_PRE),
               S3REC_FINETUNE_HPARAMS=json.dumps(TINY_FINE), S3REC_THRESHOLDS="{}",
               TF_CPP_MIN_LOG_LEVEL="3")
    os.makedirs(env["HOME"])
    tfx_cli = os.path.join(os.path.dirname(sys.executable), "tfx")
    create = subprocess.run([tfx_cli, "pipeline", "create", "--engine", "local",
                             "--pipeline_path", "pipeline/local_runner.py"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert 'Pipeline "s3rec-cli-test" created successfully' in create.stdout + create.stderr
    run = subprocess.run([tfx_cli, "run", "create", "--engine", "local", "--pipeline_name",
                          "s3rec-cli-test"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=900)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    noisy = [line for line in (run.stdout + run.stderr).splitlines()  # s3rec_tf.quiet
             if "WARNING" in line or "Warning" in line or "Traceback" in line]
    assert not noisy, "\n".join(noisy)
    serving = tmp_path / "root" / "serving"
    versions = os.listdir(serving)
    assert versions and (serving / versions[0] / "saved_model.pb").exists()


def test_kubeflow_v2_runner_compiles_the_pipeline(tmp_path):
    from pipeline import kubeflow_v2_runner
    out = tmp_path / "pipeline.json"
    kubeflow_v2_runner.compile_pipeline(str(out), "s3rec-tf:test", "gs://bucket/root",
                                        "gs://bucket/data", "Beauty", "gs://bucket/serving",
                                        ["--runner=DataflowRunner"])
    spec = json.loads(out.read_text())
    text = json.dumps(spec)
    for name in ("PrepareData", "Pretrain", "Finetune", "RankingEvaluator", "Pusher"):
        assert name in text
    assert "s3rec-tf:test" in text


def test_rerun_after_a_component_failure_continues_from_cache(tiny_raw, tmp_path):
    from ml_metadata.proto import metadata_store_pb2
    from pipeline import local_runner
    root = str(tmp_path / "root")
    with pytest.raises(Exception, match="loss"):
        local_runner.run(root, tiny_raw, "Synthetic", pretrain_hparams=TINY_PRE,
                         finetune_hparams={**TINY_FINE, "loss": "hinge"}, thresholds={})
    local_runner.run(root, tiny_raw, "Synthetic", pretrain_hparams=TINY_PRE,
                     finetune_hparams=TINY_FINE, thresholds={})
    _, executions = _executions(local_runner.paths(root)["metadata"])
    states = {}
    for name, e in executions:
        states.setdefault(name, []).append(e.last_known_state)
    assert states["PrepareData"] == [metadata_store_pb2.Execution.COMPLETE,
                                     metadata_store_pb2.Execution.CACHED]
    assert states["Pretrain"] == [metadata_store_pb2.Execution.COMPLETE,
                                  metadata_store_pb2.Execution.CACHED]
    assert states["Finetune"][-1] == metadata_store_pb2.Execution.COMPLETE
    assert local_runner.summary(root)["pushed"]
