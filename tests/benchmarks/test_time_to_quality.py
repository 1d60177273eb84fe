"""benchmarks/time_to_quality.py: one timed run on a tiny dataset, and its record."""
import importlib.util
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _module():
    path = os.path.join(ROOT, "benchmarks", "time_to_quality.py")
    spec = importlib.util.spec_from_file_location("time_to_quality", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _in_process(command, log_path):
    """`_stage` without a new process per stage: `s3rec-tf ARGS` through `cli.main`."""
    import time

    from s3rec_tf import cli
    assert command[0] == "s3rec-tf"
    start = time.perf_counter()
    assert cli.main(command[1:]) == 0
    with open(log_path, "w") as f:
        f.write("$ " + " ".join(command) + "\n")
    return time.perf_counter() - start


def test_a_run_writes_one_record_with_time_quality_and_curves(tmp_path, monkeypatch):
    from s3rec_tf.data import synthetic
    ttq = _module()
    monkeypatch.setattr(ttq, "_stage", _in_process)  # the same commands, in this process
    data = tmp_path / "data"
    attrs, seqs = synthetic.iter_generate(60, 200, 5, 20, 5, 12, 0)
    synthetic.write(str(data), seqs, attrs, "Tiny")
    records = tmp_path / "records"
    ttq.main(["--data", str(data), "--name", "Tiny", "--recipe", "fast",
              "--pretrain-seed", "3", "--workdir", str(tmp_path / "runs"),
              "--records", str(records), "--", "--epochs", "2", "--hidden-size", "16",
              "--num-layers", "1", "--max-length", "10"])
    path = records / "Tiny_fast_pretrain-seed3.json"
    record = json.loads(path.read_text())
    assert (record["dataset"], record["recipe"], record["pretrain_seed"]) == ("Tiny", "fast", 3)
    assert record["wall_time_s"] == pytest.approx(record["pretrain_s"] + record["finetune_s"],
                                                  abs=0.2)
    assert 0 < record["pretrain_s"] and 0 < record["finetune_s"]
    assert set(record["metrics"]["test/full"]) >= {"HR@10", "NDCG@10"}
    assert record["history_rule"] == "remove"
    assert set(record["metrics_original_rule"]["test/full"]) >= {"HR@10", "NDCG@10"}
    assert [c["epoch"] for c in record["pretrain_curves"]] == [1, 2]
    assert set(record["pretrain_curves"][0]) >= {"aap_loss", "mip_loss", "map_loss", "sp_loss"}
    assert record["sp_final_loss"] == record["pretrain_curves"][-1]["sp_loss"]
    curve = record["finetune_curve"]
    assert [c["epoch"] for c in curve] == list(range(1, len(curve) + 1)) and curve
    assert {"valid_full/NDCG@10", "wall_time_s"} <= set(curve[0])
    assert record["sp_alive"] == (record["sp_final_loss"] < ttq.SP_ALIVE)
    assert record["alone"] == (record["load_average_start"][0] < ttq.ALONE_LOAD)
    assert record["commit"] and record["machine"]["cpu_count"]
    # a record is never overwritten
    with pytest.raises(SystemExit, match="exists"):
        ttq.main(["--data", str(data), "--name", "Tiny", "--recipe", "fast",
                  "--pretrain-seed", "3", "--workdir", str(tmp_path / "runs2"),
                  "--records", str(records)])


def test_a_stage_runs_the_command_and_keeps_its_log(tmp_path):
    ttq = _module()
    log = tmp_path / "stage.log"
    assert ttq._stage(["s3rec-tf", "synth", "--help"], str(log)) > 0
    text = log.read_text()
    assert text.startswith("$ s3rec-tf synth --help\n") and "--output" in text
    with pytest.raises(SystemExit, match="failed with exit code 2"):
        ttq._stage(["s3rec-tf", "synth"], str(tmp_path / "bad.log"))


def test_a_variant_changes_pretraining_only_and_names_its_record(tmp_path, monkeypatch):
    ttq = _module()
    commands = []

    class Stop(Exception):
        pass

    def first_stage_only(command, log_path):
        commands.append(command)
        raise Stop

    monkeypatch.setattr(ttq, "_stage", first_stage_only)
    with pytest.raises(Stop):
        ttq.main(["--data", "d", "--name", "LastFM", "--recipe", "fast", "--variant", "no-sp",
                  "--pretrain-flag=--sp-weight=0", "--workdir", str(tmp_path / "runs"),
                  "--records", str(tmp_path / "records")])
    pretrain = commands[0]
    assert pretrain[1] == "pretrain" and "--sp-weight=0" in pretrain
    assert pretrain[pretrain.index("--preset") + 1] == "fast"
    assert (tmp_path / "runs" / "LastFM_fast-no-sp_pretrain-seed1").is_dir()
    assert ttq.record_path("r", "LastFM", "fast-no-sp", 1).endswith(
        "LastFM_fast-no-sp_pretrain-seed1.json")
    with pytest.raises(SystemExit):  # a pretraining flag without a name for the change
        ttq.main(["--data", "d", "--name", "LastFM", "--recipe", "fast",
                  "--pretrain-flag=--sp-weight=0"])
