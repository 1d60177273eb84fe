"""The local runner killed (SIGKILL) during each Trainer, then run again.

The run after the kill completes: the components that had finished come from
TFX's cache, the killed Trainer runs again from the start (its checkpoint lives
in its own execution's `model_run` artifact, which a new execution does not
reuse), and nothing partial is blessed or pushed. Slow (two pipeline runs per
case): `scripts/test.sh -m slow tests/pipeline/test_pipeline_kill.py`.
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.pipeline.test_pipeline import BEAM, ROOT, _executions

#: Long enough to be killed in the middle of: about 10 s of pretraining or fine-tuning.
LONG_PRE = {"epochs": 40, "hidden_size": 16, "num_layers": 1, "max_length": 20,
            "save_every": 0, "batch_size": 32}
LONG_FINE = {"epochs": 40, "patience": 40, "hidden_size": 16, "num_layers": 1,
             "max_length": 20}
BEFORE_TRAINERS = ("FileBasedExampleGen", "StatisticsGen", "ImportSchemaGen",
                   "ExampleValidator", "PrepareSequences")


def _run_pipeline(root: str, raw: str) -> subprocess.Popen:
    """The local runner in its own process group (Beam's workers included)."""
    code = ("import sys; from pipeline import local_runner; "
            "local_runner.run(sys.argv[1], sys.argv[2], 'Synthetic', "
            f"pretrain_hparams={LONG_PRE!r}, finetune_hparams={LONG_FINE!r}, "
            f"thresholds={{}}, beam_pipeline_args={BEAM!r})")
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen([sys.executable, "-c", code, root, raw], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def _running_trainers(metadata: str) -> int:
    """How many Trainer executions ML Metadata shows (0 before the store exists)."""
    if not os.path.exists(metadata):
        return 0
    try:
        _, executions = _executions(metadata)
    except Exception:  # the store is being created or written: ask again
        return 0
    return sum(1 for name, _ in executions if name == "Trainer")


def _kill_during_trainer(root: str, raw: str, nth: int) -> None:
    """Starts the pipeline and SIGKILLs it a few seconds into its `nth` Trainer."""
    from pipeline import local_runner
    metadata = local_runner.paths(root)["metadata"]
    proc = _run_pipeline(root, raw)
    deadline = time.time() + 600
    try:
        while _running_trainers(metadata) < nth:
            assert proc.poll() is None, f"the pipeline ended (rc {proc.returncode}) before " \
                                        f"Trainer {nth} started"
            assert time.time() < deadline, f"Trainer {nth} did not start in 10 minutes"
            time.sleep(0.5)
        time.sleep(4)  # inside the Trainer's training loop
        assert proc.poll() is None, "the pipeline ended before it could be killed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize("nth", [1, 2], ids=["pretraining-trainer", "finetuning-trainer"])
def test_a_killed_pipeline_completes_when_run_again(tmp_path, nth):
    from ml_metadata.proto import metadata_store_pb2
    from pipeline import local_runner
    from s3rec_tf.data import synthetic
    raw = str(tmp_path / "raw")
    seqs, attrs = synthetic.generate(num_users=150, num_items=200, num_topics=8,
                                     num_attributes=20, max_length=20, seed=5)
    synthetic.write(raw, seqs, attrs, "Synthetic")
    root = str(tmp_path / "pipeline")
    paths = local_runner.paths(root)

    _kill_during_trainer(root, raw, nth)
    _, killed = _executions(paths["metadata"])
    names = [n for n, _ in killed]
    assert names.count("Trainer") == nth, names
    assert "RankingEvaluator" not in names and "Pusher" not in names, names
    assert not os.path.isdir(paths["serving"]) or not os.listdir(paths["serving"]), \
        "a killed run pushed a model"
    count = len(killed)

    proc = _run_pipeline(root, raw)
    assert proc.wait(timeout=900) == 0
    _, executions = _executions(paths["metadata"])
    again = executions[count:]
    state = {n: e.last_known_state for n, e in again}
    for name in BEFORE_TRAINERS:  # finished before the kill: from the cache
        assert state.get(name) == metadata_store_pb2.Execution.CACHED, (name, state)
    trainers = [e.last_known_state for n, e in again if n == "Trainer"]
    complete, cached = metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED
    # the killed Trainer runs again; a Trainer that had finished before it is cached
    assert trainers == ([complete, complete] if nth == 1 else [cached, complete]), trainers
    for name in ("RankingEvaluator", "Pusher"):
        assert state.get(name) == complete, (name, state)
    pushed = local_runner.summary(root)["pushed"]
    assert pushed and os.path.exists(os.path.join(pushed, "saved_model.pb"))
    import tensorflow as tf
    out = tf.saved_model.load(pushed).signatures["serving_default"](
        history=tf.constant([["3", "17", "42"]]))
    assert out["item_ids"].shape == (1, 10)
