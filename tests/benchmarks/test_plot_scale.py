"""benchmarks/plot_scale.py: the scale plot and table from `scale.py --scale` records."""

import json

import pytest

from tests.benchmarks import script


def test_scale_plot_and_table_from_bench_results(tmp_path):
    scale = script("plot_scale")

    def stages(n):
        return {"synth": {"peak_rss_mb": 500.0, "wall_s": n / 1e5},
                "prepare": {"wall_s": n / 1e4, "peak_rss_mb": 700.0},
                "pretrain": {"epoch_s_extrapolated": n / 1e3, "peak_rss_mb": 1500.0},
                "finetune": {"epoch_s_extrapolated": n / 2e3, "peak_rss_mb": 1200.0},
                "evaluate": {"epoch_s_extrapolated": n / 5e3, "peak_rss_mb": 900.0}}

    for name, n in (("a", 10 ** 6), ("b", 3 * 10 ** 6)):
        (tmp_path / f"{name}.json").write_text(json.dumps({
            "scale": True, "commit": "abc", "machine": {"cpu_count": 2},
            "sizes": {f"{n // 10 ** 6}M": {"interactions": n, "items": n // 10, "users": n // 15,
                                           "stages": stages(n)}}}))
    out = tmp_path / "plots" / "scale.png"
    assert scale.main([str(tmp_path / "b.json"), str(tmp_path / "a.json"),
                       "--output", str(out)]) == 0
    assert out.stat().st_size > 0
    report = scale.load([str(tmp_path / "b.json"), str(tmp_path / "a.json")])
    assert list(report["sizes"]) == ["1M", "3M"]
    assert all(abs(v - 1.0) < 1e-9 for v in scale.slopes(report).values())
    assert ("| 3,000,000 | 200,000 | 300,000 | 300 | 3000 | 1500 | 600 | 1500 (pretrain) "
            "| - |") in scale.table(report)
    (tmp_path / "other.json").write_text(json.dumps({"results": {}}))
    with pytest.raises(SystemExit, match="not a `scale.py --scale`"):
        scale.load([str(tmp_path / "other.json")])
