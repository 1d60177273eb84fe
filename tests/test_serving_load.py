"""Serving under load: the export answers concurrent clients as it answers one.

A small run of `benchmarks/serving_load.py`: a few hundred items, 8 and 32
concurrent clients, in Python (the loaded SavedModel called from threads) and
through TensorFlow's C API (`tests/c_api/serve_load.c`, one session, several
pthreads). No request may fail, and every answer must equal the answer to the
same request made alone.
"""

import importlib.util
import os

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _benchmark():
    spec = importlib.util.spec_from_file_location(
        "serving_load", os.path.join(ROOT, "benchmarks", "serving_load.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


load = _benchmark()


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    """The C load client, compiled against the installed TensorFlow's C API."""
    try:
        return load.compile_program(str(tmp_path_factory.mktemp("c_api") / "serve_load"))
    except load.NoCompiler as e:
        pytest.skip(str(e))


def test_concurrent_answers_equal_the_answers_made_alone(program, tmp_path):
    out = load.measure(300, [8, 32], 200, str(tmp_path), program, hidden_size=16,
                       max_length=10, log=lambda _: None)
    rows = {(r["way"], r["clients"]): r for r in out["results"]}
    assert set(rows) == {(w, n) for w in ("python", "c") for n in (1, 8, 32)}
    for key, row in rows.items():
        assert row["requests"] == 200, key
        assert row["failed"] == 0, (key, row["errors"])
        assert row["differ_from_alone"] == 0 and row["equal_to_alone"], key
        assert row["throughput_rps"] > 0 and 0 < row["p50_ms"] <= row["p99_ms"], key
    assert out["c_alone_equals_python_alone"]


def test_requests_mix_empty_long_and_unknown_histories():
    requests = load.make_requests(50, 400, max_length=10, seed=0)
    lengths = [len(r) for r in requests]
    assert min(lengths) == 0 and max(lengths) > 10
    assert any(i.startswith("unknown-") for r in requests for i in r)
    assert requests == load.make_requests(50, 400, max_length=10, seed=0)


def test_an_answer_differs_by_an_item_or_a_score_beyond_the_tolerance():
    a = (("sku-1", "sku-2"), np.array([2.0, 1.0]))
    assert load.same_answer(a, (("sku-1", "sku-2"), np.array([2.0 + 5e-6, 1.0])))
    assert not load.same_answer(a, (("sku-2", "sku-1"), np.array([2.0, 1.0])))
    assert not load.same_answer(a, (("sku-1", "sku-2"), np.array([2.0, 1.0 + 1e-4])))
    assert not load.same_answer(None, a)
    one = {"answers": [a, None, (("sku-3", "sku-2"), a[1])], "latency_s": [0.001] * 3,
           "wall_s": 0.5, "errors": ["request 1: failed"]}
    row = load.summarise(one, [a, a, a])
    assert (row["failed"], row["differ_from_alone"], row["equal_to_alone"]) == (1, 1, False)
    assert row["throughput_rps"] == 6.0


def test_c_client_refuses_a_bad_thread_count(program):
    import subprocess
    proc = subprocess.run([program, "no-export", "a:0", "b:0", "c:0", "no-file", "0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "THREADS 0" in proc.stderr
