"""benchmarks/scale.py: the scale and catalogue studies."""

import json

import pytest

from tests.benchmarks import script

scale = script("scale")


@pytest.mark.parametrize("flag", ["--warmup", "--steps", "--eval-users", "--repeats"])
def test_step_counts_are_checked_when_parsed(flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        scale.main(["--scale", flag, "0"])
    assert exit_info.value.code == 2
    assert f"argument {flag}: must be >= 1. Received: 0" in capsys.readouterr().err


def test_scale_sizes_are_parsed_and_tiny_ones_refused():
    assert [scale.parse_size(s) for s in ("1M", "3m", "250k", "20000")] == [
        1_000_000, 3_000_000, 250_000, 20_000]
    for bad in ("lots", "10"):
        with pytest.raises(SystemExit, match="--sizes"):
            scale.parse_size(bad)
    keys = [s["key"] for s in scale.scale_plan({"1M": 10 ** 6}, "w")]
    assert keys == [f"1M/{stage}" for stage in scale.SCALE_STAGES]
    assert scale.scale_plan({"1M": 10 ** 6}, "w")[0]["items"] == 100_000


def test_scale_bench_measures_a_stage_in_its_own_process(tmp_path):
    out = tmp_path / "scale.json"
    assert scale.main(["--scale", "--sizes", "2000", "--stages", "synth",
                       "--workdir", str(tmp_path / "w"), "--output", str(out),
                       "--note", "test"]) == 0
    report = json.loads(out.read_text())
    size = report["sizes"]["2000"]
    assert list(size["stages"]) == ["synth"]
    synth = size["stages"]["synth"]
    assert synth["users"] == size["users"] > 0 and abs(size["interactions"] - 2000) < 400
    assert synth["peak_rss_mb"] > 0 and synth["peak_tree_rss_mb"] > 0 and synth["wall_s"] > 0
    assert report["commit"] and report["machine"]["cpu_count"] and report["note"] == "test"
    assert report["command"].startswith("python benchmarks/scale.py --scale")
    assert not (tmp_path / "w" / "2000").exists()  # each size's data go once measured


@pytest.mark.slow
def test_scale_bench_runs_every_stage_on_a_tiny_size(tmp_path):
    out = tmp_path / "scale.json"
    assert scale.main(["--scale", "--sizes", "2000", "--steps", "1", "--warmup", "1",
                       "--eval-users", "16", "--workdir", str(tmp_path / "w"),
                       "--output", str(out), "--note", "test", "--optimizer", "lazy-adam"]) == 0
    report = json.loads(out.read_text())
    size = report["sizes"]["2000"]
    assert list(size["stages"]) == list(scale.SCALE_STAGES)
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
    assert "| 2,000 |" not in scale.scale_table(report)  # the measured count is shown
    assert f"| {size['interactions']:,} |" in scale.scale_table(report)


def test_catalogue_bench_times_each_optimizer_at_each_size():
    from s3rec_tf.config import OPTIMIZERS
    specs = scale.catalogue_plan({"1k": 1000, "1M": 1_000_000}, steps=3, warmup=1)
    assert [(s["items"], s["optimizer"]) for s in specs] == [
        (n, o) for n in (1000, 1_000_000) for o in OPTIMIZERS]
    assert {scale.workload_of(s) for s in specs} == {"pretrain"}
    result = scale.case_catalogue(items=1000, optimizer="lazy-adam", steps=2, warmup=1,
                                  batch_size=4, max_length=6)
    assert result["throughput"] > 0 and result["step_s"] > 0 and result["items"] == 1000
    report = {"results": {s["key"]: {"config": s, "runs": [{"step_s": s["items"] / 1e6
                                                            * (2 if s["optimizer"] == "adam"
                                                               else 1)}]}
                          for s in specs}}
    table = scale.catalogue_table(report)
    stages = scale.scale_plan({"2000": 2000}, "w", optimizer="lazy-adam")
    assert {s["case"]: s.get("optimizer") for s in stages} == {
        "scale_synth": None, "scale_prepare": None, "scale_pretrain": "lazy-adam",
        "scale_finetune": "lazy-adam", "scale_evaluate": None}
    assert "| 1,000,000 | 2.000 (1000.00x) | 1.000 (1000.00x) | 2.00x |" in table


def test_catalogue_cases_run_in_processes_of_this_script(tmp_path, monkeypatch):
    """(The scale bench's test above runs a stage in such a process.)"""
    from s3rec_tf import bench
    seen = []
    monkeypatch.setattr(bench, "run_case", lambda spec, command: seen.append(command) or
                        {"throughput": 1.0, "step_s": 1.0, "unit": "samples/s",
                         "peak_rss_mb": 1.0})
    out = tmp_path / "c.json"
    assert scale.main(["--catalogue", "1k", "--repeats", "1", "--output", str(out)]) == 0
    report = json.loads(out.read_text())
    assert seen == [scale.CHILD] * 2 and report["original"] is None
    assert report["command"] == f"python benchmarks/scale.py --catalogue 1k --repeats 1 " \
                                f"--output {out}"
    with pytest.raises(SystemExit):
        scale.main([])
