import json
import sys
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


@pytest.mark.parametrize("flag", ["--warmup", "--steps", "--eval-users", "--repeats"])
def test_step_counts_are_checked_when_parsed(flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--scale", flag, "0"])
    assert exit_info.value.code == 2
    assert f"argument {flag}: must be >= 1. Received: 0" in capsys.readouterr().err


def test_table_shows_ratio_to_the_original_and_the_goal():
    report = {"results": {"pretrain/Beauty": {
        "median": 1730.0, "unit": "samples/s", "peak_rss_mb": 1000.0, "runs": []}}}
    table = bench.format_table(report)
    assert ("| pretrain/Beauty | 1730 | samples/s | 173.0 (REFERENCE.md) | 10.0x | >= 25x "
            "| 1000 |") in table
    json.dumps(report)


def test_full_softmax_is_compared_with_the_originals_bce():
    """The original has no full-softmax fine-tuning: `ce`'s goal is a multiple of its `bce`."""
    report = {"results": {"finetune_ce/Beauty": {
        "median": 3300.0, "unit": "sequences/s", "peak_rss_mb": 1.0, "runs": []}}}
    assert ("| finetune_ce/Beauty | 3300 | sequences/s | 1100.0 (REFERENCE.md, its bce) "
            "| 3.0x | >= 3x |") in bench.format_table(report)


ORIGINAL_OUTPUT = """pretrain Beauty: 172.5 samples/s (579.7 ms/step, data 170.1 ms/step); epoch ~ 871 s
finetune Beauty: 1088.6 seqs/s; epoch of 22363 users ~ 20.5 s
full-rank eval Beauty: 2421.8 users/s; 9.2 s for 22363 users
"""


def test_original_timing_lines_are_parsed():
    assert bench.parse_original_output(ORIGINAL_OUTPUT) == {
        ("Beauty", "pretrain"): 172.5, ("Beauty", "finetune"): 1088.6,
        ("Beauty", "eval"): 2421.8}
    assert bench.parse_original_output("Traceback ...") == {}


def test_original_runs_cover_the_cases_with_a_counterpart():
    specs = bench.plan("data", quick=True)
    assert bench.original_plan(specs) == {"Beauty": False, "LastFM": True}
    only_lastfm = [s for s in specs if s["key"] == "pretrain/LastFM"]
    assert bench.original_plan(only_lastfm) == {"LastFM": True}
    only_ce = [s for s in specs if s["key"] == "finetune_ce/Beauty"]
    assert bench.original_plan(only_ce) == {"Beauty": False}  # its bce is the baseline


def _fake_original(tmp_path, figure):
    folder = tmp_path / "original"
    folder.mkdir()
    (folder / "setup.sh").write_text(f"#!/usr/bin/env bash\necho {sys.executable}\n")
    (folder / "time_original.py").write_text(
        "import sys\n"
        "name = sys.argv[2]\n"
        f"print(f'pretrain {{name}}: {figure} samples/s (1 ms/step)')\n"
        "if len(sys.argv) < 5:\n"
        f"    print(f'finetune {{name}}: {figure * 10} seqs/s')\n"
        f"    print(f'full-rank eval {{name}}: {figure * 20} users/s')\n")
    return str(folder)


def test_side_by_side_run_interleaves_and_reports_ratios(tmp_path, monkeypatch):
    calls = []

    def fake_case(spec):
        calls.append(spec["key"])
        return {"throughput": 1000.0, "unit": "samples/s", "peak_rss_mb": 1.0}

    monkeypatch.setattr(bench, "run_case", fake_case)
    original = _fake_original(tmp_path, 100.0)
    real_run_original = bench.run_original

    def logged_original(*args, **kwargs):
        calls.append("original/" + args[3])
        return real_run_original(*args, **kwargs)

    monkeypatch.setattr(bench, "run_original", logged_original)
    out = tmp_path / "bench.json"
    assert bench.main(["--original", original, "--repeats", "2", "--only", "pretrain",
                       "--output", str(out)]) == 0
    # each round times the original before our cases
    assert calls == ["original/Beauty", "original/LastFM", "pretrain/Beauty",
                     "pretrain/LastFM"] * 2
    report = json.loads(out.read_text())
    side = report["results"]["pretrain/LastFM"]["original"]
    assert side["runs"] == [100.0, 100.0] and side["round_ratios"] == [10.0, 10.0]
    assert "| pretrain/LastFM | 1000 | samples/s | 100 (same run) | 10.0x |" in \
        bench.format_table(report)
    assert bench.main(["--original", original, "--repeats", "1", "--only", "finetune_ce",
                       "--output", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["results"]["finetune_ce/Beauty"]["original"]["case"] == "finetune_bce/Beauty"
    assert "| 1000 (same run, its bce) | 1.0x | >= 3x |" in bench.format_table(report)


def test_a_missing_original_folder_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="does not hold the original code"):
        bench.original_python(str(tmp_path))


def test_scale_sizes_are_parsed_and_tiny_ones_refused():
    assert [bench.parse_size(s) for s in ("1M", "3m", "250k", "20000")] == [
        1_000_000, 3_000_000, 250_000, 20_000]
    for bad in ("lots", "10"):
        with pytest.raises(SystemExit, match="--sizes"):
            bench.parse_size(bad)
    keys = [s["key"] for s in bench.scale_plan({"1M": 10 ** 6}, "w")]
    assert keys == [f"1M/{stage}" for stage in bench.SCALE_STAGES]
    assert bench.scale_plan({"1M": 10 ** 6}, "w")[0]["items"] == 100_000


def test_scale_bench_measures_a_stage_in_its_own_process(tmp_path):
    out = tmp_path / "scale.json"
    assert bench.main(["--scale", "--sizes", "2000", "--stages", "synth",
                       "--workdir", str(tmp_path / "w"), "--output", str(out),
                       "--note", "test"]) == 0
    report = json.loads(out.read_text())
    size = report["sizes"]["2000"]
    assert list(size["stages"]) == ["synth"]
    synth = size["stages"]["synth"]
    assert synth["users"] == size["users"] > 0 and abs(size["interactions"] - 2000) < 400
    assert synth["peak_rss_mb"] > 0 and synth["peak_tree_rss_mb"] > 0 and synth["wall_s"] > 0
    assert report["commit"] and report["machine"]["cpu_count"] and report["note"] == "test"
    assert report["command"].startswith("s3rec-tf")
    assert not (tmp_path / "w" / "2000").exists()  # each size's data go once measured


@pytest.mark.slow
def test_scale_bench_runs_every_stage_on_a_tiny_size(tmp_path):
    out = tmp_path / "scale.json"
    assert bench.main(["--scale", "--sizes", "2000", "--steps", "1", "--warmup", "1",
                       "--eval-users", "16", "--workdir", str(tmp_path / "w"),
                       "--output", str(out), "--note", "test", "--optimizer", "lazy-adam"]) == 0
    report = json.loads(out.read_text())
    size = report["sizes"]["2000"]
    assert list(size["stages"]) == list(bench.SCALE_STAGES)
    assert size["users"] > 0 and abs(size["interactions"] - 2000) < 400
    assert all(s["peak_rss_mb"] > 0 and s["peak_tree_rss_mb"] > 0
               for s in size["stages"].values())
    assert size["stages"]["prepare"]["interactions"] == size["interactions"]
    for stage in ("pretrain", "finetune", "evaluate"):
        assert size["stages"][stage]["epoch_s_extrapolated"] > 0
        assert "extrapolated" in size["stages"][stage]["note"]
    assert size["stages"]["finetune"]["per_epoch"] == size["users"]
    assert size["stages"]["pretrain"]["optimizer"] == "lazy-adam"
    assert report["commit"] and report["machine"]["cpu_count"] and report["note"] == "test"
    assert not (tmp_path / "w" / "2000").exists()  # each size's data go once measured
    assert "| 2,000 |" not in bench.scale_table(report)  # the measured count is shown
    assert f"| {size['interactions']:,} |" in bench.scale_table(report)


def test_precision_reaches_each_case(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(bench, "run_case", lambda spec: seen.append(spec["runtime"]) or
                        {"throughput": 1.0, "unit": "samples/s", "peak_rss_mb": 1.0})
    assert bench.main(["--only", "pretrain/LastFM", "--repeats", "1", "--precision",
                       "mixed-bfloat16", "--output", str(tmp_path / "b.json")]) == 0
    assert seen and all(r["precision"] == "mixed-bfloat16" for r in seen)
    with pytest.raises(SystemExit):
        bench.main(["--precision", "half", "--output", str(tmp_path / "c.json")])


def test_catalogue_bench_times_each_optimizer_at_each_size():
    from s3rec_tf.config import OPTIMIZERS
    specs = bench.catalogue_plan({"1k": 1000, "1M": 1_000_000}, steps=3, warmup=1)
    assert [(s["items"], s["optimizer"]) for s in specs] == [
        (n, o) for n in (1000, 1_000_000) for o in OPTIMIZERS]
    assert {bench.workload_of(s) for s in specs} == {"pretrain"}
    result = bench.case_catalogue(items=1000, optimizer="lazy-adam", steps=2, warmup=1,
                                  batch_size=4, max_length=6)
    assert result["throughput"] > 0 and result["step_s"] > 0 and result["items"] == 1000
    report = {"results": {s["key"]: {"config": s, "runs": [{"step_s": s["items"] / 1e6
                                                            * (2 if s["optimizer"] == "adam"
                                                               else 1)}]}
                          for s in specs}}
    table = bench.catalogue_table(report)
    scale = bench.scale_plan({"2000": 2000}, "w", optimizer="lazy-adam")
    assert {s["case"]: s.get("optimizer") for s in scale} == {
        "scale_synth": None, "scale_prepare": None, "scale_pretrain": "lazy-adam",
        "scale_finetune": "lazy-adam", "scale_evaluate": None}
    assert "| 1,000,000 | 2.000 (1000.00x) | 1.000 (1000.00x) | 2.00x |" in table
