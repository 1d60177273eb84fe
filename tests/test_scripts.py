"""The results scripts: README table and validation plots from results/ files."""
import importlib.util
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _script(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scripts", name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_names_are_parsed_into_dataset_label_protocol_seed():
    plots = _script("plot_histories")
    assert plots.describe("Sports_and_Outdoors_sasrec_ce_validfull_seed1") == (
        "Sports_and_Outdoors", "no pretraining (SASRec), ce", "full", "1")
    assert plots.describe("LastFM_own-pretrain-ep25_bce_validsampled_seed3") == (
        "LastFM", "S3-Rec, our pretraining, 25 epochs, bce", "sampled", "3")


def test_plot_writes_one_png_per_dataset(tmp_path):
    plots = _script("plot_histories")
    for run, metric in (("Toy_sasrec_bce_validsampled_seed1", "valid_sampled/NDCG@10"),
                        ("Toy_s3rec-authors_bce_validfull_seed1", "valid_full/NDCG@20")):
        with open(tmp_path / f"{run}.history.jsonl", "w") as f:
            for epoch in range(1, 4):
                f.write(json.dumps({"epoch": epoch, "loss": 1.0, metric: 0.1 * epoch}) + "\n")
    runs = plots.load(str(tmp_path))
    assert set(runs["Toy"]) == {"sampled", "full"}
    assert runs["Toy"]["sampled"][0][2:] == ([1, 2, 3], [0.1, 0.2, 0.30000000000000004])
    paths = plots.plot(runs, str(tmp_path / "plots"))
    assert paths == [str(tmp_path / "plots" / "Toy.png")]
    with open(paths[0], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert plots.main(["--results", str(tmp_path / "empty"), "--output", str(tmp_path)]) == 1


def test_results_table_has_paper_numbers_next_to_ours():
    table = _script("results_table").table()
    assert "| LastFM | S3-Rec | authors' 150-epoch checkpoint | bce |" in table
    assert ".6083 / .3577" in table.replace("0.", ".")


def test_pretraining_plot_reads_histories_and_console_logs(tmp_path):
    plot = _script("plot_pretraining")
    log = tmp_path / "run.log"
    log.write_text("Epoch 1/2\n1503/1503 - 665s - 442ms/step - aap_loss: 105.6 - loss: 69.5 - "
                   "map_loss: 46.8 - mip_loss: 1.26 - sp_loss: 0.6933\nEpoch 2/2\n"
                   "1503/1503 - 508s - 338ms/step - aap_loss: 50.4 - loss: 46.0 - "
                   "map_loss: 34.4 - mip_loss: 1.18 - sp_loss: 0.6759\nPretraining done\n")
    rows = plot.read_history(str(log))
    assert [(r["epoch"], r["sp_loss"]) for r in rows] == [(1, 0.6933), (2, 0.6759)]
    history = tmp_path / "history.jsonl"
    history.write_text("".join(json.dumps({"epoch": e, "aap_loss": 1.0, "mip_loss": 1.0,
                                           "map_loss": 1.0, "sp_loss": 0.69}) + "\n"
                               for e in (1, 2)))
    out = tmp_path / "p.png"
    assert plot.main(["--run", f"a={log}", "--run", f"b={history}", "--output", str(out)]) == 0
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert plot.main(["--run", f"c={tmp_path / 'missing.jsonl'}", "--output", str(out)]) == 2
