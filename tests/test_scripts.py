"""The results scripts: README table and validation plots from results/ files."""
import importlib.util
import json
import os

import pytest

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
    # a pretraining variant is named as the README's results table names it
    run = "Sports_and_Outdoors_own-pretrain-mipce-ep40_ce-lr0.002_validfull_seed2"
    assert plots.describe(run) == ("Sports_and_Outdoors",
                                   "S3-Rec, our pretraining, 40 epochs, mipce, ce-lr0.002",
                                   "full", "2")
    assert plots.describe("LastFM_own-pretrain-ep0_bce_validsampled_seed1")[1] == (
        "no pretraining (SASRec), bce")


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


def _pretraining_history(path, epochs=4, heads=("aap_loss", "mip_loss", "map_loss",
                                                   "sp_loss", "loss")):
    with open(path, "w") as f:
        for epoch in range(1, epochs + 1):
            f.write(json.dumps({"epoch": epoch, **{h: 10.0 / epoch + i
                                                   for i, h in enumerate(heads)}}) + "\n")


def test_pretraining_losses_get_one_panel_per_head(tmp_path, monkeypatch):
    plots = _script("plot_histories")
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


def test_results_table_has_paper_numbers_next_to_ours():
    table = _script("results_table").table()
    assert "| LastFM | S3-Rec | authors' 150-epoch checkpoint | bce |" in table
    assert ".6083 / .3577" in table.replace("0.", ".")


def test_results_table_names_own_pretraining_budgets_and_variants():
    tables = _script("results_table")
    assert tables.pretraining("own-pretrain-ep0") == ("SASRec", "none (same code/budget)")
    assert tables.pretraining("own-pretrain-ep40") == ("S3-Rec", "ours, 40 epochs")
    assert tables.pretraining("own-pretrain-mask0.5-ep20") == \
        ("S3-Rec", "ours, 20 epochs, mask0.5")
    assert tables.pretraining("s3rec-authors") is None
    assert tables.pretraining("sasrec") is None


def test_results_table_shows_commands_relative_to_the_checkout():
    tables = _script("results_table")
    assert tables.display_command("s3rec-tf finetune --data /x/wt/a/../shared/data/s3rec "
                                  f"--output {tables.ROOT}/runs/r") == \
        "s3rec-tf finetune --data ../shared/data/s3rec --output runs/r"
    assert tables.commits([({"commit": "1231bc0aa+dirty"}, "a"), ({"commit": "1231bc0bb"}, "b"),
                           ({"commit": "e79a480cc"}, "c")]) == "`1231bc0`, `e79a480`"


def test_results_table_names_the_negatives_of_each_sampled_row():
    tables = _script("results_table")
    assert tables.negatives_label([({"negatives": "../shared/data/s3rec/LastFM_sample.txt"}, "r")]) \
        == "authors' file"
    assert tables.negatives_label([({"negatives": "generated(seed=0)"}, "r")]) == \
        "ours, seed 0, earlier sequential draw (no authors' file)"
    assert tables.negatives_label([({"negatives": "generated(per-user, seed=3)"}, "r")]) == \
        "ours, seed 3 (no authors' file)"
    sampled = tables.table().split("**Full ranking")[0]
    assert "| negatives |" in sampled
    lastfm = [line for line in sampled.splitlines() if line.startswith("| LastFM ")]
    assert lastfm and all("authors' file" in line for line in lastfm)


def _record(seed, valid, hr10, ndcg10):
    return ({"seed": seed, "metrics": {"valid/full": {"NDCG@20": valid},
                                       "test/full": {"HR@10": hr10, "NDCG@10": ndcg10}}}, "r")


def test_quality_targets_select_rows_on_validation_and_judge_them_on_test():
    tables = _script("results_table")
    three = lambda valid, hr, ndcg: [_record(s, valid, hr, ndcg) for s in (1, 2, 3)]
    rows = {
        # the higher test, but lower validation: not selected
        ("Sports_and_Outdoors", "own-pretrain-ep40", "ce", "validfull"): three(.050, .070, .040),
        ("Sports_and_Outdoors", "own-pretrain-mipce-ep45", "ce-lr0.0005", "validfull"):
            three(.053, .0644, .0381),
        # the highest validation, but too few seeds, a bce loss, or no pretraining
        ("Sports_and_Outdoors", "own-pretrain-ep60", "ce", "validfull"): three(.06, .07, .04)[:2],
        ("Sports_and_Outdoors", "own-pretrain-ep60", "bce", "validfull"): three(.06, .07, .04),
        ("Sports_and_Outdoors", "own-pretrain-ep0", "ce", "validfull"): three(.06, .07, .04),
        ("Sports_and_Outdoors", "sasrec", "ce", "validfull"): three(.04, .0532, .0317),
        ("LastFM", "own-pretrain-ep25", "ce", "validfull"): three(.07, .0823, .0451),
        ("LastFM", "sasrec", "ce", "validfull"): three(.05, .0606, .0350),
        ("LastFM", "s3rec-authors", "ce", "validfull"): three(.06, .0789, .0451),
    }
    chosen = tables.selected_rows(rows)
    assert chosen["Sports_and_Outdoors"][0][1] == "own-pretrain-mipce-ep45"
    goals = tables.targets(rows)
    assert goals["Sports_and_Outdoors"]["HR@10"] == (.065, False)
    # LastFM: above the best baseline per metric, which an equal value does not meet
    assert goals["LastFM"] == {"HR@10": (.0789, True), "NDCG@10": (.0451, True)}
    lines = {line.split(" | ")[0]: line for line in tables.target_table(rows).splitlines()}
    assert "no: HR@10 -0.9% |" in lines["| Sports_and_Outdoors"]
    assert "+21% / +20%" in lines["| Sports_and_Outdoors"]
    assert "no: NDCG@10 +0.0% |" in lines["| LastFM"]
    assert "| Beauty | none yet |" in lines["| Beauty"]


def test_readme_results_table_is_the_one_the_records_give():
    tables = _script("results_table")
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    shown = readme.split("<!-- RESULTS-TABLE:START -->\n", 1)[1].split(
        "<!-- RESULTS-TABLE:END -->", 1)[0]
    assert shown == tables.results_block(), \
        "README's results table is stale: run python scripts/results_table.py --write"


def test_pretraining_plot_reads_histories_and_console_logs(tmp_path):
    plot = _script("plot_histories")
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


def test_scale_plot_and_table_from_bench_results(tmp_path):
    scale = _script("plot_scale")

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
    with pytest.raises(SystemExit, match="not a `bench --scale`"):
        scale.load([str(tmp_path / "other.json")])


@pytest.mark.parametrize("work", ["pretrain", "ce"])
def test_step_time_prints_the_median_throughput_of_the_step(synthetic_dir, capsys, work):
    step_time = _script("step_time")
    assert step_time.main(["--data", synthetic_dir, "--name", "Tiny", "--work", work,
                           "--steps", "3", "--warmup", "1", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{work}/Tiny: ") and "(median of 1 blocks" in out
    with pytest.raises(SystemExit):
        step_time.main(["--data", synthetic_dir, "--name", "Tiny", "--work", "mse"])


def test_step_time_times_full_ranking_passes(synthetic_dir, capsys):
    step_time = _script("step_time")
    assert step_time.main(["--data", synthetic_dir, "--name", "Tiny", "--work", "evaluate",
                           "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("evaluate/Tiny: ") and "users/s (median of 5 full-ranking" in out


def test_profile_step_prints_kernel_time_by_part_and_op(synthetic_dir, capsys):
    profile = _script("profile_step")
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
    concurrency = _script("profile_step").concurrency
    # a: 0-10, b: 5-15 (overlap 5-10), gap 15-20, c: 20-30
    busy, alone = concurrency([(0, 10, "a"), (5, 15, "b"), (20, 30, "c")])
    assert dict(busy) == {0: 5, 1: 20, 2: 5}
    assert dict(alone) == {"a": 5, "b": 5, "c": 10}
    assert concurrency([]) == ({}, {})
