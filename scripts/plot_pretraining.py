#!/usr/bin/env python3
"""Plots per-head pretraining losses over epochs, one line per run.

Reads the `history.jsonl` that `s3rec-tf pretrain` writes into its output
directory (one JSON line per epoch with `aap_loss`, `mip_loss`, `map_loss`,
`sp_loss`), or the console log of a run (`*.log`: Keras's per-epoch lines,
for runs made before `history.jsonl` existed), and draws a panel per head;
the SP panel marks ln 2, the loss of an SP head that cannot tell the true
segment from a random one.

Usage:
    python scripts/plot_pretraining.py --output results/plots/pretraining-Beauty.png \\
        --run "before the fix=results/sp-dynamics/Beauty-pretrain-before.history.jsonl" \\
        --run "after=results/sp-dynamics/Beauty-pretrain-after.history.jsonl" [--title T]
"""

import argparse
import json
import math
import os
import re
import sys

HEADS = ("aap", "mip", "map", "sp")


#: Keras's end-of-epoch line: `1503/1503 - 665s - 442ms/step - aap_loss: 105.6 - ...`.
EPOCH_LINE = re.compile(r"^\s*\d+/\d+ - .*?((?:\w+_loss|loss): [-\d.e+]+.*)$")


def read_history(path: str) -> list:
    with open(path) as f:
        if path.endswith(".log"):
            rows = []
            for line in f:
                match = EPOCH_LINE.match(line)
                if match:
                    values = dict(part.split(": ") for part in match.group(1).split(" - "))
                    rows.append({"epoch": len(rows) + 1,
                                 **{k: float(v) for k, v in values.items()}})
        else:
            rows = [json.loads(line) for line in f if line.strip()]
    if not rows:
        raise ValueError(f"{path}: no epochs recorded")
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="append", required=True, metavar="LABEL=PATH")
    parser.add_argument("--output", required=True)
    parser.add_argument("--title", default=None)
    args = parser.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = []
    for spec in args.run:
        label, sep, path = spec.partition("=")
        if not sep:
            parser.error(f"--run {spec!r}: expected LABEL=PATH")
        try:
            runs.append((label, read_history(path)))
        except (OSError, ValueError) as e:
            print(f"plot_pretraining: error: {e}", file=sys.stderr)
            return 2
    fig, axes = plt.subplots(1, len(HEADS), figsize=(4 * len(HEADS), 3.4))
    for ax, head in zip(axes, HEADS):
        for label, rows in runs:
            points = [(r["epoch"], r[f"{head}_loss"]) for r in rows if f"{head}_loss" in r]
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
        if head == "sp":
            ax.axhline(math.log(2), color="grey", linestyle=":", label="ln 2")
        ax.set_title(f"{head.upper()} loss (per sample)")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=8)
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    fig.savefig(args.output, dpi=110)
    print(f"Wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
