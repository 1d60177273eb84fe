#!/usr/bin/env python3
"""Plots validation metrics over fine-tuning epochs, and pretraining losses per head.

Reads the per-epoch histories `benchmarks/results/<run>.history.jsonl` written beside each
recorded run (`s3rec-tf finetune --record benchmarks/results/<run>.json`) and writes one
PNG per dataset to `benchmarks/results/plots/<dataset>.png`: a panel per validation
protocol, a line per run (no pretraining, the authors' checkpoint, our own
pretraining at each epoch budget and variant, named as the results table names
them; one line per seed; one legend beside the panels).

Pretraining histories (the `history.jsonl` that `s3rec-tf pretrain` writes in
its output directory: `aap_loss`, `mip_loss`, `map_loss`, `sp_loss`, `loss` per
epoch) are drawn beside them, one PNG per dataset,
`benchmarks/results/plots/<dataset>_pretraining.png`, with a panel per head and one for
the weighted sum, a line per run. They are `benchmarks/results/*pretrain*.history.jsonl`
(named `<dataset>_<tag with "pretrain">...`) or the files or pretraining output
directories given with `--pretraining` (`LABEL=PATH` names a line; a console
log `*.log` of a run made before `history.jsonl` existed is read from its
per-epoch lines). The SP panel marks ln 2, the loss of an SP head that cannot
tell the true segment from a random one. `--pretraining-output FILE` draws every
given run in one figure in FILE instead.

Usage: python benchmarks/plot_histories.py [--results DIR] [--output DIR]
                                        [--pretraining [LABEL=]PATH ...]
                                        [--pretraining-output FILE] [--title T]
"""

import argparse
import glob
import json
import math
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Where the records live.
RESULTS = os.path.join(ROOT, "benchmarks", "results")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results_table import pretraining as pretraining_cells  # noqa: E402  the tag rule
#: The validation metric each protocol's runs early-stop on (see `s3rec_tf.training`).
PANELS = {"sampled": "valid_sampled/NDCG@10", "full": "valid_full/NDCG@20"}
#: Pretraining's per-epoch losses (`s3rec_tf.training.run_pretraining`), one panel each.
HEADS = {"aap_loss": "AAP: associated attribute prediction",
         "mip_loss": "MIP: masked item prediction",
         "map_loss": "MAP: masked attribute prediction",
         "sp_loss": "SP: segment prediction",
         "loss": "weighted sum (the optimised loss)"}


#: Per-epoch lines of a console log: Keras's (`1503/1503 - 665s - 442ms/step - aap_loss:
#: 105.6 - ...`) and the command line's (`epoch 3/150: aap_loss=26.4 loss=40.2 ... (298.5s)`).
KERAS_LINE = re.compile(r"^\s*\d+/\d+ - .*?((?:\w+_loss|loss): [-\d.e+]+.*)$")
CLI_LINE = re.compile(r"^epoch (\d+)/\d+: (.*?)(?: \([\d.]+s\))?$")


def read_history(path: str) -> list:
    """The rows of a `.jsonl` history (one JSON object per line), or of a console `.log`."""
    with open(path) as f:
        if not path.endswith(".log"):
            return [json.loads(line) for line in f if line.strip()]
        rows = []
        for line in f.read().replace("\r", "\n").splitlines():
            keras_line, cli_line = KERAS_LINE.match(line), CLI_LINE.match(line.strip())
            if keras_line:
                values = dict(part.split(": ") for part in keras_line.group(1).split(" - "))
                rows.append({"epoch": len(rows) + 1, **{k: float(v) for k, v in values.items()}})
            elif cli_line:
                values = dict(part.split("=") for part in cli_line.group(2).split())
                rows.append({"epoch": int(cli_line.group(1)),
                             **{k: float(v) for k, v in values.items()}})
    if not rows:
        raise ValueError(f"{path}: no epochs recorded")
    return rows


def is_pretraining(rows: list) -> bool:
    """A pretraining history has per-head losses; a fine-tuning one has none."""
    return any(head in row for row in rows for head in HEADS if head != "loss")


def describe(run: str):
    """`Beauty_s3rec-authors_bce_validfull_seed1` -> (dataset, label, protocol, seed)."""
    parts = run.split("_")
    dataset = "_".join(parts[:-4])
    tag, loss, valid, seed = parts[-4:]
    cells = pretraining_cells(tag)  # as the results table names it
    if tag == "sasrec" or (cells and cells[0] == "SASRec"):
        label = "no pretraining (SASRec)"
    elif tag == "s3rec-authors":
        label = "S3-Rec, authors' checkpoint"
    elif cells:
        label = f"S3-Rec, our pretraining, {cells[1].removeprefix('ours, ')}"
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


def _save(plt, fig, path: str) -> str:
    """Writes `fig` to `path` whole (a temporary file, then a rename) and closes it."""
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def plot(runs: dict, output_dir: str) -> list:
    """Writes `<output_dir>/<dataset>.png` per dataset; returns the paths."""
    plt = _pyplot()
    os.makedirs(output_dir, exist_ok=True)
    written = []
    for dataset, panels in sorted(runs.items()):
        protocols = [p for p in PANELS if p in panels]
        labels = sorted({run[0] for runs_ in panels.values() for run in runs_})
        cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
        colors = {label: cmap(i % cmap.N) for i, label in enumerate(labels)}  # one per run
        fig, axes = plt.subplots(1, len(protocols), figsize=(6.5 * len(protocols), 4.4),
                                 squeeze=False)
        handles = {}
        for ax, protocol in zip(axes[0], protocols):
            for label, seed, epochs, values in sorted(panels[protocol]):
                line, = ax.plot(epochs, values, color=colors[label], linewidth=1.3, alpha=0.85)
                handles.setdefault(label, line)
            ax.set_title(f"{dataset}: validation, {protocol} ranking")
            ax.set_xlabel("fine-tuning epoch")
            ax.set_ylabel(PANELS[protocol].split("/")[1])
            ax.grid(alpha=0.3)
        fig.tight_layout()
        # one legend for the figure, beside the panels: the runs are many
        fig.legend([handles[k] for k in labels], labels, fontsize=7.5, loc="upper left",
                   bbox_to_anchor=(1.0, 0.97))
        written.append(_save(plt, fig, os.path.join(output_dir, f"{dataset}.png")))
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
    `history.jsonl`), each optionally `LABEL=PATH`. A resumed run's repeated
    epoch keeps its last row.
    """
    runs = {}
    for spec in paths:
        label, _, path = spec.rpartition("=") if "=" in spec else (None, "", spec)
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
        dataset, name = pretraining_run(path)
        runs.setdefault(dataset, []).append((label or name, epochs, heads))
    return runs


def plot_pretraining(runs: dict, output_dir: str, output_file: str | None = None,
                     title: str | None = None) -> list:
    """Writes `<output_dir>/<dataset>_pretraining.png` per dataset (or one
    figure with every run to `output_file`); returns the paths."""
    plt = _pyplot()
    if output_file:  # one figure: every run's lines together
        runs = {" + ".join(sorted(runs)): [line for lines in runs.values() for line in lines]}
    os.makedirs(os.path.dirname(os.path.abspath(output_file)) if output_file else output_dir,
                exist_ok=True)
    written = []
    for dataset, lines in sorted(runs.items()):
        heads = [h for h in HEADS if any(h in line[2] for line in lines)]
        fig, axes = plt.subplots(1, len(heads), figsize=(3.6 * len(heads), 3.6), squeeze=False)
        for ax, head in zip(axes[0], heads):
            for i, (label, epochs, values) in enumerate(sorted(lines, key=lambda r: r[0])):
                if head in values:
                    ax.plot(epochs, values[head], color=f"C{i}", linewidth=1.3, label=label,
                            marker="." if len(epochs) < 30 else None)
            if head == "sp_loss":
                ax.axhline(math.log(2), color="grey", linestyle=":", label="ln 2")
            ax.set_title(HEADS[head], fontsize=9)
            ax.set_xlabel("pretraining epoch")
            ax.set_ylabel(f"{head} (per sample)")
            ax.grid(alpha=0.3)
        axes[0][-1].legend(fontsize=7.5, loc="upper right")
        fig.suptitle(title or f"{dataset}: pretraining losses per head", fontsize=10)
        fig.tight_layout()
        written.append(_save(plt, fig, output_file or
                             os.path.join(output_dir, f"{dataset}_pretraining.png")))
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", default=RESULTS)
    parser.add_argument("--output", default=os.path.join(RESULTS, "plots"))
    parser.add_argument("--pretraining", nargs="+", metavar="[LABEL=]PATH",
                        help="pretraining history files, console logs or output directories "
                             "(default: <results>/*pretrain*.history.jsonl with per-head "
                             "losses)")
    parser.add_argument("--pretraining-output", metavar="FILE",
                        help="write the pretraining figure (one dataset) to FILE and skip "
                             "the fine-tuning plots")
    parser.add_argument("--title", help="title of the pretraining figure")
    args = parser.parse_args(argv)
    runs = {} if args.pretraining_output else load(args.results)
    missing = [p.rpartition("=")[2] for p in args.pretraining or []
               if not os.path.exists(p.rpartition("=")[2])]
    if missing:
        print(f"plot_histories.py: error: {missing[0]}: no such file or directory",
              file=sys.stderr)
        return 2
    if args.pretraining:
        try:
            pretraining = load_pretraining(args.pretraining)
        except ValueError as e:
            print(f"plot_histories.py: error: {e}", file=sys.stderr)
            return 2
    else:
        pretraining = load_pretraining(
            p for p in sorted(glob.glob(os.path.join(args.results, "*pretrain*.history.jsonl")))
            if is_pretraining(read_history(p)))
    if not runs and not pretraining:
        print(f"no histories in {args.results}", file=sys.stderr)
        return 1
    try:
        pretraining_paths = plot_pretraining(pretraining, args.output, args.pretraining_output,
                                             args.title)
    except ValueError as e:
        print(f"plot_histories.py: error: {e}", file=sys.stderr)
        return 2
    for path in plot(runs, args.output) + pretraining_paths:
        print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
