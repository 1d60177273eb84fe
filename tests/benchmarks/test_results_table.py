"""benchmarks/results_table.py: the results tables from the records."""

import json
import os

import pytest

from tests.benchmarks import ROOT, script


def test_results_table_has_paper_numbers_next_to_ours():
    table = script("results_table").table()
    assert "| LastFM | S3-Rec | authors' 150-epoch checkpoint | bce |" in table
    assert ".6083 / .3577" in table.replace("0.", ".")


def test_results_table_names_own_pretraining_budgets_and_variants():
    tables = script("results_table")
    assert tables.pretraining("own-pretrain-ep0") == ("SASRec", "none (same code/budget)")
    assert tables.pretraining("own-pretrain-ep40") == ("S3-Rec", "ours, 40 epochs")
    assert tables.pretraining("own-pretrain-mask0.5-ep20") == \
        ("S3-Rec", "ours, 20 epochs, mask0.5")
    assert tables.pretraining("s3rec-authors") is None
    assert tables.pretraining("sasrec") is None


def test_results_table_shows_commands_relative_to_the_checkout():
    tables = script("results_table")
    assert tables.display_command("s3rec-tf finetune --data /x/wt/a/../shared/data/s3rec "
                                  f"--output {tables.ROOT}/runs/r") == \
        "s3rec-tf finetune --data ../shared/data/s3rec --output runs/r"
    assert tables.display_command("s3rec-tf finetune --record results/x.json") == \
        "s3rec-tf finetune --record benchmarks/results/x.json"
    assert tables.commits([({"commit": "1231bc0aa+dirty"}, "a"), ({"commit": "1231bc0bb"}, "b"),
                           ({"commit": "e79a480cc"}, "c")]) == "`1231bc0`, `e79a480`"


def test_results_table_names_the_negatives_of_each_sampled_row():
    tables = script("results_table")
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
    tables = script("results_table")
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


@pytest.mark.parametrize("path,name", list(script("results_table").BLOCKS))
def test_generated_blocks_are_the_ones_the_records_give(path, name):
    tables = script("results_table")
    full = os.path.join(ROOT, path)
    text = open(full, encoding="utf-8").read() if os.path.isfile(full) else ""
    shown = tables.current_block(text, name, path)
    if shown is None:
        pytest.skip(f"{path} has no {name} markers: nothing generated there to check")
    generated = tables.blocks()[(path, name)]
    assert shown == generated, \
        f"{path}'s {name} block is stale: run python benchmarks/results_table.py --write"


def test_blocks_are_replaced_between_their_markers_only(tmp_path):
    tables = script("results_table")
    (tmp_path / "docs").mkdir()
    readme = ("# Title\n\n<!-- HEADLINE-TABLE:START -->\nold\n<!-- HEADLINE-TABLE:END -->\n"
              "between\n<!-- SPEED-TABLE:START --><!-- SPEED-TABLE:END -->\nend\n")
    (tmp_path / "README.md").write_text(readme)
    (tmp_path / "docs" / "results.md").write_text(
        "intro\n<!-- RESULTS-TABLE:START -->\n<!-- RESULTS-TABLE:END -->\n")
    generated = {("docs/results.md", "RESULTS-TABLE"): "| a |\n",
                 ("README.md", "HEADLINE-TABLE"): "| b |\n",
                 ("README.md", "SPEED-TABLE"): "| c |\n"}
    assert tables.update(str(tmp_path), generated=generated) == list(generated)
    assert (tmp_path / "README.md").read_text() == readme  # checked, not written
    assert tables.update(str(tmp_path), write=True, generated=generated) == list(generated)
    assert (tmp_path / "README.md").read_text() == (
        "# Title\n\n<!-- HEADLINE-TABLE:START -->\n| b |\n<!-- HEADLINE-TABLE:END -->\n"
        "between\n<!-- SPEED-TABLE:START -->\n| c |\n<!-- SPEED-TABLE:END -->\nend\n")
    assert (tmp_path / "docs" / "results.md").read_text() == (
        "intro\n<!-- RESULTS-TABLE:START -->\n| a |\n<!-- RESULTS-TABLE:END -->\n")
    assert tables.update(str(tmp_path), generated=generated) == []
    assert tables.update(str(tmp_path), write=True, generated=generated) == []

    (tmp_path / "README.md").write_text("# Title\n<!-- HEADLINE-TABLE:START -->\n")
    with pytest.raises(tables.MarkerError, match="README.md: needs exactly one"):
        tables.update(str(tmp_path), generated=generated)
    (tmp_path / "README.md").write_text("# no markers\n")
    with pytest.raises(tables.MarkerError, match="README.md: no <!-- HEADLINE-TABLE:START -->"):
        tables.update(str(tmp_path), write=True, generated=generated)
    assert (tmp_path / "README.md").read_text() == "# no markers\n"
    with pytest.raises(tables.MarkerError, match="comes before"):
        tables.replace_block("<!-- X:END --> <!-- X:START -->", "X", "b")
    (tmp_path / "docs" / "results.md").unlink()
    with pytest.raises(tables.MarkerError, match="docs/results.md: no such file"):
        tables.update(str(tmp_path), generated=generated)


def test_headline_table_compares_paper_sasrec_and_the_selected_row():
    tables = script("results_table")
    three = lambda valid, hr, ndcg: [(rec, f"{name}_seed{rec['seed']}") for rec, name in
                                     (_record(s, valid, hr, ndcg) for s in (1, 2, 3))]
    rows = {("LastFM", "own-pretrain-ep25", "ce", "validfull"): three(.07, .0823, .0451),
            ("LastFM", "own-pretrain-ep50", "ce", "validfull"): three(.06, .09, .05),
            ("LastFM", "sasrec", "ce", "validfull"): three(.05, .0606, .0350),
            ("Beauty", "sasrec", "ce", "validfull"): three(.05, .09, .05)}
    runs = {(dataset, recipe): [({**_ttq_record(s, .08, .04, 240), "pretrain_seed": s},
                                 f"{dataset}_{recipe}_pretrain-seed{s}") for s in (1, 2, 3)]
            for dataset in ("LastFM", "Beauty") for recipe in ("fast", "best")}
    table = tables.headline_table(rows, runs)
    lines = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(lines) - 1 <= 12
    assert "| LastFM | S3-Rec (paper) | 0.0743 | 0.0427 |" in table
    lastfm = [line for line in lines if line.startswith("| LastFM | S3-Rec (ours, pre")]
    assert lastfm == ["| LastFM | S3-Rec (ours, pretrained 25 epochs; `ce`) | 0.0823 ± 0.0000 | "
                      "0.0451 ± 0.0000 | 3 | [1](benchmarks/results/r_seed1.json), "
                      "[2](benchmarks/results/r_seed2.json), "
                      "[3](benchmarks/results/r_seed3.json) |"]
    assert any(line.startswith("| Beauty | SASRec `ce` (ours") for line in lines)
    assert not any(line.startswith("| Beauty | S3-Rec (ours, pre") for line in lines)  # none yet
    # a time-to-quality recipe: its rows over pretraining seeds, timed, linking its records
    assert ("| LastFM | S3-Rec (ours, `--preset fast`, 4 min end to end) | 0.0800 ± 0.0000 | "
            "0.0400 ± 0.0000 | 3 pretraining | [1](benchmarks/results/time-to-quality/"
            "LastFM_fast_pretrain-seed1.json), ") in table
    # only the headline's recipes: every other one is in docs/results.md
    assert "`--preset fast`" in table and "`--preset best`" not in table


def test_speed_table_is_the_latest_side_by_side_bench(tmp_path):
    tables = script("results_table")

    def bench(path, finished, original=True):
        side = {"runs": [100.0, 100.0], "median": 100.0, "round_ratios": [9.0, 11.0],
                "case": "finetune_bce/Beauty"}
        report = {"finished_at": finished, "repeats": 2, "commit": "abcdef123",
                  "machine": {"cpu": "CPU", "cpu_count": 2},
                  "original": {"dir": "o"} if original else None,
                  "results": {"finetune_ce/Beauty": {"median": 1000.0, "unit": "sequences/s",
                                                     "original": side},
                              "finetune_sampled-ce/Beauty": {"median": 5.0, "unit": "x"}}}
        (tmp_path / path).write_text(json.dumps(report))
        return str(tmp_path / path)

    older = bench("a.json", "2026-01-02T00:00:00Z")
    newer = bench("b.json", "2026-01-03T00:00:00Z")
    bench("c.json", "2026-01-04T00:00:00Z", original=False)
    path, report = tables.latest_side_by_side([older, newer, str(tmp_path / "c.json")])
    assert path == newer
    table = tables.speed_table(path, report)
    assert ("| fine-tuning, `ce` (full softmax), Beauty | 1,000 sequences/s | "
            "100 sequences/s (its `bce`) | 10.0x | 9.0 / 11.0 |") in table
    assert "sampled-ce" not in table and "commit `abcdef1`" in table
    with pytest.raises(ValueError, match="no side-by-side bench record"):
        tables.latest_side_by_side([str(tmp_path / "c.json")])


def test_check_and_write_exit_codes(tmp_path, monkeypatch, capsys):
    tables = script("results_table")
    monkeypatch.setattr(tables, "ROOT", str(tmp_path))
    monkeypatch.setattr(tables, "blocks", lambda: {("README.md", "SPEED-TABLE"): "| c |\n"})
    (tmp_path / "README.md").write_text("# no markers\n")
    assert tables.main(["--check"]) == 2
    assert "error: README.md: no <!-- SPEED-TABLE:START -->" in capsys.readouterr().err
    (tmp_path / "README.md").write_text("<!-- SPEED-TABLE:START -->\n<!-- SPEED-TABLE:END -->\n")
    assert tables.main(["--check"]) == 1
    assert tables.main(["--write"]) == 0 and tables.main(["--check"]) == 0
    assert "README.md: SPEED-TABLE updated" in capsys.readouterr().out


def _ttq_record(seed, hr, ndcg, wall, alone=True, original=None, sp=0.5):
    metrics = {"test/full": {"HR@10": hr, "NDCG@10": ndcg}}
    return {"dataset": "LastFM", "recipe": "fast", "pretrain_seed": seed, "wall_time_s": wall,
            "metrics": metrics, "alone": alone, "sp_final_loss": sp,
            "metrics_original_rule": original or metrics}


def test_time_to_quality_rows_over_pretraining_seeds_with_both_rules_and_the_goal(tmp_path):
    tables = script("results_table")
    for seed, hr in ((1, .08), (2, .09), (3, .10)):
        (tmp_path / f"LastFM_fast_pretrain-seed{seed}.json").write_text(json.dumps(
            _ttq_record(seed, hr, .05, 240, original={"test/full": {"HR@10": hr - .01,
                                                                    "NDCG@10": .04}})))
    runs = tables.load_time_to_quality(str(tmp_path))
    row = tables.time_to_quality_table(runs).splitlines()[2]
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[:5] == ["LastFM", "`fast`", "1,2,3", "4.0 ± 0.0", "0.0900 ± 0.0082"]
    assert cells[6] == "0.0800 ± 0.0082 / 0.0400 ± 0.0000"  # the original history rule
    assert cells[8] == "3/3" and cells[10] == "yes"
    # a slow run, a run that shared the machine, a missed metric: each named
    (tmp_path / "LastFM_fast_pretrain-seed3.json").write_text(json.dumps(
        _ttq_record(3, .01, .05, 400, alone=False)))
    met = tables.time_to_quality_table(tables.load_time_to_quality(str(tmp_path)))
    verdict = met.splitlines()[2].split("|")[11]
    assert "HR@10 -" in verdict and "1 run(s) not alone" in verdict
    assert "time" not in verdict  # the slow run shared the machine: it does not count
    (tmp_path / "LastFM_fast_pretrain-seed2.json").write_text(json.dumps(
        _ttq_record(2, .09, .05, 400)))
    verdict = tables.time_to_quality_table(
        tables.load_time_to_quality(str(tmp_path))).splitlines()[2].split("|")[11]
    assert "time > 5 min" in verdict


def test_time_to_quality_levers_are_listed_under_the_recipes(tmp_path):
    tables = script("results_table")
    (tmp_path / "levers").mkdir()
    lever = {**_ttq_record(1, .07, .036, 0, alone=False), "recipe": "fast-ep10-cosine",
             "variant": "cosine schedule", "pretrain_s": 478, "finetune_train_s": 67,
             "best_epoch": 18}
    (tmp_path / "levers" / "LastFM_fast-ep10-cosine_pretrain-seed1.json").write_text(
        json.dumps(lever))
    table = tables.time_to_quality_table(folder=str(tmp_path))
    assert ("| LastFM | cosine schedule | 478 | 67 | 18 | 0.0700 | 0.0360 | no | "
            "[LastFM_fast-ep10-cosine_pretrain-seed1](../benchmarks/results/time-to-quality/"
            "levers/LastFM_fast-ep10-cosine_pretrain-seed1.json) |") in table


def test_a_lever_without_a_description_is_named_by_its_flags(tmp_path):
    tables = script("results_table")
    (tmp_path / "levers").mkdir()
    lever = {**_ttq_record(1, .07, .036, 0), "recipe": "fast-one-per-user-ep100",
             "pretrain_flags": ["--prefix-sampling=one-per-user", "--epochs=100"]}
    (tmp_path / "levers" / "LastFM_fast-one-per-user-ep100_pretrain-seed1.json").write_text(
        json.dumps(lever))
    assert ("| LastFM | `fast-one-per-user-ep100`: pretraining `--prefix-sampling=one-per-user "
            "--epochs=100` |") in tables.time_to_quality_table(folder=str(tmp_path))


def test_the_time_to_pass_the_published_best_is_counted_over_seeds(tmp_path):
    tables = script("results_table")
    for seed, hr, ndcg in ((1, .1010, .0610), (2, .1020, .0620), (3, .1000, .0620)):
        (tmp_path / f"Beauty_fast_pretrain-seed{seed}.json").write_text(json.dumps(
            {**_ttq_record(seed, hr, ndcg, 60 * (10 + seed)), "dataset": "Beauty"}))
    table = tables.time_to_quality_table(folder=str(tmp_path))
    assert ("- Beauty, `fast`: past BSARec's 0.1008 / 0.0611 (the best published, full "
            "ranking) on both metrics in 1 of 3 pretraining seeds: seed 2 in 12.0 min.") in table


def test_the_ablation_is_compared_with_the_full_recipe_of_the_same_seed(tmp_path):
    tables = script("results_table")
    (tmp_path / "ablation").mkdir()
    (tmp_path / "LastFM_fast_pretrain-seed1.json").write_text(
        json.dumps(_ttq_record(1, .08, .04, 240)))
    (tmp_path / "ablation" / "LastFM_fast-no-sp_pretrain-seed1.json").write_text(json.dumps(
        {**_ttq_record(1, .072, .04, 240, sp=0.69), "recipe": "fast-no-sp"}))
    table = tables.time_to_quality_table(folder=str(tmp_path))
    assert ("| LastFM | `fast` without SP | 1 | 0.0720 | 0.0400 | -10.0% / +0.0% | 0.6900 | "
            "[LastFM_fast-no-sp_pretrain-seed1](../benchmarks/results/time-to-quality/"
            "ablation/LastFM_fast-no-sp_pretrain-seed1.json) |") in table


def test_history_rule_rows_rank_each_model_made_again_under_both_rules(tmp_path):
    tables = script("results_table")
    headline = {("LastFM", "sasrec", "ce", "validfull"):
                [_record(s, .05, .0606, .0350) for s in (1, 2, 3)]}
    for seed, hr in ((1, .060), (2, .064)):
        name = f"LastFM_sasrec_ce_validfull_seed{seed}"
        rec, _ = _record(seed, .05, hr, .035)
        (tmp_path / f"{name}.json").write_text(json.dumps(
            {**rec, "valid_metric": "NDCG@20", "commit": "abcdef0123"}))
        (tmp_path / f"{name}.original-rule.json").write_text(json.dumps(
            {"history_rule": "original",
             "metrics": {"test/full": {"HR@10": hr * .99, "NDCG@10": .035 * .98}}}))
    row = tables.history_rule_table(headline, str(tmp_path)).splitlines()[2]
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[:4] == ["LastFM", "SASRec `ce` (ours, no pretraining)",
                         "0.0606 ± 0.0000 / 0.0350 ± 0.0000", "1,2"]
    assert cells[4] == "0.0620 ± 0.0020 / 0.0350 ± 0.0000"  # the fine-tuning records
    assert cells[5] == "0.0614 ± 0.0020 / 0.0343 ± 0.0000"  # their models, original rule
    assert cells[6] == "-1.0% / -2.0%" and cells[7] == "`abcdef0`"
    assert tables._relative([[.06, .07]], [[.06, .07]]) == "identical"  # not "+0.0%"
    assert "[2](../benchmarks/results/history-rule/LastFM_sasrec_ce_validfull_seed2.json) " \
           "([`original`](../benchmarks/results/history-rule/LastFM_sasrec_ce_validfull_" \
           "seed2.original-rule.json))" in cells[8]
    # an evaluation under another rule, or none, is named, not tabled
    evaluation = tmp_path / "LastFM_sasrec_ce_validfull_seed2.original-rule.json"
    evaluation.write_text(json.dumps({"history_rule": "remove", "metrics": {}}))
    with pytest.raises(ValueError, match="seed2.original-rule.json: history_rule is 'remove'"):
        tables.history_rule_table(headline, str(tmp_path))
    evaluation.unlink()
    with pytest.raises(ValueError, match="seed2.original-rule.json: missing"):
        tables.history_rule_table(headline, str(tmp_path))
