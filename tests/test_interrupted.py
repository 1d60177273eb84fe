"""A training run killed with SIGKILL mid-epoch resumes from its last epoch.

The killed run is a separate process (SIGKILL needs one). For pretraining the
uninterrupted reference and the resumed run are the same command through
`cli.main` in this process (weights compared within float tolerance);
fine-tuning's test metrics are compared to 1e-6, so there the resumed run and
the reference run one after the other in a second fresh process, with the
killed run's CPU settings.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

from s3rec_tf import artifacts, cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS = 8
SMALL = ["--batch-size", "32", "--hidden-size", "16", "--num-layers", "1", "--max-length", "20",
         "--seed", "3"]


def _pretrain(data_dir, out):
    return ["pretrain", "--data", data_dir, "--name", "Tiny", "--output", str(out), "--epochs",
            str(EPOCHS), *SMALL, "--save-every", "0"]


def _finetune(data_dir, out):
    return ["finetune", "--data", data_dir, "--name", "Tiny", "--pretrained", "none",
            "--output", str(out), "--epochs", str(EPOCHS), *SMALL, "--patience", "10"]


#: Runs `s3rec-tf` commands one after the other in one process (each run sets its seeds;
#: the CPU settings are chosen once, before TensorFlow starts, as in `python -m s3rec_tf`).
_CHAIN = """
import json, sys
import s3rec_tf
from s3rec_tf.cli import main
for argv in json.loads(sys.argv[1]):
    code = main(argv)
    if code:
        sys.exit(f"s3rec-tf {argv[0]} exited with {code}")
"""


def _run_in_one_process(*commands):
    """`s3rec-tf argv` for each argv of `commands` in one fresh process; its stdout."""
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", _CHAIN, json.dumps(commands)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _start(argv):
    """`s3rec-tf argv` in a process of its own, its output discarded."""
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen([sys.executable, "-m", "s3rec_tf", *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _kill_after_first_checkpoint(proc, out, grace_s):
    """SIGKILLs `proc` `grace_s` after its first epoch's checkpoint appears."""
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "_resume" / "checkpoint").exists():
        assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before a checkpoint"
        time.sleep(0.1)
    time.sleep(grace_s)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # enough epochs that the kill lands mid-run even when an epoch takes well under a second
    assert proc.returncode == -signal.SIGKILL


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(synthetic_dir, tmp_path, capsys):
    out = tmp_path / "killed"
    proc = _start(_pretrain(synthetic_dir, out))
    _kill_after_first_checkpoint(proc, out, 0.3)  # during epoch 2
    assert not (out / artifacts.MANIFEST).exists(), "a killed run must not look finished"

    capsys.readouterr()
    assert cli.main(_pretrain(synthetic_dir, out)) == 0
    assert "Resuming pretraining from epoch" in capsys.readouterr().out
    assert cli.main(_pretrain(synthetic_dir, tmp_path / "straight")) == 0
    a, _ = artifacts.load_pretrainer(str(tmp_path / "straight"))
    b, _ = artifacts.load_pretrainer(str(out))
    for w, x, y in zip(a.weights, a.get_weights(), b.get_weights()):
        # an attention key bias adds the same logit to every key: the softmax ignores it,
        # its exact gradient is 0, and what it holds is float noise scaled up by Adam (the
        # killed process's thread and oneDNN settings may differ from this process's)
        if w.path.endswith("key/bias"):
            continue
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5, err_msg=w.path)


def test_finetuning_killed_mid_run_resumes_with_the_same_result(synthetic_dir, tmp_path):
    out = tmp_path / "killed"
    proc = _start(_finetune(synthetic_dir, out))
    _kill_after_first_checkpoint(proc, out, 0.0)
    assert not (out / "metrics.json").exists()
    assert not (out / "best").exists(), "a killed run must not look finished"
    out_text = _run_in_one_process(_finetune(synthetic_dir, out),
                                   _finetune(synthetic_dir, tmp_path / "straight"))
    assert "Resuming fine-tuning from epoch" in out_text
    a = json.loads((tmp_path / "straight" / "metrics.json").read_text())["metrics"]
    b = json.loads((out / "metrics.json").read_text())["metrics"]
    for key in a:
        for metric, value in a[key].items():
            assert abs(value - b[key][metric]) < 1e-6, (key, metric)
