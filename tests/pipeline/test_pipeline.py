"""End to end: the TFX pipeline on a tiny fixture with LocalDagRunner and the tfx CLI.

One full run (and its cached re-run) is shared by most tests; the corrupted
inputs stop early, before any training.
"""

import glob
import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY_PRE = {"epochs": 1, "hidden_size": 16, "num_layers": 1, "max_length": 20,
            "save_every": 0, "batch_size": 256}
TINY_FINE = {"epochs": 1, "hidden_size": 16, "num_layers": 1, "max_length": 20}
BEAM = ["--direct_num_workers=1"]
TINY = dict(pretrain_hparams=TINY_PRE, finetune_hparams=TINY_FINE, thresholds={},
            beam_pipeline_args=BEAM)


@pytest.fixture(scope="module")
def tiny_raw(tmp_path_factory):
    from s3rec_tf.data import synthetic
    d = tmp_path_factory.mktemp("raw")
    seqs, attrs = synthetic.generate(num_users=150, num_items=200, num_topics=8,
                                     num_attributes=20, max_length=20, seed=5)
    synthetic.write(str(d), seqs, attrs, "Synthetic")
    return str(d)


def _store(metadata_path):
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    return metadata_store.MetadataStore(config)


def _executions(metadata_path):
    store = _store(metadata_path)
    types = {t.id: t.name for t in store.get_execution_types()}
    return store, [(types[e.type_id].split(".")[-1], e)
                   for e in sorted(store.get_executions(), key=lambda e: e.id)]


@pytest.fixture(scope="module")
def pipeline_runs(tiny_raw, tmp_path_factory):
    from pipeline import local_runner
    root = str(tmp_path_factory.mktemp("pipeline"))
    local_runner.run(root, tiny_raw, "Synthetic", **TINY)
    first = local_runner.summary(root)
    _, executions = _executions(local_runner.paths(root)["metadata"])
    local_runner.run(root, tiny_raw, "Synthetic", **TINY)
    return root, first, len(executions)


def test_every_component_ran_and_the_model_was_pushed(pipeline_runs):
    from ml_metadata.proto import metadata_store_pb2
    from pipeline import local_runner
    root, first, count = pipeline_runs
    _, executions = _executions(local_runner.paths(root)["metadata"])
    first_run = executions[:count]
    names = [n for n, _ in first_run]
    for name in ("FileBasedExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator",
                 "PrepareSequences", "RankingEvaluator", "Pusher"):
        assert names.count(name) == 1, f"{name} did not run once: {names}"
    assert names.count("Trainer") == 2, names
    assert all(e.last_known_state == metadata_store_pb2.Execution.COMPLETE
               for n, e in first_run if n != "Resolver")
    pushed = first["pushed"]
    assert pushed and os.path.exists(os.path.join(pushed, "saved_model.pb"))
    loaded = tf.saved_model.load(pushed)
    out = loaded.signatures["serving_default"](history=tf.constant([["3", "17", "42"]]))
    assert out["item_ids"].shape == (1, 10)
    assert out["num_known"].numpy().tolist() == [3]


def test_every_examples_artifact_names_its_payload_format(pipeline_runs):
    """Readers of an Examples artifact without one fall back with a warning."""
    from pipeline import local_runner
    store, _ = _executions(local_runner.paths(pipeline_runs[0])["metadata"])
    examples = store.get_artifacts_by_type("Examples")
    assert examples
    for artifact in examples:
        assert artifact.custom_properties["payload_format"].string_value == \
            "FORMAT_TF_EXAMPLE", artifact.uri


def test_evaluation_artifact_holds_the_metrics_and_their_negatives(pipeline_runs):
    _, first, _ = pipeline_runs
    ev = first["evaluation"]
    for key in ("test/full/HR@10", "test/full/NDCG@20", "test/sampled/MRR",
                "valid/sampled/HR@1"):
        assert 0.0 <= ev["metrics"][key] <= 1.0
    assert ev["blessed"] is True
    assert ev["negatives"] == "generated(per-user, seed=0)"


def test_lineage_links_the_finetuning_trainer_to_the_pretrained_model(pipeline_runs):
    from ml_metadata.proto import metadata_store_pb2
    from pipeline import local_runner
    root, _, count = pipeline_runs
    store, executions = _executions(local_runner.paths(root)["metadata"])
    pretrain, finetune = [e for n, e in executions[:count] if n == "Trainer"]
    events = store.get_events_by_execution_ids([pretrain.id, finetune.id])
    pretrained_outputs = {ev.artifact_id for ev in events if ev.execution_id == pretrain.id
                          and ev.type == metadata_store_pb2.Event.OUTPUT}
    finetune_inputs = {ev.artifact_id for ev in events if ev.execution_id == finetune.id
                       and ev.type == metadata_store_pb2.Event.INPUT}
    assert pretrained_outputs & finetune_inputs, "fine-tuning did not consume the pretrained model"


def _scalar_tags(log_dir):
    tags = set()
    for path in glob.glob(os.path.join(log_dir, "**", "events.out.tfevents.*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(v.tag for v in event.summary.value)
    return tags


def test_tensorboard_logs_of_both_trainers(pipeline_runs):
    root = pipeline_runs[0]
    runs = sorted(glob.glob(os.path.join(root, "tfx", "PretrainTrainer", "model_run", "*")))
    pre = _scalar_tags(runs[0])
    for head in ("aap", "mip", "map", "sp"):
        assert f"{head}_loss" in pre, pre
    runs = sorted(glob.glob(os.path.join(root, "tfx", "FinetuneTrainer", "model_run", "*")))
    fine = _scalar_tags(runs[0])
    for metric in ("MRR", "HR@10", "NDCG@10"):
        assert f"valid_sampled/{metric}" in fine, fine
    assert "loss" in fine


def test_second_run_is_served_from_cache(pipeline_runs):
    from ml_metadata.proto import metadata_store_pb2
    from pipeline import local_runner
    root, _, count = pipeline_runs
    _, executions = _executions(local_runner.paths(root)["metadata"])
    second = executions[count:]
    for name in ("FileBasedExampleGen", "StatisticsGen", "ExampleValidator",
                 "PrepareSequences", "Trainer"):
        states = [e.last_known_state for n, e in second if n == name]
        assert states and all(s == metadata_store_pb2.Execution.CACHED for s in states), name


def test_tfx_cli_pipeline_create_and_run_create(pipeline_runs, tiny_raw, tmp_path):
    """The DSL file through the `tfx` CLI, on the fixture's root: the run is served from cache."""
    from ml_metadata.proto import metadata_store_pb2
    from pipeline import local_runner
    root, _, _ = pipeline_runs
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"local_root": root, "data_dir": tiny_raw,
                                    "dataset": "Synthetic", **TINY}))
    env = dict(os.environ, HOME=str(tmp_path / "home"), TF_CPP_MIN_LOG_LEVEL="3",
               S3REC_PIPELINE_SETTINGS=str(settings),
               PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    os.makedirs(env["HOME"])
    before = len(_executions(local_runner.paths(root)["metadata"])[1])
    tfx_cli = os.path.join(os.path.dirname(sys.executable), "tfx")
    create = subprocess.run([tfx_cli, "pipeline", "create", "--engine", "local",
                             "--pipeline_path", "pipeline/local_runner.py"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert 'Pipeline "s3rec-tf" created successfully' in create.stdout + create.stderr, \
        (create.stdout + create.stderr)[-3000:]
    assert len(_executions(local_runner.paths(root)["metadata"])[1]) == before, \
        "pipeline create ran something"
    run = subprocess.run([tfx_cli, "run", "create", "--engine", "local", "--pipeline_name",
                          "s3rec-tf"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    noisy = [line for line in (run.stdout + run.stderr).splitlines()  # s3rec_tf.quiet
             if "WARNING" in line or "Warning" in line or "Traceback" in line]
    assert not noisy, "\n".join(noisy)
    _, executions = _executions(local_runner.paths(root)["metadata"])
    trainers = [e for n, e in executions[before:] if n == "Trainer"]
    assert len(trainers) == 2
    assert all(e.last_known_state == metadata_store_pb2.Execution.CACHED for e in trainers)


def test_importing_the_local_runner_runs_nothing(tmp_path):
    code = "import sys; sys.path.insert(0, 'pipeline'); import local_runner"
    before = sorted(os.listdir(ROOT))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert sorted(os.listdir(ROOT)) == before


@pytest.mark.parametrize("with_tuner", [False, True])
def test_kubeflow_v2_runner_compiles_the_pipeline(tmp_path, with_tuner):
    from pipeline import kubeflow_v2_runner
    out = tmp_path / "pipeline.json"
    kubeflow_v2_runner.compile_pipeline(str(out), "s3rec-tf:test", "gs://bucket/root",
                                        "gs://bucket/data", "Beauty", "gs://bucket/serving",
                                        ["--runner=DataflowRunner"], enable_tuner=with_tuner)
    text = out.read_text()
    json.loads(text)
    for name in ("FileBasedExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator",
                 "PrepareSequences", "PretrainTrainer", "FinetuneTrainer", "RankingEvaluator",
                 "Pusher"):
        assert name in text, name
    assert ("Tuner" in text) == with_tuner
    assert "s3rec-tf:test" in text and "Beauty.txt" in text


def test_kubeflow_v2_spec_carries_a_multi_worker_training_configuration(tmp_path):
    from pipeline import kubeflow_v2_runner
    out = tmp_path / "pipeline.json"
    kubeflow_v2_runner.main(["--output", str(out), "--image", "s3rec-tf:test",
                             "--training-workers", "3", "--project", "proj",
                             "--region", "europe-west4", "--machine-type", "n1-standard-4"])
    spec = json.loads(out.read_text())["pipelineSpec"]
    for name in ("PretrainTrainer", "FinetuneTrainer"):
        task = spec["root"]["dag"]["tasks"][name]
        label = spec["components"][task["componentRef"]["name"]]["executorLabel"]
        assert (spec["deploymentSpec"]["executors"][label]["container"]["args"][1] ==
                "tfx.extensions.google_cloud_ai_platform.trainer.executor.GenericExecutor")
        custom = json.loads(task["inputs"]["parameters"]["custom_config"]["runtimeValue"][
            "constantValue"]["stringValue"])
        assert custom["ai_platform_enable_vertex"] is True
        assert custom["ai_platform_vertex_region"] == "europe-west4"
        args = custom["ai_platform_training_args"]
        assert args["project"] == "proj"
        pools = args["worker_pool_specs"]
        assert [p["replica_count"] for p in pools] == [1, 2]  # the chief, then two workers
        assert all(p["container_spec"]["image_uri"] == "s3rec-tf:test" and
                   p["machine_spec"]["machine_type"] == "n1-standard-4" for p in pools)
        assert custom["hyperparameters"]["strategy"] == "multi-worker"
    # one worker: the standard, local Trainer
    kubeflow_v2_runner.main(["--output", str(out), "--image", "s3rec-tf:test"])
    assert "worker_pool_specs" not in out.read_text()


def test_the_tuner_feeds_both_trainers_when_switched_on(tiny_raw, tmp_path):
    from pipeline import local_runner
    pipeline = local_runner.build(str(tmp_path), tiny_raw, "Synthetic", enable_tuner=True,
                                  tuner_config={"max_trials": 2}, **TINY)
    ids = [c.id for c in pipeline.components]
    assert "Tuner" in ids
    trainers = [c for c in pipeline.components if c.id in ("PretrainTrainer", "FinetuneTrainer")]
    for trainer in trainers:
        channel = trainer.inputs["hyperparameters"]
        assert channel.producer_component_id == "Tuner"
    with pytest.raises(ValueError, match=r"unknown tuner_config key\(s\) \['max_trial'\]"):
        local_runner.build(str(tmp_path), tiny_raw, "Synthetic", enable_tuner=True,
                           tuner_config={"max_trial": 2}, **TINY)


def test_batch_recommender_reads_the_pushed_model_when_switched_on(tiny_raw, tmp_path):
    from pipeline import local_runner
    ids = [c.id for c in local_runner.build(str(tmp_path), tiny_raw, "Synthetic",
                                            **TINY).components]
    assert "BatchRecommender" not in ids  # off by default
    pipeline = local_runner.build(str(tmp_path), tiny_raw, "Synthetic", **TINY,
                                  enable_batch_recommendations=True,
                                  batch_recommendations={"k": 20, "index": "brute"})
    recommender = [c for c in pipeline.components if c.id == "BatchRecommender"][0]
    assert recommender.inputs["pushed_model"].producer_component_id == "Pusher"
    assert recommender.inputs["examples"].producer_component_id == "PrepareSequences"
    assert recommender.exec_properties["k"] == 20
    with pytest.raises(ValueError, match=r"unknown batch_recommendations key\(s\) \['top'\]"):
        local_runner.build(str(tmp_path), tiny_raw, "Synthetic", **TINY,
                           enable_batch_recommendations=True,
                           batch_recommendations={"top": 5})


def test_the_evaluator_ranks_with_the_history_rule_fine_tuning_validates_with(tiny_raw,
                                                                              tmp_path):
    from pipeline import local_runner

    def rule(**hparams):
        pipeline = local_runner.build(str(tmp_path), tiny_raw, "Synthetic",
                                      **{**TINY, "finetune_hparams": {
                                          **TINY.get("finetune_hparams", {}), **hparams}})
        evaluator = [c for c in pipeline.components if c.id == "RankingEvaluator"][0]
        return evaluator.exec_properties["history_rule"]

    assert rule() == "remove"
    assert rule(history_rule="original") == "original"


def test_an_unknown_hyperparameter_is_an_error_naming_it(tiny_raw, tmp_path):
    from pipeline import local_runner
    with pytest.raises(ValueError, match=r"`epoch` is not a known key"):
        local_runner.build(str(tmp_path), tiny_raw, "Synthetic",
                           **{**TINY, "pretrain_hparams": {"epoch": 50}})


SHOP_CSV = "user_id,item_id,timestamp\n" + "".join(
    f"{u},{100 + (u * 7 + j) % 150},{j}\n" for u in range(1, 41) for j in range(6))
SHOP_ITEMS = sorted({100 + (u * 7 + j) % 150 for u in range(1, 41) for j in range(6)})
SHOP_ATTRS = "item_id,attribute\n" + "".join(f"{i},a{i % 5}\n" for i in SHOP_ITEMS)
#: the shipped schema of the CSV test data (integer ids and times)
SHOP_SCHEMA = """
feature { name: "user_id" type: INT presence { min_fraction: 1.0 min_count: 1 } }
feature { name: "item_id" type: INT presence { min_fraction: 1.0 min_count: 1 } }
feature { name: "timestamp" type: INT presence { min_fraction: 1.0 min_count: 1 } }
"""


def _assert_stops(tmp_path, data_dir, name, match, **kwargs):
    from pipeline import local_runner
    root = str(tmp_path / "root")
    with pytest.raises(Exception, match=match):
        local_runner.run(root, data_dir, name, **{**TINY, **kwargs})
    _, executions = _executions(local_runner.paths(root)["metadata"])
    assert "Trainer" not in [n for n, _ in executions]
    assert local_runner.summary(root)["pushed"] is None


def test_a_column_of_the_wrong_type_stops_at_the_validator(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "Shop.csv").write_text(SHOP_CSV.replace(",3\n", ",three\n"))
    (data / "Shop_attributes.csv").write_text(SHOP_ATTRS)
    (tmp_path / "schema.pbtxt").write_text(SHOP_SCHEMA)
    _assert_stops(tmp_path, str(data), "Shop",
                  r"ExampleValidator found anomalies: split 'events': feature 'timestamp': "
                  r".*INT.*STRING", input_format="csv", schema_path=str(tmp_path / "schema.pbtxt"))


def test_an_unknown_item_in_the_attribute_table_stops_the_sequence_step(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "Shop.csv").write_text(SHOP_CSV)
    (data / "Shop_attributes.csv").write_text(SHOP_ATTRS + "999,a1\n")
    _assert_stops(tmp_path, str(data), "Shop", r"item '999' of the attribute table has no event",
                  input_format="csv")


def test_an_empty_event_split_stops_the_sequence_step(tmp_path, tiny_raw):
    import shutil
    data = tmp_path / "data"
    shutil.copytree(tiny_raw, data)
    (data / "Synthetic.txt").write_text("")
    _assert_stops(tmp_path, str(data), "Synthetic", r"split 'events' is empty")
