#!/usr/bin/env python3
"""Plots validation metrics over fine-tuning epochs, and pretraining losses per head.

Reads the per-epoch histories `results/<run>.history.jsonl` written beside each
recorded run (`s3rec-tf finetune --record results/<run>.json`) and writes one
PNG per dataset to `results/plots/<dataset>.png`: a panel per validation
protocol, a line per run (no pretraining, the authors' checkpoint, our own
pretraining at each epoch budget; one line per seed).

Pretraining histories (the `history.jsonl` that `s3rec-tf pretrain` writes in
its output directory: `aap_loss`, `mip_loss`, `map_loss`, `sp_loss`, `loss` per
epoch) are drawn beside them, one PNG per dataset,
`results/plots/<dataset>_pretraining.png`, with a panel per head and one for
the weighted sum, a line per run. They are `results/*pretrain*.history.jsonl`
(named `<dataset>_<tag with "pretrain">...`) or the files or pretraining output
directories given with `--pretraining`.

Usage: python scripts/plot_histories.py [--results DIR] [--output DIR]
                                        [--pretraining PATH [PATH ...]]
"""

import argparse
import glob
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The validation metric each protocol's runs early-stop on (see `s3rec_tf.training`).
PANELS = {"sampled": "valid_sampled/NDCG@10", "full": "valid_full/NDCG@20"}
#: Pretraining's per-epoch losses (`s3rec_tf.training.run_pretraining`), one panel each.
HEADS = {"aap_loss": "AAP: associated attribute prediction",
         "mip_loss": "MIP: masked item prediction",
         "map_loss": "MAP: masked attribute prediction",
         "sp_loss": "SP: segment prediction",
         "loss": "weighted sum (the optimised loss)"}


def read_history(path: str) -> list:
    """The rows of a `.jsonl` history (one JSON object per line)."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def is_pretraining(rows: list) -> bool:
    """A pretraining history has per-head losses; a fine-tuning one has none."""
    return any(head in row for row in rows for head in HEADS if head != "loss")


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
        if is_pretraining(read_history(path)):
            continue  # see load_pretraining
        try:
            dataset, label, protocol, seed = describe(run)
        except ValueError:
            print(f"skipping {path}: name is not <dataset>_<tag>_<loss>_valid<p>_seed<n>",
                  file=sys.stderr)
            continue
        key = PANELS.get(protocol)
        rows = read_history(path)
        points = [(r["epoch"], r[key]) for r in rows if key in r]
        if points:
            runs.setdefault(dataset, {}).setdefault(protocol, []).append(
                (label, seed, [p[0] for p in points], [p[1] for p in points]))
    return runs


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot(runs: dict, output_dir: str) -> list:
    """Writes `<output_dir>/<dataset>.png` per dataset; returns the paths."""
    plt = _pyplot()
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


def pretraining_run(path: str):
    """`(dataset, label)` of a pretraining history file.

    `<dir>/history.jsonl` of a pretraining output directory: the dataset of
    its `manifest.json` and the directory's name. `<dataset>_<tag>.history.jsonl`:
    the name up to its first part that contains "pretrain", and the rest.
    """
    name = os.path.basename(path)
    directory = os.path.dirname(os.path.abspath(path))
    if name == "history.jsonl":
        manifest = os.path.join(directory, "manifest.json")
        dataset = None
        if os.path.exists(manifest):
            with open(manifest) as f:
                dataset = (json.load(f).get("vocabulary") or {}).get("dataset")
        return dataset or "pretraining", os.path.basename(directory)
    stem = name[:-len(".history.jsonl")] if name.endswith(".history.jsonl") else \
        os.path.splitext(name)[0]
    parts = stem.split("_")
    cut = next((i for i, part in enumerate(parts) if "pretrain" in part and i > 0), None)
    if cut is None:
        return stem, stem
    return "_".join(parts[:cut]), "_".join(parts[cut:])


def load_pretraining(paths) -> dict:
    """`{dataset: [(label, epochs, {head: values})]}` of pretraining histories.

    `paths` are history files or pretraining output directories (their
    `history.jsonl`). A resumed run's repeated epoch keeps its last row.
    """
    runs = {}
    for path in paths:
        if os.path.isdir(path):
            path = os.path.join(path, "history.jsonl")
        rows = read_history(path)
        if not is_pretraining(rows):
            print(f"skipping {path}: no per-head pretraining losses", file=sys.stderr)
            continue
        by_epoch = {}
        for i, row in enumerate(rows):
            by_epoch[row.get("epoch", i + 1)] = row
        epochs = sorted(by_epoch)
        heads = {head: [by_epoch[e].get(head, float("nan")) for e in epochs]
                 for head in HEADS if any(head in by_epoch[e] for e in epochs)}
        dataset, label = pretraining_run(path)
        runs.setdefault(dataset, []).append((label, epochs, heads))
    return runs


def plot_pretraining(runs: dict, output_dir: str) -> list:
    """Writes `<output_dir>/<dataset>_pretraining.png` per dataset; returns the paths."""
    plt = _pyplot()
    os.makedirs(output_dir, exist_ok=True)
    written = []
    for dataset, lines in sorted(runs.items()):
        heads = [h for h in HEADS if any(h in line[2] for line in lines)]
        fig, axes = plt.subplots(1, len(heads), figsize=(3.6 * len(heads), 3.6), squeeze=False)
        for ax, head in zip(axes[0], heads):
            for i, (label, epochs, values) in enumerate(sorted(lines, key=lambda r: r[0])):
                if head in values:
                    ax.plot(epochs, values[head], color=f"C{i}", linewidth=1.3, label=label,
                            marker="." if len(epochs) < 30 else None)
            ax.set_title(HEADS[head], fontsize=9)
            ax.set_xlabel("pretraining epoch")
            ax.set_ylabel(f"{head} (per sample)")
            ax.grid(alpha=0.3)
        axes[0][-1].legend(fontsize=7.5, loc="upper right")
        fig.suptitle(f"{dataset}: pretraining losses per head", fontsize=10)
        fig.tight_layout()
        path = os.path.join(output_dir, f"{dataset}_pretraining.png")
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
    parser.add_argument("--pretraining", nargs="+", metavar="PATH",
                        help="pretraining history files or output directories (default: "
                             "<results>/*pretrain*.history.jsonl with per-head losses)")
    args = parser.parse_args(argv)
    runs = load(args.results)
    missing = [p for p in args.pretraining or [] if not os.path.exists(p)]
    if missing:
        print(f"plot_histories.py: error: {missing[0]}: no such file or directory",
              file=sys.stderr)
        return 2
    if args.pretraining:
        pretraining = load_pretraining(args.pretraining)
    else:
        pretraining = load_pretraining(
            p for p in sorted(glob.glob(os.path.join(args.results, "*pretrain*.history.jsonl")))
            if is_pretraining(read_history(p)))
    if not runs and not pretraining:
        print(f"no histories in {args.results}", file=sys.stderr)
        return 1
    for path in plot(runs, args.output) + plot_pretraining(pretraining, args.output):
        print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
