#!/usr/bin/env python3
"""Plots validation metrics over fine-tuning epochs, with and without pretraining.

Reads the per-epoch histories `results/<run>.history.jsonl` written beside each
recorded run (`s3rec-tf finetune --record results/<run>.json`) and writes one
PNG per dataset to `results/plots/<dataset>.png`: a panel per validation
protocol, a line per run (no pretraining, the authors' checkpoint, our own
pretraining at each epoch budget; one line per seed).

Usage: python scripts/plot_histories.py [--results DIR] [--output DIR]
"""

import argparse
import glob
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The validation metric each protocol's runs early-stop on (see `s3rec_tf.training`).
PANELS = {"sampled": "valid_sampled/NDCG@10", "full": "valid_full/NDCG@20"}


def describe(run: str):
    """`Beauty_s3rec-authors_bce_validfull_seed1` -> (dataset, label, protocol, seed)."""
    parts = run.split("_")
    dataset = "_".join(parts[:-4])
    tag, loss, valid, seed = parts[-4:]
    if tag == "sasrec" or tag == "own-pretrain-ep0":
        label = "no pretraining (SASRec)"
    elif tag == "s3rec-authors":
        label = "S3-Rec, authors' checkpoint"
    elif tag.startswith("own-pretrain-ep"):
        label = f"S3-Rec, our pretraining, {tag.rsplit('ep', 1)[1]} epochs"
    else:
        label = tag
    return dataset, f"{label}, {loss}", valid.replace("valid", ""), seed.replace("seed", "")


def load(results_dir: str):
    """`{dataset: {protocol: [(label, seed, epochs, values)]}}`."""
    runs = {}
    for path in sorted(glob.glob(os.path.join(results_dir, "*.history.jsonl"))):
        run = os.path.basename(path)[:-len(".history.jsonl")]
        try:
            dataset, label, protocol, seed = describe(run)
        except ValueError:
            print(f"skipping {path}: name is not <dataset>_<tag>_<loss>_valid<p>_seed<n>",
                  file=sys.stderr)
            continue
        key = PANELS.get(protocol)
        with open(path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        points = [(r["epoch"], r[key]) for r in rows if key in r]
        if points:
            runs.setdefault(dataset, {}).setdefault(protocol, []).append(
                (label, seed, [p[0] for p in points], [p[1] for p in points]))
    return runs


def plot(runs: dict, output_dir: str) -> list:
    """Writes `<output_dir>/<dataset>.png` per dataset; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(output_dir, exist_ok=True)
    written = []
    for dataset, panels in sorted(runs.items()):
        protocols = [p for p in PANELS if p in panels]
        labels = sorted({run[0] for runs_ in panels.values() for run in runs_})
        colors = {label: f"C{i}" for i, label in enumerate(labels)}  # same colour per run
        fig, axes = plt.subplots(1, len(protocols), figsize=(6.5 * len(protocols), 4.4),
                                 squeeze=False)
        for ax, protocol in zip(axes[0], protocols):
            shown = set()
            for label, seed, epochs, values in sorted(panels[protocol]):
                ax.plot(epochs, values, color=colors[label], linewidth=1.3, alpha=0.85,
                        label=None if label in shown else label)
                shown.add(label)
            ax.set_title(f"{dataset}: validation, {protocol} ranking")
            ax.set_xlabel("fine-tuning epoch")
            ax.set_ylabel(PANELS[protocol].split("/")[1])
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7.5, loc="lower right")
        fig.tight_layout()
        path = os.path.join(output_dir, f"{dataset}.png")
        tmp = path + ".tmp.png"
        fig.savefig(tmp, dpi=110)
        plt.close(fig)
        os.replace(tmp, path)
        written.append(path)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", default=os.path.join(ROOT, "results"))
    parser.add_argument("--output", default=os.path.join(ROOT, "results", "plots"))
    args = parser.parse_args(argv)
    runs = load(args.results)
    if not runs:
        print(f"no histories in {args.results}", file=sys.stderr)
        return 1
    for path in plot(runs, args.output):
        print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
