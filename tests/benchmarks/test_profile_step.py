"""benchmarks/profile_step.py: kernel time of a training step by part and op."""

import pytest

from tests.benchmarks import script


def test_profile_step_prints_kernel_time_by_part_and_op(synthetic_dir, capsys):
    profile = script("profile_step")
    assert profile.main(["--data", synthetic_dir, "--name", "Tiny", "--work", "bce",
                         "--steps", "2", "--top", "5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Tiny, bce: settings ")
    assert "sequences/s" in out and "| part | ms/step | share |" in out
    assert "gradient, encoder" in out and "| op type | ms/step | share |" in out
    assert "| kernels running at once |" in out and "| op running alone |" in out
    with pytest.raises(SystemExit):
        profile.main(["--data", synthetic_dir, "--name", "Tiny", "--work", "mse"])


def test_profile_step_concurrency_counts_overlap_gaps_and_ops_alone():
    concurrency = script("profile_step").concurrency
    # a: 0-10, b: 5-15 (overlap 5-10), gap 15-20, c: 20-30
    busy, alone = concurrency([(0, 10, "a"), (5, 15, "b"), (20, 30, "c")])
    assert dict(busy) == {0: 5, 1: 20, 2: 5}
    assert dict(alone) == {"a": 5, "b": 5, "c": 10}
    assert concurrency([]) == ({}, {})
