import json
import math
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
    data = tmp_path / "data"
    data.mkdir()
    (data / "Bad.txt").write_text("1 2 3 4\n2 5 x 7\n")
    (data / "Bad_item2attributes.json").write_text("{}")
    proc = run_cli("pretrain", "--data", str(data), "--name", "Bad", "--output",
                   str(tmp_path / "out"), "--epochs", "1")
    assert proc.returncode == 2
    err = [line for line in proc.stderr.splitlines() if line.strip()]
    assert err[-1].startswith("s3rec-tf pretrain: error: ")
    assert "Bad.txt:2" in err[-1] and "item id 'x' is not an integer" in err[-1]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_synth_pretrain_finetune_evaluate_export_recommend(tmp_path, capsys):
    data = tmp_path / "data"
    assert cli.main(["synth", "--output", str(data), "--users", "80", "--items", "150",
                     "--seed", "2"]) == 0
    assert (data / "Synthetic.txt").exists() and (data / "Synthetic_item2attributes.json").exists()
    common = ["--data", str(data), "--name", "Synthetic", "--hidden-size", "16",
              "--num-layers", "1", "--max-length", "20"]
    assert cli.main(["pretrain", *common, "--output", str(tmp_path / "pre"), "--epochs", "1",
                     "--batch-size", "64", "--tensorboard", str(tmp_path / "tb")]) == 0
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    # the resolved configuration is saved, and reads back as a --config file
    saved = tmp_path / "pre" / "config.json"
    assert json.loads(saved.read_text())["hidden_size"] == 16
    again = _parse(["pretrain", "--data", "d", "--name", "n", "--output", "o", "--config",
                    str(saved)])
    assert again.configs[0].hidden_size == 16 and again.configs[1].epochs == 1
    record = tmp_path / "results" / "Synthetic_run_ce_validsampled_seed42.json"
    assert cli.main(["finetune", *common, "--pretrained", str(tmp_path / "pre"),
                     "--output", str(tmp_path / "ft"), "--epochs", "2", "--loss", "ce",
                     "--record", str(record)]) == 0
    rec = json.loads(record.read_text())
    assert rec["seed"] == 42 and rec["best_epoch"] in (1, 2) and rec["wall_time_s"] > 0
    assert rec["history_rule"] == "remove"  # validation's and the test metrics' rule
    assert rec["machine"]["cpu_count"] and "runtime" in rec["machine"] and "commit" in rec
    history = (tmp_path / "results" / "Synthetic_run_ce_validsampled_seed42.history.jsonl")
    assert [json.loads(line)["epoch"] for line in history.read_text().splitlines()] == [1, 2]
    out = tmp_path / "eval.json"
    assert cli.main(["evaluate", "--model", str(tmp_path / "ft"), "--data", str(data),
                     "--name", "Synthetic", "--protocol", "full", "--output", str(out)]) == 0
    metrics = json.loads(out.read_text())["metrics"]
    assert set(metrics) == {"valid/full", "test/full"}
    assert 0.0 <= metrics["test/full"]["HR@20"] <= 1.0
    evaluation = json.loads(out.read_text())
    assert evaluation["history_rule"] == "remove"
    # a record of its own: what ran, where, at which commit
    assert evaluation["command"].startswith("s3rec-tf") and "commit" in evaluation
    assert evaluation["machine"]["cpu_count"]
    assert cli.main(["evaluate", "--model", str(tmp_path / "ft"), "--data", str(data),
                     "--name", "Synthetic", "--protocol", "full", "--output", str(out),
                     "--history-rule", "original", "--overwrite"]) == 0
    assert json.loads(out.read_text())["history_rule"] == "original"

    assert cli.main(["export", "--model", str(tmp_path / "ft"), "--output",
                     str(tmp_path / "serving"), "--version", "1"]) == 0
    user_line = (data / "Synthetic.txt").read_text().splitlines()[3].split()
    user, history = user_line[0], user_line[1:]
    capsys.readouterr()
    assert cli.main(["recommend", "--model", str(tmp_path / "serving"), "--data", str(data),
                     "--name", "Synthetic", "--user", user, "-k", "5", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["user"] == user and answer["history_length"] == len(history)
    assert len(answer["items"]) == len(answer["scores"]) == 5
    assert answer["scores"] == sorted(answer["scores"], reverse=True)
    assert not set(answer["items"]) & set(history)         # history excluded
    assert answer["num_known"] == len(history) and answer["num_unknown"] == 0
    # the same as giving the user's items
    assert cli.main(["recommend", "--model", str(tmp_path / "serving"), "--items", *history,
                     "-k", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == answer["items"]
    assert cli.main(["recommend", "--model", str(tmp_path / "serving"), "--data", str(data),
                     "--name", "Synthetic", "--user", "999999"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no user '999999'" in err[0] and "Synthetic.txt" in err[0]


def test_finetune_with_sampled_softmax(tmp_path, synthetic_dir):
    out = tmp_path / "ft"
    record = tmp_path / "results" / "Tiny_sasrec_sampled-ce_validfull_seed3.json"
    assert cli.main(["finetune", "--data", synthetic_dir, "--name", "Tiny", "--pretrained",
                     "none", "--hidden-size", "16", "--max-length", "20", "--epochs", "1",
                     "--batch-size", "64", "--loss", "sampled-ce", "--sampled-negatives", "20",
                     "--proposal", "popularity", "--in-batch-negatives", "--valid-protocol",
                     "full", "--seed", "3", "--output", str(out), "--record", str(record)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["loss"] == "sampled-ce" and metrics["metrics"]["test/full"]["HR@10"] >= 0
    saved = json.loads((out / "config.json").read_text())
    assert (saved["sampled_negatives"], saved["proposal"], saved["in_batch_negatives"]) == \
        (20, "popularity", True)
    rec = json.loads(record.read_text())
    assert (rec["loss"], rec["seed"]) == ("sampled-ce", 3) and "commit" in rec
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert len(history) == 1 and math.isfinite(history[0]["loss"])


def test_finetune_with_missing_pretrained_fails_clearly(tmp_path, synthetic_dir, capsys):
    code = cli.main(["finetune", "--data", synthetic_dir, "--name", "Tiny", "--pretrained",
                     str(tmp_path / "nope"), "--output", str(tmp_path / "ft")])
    assert code == 2
    assert "pretrained model not found" in capsys.readouterr().err


def test_parity_command(capsys):
    from tests.conftest import shared_file
    weights = shared_file("golden", "LastFM-epochs-150.weights.npz")
    golden = shared_file("golden", "golden_LastFM.npz")
    capsys.readouterr()
    code = cli.main(["parity", "--weights", weights, "--golden", golden])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "parity passed" in out and "finetune_last_scores" in out
    code = cli.main(["parity", "--weights", weights, "--golden", golden, "--tolerance", "1e-12"])
    assert code == 1 and "FAIL" in capsys.readouterr().out


PRE = ["pretrain", "--data", "d", "--name", "n", "--output", "o"]
FT = ["finetune", "--data", "d", "--name", "n", "--output", "o", "--pretrained", "none"]
# Out-of-range options: the bad-input corpus, class "arguments"
# (tests/test_bad_input_corpus.py, ARGUMENT_CASES).


def test_an_argument_case_in_a_fresh_process_has_no_traceback_and_writes_nothing(tmp_path):
    proc = run_cli("pretrain", "--data", str(tmp_path), "--name", "X", "--output",
                   str(tmp_path / "out"), "--batch-size", "0")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("s3rec-tf pretrain: error: argument "
                                                           "--batch-size")
    assert not (tmp_path / "out").exists()


def _parse(argv):
    return cli.build_parser().parse_args(argv)


def test_config_file_preset_and_flags_in_order(tmp_path):
    """preset < --config FILE < flags, for every hyperparameter source."""
    toml = tmp_path / "run.toml"
    toml.write_text('valid-protocol = "sampled"\nbatch_size = 32\nlr = 0.01\nepochs = 7\n'
                    'hidden_size = 32\n')
    args = _parse(FT + ["--preset", "best", "--config", str(toml), "--epochs", "3"])
    encoder, finetune = args.configs
    assert finetune.loss == "ce"                         # preset
    assert finetune.valid_protocol == "sampled"          # file over preset
    assert (finetune.batch_size, finetune.learning_rate) == (32, 0.01)  # file
    assert finetune.epochs == 3                          # flag over file
    assert encoder.hidden_size == 32 and args.hidden_size == 32
    assert finetune.patience == 10                       # default
    paper = _parse(FT + ["--preset", "paper"]).configs[1]
    assert paper == cli.build_parser().parse_args(FT).configs[1]
    assert (paper.loss, paper.valid_protocol) == ("bce", "sampled")
    # the best preset sets pretraining apart: 40 epochs, the logit-gap SP loss
    pretrain = _parse(PRE + ["--preset", "best"]).configs[1]
    assert (pretrain.epochs, pretrain.segment_loss) == (40, "logit-gap")
    assert pretrain.learning_rate == _parse(PRE).configs[1].learning_rate


def test_config_file_can_hold_the_run_options(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('data = "d"\nname = "Beauty"\noutput = "runs/x"\n'
                    'tensorboard = "tb"\nno_trim_padding = true\nnegatives-seed = 3\n')
    args = _parse(["pretrain", "--config", str(toml), "--name", "LastFM"])
    assert (args.data, args.name, args.output, args.tensorboard) == ("d", "LastFM", "runs/x",
                                                                    "tb")
    assert args.negatives_seed == 3 and args.configs[1].trim_padding is False


#: `--config` files that are refused: (file text, words of the error line).
CONFIG_FILE_CASES = [
    ("epoch = 50\n", "`epoch` is not a known key"),
    ("epochs = 0\n", "`epochs` must be >= 1"),
    ('batch_size = "64"\n', "`batch_size` must be of type int, not str"),
    ("batch_size = 6.5\n", "`batch_size` must be of type int, not float"),
    ("jit_compile = 1\n", "`jit_compile` must be of type bool"),
    ('loss = "mse"\n', "`loss` must be one of 'bce', 'ce', 'sampled-ce'"),
    ("negatives_seed = -1\n", "`negatives_seed` must be in [0, 4294967295]"),
    ("intra_op_threads = -1\n", "`intra_op_threads` must be >= 0"),
    ("data = 3\n", "`data` must be of type str"),
    ('config = "other.toml"\n', "`config` is not a known key"),
    ("[encoder]\nhidden_size = 8\n", "tables are not supported"),
    ("batch_size = \n", "not a valid config file"),
]


@pytest.mark.parametrize("text,words", CONFIG_FILE_CASES)
def test_bad_config_file_exits_2_naming_key_and_file(text, words, tmp_path, capsys):
    toml = tmp_path / "run.toml"
    toml.write_text(text)
    with pytest.raises(SystemExit) as info:
        cli.main(FT + ["--config", str(toml)])
    assert info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"{toml}: " in lines[0] and words in lines[0], lines


def test_cross_field_rule_from_a_config_file_names_the_file(tmp_path, capsys):
    toml = tmp_path / "run.toml"
    toml.write_text("num_heads = 3\n")
    with pytest.raises(SystemExit):
        cli.main(PRE + ["--config", str(toml)])
    err = capsys.readouterr().err
    assert "--hidden-size/--num-heads" in err and f"(from {toml})" in err


@pytest.mark.parametrize("command", ["pretrain", "finetune"])
def test_strategy_flag_of_pretrain_and_finetune(command, tmp_path, synthetic_dir, capsys,
                                                monkeypatch):
    parser = cli.build_parser()
    base = [command, "--data", "d", "--name", "n", "--output", "o"] + (
        ["--pretrained", "none"] if command == "finetune" else [])
    assert parser.parse_args(base).configs[1].strategy == "none"
    assert parser.parse_args(base + ["--strategy", "mirrored"]).configs[1].strategy == "mirrored"
    with pytest.raises(SystemExit) as e:
        parser.parse_args(base + ["--strategy", "ring"])
    assert e.value.code == 2 and "--strategy" in capsys.readouterr().err
    # multi-worker needs TF_CONFIG: refused before reading data or writing anything
    monkeypatch.delenv("TF_CONFIG", raising=False)
    out = tmp_path / "out"
    argv = [command, "--data", synthetic_dir, "--name", "Tiny", "--output", str(out),
            "--strategy", "multi-worker"] + (["--pretrained", "none"]
                                             if command == "finetune" else [])
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "TF_CONFIG" in err[0] and "strategy" in err[0]
    assert not out.exists()


def test_history_rule_and_repeat_rate_flags(tmp_path, capsys):
    from s3rec_tf.config import HISTORY_RULES
    parser = cli.build_parser()
    ft = parser.parse_args([*FT, "--history-rule", "original"])
    assert ft.configs[1].history_rule == "original"
    assert parser.parse_args(FT).configs[1].history_rule == HISTORY_RULES[0] == "remove"
    ev = parser.parse_args(["evaluate", "--model", "m", "--data", "d", "--name", "n"])
    assert ev.history_rule == "remove"
    for argv in (["evaluate", "--model", "m", "--data", "d", "--name", "n",
                  "--history-rule", "hybrid"], [*FT, "--history-rule", "hybrid"],
                 ["synth", "--output", str(tmp_path / "x"), "--repeat-rate", "1.5"]):
        with pytest.raises(SystemExit) as e:
            parser.parse_args(argv)
        assert e.value.code == 2
    capsys.readouterr()
    # no repeats by default; with a rate, users come back to their items
    for rate, name in ((None, "a"), ("0", "b"), ("0.5", "c")):
        flags = ["--repeat-rate", rate] if rate else []
        assert cli.main(["synth", "--output", str(tmp_path / name), "--users", "40",
                         "--items", "150", *flags]) == 0
    text = {n: (tmp_path / n / "Synthetic.txt").read_text() for n in "abc"}
    assert text["a"] == text["b"] != text["c"]
    users = [line.split()[1:] for line in text["c"].splitlines()]
    assert sum(len(set(u)) < len(u) for u in users) > 20


def test_flags_derive_from_the_config_dataclasses():
    """No second list of defaults: every field is a flag, with its default and help."""
    from s3rec_tf.config import EncoderConfig, FinetuneConfig, PretrainConfig, to_dict
    parser = cli.build_parser()
    pre = parser.parse_args(PRE)
    assert pre.configs == [EncoderConfig(), PretrainConfig()]
    ft = parser.parse_args(FT)
    assert ft.configs == [EncoderConfig(), FinetuneConfig()]
    for cls, argv in ((EncoderConfig, PRE), (PretrainConfig, PRE), (FinetuneConfig, FT)):
        args = vars(parser.parse_args(argv))
        for name, default in to_dict(cls()).items():
            assert args[name] == default, name
    text = subprocess.run([sys.executable, "-m", "s3rec_tf", "pretrain", "--help"],
                          capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=ROOT)).stdout
    for flag in ("--mask-p", "--no-trim-padding", "--jit-compile", "--lr", "--config",
                 "--preset", "--tensorboard"):
        assert flag in text, flag


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


def test_the_fast_preset_sets_each_stage_apart():
    """`--preset fast`: its pretraining values reach `pretrain`, its fine-tuning values
    `finetune`, though both have `epochs`."""
    pre = _parse(PRE + ["--preset", "fast"]).configs[1]
    fine = _parse(FT + ["--preset", "fast"]).configs[1]
    assert (pre.epochs, pre.segment_loss, pre.save_every) == (10, "logit-gap", 0)
    assert (fine.loss, fine.valid_protocol) == ("ce", "full")
    assert fine.epochs == cli.build_parser().parse_args(FT).configs[1].epochs
    assert _parse(PRE + ["--preset", "fast", "--epochs", "3"]).configs[1].epochs == 3
