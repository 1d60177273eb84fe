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
    assert s["batch_shards"] == 3  # one part of a batch per inter-op thread


@pytest.mark.parametrize("intra, inter, shards", [(1, 2, 2), (1, 4, 4), (0, 2, 1), (2, 2, 1),
                                                  (1, 1, 1), (1, 0, 1)])
def test_batch_shards_follow_the_threads(monkeypatch, intra, inter, shards):
    import tensorflow as tf
    monkeypatch.setattr(tf.config.threading, "get_intra_op_parallelism_threads", lambda: intra)
    monkeypatch.setattr(tf.config.threading, "get_inter_op_parallelism_threads", lambda: inter)
    assert runtime.batch_shards() == shards


def test_explicit_settings_too_late_are_warned_about(monkeypatch):
    """In this process, where TensorFlow is imported and its runtime started."""
    import warnings

    import tensorflow as tf
    tf.constant(1.0) + 1.0
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)  # TensorFlow's default: on
    intra = tf.config.threading.get_intra_op_parallelism_threads() + 1  # not the running one
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        runtime.configure("pretrain")
        assert not w, [str(x.message) for x in w]
        runtime.configure("pretrain", intra_op_threads=intra, inter_op_threads=1,
                          onednn=False)
    out = [str(x.message) for x in w]
    assert any("TensorFlow is already imported" in m for m in out), out
    assert any("TensorFlow threads unchanged" in m for m in out), out


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


def test_mixed_precision_trains_on_cpu_in_float32_variables_and_losses(tiny_data):
    import keras
    import numpy as np
    from s3rec_tf.data import inputs
    from s3rec_tf.models.layers import SequenceEncoder
    from s3rec_tf.models import NextItemModel, S3RecPretrainer
    from s3rec_tf.training import adam

    def encoder():
        return SequenceEncoder(tiny_data.num_items, tiny_data.num_attributes, max_length=20,
                               hidden_size=16, num_layers=1, dropout=0.0,
                               attention_dropout=0.0)

    runtime.set_precision("mixed-bfloat16")
    try:
        assert runtime.settings()["precision"] == "mixed-bfloat16"
        enc = encoder()
        pre = S3RecPretrainer(enc, tiny_data.attribute_table())
        pre.compile(optimizer=adam(1e-3))
        history = pre.fit(inputs.pretrain_dataset(inputs.pretrain_arrays(tiny_data, 20), 32,
                                                  seed=0).take(2), epochs=1, verbose=0).history
        assert all(np.isfinite(v[0]) for v in history.values()), history
        model = NextItemModel(enc, loss="ce")
        model.compile(optimizer=adam(1e-3))
        ds = inputs.finetune_dataset(inputs.finetune_arrays(tiny_data, 20), 32,
                                     negatives=False).take(2)
        assert np.isfinite(model.fit(ds, epochs=1, verbose=0).history["loss"][0])
        assert enc.compute_dtype == "bfloat16"
        assert all(v.dtype == "float32" for v in model.trainable_variables)
        assert not isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        x = np.asarray(inputs.finetune_arrays(tiny_data, 20).input_ids[:16])
        mixed = enc(x)
        assert mixed.dtype == "float32"  # the heads and losses see float32
    finally:
        runtime.set_precision("float32")
    reference = encoder()  # the same weights in float32: the option's parity tolerance
    reference(x)
    reference.set_weights(enc.get_weights())
    gap = np.abs(np.asarray(mixed) - np.asarray(reference(x))).max()
    # measured: 0.020 and 0.027 (bfloat16 keeps 8 bits of mantissa; outputs are LayerNormed)
    assert gap < 0.1, gap
    with pytest.raises(ValueError, match="Unknown precision 'mixed-float16'"):
        runtime.set_precision("mixed-float16")


def test_precision_reaches_the_runtime_from_the_command_line(monkeypatch, tmp_path):
    from s3rec_tf import cli
    seen = {}

    def configure(*args):
        seen["args"] = args
        raise SystemExit(0)

    monkeypatch.setattr(runtime, "configure", configure)
    with pytest.raises(SystemExit):
        cli.main(["pretrain", "--data", str(tmp_path / "data"), "--name", "X", "--output",
                  str(tmp_path / "o"), "--precision", "mixed-bfloat16"])
    assert seen["args"][-1] == "mixed-bfloat16"


def test_training_workload_names_the_work_and_rejects_others():
    assert runtime.training_workload("pretrain") == "pretrain"
    assert runtime.training_workload("ce") == "finetune-ce"
    with pytest.raises(ValueError, match="work must be one of"):
        runtime.training_workload("mse")
