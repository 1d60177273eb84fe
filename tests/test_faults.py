"""Faults: a full disk during `export`, `prepare` and a checkpoint save; damaged files.

A file size limit (`RLIMIT_FSIZE`, as `ulimit -f`) makes every write past it
fail with EFBIG, without any mount. Each command then exits 1 with one line
naming the file, leaves no partial output (no temporary folder either) and
keeps the previous good output byte for byte. A truncated or corrupted
prepared TFRecord file, or checkpoint, is refused with one line naming it.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys

import pytest

from s3rec_tf import cli
from tests.test_bad_input_corpus import assert_refused, run_cli, snapshot

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--hidden-size", "8", "--num-layers", "1", "--max-length", "10", "--batch-size",
         "64"]


#: Runs `s3rec-tf` commands one after the other in one process; after each, a line
#: `MARK <exit code>` on stderr.
_CHAIN = """
import json, sys
import s3rec_tf
from s3rec_tf.cli import main
for argv in json.loads(sys.argv[1]):
    code = main(argv)
    print(f"{sys.argv[2]} {code}", file=sys.stderr, flush=True)
"""
MARK = "--- s3rec-tf exited with"


def run_limited(commands, limit_bytes, cwd):
    """`s3rec-tf argv` for each argv of `commands`, one after the other in one fresh
    process whose writes stop at `limit_bytes` per file.

    Returns:
        `(exit code, stderr)` of each command, in order.
    """
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONDONTWRITEBYTECODE="1")
    argvs = [[str(a) for a in argv] for argv in commands]
    proc = subprocess.run([sys.executable, "-c", _CHAIN, json.dumps(argvs), MARK],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=600,
                          preexec_fn=limit)
    parts = re.split(rf"^{re.escape(MARK)} (-?\d+|None)\n", proc.stderr, flags=re.M)
    results = [(int(code) if code != "None" else None, err)
               for err, code in zip(parts[0::2], parts[1::2])]
    assert proc.returncode == 0 and len(results) == len(argvs), proc.stderr[-2000:]
    return results


def assert_failed_cleanly(result, root, before):
    code, stderr = result
    err = [line for line in stderr.splitlines() if line.strip()]
    assert code == 1, stderr[-2000:]
    assert "Traceback" not in stderr and "File too large" in err[-1], err
    assert snapshot(root) == before, "the earlier output changed, or something was left"


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    assert cli.main(["synth", "--output", str(root / "data"), "--users", "60", "--items",
                     "200", "--name", "T"]) == 0
    return root


def test_export_on_a_full_disk_keeps_the_earlier_version(ws, tmp_path):
    from s3rec_tf import artifacts
    from s3rec_tf.data.reader import read_dataset
    from s3rec_tf.models.layers import SequenceEncoder
    from s3rec_tf.models import NextItemModel
    data = read_dataset(str(ws / "data"), "T")
    encoder = SequenceEncoder(data.num_items, data.num_attributes, max_length=10, hidden_size=8,
                              num_layers=1)
    artifacts.save_model(str(tmp_path / "m"), NextItemModel(encoder), "finetuned",
                         artifacts.vocabulary_of(data), {})
    serve = tmp_path / "serve"
    assert cli.main(["export", "--model", str(tmp_path / "m"), "--output", str(serve),
                     "--version", "1"]) == 0
    before = snapshot(tmp_path)
    results = run_limited([["export", "--model", tmp_path / "m", "--output", serve, *version]
                           for version in (["--version", "1", "--overwrite"],
                                           ["--version", "2"])], 8 << 10, tmp_path)
    for result in results:
        assert_failed_cleanly(result, tmp_path, before)


def test_prepare_on_a_full_disk_keeps_the_earlier_output(ws, tmp_path):
    argv = ["prepare", "--input", ws / "data", "--name", "T", "--output", tmp_path / "prep",
            "--beam-arg=--runner=DirectRunner"]
    assert cli.main([str(a) for a in argv]) == 0
    before = snapshot(tmp_path)
    result, = run_limited([argv + ["--overwrite"]], 2 << 10, tmp_path)
    assert_failed_cleanly(result, tmp_path, before)


def test_checkpoint_save_on_a_full_disk_keeps_the_last_checkpoint(ws, tmp_path, capsys):
    argv = ["pretrain", "--data", str(ws / "data"), "--name", "T", "--output",
            str(tmp_path / "run"), *SMALL]
    assert cli.main(argv + ["--epochs", "1"]) == 0
    checkpoint = snapshot(tmp_path / "run" / "_resume")
    (code, stderr), = run_limited([argv + ["--epochs", "2"]], 16 << 10, tmp_path)
    err = [line for line in stderr.splitlines() if line.strip()]
    assert code == 1 and "Traceback" not in stderr, stderr[-2000:]
    assert "File too large" in err[-1], err
    assert snapshot(tmp_path / "run" / "_resume") == checkpoint
    assert not [n for n in os.listdir(tmp_path / "run" / "_resume") if "tmp" in n]
    capsys.readouterr()
    assert cli.main(argv + ["--epochs", "2"]) == 0  # room again: it resumes from epoch 1
    assert "Resuming pretraining from epoch 1" in capsys.readouterr().out


# ------------------------------------------------------------- corruption ---

@pytest.fixture(scope="module")
def prepared(ws):
    assert cli.main(["prepare", "--input", str(ws / "data"), "--name", "T", "--output",
                     str(ws / "prep"), "--beam-arg=--runner=DirectRunner"]) == 0
    return ws / "prep"


def _truncate(path):
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])


def _flip(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage,words", [(_truncate, "truncated record"),
                                          (_flip, "corrupted record")])
def test_a_damaged_prepared_tfrecord_is_named(prepared, tmp_path, capfd, damage, words):
    import shutil
    copy = tmp_path / "prep"
    shutil.copytree(prepared, copy)
    shard = sorted((copy / "Split-sequences").iterdir())[0]
    damage(shard)
    assert_refused(capfd, ["pretrain", "--data", copy, "--name", "T", "--output",
                           tmp_path / "run", *SMALL, "--epochs", "1"], tmp_path,
                   rf"{shard.name}: corrupt or truncated TFRecord file \({words} at \d+\)")


def test_a_damaged_checkpoint_is_named(ws, tmp_path, capfd):
    argv = ["pretrain", "--data", ws / "data", "--name", "T", "--output", tmp_path / "run",
            *SMALL]
    assert run_cli(capfd, argv + ["--epochs", "1"])[0] == 0
    _truncate(next((tmp_path / "run" / "_resume").glob("ckpt-1.data-*")))
    code, _, err = run_cli(capfd, argv + ["--epochs", "2"])
    assert code == 2 and "ckpt-1: corrupt or incompatible checkpoint" in err[-1], err
