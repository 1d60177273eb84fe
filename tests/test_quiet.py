"""Quiet output: a clean run of every command prints no warning (`s3rec_tf.quiet`)."""

import json
import logging
import os
import subprocess
import sys
import time
import warnings

import pytest

from s3rec_tf import quiet
from tests.conftest import GOLDEN

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_CHAIN = r"""
import json, sys, time
from s3rec_tf import cli
for argv in json.loads(sys.argv[1]):
    print("$ s3rec-tf " + " ".join(argv), flush=True)
    start = time.time()
    code = cli.main(argv)
    print(f"({argv[0]}: {time.time() - start:.1f}s)", flush=True)
    if code:
        sys.exit(f"s3rec-tf {argv[0]} exited with {code}")
"""


def _commands(tmp):
    data, pre, ft = (os.path.join(tmp, d) for d in ("data", "pre", "ft"))
    model = ["--hidden-size", "8", "--num-layers", "1", "--num-heads", "1", "--max-length", "10"]
    common = ["--data", data, "--name", "Synthetic", *model]
    commands = [
        ["synth", "--output", data, "--users", "60", "--items", "150", "--topics", "4",
         "--attributes", "8", "--max-length", "12"],
        ["pretrain", *common, "--output", pre, "--epochs", "1", "--batch-size", "512"],
        ["finetune", *common, "--pretrained", pre, "--output", ft, "--epochs", "1"],
        ["evaluate", "--model", ft, "--data", data, "--name", "Synthetic", "--protocol", "full"],
        ["export", "--model", ft, "--output", os.path.join(tmp, "serving"), "--version", "1"],
        ["recommend", "--model", os.path.join(tmp, "serving"), "--items", "1", "2", "3",
         "-k", "3"],
        ["prepare", "--input", data, "--name", "Synthetic", "--output",
         os.path.join(tmp, "prepared")],
    ]
    weights = os.path.join(GOLDEN, "LastFM-epochs-150.weights.npz")
    golden = os.path.join(GOLDEN, "golden_LastFM.npz")
    if os.path.exists(weights) and os.path.exists(golden):
        commands.append(["parity", "--weights", weights, "--golden", golden])
    return commands


def test_every_command_runs_without_a_warning(tmp_path):
    commands = _commands(str(tmp_path))
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONWARNINGS", "S3REC_VERBOSE_LIBRARIES")}
    env["PYTHONPATH"] = ROOT
    start = time.time()
    proc = subprocess.run([sys.executable, "-c", _CHAIN, json.dumps(commands)],
                          capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    for argv in commands:  # every command ran
        assert f"$ s3rec-tf {argv[0]} " in proc.stdout
    assert "Exported" in output and "Prepared" in output and "Best epoch" in output
    noisy = [line for line in output.splitlines()
             if "WARNING" in line or "Warning" in line or "Traceback" in line]
    assert not noisy, "\n".join(noisy)
    print(f"{len(commands)} commands in {time.time() - start:.0f}s")
    print("\n".join(line for line in proc.stdout.splitlines() if line.startswith("(")))


@pytest.fixture
def beam_worker_logger():
    quiet.install()
    logger = logging.getLogger(quiet.LOG_MESSAGES[0][0])
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler = Keep()
    logger.addHandler(handler)
    yield logger, records
    logger.removeHandler(handler)


def test_known_library_messages_are_dropped_and_others_kept(beam_worker_logger):
    logger, records = beam_worker_logger
    worker = ('Worker: severity: WARN timestamp {   seconds: 1 } message: "Discarding '
              'unparseable args: [\\\'--direct_runner_use_stacked_bundle\\\', '
              '\\\'--pipeline_type_check\\\']" log_location: "x.py:1"')
    logger.warning(worker)
    logger.warning('Worker: severity: WARN message: "No semi_persistent_directory found: '
                   'Functions defined in __main__ (interactive session) may fail."')
    assert records == []
    # a user's unknown Beam option is still reported, and so is anything else
    user = ('Worker: severity: WARN message: "Discarding unparseable args: '
            '[\\\'--my_typo=1\\\']"')
    logger.warning(user)
    logger.warning("Worker: severity: ERROR message: \"bad row in Shop.csv\"")
    assert records == [user, "Worker: severity: ERROR message: \"bad row in Shop.csv\""]


def test_a_known_text_on_another_logger_is_kept():
    quiet.install()
    records = []
    other = logging.getLogger("s3rec_tf.tests.quiet")

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    other.addHandler(Keep())
    other.propagate = False
    other.warning("ArtifactQuery.property_predicate is not supported.")
    assert records == ["ArtifactQuery.property_predicate is not supported."]


def test_only_the_named_library_warning_is_ignored():
    quiet.install()
    message = ("Support for google-cloud-storage < 3.0.0 will be removed in a future version "
               "of google-cloud-aiplatform.")
    with warnings.catch_warnings(record=True) as caught:
        # keep the installed filters, but show everything else every time
        warnings.filters[:] = [f for f in warnings.filters if f[0] == "ignore" and
                               f[1] is not None and "google-cloud-storage" in f[1].pattern]
        warnings.warn_explicit(message, FutureWarning, "models.py", 52,
                               module="google.cloud.aiplatform.models")
        warnings.warn_explicit(message, FutureWarning, "mine.py", 1, module="mine")
        warnings.warn_explicit("3 rows of Shop.csv have no timestamp", UserWarning,
                               "preprocess.py", 1, module="s3rec_tf.data.preprocess")
    assert [(w.category, w.filename) for w in caught] == [(FutureWarning, "mine.py"),
                                                          (UserWarning, "preprocess.py")]


def test_verbose_libraries_turns_the_filters_off(tmp_path):
    code = ("import logging, sys; from s3rec_tf import quiet; quiet.install(); "
            "logging.basicConfig(); logging.getLogger('absl').warning("
            "'ArtifactQuery.property_predicate is not supported.')")
    env = dict(os.environ, PYTHONPATH=ROOT)
    quiet_run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               env={**env, "S3REC_VERBOSE_LIBRARIES": "0"})
    loud_run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env={**env, "S3REC_VERBOSE_LIBRARIES": "1"})
    assert quiet_run.stderr == ""
    assert "property_predicate" in loud_run.stderr
