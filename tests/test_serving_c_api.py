"""The export serves outside Python: a C program on TensorFlow's C API.

`tests/c_api/serve_default.c` loads the export with `TF_LoadSessionFromSavedModel`
and the tag `serve` (the loader TensorFlow Serving uses) and runs `serving_default`
on raw string ids; its items and scores must equal the Python `Recommender`'s.
"""

import importlib.util
import os
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from s3rec_tf import artifacts, serving
from s3rec_tf.models.layers import SequenceEncoder
from s3rec_tf.models import NextItemModel

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "c_api", "serve_default.c")
K = 6


def _benchmark():
    """`benchmarks/serving_load.py`, whose compiler call and signature reader this shares."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location(
        "serving_load", os.path.join(root, "benchmarks", "serving_load.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


load = _benchmark()
signature_tensors = load.signature_tensors


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    """The C program, compiled against the installed TensorFlow's C API."""
    try:
        return load.compile_program(str(tmp_path_factory.mktemp("c_api") / "serve_default"),
                                    SOURCE)
    except load.NoCompiler as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def export(tiny_data, tmp_path_factory):
    """An export with non-numeric raw ids (an untrained model: the answers only have to agree)."""
    base = tmp_path_factory.mktemp("c_api_export")
    encoder = SequenceEncoder(tiny_data.num_items, tiny_data.num_attributes, max_length=8,
                              hidden_size=16)
    model_dir = artifacts.save_model(str(base / "model"), NextItemModel(encoder), "finetuned",
                                     artifacts.vocabulary_of(tiny_data), {})
    vocabulary = [f"sku-{i:04d}" for i in range(1, tiny_data.num_items + 1)]
    path = serving.export_serving_model(model_dir, str(base / "serving"), version=3,
                                        vocabulary=vocabulary, default_k=K)
    return path


HISTORIES = [
    ["sku-0003", "sku-0009", "sku-0004"],
    ["sku-0012"],
    ["unknown-id", "sku-0005", "sku-0005"],
    [f"sku-{i:04d}" for i in range(20, 40)],  # longer than the model's 8 positions
    [],
]


def run_program(program, export_dir, histories):
    names = signature_tensors(export_dir)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([program, export_dir, names["history"], names["item_ids"],
                           names["scores"], *[",".join(h) for h in histories]],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = [[] for _ in histories]
    for line in proc.stdout.splitlines():
        row, item, score = line.split("\t")
        rows[int(row)].append((item, float(score)))
    return rows


def test_c_program_answers_equal_the_python_recommender(program, export):
    got = run_program(program, export, HISTORIES)
    want = serving.Recommender(export).recommend(HISTORIES, k=K)
    assert [len(r) for r in got] == [K] * len(HISTORIES)
    for row_got, row_want in zip(got, want):
        assert [i for i, _ in row_got] == [i for i, _ in row_want]
        np.testing.assert_allclose([s for _, s in row_got], [s for _, s in row_want],
                                   rtol=1e-6, atol=1e-7)
    assert not {"sku-0003", "sku-0009", "sku-0004"} & {i for i, _ in got[0]}


def test_c_program_reports_a_missing_tensor(program, export):
    proc = subprocess.run([program, export, "no_such_op:0", "a:0", "b:0", "sku-0001"],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 2 and "no tensor no_such_op:0" in proc.stderr
