#!/usr/bin/env python3
"""The library's speed cases side by side with the authors' PyTorch code.

Runs the cases of `s3rec-tf bench` (`s3rec_tf.bench`) and, with `--original
DIR` (DIR: `../shared/tools/original-speed`, the authors' code and its
timing script), times the original in the same run, interleaved with our
cases round by round, in its own virtualenv (made by DIR/setup.sh; torch is
never imported here). The table shows both figures, their ratio and the goal
of each case. Without `--original`, the ratio is to the original's reference
figures (REFERENCE.md), measured elsewhere: orientation only.

The JSON is `s3rec-tf bench`'s, with `original` set and, per case with a
counterpart, `results[case].original` (the original's runs, median and the
ratio of each round).

    python benchmarks/side_by_side.py --data ../shared/data/s3rec \\
        --original ../shared/tools/original-speed --only pretrain finetune evaluate
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # this checkout's package
#: Where the records live.
RESULTS = os.path.join(ROOT, "benchmarks", "results")

from s3rec_tf import bench  # noqa: E402
from s3rec_tf.bench import run_case  # noqa: E402  (replaced in tests)

#: The original PyTorch code on a 2-core CPU (REFERENCE.md, medians of 3 runs).
ORIGINAL = {
    "pretrain/Beauty": 173.0, "pretrain/LastFM": 194.0,
    "finetune_bce/Beauty": 1100.0, "evaluate_full/Beauty": 2470.0,
}
#: Goals (multiples of the original) from the speed issue, per case.
GOALS = {"pretrain/Beauty": 25.0, "pretrain/LastFM": 12.0, "finetune_bce/Beauty": 12.0,
         "finetune_ce/Beauty": 3.0, "evaluate_full/Beauty": 12.0}
#: Cases compared with another of the original's cases: full-softmax fine-tuning has no
#: counterpart in the original, so its goal is a multiple of the original's `bce` figure.
BASELINE_OF = {"finetune_ce/Beauty": "finetune_bce/Beauty"}

#: Our case -> (dataset, the original timing script's output line) for side-by-side runs.
ORIGINAL_CASES = {
    "pretrain/Beauty": ("Beauty", "pretrain"), "pretrain/LastFM": ("LastFM", "pretrain"),
    "finetune_bce/Beauty": ("Beauty", "finetune"), "evaluate_full/Beauty": ("Beauty", "eval"),
}
_ORIGINAL_LINES = {
    "pretrain": re.compile(r"^pretrain (\S+): ([0-9.]+) samples/s", re.M),
    "finetune": re.compile(r"^finetune (\S+): ([0-9.]+) seqs/s", re.M),
    "eval": re.compile(r"^full-rank eval (\S+): ([0-9.]+) users/s", re.M),
}
#: Timed steps of the original per run (after its 3 warm-up steps).
ORIGINAL_STEPS = 40
PROG = "benchmarks/side_by_side.py"


def original_python(original_dir: str) -> str:
    """The python of the original code's virtualenv (created by its `setup.sh` once)."""
    setup = os.path.join(original_dir, "setup.sh")
    if not os.path.isfile(setup) or not os.path.isfile(
            os.path.join(original_dir, "time_original.py")):
        raise SystemExit(f"{PROG}: error: {original_dir} does not hold the original "
                         "code's setup.sh and time_original.py")
    proc = subprocess.run(["bash", setup], capture_output=True, text=True)
    python = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    if proc.returncode != 0 or not os.path.exists(python):
        raise SystemExit(f"{PROG}: error: {setup} failed (exit {proc.returncode}): "
                         f"{proc.stderr.strip()[-500:]}")
    return python


def parse_original_output(text: str) -> dict:
    """`{(dataset, kind): throughput}` from the original timing script's output."""
    found = {}
    for kind, pattern in _ORIGINAL_LINES.items():
        for name, value in pattern.findall(text):
            found[(name, kind)] = float(value)
    return found


def run_original(python: str, original_dir: str, data_dir: str, name: str,
                 pretrain_only: bool, steps: int = ORIGINAL_STEPS) -> dict:
    """Times the original code once on `name`: `{(dataset, kind): throughput}`."""
    cmd = [python, os.path.join(original_dir, "time_original.py"), data_dir, name, str(steps)]
    if pretrain_only:
        cmd.append("pretrain-only")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = parse_original_output(proc.stdout)
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"the original code failed on {name} (exit {proc.returncode}):\n"
                           f"{proc.stderr[-3000:]}")
    return found


def original_plan(specs) -> dict:
    """`{dataset: pretrain_only}`: the original runs one round needs for `specs`."""
    need = {}
    for spec in specs:
        key = BASELINE_OF.get(spec["key"], spec["key"])
        if key in ORIGINAL_CASES:
            name, kind = ORIGINAL_CASES[key]
            need[name] = need.get(name, True) and kind == "pretrain"
    return need


def format_table(report: dict) -> str:
    """Markdown table; the original's figure is side by side when it was timed in the run."""
    lines = ["| case | median | unit | original | ratio | goal | peak RSS MB |",
             "|---|---|---|---|---|---|---|"]
    for key, r in report["results"].items():
        side = r.get("original")
        base = side["median"] if side else ORIGINAL.get(BASELINE_OF.get(key, key))
        ratio = f"{r['median'] / base:.1f}x" if base else ""
        against = BASELINE_OF.get(key)
        against = f", its {against.split('/')[0].split('_', 1)[1]}" if against else ""
        if side:
            base_cell = f"{base:.0f} (same run{against})"
        else:
            base_cell = f"{base} (REFERENCE.md{against})" if base else ""
        goal = GOALS.get(key)
        if key.startswith("serving"):
            p50 = statistics.median(x["p50_ms"] for x in r["runs"])
            value = f"p50 {p50:.2f} / p99 {r['median']:.2f}"
        else:
            value = f"{r['median']:.0f}"
        lines.append(f"| {key} | {value} | {r['unit']} | {base_cell} | {ratio} | "
                     f"{f'>= {goal:g}x' if goal else ''} | {r['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = bench.build_parser(PROG, __doc__)
    parser.add_argument("--original", metavar="DIR",
                        help="also time the original PyTorch code in DIR (its setup.sh and "
                             "time_original.py, e.g. ../shared/tools/original-speed), "
                             "interleaved with our cases, and report side-by-side ratios")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    specs = bench.select(bench.plan(args.data, args.quick), args)
    python = original_python(args.original) if args.original else None
    need = original_plan(specs) if python else {}
    original_runs = {key: [] for key in ORIGINAL_CASES}

    def time_original(r):
        # Round by round, so that the original and each case see the same machine state.
        for name, pretrain_only in need.items():
            print(f"[original/{name}] run {r + 1}/{repeats} ...", flush=True)
            found = run_original(python, args.original, args.data, name, pretrain_only)
            for key, (dataset, kind) in ORIGINAL_CASES.items():
                if (dataset, kind) in found:
                    original_runs[key].append(found[(dataset, kind)])

    runs = bench.run_rounds(specs, repeats, run=lambda spec: run_case(spec),
                            before_round=time_original)
    results = bench.summarize(specs, runs)
    for key, result in results.items():
        theirs = original_runs.get(BASELINE_OF.get(key, key))
        if theirs:
            result["original"] = {
                "runs": theirs, "median": statistics.median(theirs),
                "round_ratios": [o[result["metric"]] / t for o, t in zip(runs[key], theirs)],
                "steps": ORIGINAL_STEPS, "case": BASELINE_OF.get(key, key)}
    report = bench.report_of(
        args, results, repeats, command=" ".join(["python", PROG, *argv]),
        original=({"dir": os.path.abspath(args.original), "threads": 2,
                   "note": "timed side by side, interleaved round by round"}
                  if args.original else None))
    out = args.output or os.path.join(
        RESULTS, f"bench-side-by-side-{time.strftime('%Y%m%d-%H%M%S')}.json")
    bench.write_report(report, out)
    print(format_table(report))
    print(f"Wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
