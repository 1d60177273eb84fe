"""`--strategy mirrored|multi-worker` trains as one device with the same global batch.

Mirrored runs over two logical CPU devices and multi-worker over two worker
processes on localhost, each in subprocesses (logical devices and collective
ops must be set up before TensorFlow's first op), each under a timeout that
kills it. The reference is `--strategy none` with the same global batch, in
this process. Dropout is off, so that the replicas' dropout masks (drawn per
replica) do not differ from one device's.

Tolerances: the trained weights agree to 1e-5 (measured: 6e-8 for the
pretrainer after 20 steps; only a float summation order differs); the logged
losses to 2e-3 (pretraining) and 1e-2 (fine-tuning) relative, since a
replica's logged loss is the mean over its own part of each batch, and the
last, uneven batch (and, in fine-tuning, every batch's target positions)
weigh the parts differently (measured: 4e-4 in pretraining).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from s3rec_tf import artifacts
from s3rec_tf.errors import ConfigError
from s3rec_tf.training import distribute

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GLOBAL_BATCH = 32
#: A worker process gets this long, then it is killed.
TIMEOUT_S = 300

#: Runs `s3rec-tf` commands one after the other in one process (one strategy).
WORKER = """
import json, sys
if sys.argv[2] != "1":
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * int(sys.argv[2]))
from s3rec_tf.cli import main
for argv in json.loads(sys.argv[1]):
    rc = main(argv)
    if rc:
        sys.exit(rc)
"""


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory):
    from s3rec_tf.data import synthetic
    out = tmp_path_factory.mktemp("small")
    seqs, attrs = synthetic.generate(num_users=40, num_items=150, num_topics=6,
                                     num_attributes=12, min_length=5, max_length=14, seed=3)
    synthetic.write(str(out), seqs, attrs, "Small")
    return str(out)


def _encoder_flags(small_dir):
    return ["--data", small_dir, "--name", "Small", "--hidden-size", "16", "--num-layers", "1",
            "--max-length", "10", "--seed", "3", "--dropout", "0", "--attention-dropout", "0",
            "--no-trim-padding"]


def _pretrain_argv(small_dir, out, batch, strategy, epochs=2):
    return ["pretrain", *_encoder_flags(small_dir), "--output", str(out), "--epochs",
            str(epochs), "--save-every", "0", "--batch-size", str(batch), "--strategy", strategy]


def _finetune_argv(small_dir, pretrained, out, batch, strategy):
    return ["finetune", *_encoder_flags(small_dir), "--pretrained", str(pretrained),
            "--output", str(out), "--epochs", "2", "--patience", "5", "--batch-size",
            str(batch), "--strategy", strategy,
            # epoch 2 has no gain here: the rate, a distributed variable, is read and decayed
            "--lr-decay", "0.5", "--lr-decay-patience", "1"]


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _start(commands, tmp_path, name, devices=1, tf_config=None):
    """A worker process running `commands`; its output goes to `<tmp_path>/<name>.log`."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3",
               TMPDIR=str(tmp_path / "tmp"))
    env.pop("TF_CONFIG", None)
    if tf_config:
        env["TF_CONFIG"] = json.dumps(tf_config)
    log = open(tmp_path / f"{name}.log", "w")
    commands = [argv + ["--intra-op-threads", "1", "--inter-op-threads", "1"]
                for argv in commands]  # two workers share two cores
    proc = subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(commands), str(devices)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    proc.log_path = tmp_path / f"{name}.log"
    return proc


def _finish(procs, timeout=TIMEOUT_S):
    """Waits for every process (killing all at the deadline); returns their logs."""
    deadline = time.time() + timeout
    try:
        for p in procs:
            p.wait(timeout=max(1, deadline - time.time()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    logs = [p.log_path.read_text() for p in procs]
    for p, log in zip(procs, logs):
        assert p.returncode == 0, f"exit {p.returncode}:\n{log[-3000:]}"
    return logs


def _cluster(n):
    return {"worker": [f"localhost:{port}" for port in _free_ports(n)]}


def _start_workers(commands_of, tmp_path, name, n=2):
    cluster = _cluster(n)
    return [_start(commands_of(i), tmp_path, f"{name}-{i}",
                   tf_config={"cluster": cluster, "task": {"type": "worker", "index": i}})
            for i in range(n)]


def _last_history(out):
    with open(os.path.join(out, "history.jsonl")) as f:
        return json.loads(f.read().splitlines()[-1])


def _assert_same_weights(a, b, atol):
    for w, x, y in zip(a.weights, a.get_weights(), b.get_weights()):
        # an attention key bias adds the same logit to every key: the softmax ignores it,
        # its exact gradient is 0, and what it holds is float noise scaled up by Adam
        if w.path.endswith("key/bias"):
            continue
        np.testing.assert_allclose(x, y, rtol=0, atol=atol, err_msg=w.path)


@pytest.fixture(scope="module")
def reference(small_dir, tmp_path_factory):
    """`--strategy none` with the global batch: pretraining, then fine-tuning from it."""
    from s3rec_tf.cli import main
    out = tmp_path_factory.mktemp("none")
    assert main(_pretrain_argv(small_dir, out / "pre", GLOBAL_BATCH, "none")) == 0
    assert main(_finetune_argv(small_dir, out / "pre", out / "ft", GLOBAL_BATCH, "none")) == 0
    return out


def _assert_matches_reference(reference, out):
    a, _ = artifacts.load_pretrainer(str(reference / "pre"))
    b, _ = artifacts.load_pretrainer(str(out / "pre"))
    _assert_same_weights(a, b, atol=1e-5)
    assert _last_history(out / "pre")["loss"] == pytest.approx(
        _last_history(reference / "pre")["loss"], rel=2e-3)
    a, _ = artifacts.load_next_item_model(str(reference / "ft" / "best"))
    b, _ = artifacts.load_next_item_model(str(out / "ft" / "best"))
    _assert_same_weights(a, b, atol=1e-5)
    assert _last_history(out / "ft")["loss"] == pytest.approx(
        _last_history(reference / "ft")["loss"], rel=1e-2)
    assert _last_history(out / "ft")["learning_rate"] == pytest.approx(
        _last_history(reference / "ft")["learning_rate"])


def test_mirrored_over_two_logical_cpus_matches_one_device(small_dir, reference, tmp_path):
    out = tmp_path / "mirrored"
    proc = _start([_pretrain_argv(small_dir, out / "pre", GLOBAL_BATCH, "mirrored"),
                   _finetune_argv(small_dir, out / "pre", out / "ft", GLOBAL_BATCH, "mirrored")],
                  tmp_path, "mirrored", devices=2)
    log, = _finish([proc])
    assert "mirrored: 1 worker(s), 2 replica(s), global batch 32 (32 per worker)" in log
    _assert_matches_reference(reference, out)


def test_two_workers_on_localhost_match_one_device(small_dir, reference, tmp_path):
    out = tmp_path / "workers"
    per_worker = GLOBAL_BATCH // 2
    procs = _start_workers(lambda i: [
        _pretrain_argv(small_dir, out / "pre", per_worker, "multi-worker"),
        _finetune_argv(small_dir, out / "pre", out / "ft", per_worker, "multi-worker")],
        tmp_path, "worker")
    chief, other = _finish(procs)
    assert "2 worker(s), 2 replica(s), global batch 32 (16 per worker)" in chief
    assert "not the chief: writes nothing" in other
    assert "not the chief" not in chief
    _assert_matches_reference(reference, out)
    # the other worker wrote into a private temporary directory, and removed it
    assert os.listdir(tmp_path / "tmp") == []


@pytest.mark.slow  # 7 minutes on 2 busy cores: two pairs of workers and a reference run
def test_a_killed_worker_and_a_restart_resume_from_the_chiefs_checkpoint(small_dir, tmp_path):
    from s3rec_tf.cli import main
    epochs = 6
    out = tmp_path / "killed"
    per_worker = GLOBAL_BATCH // 2

    def commands(i):
        return [_pretrain_argv(small_dir, out, per_worker, "multi-worker", epochs)]

    procs = _start_workers(commands, tmp_path, "first")
    deadline = time.time() + TIMEOUT_S
    while time.time() < deadline and not (out / "_resume" / "checkpoint").exists():
        assert all(p.poll() is None for p in procs), procs[0].log_path.read_text()[-3000:]
        time.sleep(0.2)
    procs[1].send_signal(signal.SIGKILL)  # a worker dies mid-run
    procs[1].wait()
    try:  # its peer fails or hangs in a collective: the cluster restarts it
        procs[0].wait(timeout=30)
    except subprocess.TimeoutExpired:
        procs[0].kill()
        procs[0].wait()
    assert not (out / artifacts.MANIFEST).exists(), "a killed run must not look finished"

    logs = _finish(_start_workers(commands, tmp_path, "restart"))
    assert all("Resuming pretraining from epoch" in log for log in logs)
    assert main(_pretrain_argv(small_dir, tmp_path / "none", GLOBAL_BATCH, "none", epochs)) == 0
    a, _ = artifacts.load_pretrainer(str(tmp_path / "none"))
    b, _ = artifacts.load_pretrainer(str(out))
    _assert_same_weights(a, b, atol=1e-5)


def test_none_is_one_worker_that_writes():
    dist = distribute.distribution("none")
    assert (dist.num_workers, dist.is_chief, dist.replicas) == (1, True, 1)
    assert dist.global_batch(32) == 32 and dist.signature() == {} and dist.describe(32) == ""


@pytest.mark.parametrize("tf_config, expected", [
    ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}},
     {"workers": 2, "is_chief": True}),
    ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}},
     {"workers": 2, "is_chief": False}),
    ({"cluster": {"chief": ["a:1"], "worker": ["b:2", "c:3"]},
      "task": {"type": "worker", "index": 0}}, {"workers": 3, "is_chief": False}),
    ({"cluster": {"chief": ["a:1"], "worker": ["b:2"]}, "task": {"type": "chief", "index": 0}},
     {"workers": 2, "is_chief": True}),
])
def test_workers_and_chief_from_tf_config(tf_config, expected):
    assert distribute.cluster_from_tf_config(json.dumps(tf_config)) == expected


@pytest.mark.parametrize("text, match", [
    (None, "needs the TF_CONFIG"),
    ("", "needs the TF_CONFIG"),
    ("{not json", "TF_CONFIG is not a cluster"),
    ('{"cluster": {"worker": ["a:1"]}}', "TF_CONFIG is not a cluster"),
    ('{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "not a chief or worker"),
])
def test_a_missing_or_bad_tf_config_is_a_clear_error(text, match):
    with pytest.raises(ConfigError, match=match):
        distribute.cluster_from_tf_config(text)


def test_multi_worker_without_tf_config_is_refused_before_anything_runs(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="strategy.*TF_CONFIG"):
        distribute.distribution("multi-worker")
    with pytest.raises(ConfigError, match="must be one of"):
        distribute.distribution("parameter-server")
