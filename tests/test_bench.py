"""`s3rec-tf bench`: the library's speed cases, their runs and the JSON they write."""

import json
import types

import pytest

from s3rec_tf import bench


def test_plan_covers_every_case_of_the_speed_issue():
    keys = [s["key"] for s in bench.plan("data", quick=False)]
    for key in ("pretrain/Beauty", "pretrain/LastFM", "finetune_bce/Beauty",
                "finetune_ce/Beauty", "finetune_sampled-ce/Beauty", "evaluate_full/Beauty",
                "prepare/Beauty"):
        assert key in keys
    assert any(k.startswith("serving/1000000items") for k in keys)
    quick = bench.plan("data", quick=True)
    assert all(s.get("steps", 0) <= 20 for s in quick)


def test_each_case_runs_with_the_clis_runtime_workload():
    specs = {s["key"]: s for s in bench.plan("data", quick=True)}
    assert bench.workload_of(specs["pretrain/Beauty"]) == "pretrain"
    assert bench.workload_of(specs["finetune_bce/Beauty"]) == "finetune-bce"
    assert bench.workload_of(specs["finetune_ce/Beauty"]) == "finetune-ce"
    assert bench.workload_of(specs["finetune_sampled-ce/Beauty"]) == "finetune-sampled-ce"
    assert bench.workload_of(specs["evaluate_full/Beauty"]) == "default"


def test_pretrain_case_measures_a_positive_throughput(synthetic_dir):
    spec = {"case": "pretrain", "key": "pretrain/Tiny", "data_dir": synthetic_dir,
            "name": "Tiny", "steps": 3, "warmup": 1, "batch_size": 16,
            "runtime": {"workload": "pretrain"}}
    result = bench.run_case(spec)
    assert result["unit"] == "samples/s" and result["throughput"] > 0
    assert result["runtime"]["onednn"] is False and result["peak_rss_mb"] > 0


@pytest.mark.parametrize("work,batch_size,unit,model_class", [
    ("pretrain", 100, "samples/s", "S3RecPretrainer"),
    ("ce", 256, "sequences/s", "NextItemModel")])
def test_training_case_builds_the_command_lines_model_and_batches(synthetic_dir, work,
                                                                  batch_size, unit,
                                                                  model_class):
    from s3rec_tf.data.reader import read_dataset
    data = read_dataset(synthetic_dir, "Tiny")
    model, ds, size, got_unit = bench.training_case(data, work, steps=3)
    assert (size, got_unit, type(model).__name__) == (batch_size, unit, model_class)
    assert model.optimizer is not None and len(list(ds.take(3))) == 3
    assert bench.training_case(data, work, steps=1, batch_size=8)[2] == 8
    with pytest.raises(ValueError, match="work must be 'pretrain' or one of"):
        bench.training_case(data, "mse", steps=1)


def test_fit_is_timed_on_one_iterator_from_the_end_of_the_warm_up(monkeypatch):
    import keras
    import numpy as np
    import tensorflow as tf
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    fits = []
    real_fit = model.fit
    model.fit = lambda *args, **kwargs: fits.append(1) or real_fit(*args, **kwargs)
    ds = tf.data.Dataset.from_tensor_slices((np.ones((10, 2)), np.ones((10, 1)))).batch(1)
    clock = iter([0.0, 1.0, 2.0, 3.0, 7.0, 11.0, 100.0])
    monkeypatch.setattr(bench, "time", types.SimpleNamespace(perf_counter=lambda: next(clock)))
    warm, timed = bench._time_fit(model, ds, warmup=3, steps=2)
    # fit starts at 0; steps end at 1, 2, 3 (warm-up) and 7, 11 (timed)
    assert (warm, timed) == (3.0, 8.0) and len(fits) == 1
    monkeypatch.undo()
    with pytest.raises(RuntimeError, match="ran out after 10 of 12 batches"):
        bench._time_fit(model, ds, warmup=2, steps=10)
    with pytest.raises(ValueError, match="warmup and steps must be >= 1"):
        bench._time_fit(model, ds, warmup=0, steps=2)


def test_precision_reaches_each_case(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(bench, "run_case", lambda spec: seen.append(spec["runtime"]) or
                        {"throughput": 1.0, "unit": "samples/s", "peak_rss_mb": 1.0})
    assert bench.main(["--only", "pretrain/LastFM", "--repeats", "1", "--precision",
                       "mixed-bfloat16", "--output", str(tmp_path / "b.json")]) == 0
    assert seen and all(r["precision"] == "mixed-bfloat16" for r in seen)
    with pytest.raises(SystemExit):
        bench.main(["--precision", "half", "--output", str(tmp_path / "c.json")])


def test_bench_writes_its_json_layout_and_table(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "run_case", lambda spec: {
        "throughput": 10.0 if spec["case"] != "serving" else None, "p50_ms": 1.0,
        "p99_ms": 2.0, "unit": "ms" if spec["case"] == "serving" else "samples/s",
        "peak_rss_mb": 1.0})
    out = tmp_path / "b.json"
    assert bench.main(["--only", "pretrain/LastFM", "serving/12101items/batch1", "--quick",
                       "--repeats", "2", "--note", "n", "--output", str(out)]) == 0
    report = json.loads(out.read_text())
    assert {"results", "quick", "repeats", "original", "model_config", "runtime", "note",
            "command", "commit", "machine", "finished_at"} <= set(report)
    assert report["original"] is None and report["note"] == "n" and report["commit"]
    assert report["model_config"] == bench.MODEL_CONFIG
    lastfm = report["results"]["pretrain/LastFM"]
    assert len(lastfm["runs"]) == 2 and lastfm["median"] == 10.0
    assert lastfm["config"]["runtime"]["workload"] == "pretrain"
    assert len(report["results"]["serving/12101items/batch1"]["runs"]) == 1  # one pooled run
    table = capsys.readouterr().out
    assert "| pretrain/LastFM | 10 | samples/s | 1 |" in table
    assert "| serving/12101items/batch1 | p50 1.00 / p99 2.00 | ms | 1 |" in table


def test_the_library_bench_runs_no_other_code():
    """`s3rec-tf bench` times the library only: no other harness, no command-line import."""
    import ast
    tree = ast.parse(open(bench.__file__).read())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "s3rec_tf.cli" not in imported
    assert not [m for m in imported if m and m.split(".")[0] in ("torch", "benchmarks")]
