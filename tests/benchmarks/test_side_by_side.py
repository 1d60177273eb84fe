"""benchmarks/side_by_side.py: the library's cases timed beside the original code."""

import json
import sys

import pytest

from s3rec_tf import bench
from tests.benchmarks import script

side_by_side = script("side_by_side")


def test_table_shows_ratio_to_the_original_and_the_goal():
    report = {"results": {"pretrain/Beauty": {
        "median": 1730.0, "unit": "samples/s", "peak_rss_mb": 1000.0, "runs": []}}}
    table = side_by_side.format_table(report)
    assert ("| pretrain/Beauty | 1730 | samples/s | 173.0 (REFERENCE.md) | 10.0x | >= 25x "
            "| 1000 |") in table
    json.dumps(report)


def test_full_softmax_is_compared_with_the_originals_bce():
    """The original has no full-softmax fine-tuning: `ce`'s goal is a multiple of its `bce`."""
    report = {"results": {"finetune_ce/Beauty": {
        "median": 3300.0, "unit": "sequences/s", "peak_rss_mb": 1.0, "runs": []}}}
    assert ("| finetune_ce/Beauty | 3300 | sequences/s | 1100.0 (REFERENCE.md, its bce) "
            "| 3.0x | >= 3x |") in side_by_side.format_table(report)


ORIGINAL_OUTPUT = """pretrain Beauty: 172.5 samples/s (579.7 ms/step, data 170.1 ms/step); epoch ~ 871 s
finetune Beauty: 1088.6 seqs/s; epoch of 22363 users ~ 20.5 s
full-rank eval Beauty: 2421.8 users/s; 9.2 s for 22363 users
"""


def test_original_timing_lines_are_parsed():
    assert side_by_side.parse_original_output(ORIGINAL_OUTPUT) == {
        ("Beauty", "pretrain"): 172.5, ("Beauty", "finetune"): 1088.6,
        ("Beauty", "eval"): 2421.8}
    assert side_by_side.parse_original_output("Traceback ...") == {}


def test_original_runs_cover_the_cases_with_a_counterpart():
    specs = bench.plan("data", quick=True)
    assert side_by_side.original_plan(specs) == {"Beauty": False, "LastFM": True}
    only_lastfm = [s for s in specs if s["key"] == "pretrain/LastFM"]
    assert side_by_side.original_plan(only_lastfm) == {"LastFM": True}
    only_ce = [s for s in specs if s["key"] == "finetune_ce/Beauty"]
    assert side_by_side.original_plan(only_ce) == {"Beauty": False}  # its bce is the baseline


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

    monkeypatch.setattr(side_by_side, "run_case", fake_case)
    original = _fake_original(tmp_path, 100.0)
    real_run_original = side_by_side.run_original

    def logged_original(*args, **kwargs):
        calls.append("original/" + args[3])
        return real_run_original(*args, **kwargs)

    monkeypatch.setattr(side_by_side, "run_original", logged_original)
    out = tmp_path / "bench.json"
    assert side_by_side.main(["--original", original, "--repeats", "2", "--only", "pretrain",
                       "--output", str(out)]) == 0
    # each round times the original before our cases
    assert calls == ["original/Beauty", "original/LastFM", "pretrain/Beauty",
                     "pretrain/LastFM"] * 2
    report = json.loads(out.read_text())
    side = report["results"]["pretrain/LastFM"]["original"]
    assert side["runs"] == [100.0, 100.0] and side["round_ratios"] == [10.0, 10.0]
    assert "| pretrain/LastFM | 1000 | samples/s | 100 (same run) | 10.0x |" in \
        side_by_side.format_table(report)
    assert side_by_side.main(["--original", original, "--repeats", "1", "--only", "finetune_ce",
                       "--output", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["results"]["finetune_ce/Beauty"]["original"]["case"] == "finetune_bce/Beauty"
    assert "| 1000 (same run, its bce) | 1.0x | >= 3x |" in side_by_side.format_table(report)


def test_a_missing_original_folder_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="does not hold the original code"):
        side_by_side.original_python(str(tmp_path))
