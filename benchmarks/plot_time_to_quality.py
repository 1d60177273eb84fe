#!/usr/bin/env python3
"""Plots time against quality: validation NDCG@10 over wall time, one curve per recipe.

One panel per dataset. A time-to-quality record
(`benchmarks/results/time-to-quality/*.json`, `benchmarks/time_to_quality.py`)
gives one line per pretraining seed: its fine-tuning curve (full-ranking
validation NDCG@10 after each epoch), shifted right by its pretraining time,
so the x axis is the wall time from the raw files. The longer recipe behind a
headline row is drawn from its existing histories (`--long NAME=PRETRAIN_HISTORY,FINETUNE_RECORD`):
the pretraining history's time (summed over its resumptions), then the fine-tuning record's
history, its epochs spread evenly over the record's training time (those
histories have no per-epoch time).

Usage: python benchmarks/plot_time_to_quality.py [--output docs/time-to-quality.png]
"""

import argparse
import glob
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
#: The metric on the y axis (full-ranking validation; what early stopping reads).
METRIC = "valid_full/NDCG@10"
#: The headline rows' longer recipes, from their histories: label -> (dataset,
#: pretraining history, fine-tuning record), under `RESULTS`.
LONG = {
    "100 pretraining epochs, ce (headline row)": (
        "Beauty", "Beauty_own-pretrain_seed1.history.jsonl",
        "Beauty_own-pretrain-ep100_ce_validfull_seed1.json"),
    "25 pretraining epochs, ce (headline row)": (
        "LastFM", "LastFM_own-pretrain_seed1.history.jsonl",
        "LastFM_own-pretrain-ep25_ce_validfull_seed1.json"),
}


#: The minutes marked on the time axis (those within a panel's range).
TICKS = (1, 2, 3, 4, 5, 7, 10, 15, 20, 25, 30, 40, 60, 90, 120, 180, 240, 360)


def _jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def recipe_curves(folder: str) -> dict:
    """`{dataset: {recipe: [(minutes, metric values), ...]}}` of the time-to-quality
    records in `folder`, a curve per pretraining seed (`None` for a record made before
    records kept the fine-tuning curve)."""
    out = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
        with open(path) as f:
            rec = json.load(f)
        curve = rec.get("finetune_curve") or []
        if not curve:
            out.setdefault(rec["dataset"], {}).setdefault(rec["recipe"], []).append(None)
            continue
        start = rec["pretrain_s"]
        xs = [(start + row["wall_time_s"]) / 60 for row in curve]
        ys = [row[METRIC] for row in curve]
        out.setdefault(rec["dataset"], {}).setdefault(rec["recipe"], []).append((xs, ys))
    return out


def recipe_label(recipe: str, lines: list) -> str:
    """A recipe's legend entry: how many pretraining seeds its curves show, of how many."""
    drawn = sum(line is not None for line in lines)
    if drawn == len(lines):
        return f"--preset {recipe} ({drawn} pretraining seeds)"
    others = ("the other record predates" if len(lines) - drawn == 1 else
              "the other records predate")
    return f"--preset {recipe} ({drawn} of {len(lines)} pretraining seeds; {others} the curves)"


def pretraining_seconds(rows) -> float:
    """The pretraining time of a history's epochs, across resumptions (a resumed run's
    `wall_time_s` counts from its own start, so it falls back where one began)."""
    total = previous = 0.0
    for row in rows:
        now = row["wall_time_s"]
        total += now - previous if now >= previous else now
        previous = now
    return total


def long_curve(results: str, pretraining: str, finetuning: str):
    """`(minutes, metric values)` of a longer recipe from its histories."""
    pre = pretraining_seconds(_jsonl(os.path.join(results, pretraining)))
    with open(os.path.join(results, finetuning)) as f:
        rec = json.load(f)
    rows = _jsonl(os.path.join(results, finetuning[:-5] + ".history.jsonl"))
    per_epoch = rec["train_wall_time_s"] / len(rows)
    return ([(pre + per_epoch * (i + 1)) / 60 for i in range(len(rows))],
            [row[METRIC] for row in rows])


def plot(curves: dict, long: dict, output: str) -> str:
    """Writes the figure: `curves` as `recipe_curves` gives them, `long` as
    `{(dataset, label): long_curve(...)}`; returns `output`."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter
    datasets = sorted(set(curves) | {d for d, _ in long})
    recipes = sorted({recipe for by_recipe in curves.values() for recipe in by_recipe})
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        xs_all = []
        for recipe, lines in sorted(curves.get(dataset, {}).items()):
            drawn = [line for line in lines if line is not None]
            for j, (xs, ys) in enumerate(drawn):
                xs_all += xs
                ax.plot(xs, ys, color=f"C{recipes.index(recipe)}", lw=1,
                        label=recipe_label(recipe, lines) if j == 0 else None)
        for (name, label), (xs, ys) in long.items():
            if name == dataset:
                xs_all += xs
                ax.plot(xs, ys, color="0.4", ls="--", lw=1, label=label)
        ax.set_xscale("log")
        # minutes a reader can read off, not powers of ten
        low, high = min(xs_all, default=1), max(xs_all, default=10)
        ax.set_xticks([t for t in TICKS if low * 0.8 <= t <= high * 1.25])
        ax.xaxis.set_major_formatter(lambda value, _: f"{value:g}")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(dataset)
        ax.set_xlabel("wall time from the raw files (min, log scale)")
        ax.set_ylabel("validation NDCG@10 (full ranking)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    fig.savefig(output, dpi=110)
    return output


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", default=os.path.join(RESULTS, "time-to-quality"))
    p.add_argument("--results", default=RESULTS,
                   help="where the longer recipes' histories are")
    p.add_argument("--output", default=os.path.join(ROOT, "docs", "time-to-quality.png"))
    args = p.parse_args(argv)
    long = {}
    for label, (dataset, pre, fine) in LONG.items():
        if all(os.path.exists(os.path.join(args.results, f))
               for f in (pre, fine, fine[:-5] + ".history.jsonl")):
            long[(dataset, label)] = long_curve(args.results, pre, fine)
    print(f"Wrote {plot(recipe_curves(args.records), long, args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
