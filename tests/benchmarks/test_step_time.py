"""benchmarks/step_time.py: the training step or full-ranking pass alone, timed."""

import pytest

from tests.benchmarks import script


@pytest.mark.parametrize("work", ["pretrain", "ce"])
def test_step_time_prints_the_median_throughput_of_the_step(synthetic_dir, capsys, work):
    step_time = script("step_time")
    assert step_time.main(["--data", synthetic_dir, "--name", "Tiny", "--work", work,
                           "--steps", "3", "--warmup", "1", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{work}/Tiny: ") and "(median of 1 blocks" in out
    with pytest.raises(SystemExit):
        step_time.main(["--data", synthetic_dir, "--name", "Tiny", "--work", "mse"])


def test_step_time_times_full_ranking_passes(synthetic_dir, capsys):
    step_time = script("step_time")
    assert step_time.main(["--data", synthetic_dir, "--name", "Tiny", "--work", "evaluate",
                           "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("evaluate/Tiny: ") and "users/s (median of 5 full-ranking" in out
