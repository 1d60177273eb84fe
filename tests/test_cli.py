import json
import os
import subprocess
import sys

import pytest

from s3rec_tf import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args):
    """Runs `python -m s3rec_tf` in a fresh process, as a user would."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "s3rec_tf", *args], capture_output=True,
                          text=True, env=env, timeout=600)


def test_bad_input_is_one_line_and_exit_code_2(tmp_path):
    (tmp_path / "Bad.txt").write_text("1 2 3 4\n2 5 x 7\n")
    (tmp_path / "Bad_item2attributes.json").write_text("{}")
    proc = run_cli("pretrain", "--data", str(tmp_path), "--name", "Bad", "--output",
                   str(tmp_path / "out"), "--epochs", "1")
    assert proc.returncode == 2
    err = [line for line in proc.stderr.splitlines() if line.strip()]
    assert err[-1].startswith("s3rec-tf pretrain: error: ")
    assert "Bad.txt:2" in err[-1] and "item id 'x' is not an integer" in err[-1]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_synth_pretrain_finetune_evaluate(tmp_path):
    data = tmp_path / "data"
    assert cli.main(["synth", "--output", str(data), "--users", "80", "--items", "150",
                     "--seed", "2"]) == 0
    assert (data / "Synthetic.txt").exists() and (data / "Synthetic_item2attributes.json").exists()
    common = ["--data", str(data), "--name", "Synthetic", "--hidden-size", "16",
              "--max-length", "20"]
    assert cli.main(["pretrain", *common, "--output", str(tmp_path / "pre"), "--epochs", "1",
                     "--batch-size", "64"]) == 0
    record = tmp_path / "results" / "Synthetic_run_ce_validsampled_seed42.json"
    assert cli.main(["finetune", *common, "--pretrained", str(tmp_path / "pre"),
                     "--output", str(tmp_path / "ft"), "--epochs", "2", "--loss", "ce",
                     "--record", str(record)]) == 0
    rec = json.loads(record.read_text())
    assert rec["seed"] == 42 and rec["best_epoch"] in (1, 2) and rec["wall_time_s"] > 0
    assert rec["machine"]["cpu_count"] and "runtime" in rec["machine"] and "commit" in rec
    history = (tmp_path / "results" / "Synthetic_run_ce_validsampled_seed42.history.jsonl")
    assert [json.loads(line)["epoch"] for line in history.read_text().splitlines()] == [1, 2]
    out = tmp_path / "eval.json"
    assert cli.main(["evaluate", "--model", str(tmp_path / "ft"), "--data", str(data),
                     "--name", "Synthetic", "--protocol", "full", "--output", str(out)]) == 0
    metrics = json.loads(out.read_text())["metrics"]
    assert set(metrics) == {"valid/full", "test/full"}
    assert 0.0 <= metrics["test/full"]["HR@20"] <= 1.0


def test_finetune_with_missing_pretrained_fails_clearly(tmp_path, synthetic_dir, capsys):
    code = cli.main(["finetune", "--data", synthetic_dir, "--name", "Tiny", "--pretrained",
                     str(tmp_path / "nope"), "--output", str(tmp_path / "ft")])
    assert code == 2
    assert "pretrained model not found" in capsys.readouterr().err


def test_parity_command():
    from tests.conftest import shared_file
    weights = shared_file("golden", "LastFM-epochs-150.weights.npz")
    golden = shared_file("golden", "golden_LastFM.npz")
    proc = run_cli("parity", "--weights", weights, "--golden", golden)
    assert proc.returncode == 0, proc.stderr
    assert "parity passed" in proc.stdout and "finetune_last_scores" in proc.stdout
    strict = run_cli("parity", "--weights", weights, "--golden", golden, "--tolerance", "1e-12")
    assert strict.returncode == 1 and "FAIL" in strict.stdout


def test_every_paper_hyperparameter_is_a_flag_with_its_default():
    parser = cli.build_parser()
    pre = parser.parse_args(["pretrain", "--data", "d", "--name", "n", "--output", "o"])
    assert (pre.hidden_size, pre.num_layers, pre.num_heads, pre.dropout, pre.attention_dropout,
            pre.initializer_range, pre.max_length) == (64, 2, 2, 0.5, 0.5, 0.02, 50)
    assert (pre.batch_size, pre.learning_rate, pre.mask_p, pre.aap_weight, pre.mip_weight,
            pre.map_weight, pre.sp_weight, pre.epochs) == (100, 1e-3, 0.2, 0.2, 1.0, 1.0, 0.5, 150)
    ft = parser.parse_args(["finetune", "--data", "d", "--name", "n", "--output", "o",
                            "--pretrained", "none"])
    assert (ft.batch_size, ft.epochs, ft.patience, ft.loss) == (256, 200, 10, "bce")


@pytest.mark.slow
def test_lastfm_end_to_end(tmp_path):
    """pretrain -> finetune -> evaluate on LastFM from ../shared, a few epochs."""
    from tests.conftest import shared_file
    data = os.path.dirname(shared_file("data", "s3rec", "LastFM.txt"))
    common = ["--data", data, "--name", "LastFM"]
    assert cli.main(["pretrain", *common, "--output", str(tmp_path / "pre"), "--epochs", "2"]) == 0
    assert cli.main(["finetune", *common, "--pretrained", str(tmp_path / "pre"), "--output",
                     str(tmp_path / "ft"), "--epochs", "3"]) == 0
    assert cli.main(["evaluate", "--model", str(tmp_path / "ft"), *common]) == 0
