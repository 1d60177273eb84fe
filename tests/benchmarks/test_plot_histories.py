"""benchmarks/plot_histories.py: validation and pretraining plots from the records."""

import json
import os

from tests.benchmarks import script


def test_run_names_are_parsed_into_dataset_label_protocol_seed():
    plots = script("plot_histories")
    assert plots.describe("Sports_and_Outdoors_sasrec_ce_validfull_seed1") == (
        "Sports_and_Outdoors", "no pretraining (SASRec), ce", "full", "1")
    assert plots.describe("LastFM_own-pretrain-ep25_bce_validsampled_seed3") == (
        "LastFM", "S3-Rec, our pretraining, 25 epochs, bce", "sampled", "3")
    # a pretraining variant is named as the README's results table names it
    run = "Sports_and_Outdoors_own-pretrain-mipce-ep40_ce-lr0.002_validfull_seed2"
    assert plots.describe(run) == ("Sports_and_Outdoors",
                                   "S3-Rec, our pretraining, 40 epochs, mipce, ce-lr0.002",
                                   "full", "2")
    assert plots.describe("LastFM_own-pretrain-ep0_bce_validsampled_seed1")[1] == (
        "no pretraining (SASRec), bce")


def test_plot_writes_one_png_per_dataset(tmp_path):
    plots = script("plot_histories")
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


def _pretraining_history(path, epochs=4, heads=("aap_loss", "mip_loss", "map_loss",
                                                   "sp_loss", "loss")):
    with open(path, "w") as f:
        for epoch in range(1, epochs + 1):
            f.write(json.dumps({"epoch": epoch, **{h: 10.0 / epoch + i
                                                   for i, h in enumerate(heads)}}) + "\n")


def test_pretraining_losses_get_one_panel_per_head(tmp_path, monkeypatch):
    plots = script("plot_histories")
    results = tmp_path / "results"
    results.mkdir()
    _pretraining_history(results / "Toy_own-pretrain_seed1.history.jsonl")
    # a fine-tuning history whose name also says "pretrain": not a pretraining run
    with open(results / "Toy_own-pretrain-ep5_bce_validsampled_seed1.history.jsonl", "w") as f:
        f.write(json.dumps({"epoch": 1, "loss": 1.0, "valid_sampled/NDCG@10": 0.2}) + "\n")
    runs = plots.load_pretraining(
        [str(p) for p in sorted(results.glob("*pretrain*.history.jsonl"))])
    assert list(runs) == ["Toy"] and len(runs["Toy"]) == 1
    label, epochs, heads = runs["Toy"][0]
    assert label == "own-pretrain_seed1" and epochs == [1, 2, 3, 4]
    assert list(heads) == list(plots.HEADS) and heads["mip_loss"][1] == 6.0
    assert set(plots.load(str(results))) == {"Toy"}  # the fine-tuning run only
    assert plots.load(str(results))["Toy"]["sampled"][0][0].startswith("S3-Rec, our")

    # a pretraining output directory: the dataset from its manifest
    pre = tmp_path / "pre"
    pre.mkdir()
    _pretraining_history(pre / "history.jsonl", epochs=2)
    (pre / "manifest.json").write_text(json.dumps({"vocabulary": {"dataset": "Other"}}))
    assert plots.pretraining_run(str(pre / "history.jsonl")) == ("Other", "pre")

    out = tmp_path / "plots"
    assert plots.main(["--results", str(results), "--output", str(out)]) == 0
    assert sorted(os.listdir(out)) == ["Toy.png", "Toy_pretraining.png"]
    assert plots.main(["--results", str(tmp_path / "none"), "--output", str(out),
                       "--pretraining", str(pre)]) == 0
    with open(out / "Other_pretraining.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert plots.main(["--results", str(results), "--pretraining",
                       str(tmp_path / "missing.jsonl")]) == 2

    # panels are the heads present, one line per run
    import matplotlib.figure
    figures = []
    real_savefig = matplotlib.figure.Figure.savefig

    def savefig(fig, *args, **kwargs):
        figures.append([(ax.get_title(), len(ax.get_lines())) for ax in fig.axes])
        return real_savefig(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    _pretraining_history(results / "Toy_pretrain-b.history.jsonl", heads=("aap_loss", "loss"))
    plots.plot_pretraining(plots.load_pretraining(
        [str(results / "Toy_own-pretrain_seed1.history.jsonl"),
         str(results / "Toy_pretrain-b.history.jsonl")]), str(out))
    # the SP panel also marks ln 2
    assert figures == [[(plots.HEADS[h], (2 if h in ("aap_loss", "loss") else 1)
                         + (h == "sp_loss")) for h in plots.HEADS]]


def test_pretraining_plot_reads_histories_and_console_logs(tmp_path):
    plot = script("plot_histories")
    log = tmp_path / "run.log"
    log.write_text("Epoch 1/2\n1503/1503 - 665s - 442ms/step - aap_loss: 105.6 - loss: 69.5 - "
                   "map_loss: 46.8 - mip_loss: 1.26 - sp_loss: 0.6933\nEpoch 2/2\n"
                   "1503/1503 - 508s - 338ms/step - aap_loss: 50.4 - loss: 46.0 - "
                   "map_loss: 34.4 - mip_loss: 1.18 - sp_loss: 0.6759\nPretraining done\n")
    rows = plot.read_history(str(log))
    assert [(r["epoch"], r["sp_loss"]) for r in rows] == [(1, 0.6933), (2, 0.6759)]
    cli_log = tmp_path / "cli.log"
    cli_log.write_text("Pretraining on X\nepoch 1/150: aap_loss=106.5 loss=69.7 map_loss=46.8 "
                       "mip_loss=1.27 sp_loss=0.6934 (73.8s)\nepoch 2/150: aap_loss=50.9 "
                       "loss=46.0 map_loss=34.3 mip_loss=1.18 sp_loss=0.6932 (60.2s)\n")
    assert [(r["epoch"], r["aap_loss"]) for r in plot.read_history(str(cli_log))] == \
        [(1, 106.5), (2, 50.9)]
    history = tmp_path / "history.jsonl"
    history.write_text("".join(json.dumps({"epoch": e, "aap_loss": 1.0, "mip_loss": 1.0,
                                           "map_loss": 1.0, "sp_loss": 0.69}) + "\n"
                               for e in (1, 2)))
    out = tmp_path / "p.png"
    assert plot.main(["--pretraining", f"a={log}", f"b={history}",
                      "--pretraining-output", str(out)]) == 0
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert plot.main(["--pretraining", f"c={tmp_path / 'missing.jsonl'}",
                      "--pretraining-output", str(out)]) == 2
    empty = tmp_path / "empty.log"
    empty.write_text("nothing\n")
    assert plot.main(["--pretraining", str(empty), "--pretraining-output", str(out)]) == 2
