import json

from s3rec_tf import bench


def test_plan_covers_every_case_of_the_speed_issue():
    keys = [s["key"] for s in bench.plan("data", quick=False)]
    for key in ("pretrain/Beauty", "pretrain/LastFM", "finetune_bce/Beauty",
                "finetune_ce/Beauty", "evaluate_full/Beauty", "prepare/Beauty"):
        assert key in keys
    assert any(k.startswith("serving/1000000items") for k in keys)
    quick = bench.plan("data", quick=True)
    assert all(s.get("steps", 0) <= 20 for s in quick)


def test_each_case_runs_with_the_clis_runtime_workload():
    specs = {s["key"]: s for s in bench.plan("data", quick=True)}
    assert bench.workload_of(specs["pretrain/Beauty"]) == "pretrain"
    assert bench.workload_of(specs["finetune_bce/Beauty"]) == "finetune-bce"
    assert bench.workload_of(specs["finetune_ce/Beauty"]) == "finetune-ce"
    assert bench.workload_of(specs["evaluate_full/Beauty"]) == "default"


def test_pretrain_case_measures_a_positive_throughput(synthetic_dir):
    spec = {"case": "pretrain", "key": "pretrain/Tiny", "data_dir": synthetic_dir,
            "name": "Tiny", "steps": 3, "warmup": 1, "batch_size": 16,
            "runtime": {"workload": "pretrain"}}
    result = bench.run_case(spec)
    assert result["unit"] == "samples/s" and result["throughput"] > 0
    assert result["runtime"]["onednn"] is False and result["peak_rss_mb"] > 0


def test_table_shows_ratio_to_the_original_and_the_goal():
    report = {"results": {"pretrain/Beauty": {
        "median": 1730.0, "unit": "samples/s", "peak_rss_mb": 1000.0, "runs": []}}}
    table = bench.format_table(report)
    assert "| pretrain/Beauty | 1730 | samples/s | 173.0 | 10.0x | >= 10x | 1000 |" in table
    json.dumps(report)
