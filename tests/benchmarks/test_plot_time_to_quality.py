"""benchmarks/plot_time_to_quality.py: validation quality over wall time, per recipe."""

import json

from tests.benchmarks import script


def _records(folder):
    folder.mkdir()
    for seed in (1, 2):
        curve = [{"epoch": e, "valid_full/NDCG@10": 0.01 * e, "wall_time_s": 30.0 * e}
                 for e in (1, 2, 3)]
        (folder / f"Toy_fast_pretrain-seed{seed}.json").write_text(json.dumps(
            {"dataset": "Toy", "recipe": "fast", "pretrain_seed": seed, "pretrain_s": 120.0,
             "finetune_curve": curve}))
    (folder / "Old_fast_pretrain-seed1.json").write_text(json.dumps(  # no curve: counted
        {"dataset": "Old", "recipe": "fast", "pretrain_seed": 1, "pretrain_s": 1.0}))


def test_a_recipes_curves_start_after_pretraining(tmp_path):
    plots = script("plot_time_to_quality")
    _records(tmp_path / "ttq")
    curves = plots.recipe_curves(str(tmp_path / "ttq"))
    assert sorted(curves) == ["Old", "Toy"] and len(curves["Toy"]["fast"]) == 2
    xs, ys = curves["Toy"]["fast"][0]
    assert xs == [2.5, 3.0, 3.5] and ys == [0.01, 0.02, 0.03]  # (120 s + 30 s * epoch) / 60
    assert curves["Old"]["fast"] == [None]  # a record made before records kept curves


def test_the_legend_counts_the_seeds_a_recipe_draws():
    plots = script("plot_time_to_quality")
    line = ([1.0], [0.1])
    assert plots.recipe_label("fast", [line, line]) == "--preset fast (2 pretraining seeds)"
    assert plots.recipe_label("fast", [None, line, line]) == (
        "--preset fast (2 of 3 pretraining seeds; the other record predates the curves)")
    assert plots.recipe_label("fast", [None, None, line]) == (
        "--preset fast (1 of 3 pretraining seeds; the other records predate the curves)")


def test_a_long_recipe_from_its_histories_and_the_figure(tmp_path):
    plots = script("plot_time_to_quality")
    results = tmp_path / "results"
    results.mkdir()
    (results / "Toy_pre.history.jsonl").write_text(
        "\n".join(json.dumps({"epoch": e, "wall_time_s": 600.0 * e}) for e in (1, 2)) + "\n")
    (results / "Toy_ft.json").write_text(json.dumps({"train_wall_time_s": 120.0}))
    (results / "Toy_ft.history.jsonl").write_text("\n".join(
        json.dumps({"epoch": e, "valid_full/NDCG@10": 0.02 * e}) for e in (1, 2)) + "\n")
    xs, ys = plots.long_curve(str(results), "Toy_pre.history.jsonl", "Toy_ft.json")
    assert xs == [21.0, 22.0] and ys == [0.02, 0.04]  # 1,200 s, then 60 s per epoch
    _records(tmp_path / "ttq")
    out = plots.plot(plots.recipe_curves(str(tmp_path / "ttq")), {("Toy", "long"): (xs, ys)},
                     str(tmp_path / "fig.png"))
    assert open(out, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_pretraining_time_adds_up_across_resumptions():
    plots = script("plot_time_to_quality")
    rows = [{"wall_time_s": w} for w in (100, 200, 50, 150)]  # resumed after the second epoch
    assert plots.pretraining_seconds(rows) == 350
