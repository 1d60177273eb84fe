"""A training run killed with SIGKILL mid-epoch resumes from its last epoch."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

from s3rec_tf import artifacts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS = 8


def _cmd(data_dir, out, epochs):
    return [sys.executable, "-m", "s3rec_tf", "pretrain", "--data", data_dir, "--name", "Tiny",
            "--output", str(out), "--epochs", str(epochs), "--batch-size", "32",
            "--hidden-size", "16", "--num-layers", "1", "--max-length", "20", "--save-every", "0", "--seed", "3"]


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(synthetic_dir, tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    # enough epochs that the kill lands mid-run even when an epoch takes well under a second
    straight = subprocess.run(_cmd(synthetic_dir, tmp_path / "straight", EPOCHS), env=env,
                              capture_output=True, text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr[-2000:]

    out = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(synthetic_dir, out, EPOCHS), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    resume_dir = out / "_resume"
    deadline = time.time() + 300
    # wait until the first epoch's checkpoint exists, then kill during epoch 2
    while time.time() < deadline and not (resume_dir / "checkpoint").exists():
        time.sleep(0.2)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / artifacts.MANIFEST).exists(), "a killed run must not look finished"

    resumed = subprocess.run(_cmd(synthetic_dir, out, EPOCHS), env=env, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Resuming pretraining from epoch" in resumed.stdout
    a, _ = artifacts.load_pretrainer(str(tmp_path / "straight"))
    b, _ = artifacts.load_pretrainer(str(out))
    for x, y in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)


def test_finetuning_killed_mid_run_resumes_with_the_same_result(synthetic_dir, tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")

    def cmd(out):
        return [sys.executable, "-m", "s3rec_tf", "finetune", "--data", synthetic_dir,
                "--name", "Tiny", "--pretrained", "none", "--output", str(out),
                "--epochs", str(EPOCHS),
                "--batch-size", "32", "--hidden-size", "16", "--num-layers", "1",
                "--max-length", "20",
                "--seed", "3", "--patience", "10"]

    straight = subprocess.run(cmd(tmp_path / "straight"), env=env, capture_output=True,
                              text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr[-2000:]
    out = tmp_path / "killed"
    proc = subprocess.Popen(cmd(out), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "_resume" / "checkpoint").exists():
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "metrics.json").exists()
    assert not (out / "best").exists(), "a killed run must not look finished"
    resumed = subprocess.run(cmd(out), env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Resuming fine-tuning from epoch" in resumed.stdout
    a = json.loads((tmp_path / "straight" / "metrics.json").read_text())["metrics"]
    b = json.loads((out / "metrics.json").read_text())["metrics"]
    for key in a:
        for metric, value in a[key].items():
            assert abs(value - b[key][metric]) < 1e-6, (key, metric)
