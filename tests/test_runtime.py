import json
import os
import subprocess
import sys

import pytest

from s3rec_tf import runtime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_recommended_settings_per_workload():
    small = runtime.recommended("pretrain", cpu_count=2)
    assert small == {"intra_op_threads": 1, "inter_op_threads": 2, "onednn": False}
    assert runtime.recommended("finetune-bce", cpu_count=2)["intra_op_threads"] == 1
    assert runtime.recommended("finetune-bce", cpu_count=2)["onednn"] is True
    # large scoring matmuls keep TensorFlow's threading and oneDNN
    for workload in ("finetune-ce", "default"):
        assert runtime.recommended(workload, cpu_count=2) == {
            "intra_op_threads": 0, "inter_op_threads": 0, "onednn": True}
    # not measured on big machines: TensorFlow's own threading there
    assert runtime.recommended("pretrain", cpu_count=32)["intra_op_threads"] == 0
    with pytest.raises(ValueError, match="Unknown workload 'train'"):
        runtime.recommended("train")


def _fresh(code):
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    env["PYTHONPATH"] = ROOT
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_configure_applies_before_tensorflow_starts():
    proc = _fresh("import json, s3rec_tf.runtime as r\n"
                  "s = r.configure('pretrain', intra_op_threads=1, inter_op_threads=3)\n"
                  "import os; s['env'] = os.environ['TF_ENABLE_ONEDNN_OPTS']\n"
                  "print(json.dumps(s))")
    s = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (s["intra_op_threads"], s["inter_op_threads"], s["onednn"]) == (1, 3, False)
    assert s["env"] == "0"


def test_explicit_settings_too_late_are_warned_about():
    proc = _fresh("import warnings, tensorflow as tf, s3rec_tf.runtime as r\n"
                  "tf.constant(1.0) + 1.0\n"
                  "with warnings.catch_warnings(record=True) as w:\n"
                  "    warnings.simplefilter('always')\n"
                  "    r.configure('pretrain')\n"
                  "    assert not w, [str(x.message) for x in w]\n"
                  "    r.configure('pretrain', intra_op_threads=1, inter_op_threads=1,"
                  " onednn=False)\n"
                  "print(sorted(str(x.message)[:40] for x in w))")
    out = proc.stdout
    assert "TensorFlow is already imported" in out and "TensorFlow threads unchanged" in out


def test_negative_thread_counts_are_rejected():
    with pytest.raises(ValueError, match="must be >= 0"):
        runtime.configure("default", intra_op_threads=-1)


def test_auto_keeps_tensorflows_defaults_when_a_gpu_is_visible(tmp_path):
    """The measured choices are for CPUs: with a GPU, "auto" changes neither threads nor oneDNN."""
    gpus = tmp_path / "gpus"
    (gpus / "0000:00:04.0").mkdir(parents=True)
    code = ("import json, os, s3rec_tf.runtime as r\n"
            f"r.NVIDIA_PROC = {str(gpus)!r}\n"
            "os.environ.pop('CUDA_VISIBLE_DEVICES', None)\n"
            "assert r.gpu_visible()\n"
            "s = r.configure('pretrain')\n"
            "s['env'] = os.environ.get('TF_ENABLE_ONEDNN_OPTS')\n"
            "os.environ['CUDA_VISIBLE_DEVICES'] = '-1'\n"
            "s['hidden'] = r.gpu_visible()\n"
            "print(json.dumps(s))")
    s = json.loads(_fresh(code).stdout.strip().splitlines()[-1])
    assert (s["intra_op_threads"], s["inter_op_threads"], s["env"]) == (0, 0, None)
    assert s["hidden"] is False
