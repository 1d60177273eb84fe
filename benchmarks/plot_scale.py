#!/usr/bin/env python3
"""Log-log plot and markdown table of the scale study (`benchmarks/scale.py --scale`).

Reads one or more results files of `benchmarks/scale.py --scale` (sizes from
several files are merged; a later file's size replaces an earlier one's),
writes `benchmarks/results/plots/scale.png` (left: seconds per stage against
interactions, pretraining/fine-tuning epochs and evaluation extrapolated;
right: peak resident memory per stage, with the 8 GB target) and prints the
markdown table, with each stage's log-log slope (1.0: cost
linear in interactions).

Usage: python benchmarks/plot_scale.py RESULTS.json [RESULTS.json ...]
                                    [--output benchmarks/results/plots/scale.png]
"""

import argparse
import json
import math
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Where the records live.
RESULTS = os.path.join(ROOT, "benchmarks", "results")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # beside scale.py

#: Stage -> (the seconds it reports, label).
STAGES = {"prepare": ("wall_s", "Beam preparation (DirectRunner)"),
          "pretrain": ("epoch_s_extrapolated", "pretraining epoch*"),
          "finetune": ("epoch_s_extrapolated", "fine-tuning epoch* (bce)"),
          "evaluate": ("epoch_s_extrapolated", "full-ranking evaluation*")}


def load(paths) -> dict:
    """One report whose `sizes` merge those of `paths`, ordered by interactions."""
    report = None
    for path in paths:
        with open(path) as f:
            part = json.load(f)
        if not part.get("scale"):
            raise SystemExit(f"plot_scale: {path}: not a `scale.py --scale` results file")
        if report is None:
            report = {**part, "sizes": {}, "files": []}
        report["sizes"].update(part["sizes"])
        report["files"].append(os.path.relpath(path, ROOT))
    report["sizes"] = dict(sorted(report["sizes"].items(),
                                  key=lambda kv: kv[1]["interactions"]))
    return report


def slope(xs, ys):
    """Least-squares slope of log(y) on log(x); None with fewer than two points."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x > 0 and y and y > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    den = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / den if den else None


def _log_log(ax, title: str, ylabel: str) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel("interactions")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7.5, loc="best")


def series(report: dict, stage: str, key: str):
    xs, ys = [], []
    for r in report["sizes"].values():
        if key in r["stages"].get(stage, {}):  # older results lack some figures
            xs.append(r["interactions"])
            ys.append(r["stages"][stage][key])
    return xs, ys


def slopes(report: dict) -> dict:
    return {stage: slope(*series(report, stage, key)) for stage, (key, _) in STAGES.items()}


def plot(report: dict, path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6))
    ax = axes[0]
    for i, (stage, (key, label)) in enumerate(STAGES.items()):
        xs, ys = series(report, stage, key)
        if xs:
            ax.plot(xs, ys, "o-", color=f"C{i}", linewidth=1.3, label=label)
    xs, ys = series(report, "prepare", "wall_s")
    if xs:  # a line of slope 1 through the first preparation point
        ax.plot([xs[0], xs[-1]], [ys[0], ys[0] * xs[-1] / xs[0]], "k--", linewidth=0.8,
                alpha=0.5, label="linear (slope 1)")
    _log_log(ax, "cost per stage (* extrapolated to one epoch / all users)", "seconds")
    ax = axes[1]
    for i, stage in enumerate(["synth", *STAGES]):
        xs, ys = series(report, stage, "peak_rss_mb")
        if xs:
            ax.plot(xs, ys, "o-", color=f"C{i + 4 if stage == 'synth' else i - 1}",
                    linewidth=1.3, label=stage)
    xs, ys = series(report, "prepare", "peak_tree_rss_mb")
    if xs:  # Beam's workers are processes of their own: their sum is the stage's memory
        ax.plot(xs, ys, "o--", color="C0", linewidth=1.0, label="prepare, process tree (sum)")
    ax.axhline(8192, color="k", linestyle="--", linewidth=0.8, alpha=0.6,
               label="target: 8 GB at 10M")
    _log_log(ax, "peak resident memory per stage", "MB")
    from s3rec_tf import config
    # records made before the optimizer option ran with the default one
    optimizer = (report.get("model_config") or {}).get("optimizer", config.OPTIMIZERS[0])
    fig.suptitle(f"benchmarks/scale.py --scale, optimizer {optimizer}, commit "
                 f"{str(report.get('commit'))[:10]}, {report['machine']['cpu_count']} CPUs "
                 "(shared)", fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def table(report: dict) -> str:
    """The markdown table: `scale.scale_table` plus the log-log slopes."""
    from scale import scale_table
    fitted = slopes(report)
    text = scale_table(report)
    text += "\n\nLog-log slope of seconds against interactions (1.0 is linear): " + ", ".join(
        f"{stage} {value:.2f}" for stage, value in fitted.items() if value is not None)
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", help="results JSON of `benchmarks/scale.py --scale`")
    parser.add_argument("--output", default=os.path.join(RESULTS, "plots", "scale.png"))
    args = parser.parse_args(argv)
    report = load(args.results)
    print(table(report))
    print(f"Wrote {plot(report, args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
