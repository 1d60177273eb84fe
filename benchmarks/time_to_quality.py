"""Time to quality: raw data -> pretrained -> fine-tuned model, timed end to end.

One run pretrains and fine-tunes one dataset with one recipe (a `--preset` of
`s3rec_tf.config.PRESETS`) and one pretraining seed, through the `s3rec-tf`
command line, and writes one JSON record:

- `dataset`, `recipe`, `pretrain_seed`, `finetune_seed`;
- `wall_time_s`: pretraining plus fine-tuning, end to end (with `pretrain_s`
  and `finetune_s`);
- `metrics`: the fine-tuned model's metrics in the fine-tuning records' layout
  (`test/full` -> `HR@10`, `NDCG@10`, ...), the model that validation chose,
  under the default history rule (`remove`), with `history_rule` naming it;
- `metrics_original_rule`: the same model's full-ranking metrics under the
  original code's history rule (`s3rec-tf evaluate --history-rule original`,
  after the timed stages and not counted in the wall time), so the row is
  comparable with the papers that reuse the original's evaluation;
- `pretrain_curves`: the per-head training losses of every pretraining epoch;
- `finetune_curve`: each fine-tuning epoch's validation metrics and the time
  since fine-tuning began (for the time-against-quality plot);
- `sp_final_loss`: the last pretraining epoch's mean Segment Prediction loss,
  and `sp_alive`: whether it is below `SP_ALIVE` (ln 2 = 0.693 is chance);
- `commit`, `machine`, `load_average_start` / `load_average_end`, and `alone`:
  whether the machine was idle when the run started (`ALONE_LOAD`). A run
  that shared the machine says so and does not count toward a time goal.

Validation picks every choice (the fine-tuning's best epoch); the test split is
only reported. Each record stands alone, so runs may be made at different times.

Usage:
    python benchmarks/time_to_quality.py --data ../shared/data/s3rec --name LastFM \\
        --recipe fast --pretrain-seed 1
    # -> benchmarks/results/time-to-quality/LastFM_fast_pretrain-seed1.json

Extra `s3rec-tf` flags for both stages follow `--` (for example
`-- --intra-op-threads 2`). A change to the recipe's pretraining is a named
variant, for example an ablation without Segment Prediction:

    python benchmarks/time_to_quality.py --data ../shared/data/s3rec --name LastFM \\
        --recipe fast --variant no-sp --pretrain-flag=--sp-weight=0 \\
        --records benchmarks/results/time-to-quality/ablation
    # -> .../ablation/LastFM_fast-no-sp_pretrain-seed1.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORDS = os.path.join(ROOT, "benchmarks", "results", "time-to-quality")
#: Segment Prediction has learned something when its mean loss is below this
#: (chance is ln 2 = 0.693).
SP_ALIVE = 0.68
#: A run counts as alone when the 1-minute load average is below this at its start.
ALONE_LOAD = 0.5
#: The per-head pretraining losses a curve records.
HEADS = ("aap_loss", "mip_loss", "map_loss", "sp_loss", "loss")


def record_path(records: str, dataset: str, recipe: str, pretrain_seed: int) -> str:
    """Where a run's record goes: one file per dataset, recipe and pretraining seed."""
    return os.path.join(records, f"{dataset}_{recipe}_pretrain-seed{pretrain_seed}.json")


def pretrain_curves(history_path: str) -> list:
    """The per-epoch losses of a pretraining run's `history.jsonl`."""
    curves = []
    with open(history_path) as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                curves.append({"epoch": row["epoch"],
                               **{k: row[k] for k in HEADS if k in row},
                               "wall_time_s": row.get("wall_time_s")})
    return curves


def _stage(command: list, log_path: str) -> float:
    """Runs one `s3rec-tf` command, its output teed to `log_path`; its wall time."""
    start = time.perf_counter()
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        for line in proc.stdout:
            sys.stdout.write(line)
            log.write(line)
        proc.wait()
    if proc.returncode:
        raise SystemExit(f"time_to_quality: `{' '.join(command)}` failed with exit code "
                         f"{proc.returncode} (log: {log_path})")
    return time.perf_counter() - start


def run(data: str, name: str, recipe: str, pretrain_seed: int, finetune_seed: int,
        workdir: str, records: str, extra: list, variant: str | None = None,
        pretrain_flags: list = ()) -> dict:
    """Pretrains and fine-tunes, timed; writes and returns the record.

    `variant` names a change to the recipe (the record is
    `<name>_<recipe>-<variant>_...`, its `recipe` `<recipe>-<variant>`), made by
    `pretrain_flags`, flags given to pretraining only (an ablation:
    `--aap-weight 0`)."""
    preset = recipe
    if variant:
        recipe = f"{recipe}-{variant}"
    from s3rec_tf import provenance
    from s3rec_tf.io import write_json_atomic

    out = record_path(records, name, recipe, pretrain_seed)
    if os.path.exists(out):
        raise SystemExit(f"time_to_quality: {out} exists; a record is never overwritten "
                         "(remove it to measure again)")
    tag = f"{name}_{recipe}_pretrain-seed{pretrain_seed}"
    run_dir = os.path.join(workdir, tag)
    if os.path.exists(run_dir):
        raise SystemExit(f"time_to_quality: {run_dir} exists; a timed run starts from raw "
                         "data (name another --workdir or remove it)")
    os.makedirs(run_dir)
    load_start = os.getloadavg()
    s3rec = ["s3rec-tf"]
    common = ["--data", data, "--name", name, "--preset", preset, *extra]
    pre_dir, ft_dir = os.path.join(run_dir, "pretrain"), os.path.join(run_dir, "finetune")
    ft_record = os.path.join(run_dir, "finetune.json")
    pretrain_s = _stage([*s3rec, "pretrain", *common, *pretrain_flags, "--seed",
                         str(pretrain_seed), "--output", pre_dir],
                        os.path.join(run_dir, "pretrain.log"))
    finetune_s = _stage([*s3rec, "finetune", *common, "--seed", str(finetune_seed),
                         "--pretrained", pre_dir, "--output", ft_dir, "--record", ft_record],
                        os.path.join(run_dir, "finetune.log"))
    load_end = os.getloadavg()
    original_rule = os.path.join(run_dir, "evaluate-original.json")
    _stage([*s3rec, "evaluate", "--data", data, "--name", name, "--model", ft_dir,
            "--protocol", "full", "--history-rule", "original", "--output", original_rule],
           os.path.join(run_dir, "evaluate-original.log"))
    with open(ft_record) as f:
        finetuned = json.load(f)
    with open(original_rule) as f:
        original = json.load(f)
    curves = pretrain_curves(os.path.join(pre_dir, "history.jsonl"))
    with open(os.path.join(ft_dir, "history.jsonl")) as f:
        finetune_curve = [json.loads(line) for line in f if line.strip()]
    sp_final = curves[-1].get("sp_loss") if curves else None
    report = {
        "dataset": name, "recipe": recipe, "pretrain_seed": pretrain_seed,
        "finetune_seed": finetune_seed,
        "wall_time_s": round(pretrain_s + finetune_s, 1),
        "pretrain_s": round(pretrain_s, 1), "finetune_s": round(finetune_s, 1),
        "metrics": finetuned["metrics"],
        "history_rule": finetuned.get("history_rule", "remove"),
        "metrics_original_rule": original["metrics"],
        "best_epoch": finetuned.get("best_epoch"),
        "pretrain_epochs": len(curves), "pretrain_curves": curves,
        "finetune_curve": finetune_curve,
        "sp_final_loss": sp_final,
        "sp_alive": sp_final is not None and sp_final < SP_ALIVE,
        "load_average_start": list(load_start), "load_average_end": list(load_end),
        "alone": load_start[0] < ALONE_LOAD,
        "pretrain_flags": list(pretrain_flags),
        "commands": [f"s3rec-tf pretrain {' '.join([*common, *pretrain_flags])} "
                     f"--seed {pretrain_seed}",
                     f"s3rec-tf finetune {' '.join(common)} --seed {finetune_seed}",
                     f"s3rec-tf evaluate --data {data} --name {name} --model FINETUNED "
                     "--protocol full --history-rule original"],
        **{k: v for k, v in provenance.record().items() if k != "command"},
        "command": " ".join([os.path.relpath(__file__, ROOT), *sys.argv[1:]]),
    }
    write_json_atomic(out, report)
    print(f"time to quality: {name} / {recipe} / pretraining seed {pretrain_seed}: "
          f"{report['wall_time_s']:.0f} s, test full HR@10 "
          f"{report['metrics']['test/full']['HR@10']:.4f} NDCG@10 "
          f"{report['metrics']['test/full']['NDCG@10']:.4f}, SP {sp_final:.4f}"
          f"{'' if report['alone'] else ' (machine shared: not counted)'} -> {out}")
    return report


def main(argv=None) -> int:
    from s3rec_tf import config
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="raw dataset directory (or a prepared one)")
    p.add_argument("--name", required=True, help="dataset name, e.g. Beauty")
    p.add_argument("--recipe", required=True, choices=tuple(config.PRESETS),
                   help="a preset of s3rec_tf.config.PRESETS, for both stages")
    p.add_argument("--pretrain-seed", type=config.number_type(int, 0, config.MAX_SEED),
                   default=1)
    p.add_argument("--finetune-seed", type=config.number_type(int, 0, config.MAX_SEED),
                   default=1)
    p.add_argument("--variant", help="a name for a change to the recipe (with --pretrain-flag)")
    p.add_argument("--pretrain-flag", action="append", default=[], dest="pretrain_flags",
                   help="a flag for pretraining only, e.g. --pretrain-flag=--sp-weight=0 "
                        "(repeatable; needs --variant)")
    p.add_argument("--workdir", default=os.path.join(ROOT, "runs", "time-to-quality"),
                   help="where the run's models and logs go (default: runs/time-to-quality)")
    p.add_argument("--records", default=RECORDS,
                   help="where the record goes (default: benchmarks/results/time-to-quality)")
    args = p.parse_args(argv)
    if args.pretrain_flags and not args.variant:
        p.error("--pretrain-flag changes the recipe: name the change with --variant")
    run(args.data, args.name, args.recipe, args.pretrain_seed, args.finetune_seed,
        args.workdir, args.records, extra, args.variant, args.pretrain_flags)
    return 0


if __name__ == "__main__":
    sys.exit(main())
