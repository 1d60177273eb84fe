#!/usr/bin/env python3
"""How cost grows with the data and the catalogue: the scale and catalogue studies.

`--scale`: at each `--sizes` (interactions; the catalogue is a tenth),
synthetic data, Beam preparation, pretraining and fine-tuning (fixed steps,
extrapolated to an epoch) and evaluation (a user sample, extrapolated),
streamed from the prepared TFRecords, each stage in its own process with its
peak memory. `--catalogue ITEMS ...`: pretraining step time at these
catalogue sizes (synthetic batches), with each optimizer, interleaved round
by round, in the JSON layout of `s3rec-tf bench` (`s3rec_tf.bench`).

    python benchmarks/scale.py --scale --sizes 1M 3M 10M
    python benchmarks/scale.py --catalogue 10k 100k 1M
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # this checkout's package (here and in its case processes)
#: Where the records live.
RESULTS = os.path.join(ROOT, "benchmarks", "results")

from s3rec_tf import bench  # noqa: E402
from s3rec_tf.bench import _time_fit  # noqa: E402  (the clock of every training case)
from s3rec_tf.config import OPTIMIZERS, number_type  # noqa: E402

PROG = "benchmarks/scale.py"
#: How `bench.run_case` starts a catalogue case's process: this file's `--child`.
CHILD = (os.path.abspath(__file__), "--child")

#: `--scale` sizes: name -> interactions; the catalogue is a tenth of that
#: (1M -> 100k items, 10M -> 1M items).
SCALE_SIZES = {"1M": 1_000_000, "3M": 3_000_000, "10M": 10_000_000}
#: Targets of the scale issue on a 2-core machine.
SCALE_TARGETS = {"peak_rss_mb_at_10M": 8192, "cost": "linear in interactions"}
SCALE_STAGES = ("synth", "prepare", "pretrain", "finetune", "evaluate")
#: What the console shows of each stage's result.
SHOWN = ("wall_s", "throughput", "epoch_s_extrapolated", "peak_rss_mb", "peak_tree_rss_mb")


def parse_size(text: str, flag: str = "--sizes", unit: str = "interactions") -> int:
    """`1M`, `3M`, `250k`, `20000` -> a count (interactions, or items for --catalogue)."""
    t = text.strip().lower()
    try:
        scale = {"k": 1_000, "m": 1_000_000}.get(t[-1:], 1)
        value = int(float(t[:-1] if scale > 1 else t) * scale)
    except ValueError:
        raise SystemExit(f"{PROG}: error: argument {flag}: not a size: {text!r} "
                         f"(e.g. 1M, 250k, 20000)") from None
    if value < 1000:
        raise SystemExit(f"{PROG}: error: argument {flag}: {text!r} is below 1000 "
                         f"{unit}")
    return value


def _scale_paths(workdir: str, size: str) -> dict:
    root = os.path.join(workdir, size)
    return {"raw": os.path.join(root, "raw"), "prepared": os.path.join(root, "prepared"),
            "name": f"Scale{size}"}


def stage_synth(workdir, size, interactions, items, seed=0, **_):
    from s3rec_tf.data import synthetic
    paths = _scale_paths(workdir, size)
    t0 = time.perf_counter()
    attrs, seqs = synthetic.iter_generate(synthetic.users_for(interactions), items, seed=seed)
    written = synthetic.write(paths["raw"], seqs, attrs, paths["name"])
    return {"wall_s": time.perf_counter() - t0, "users": written["users"],
            "interactions": written["interactions"], "items": items}


def stage_prepare(workdir, size, **_):
    from s3rec_tf.data import prepare as preprocess
    paths = _scale_paths(workdir, size)
    t0 = time.perf_counter()
    stats = preprocess.prepare(paths["raw"], paths["prepared"],
                               preprocess.PrepareConfig(name=paths["name"]))
    dt = time.perf_counter() - t0
    return {"wall_s": dt, "throughput": stats["events_read"] / dt, "unit": "interactions/s",
            "interactions": stats["events_read"], "users": stats["users"]}


def _fit_extrapolated(model, ds, warmup, steps, batch_size, per_epoch):
    warm, dt = _time_fit(model, ds, warmup, steps)
    rate = steps * batch_size / dt
    return {"throughput": rate, "warmup_s": warm, "steps": steps, "warmup_steps": warmup,
            "batch_size": batch_size, "per_epoch": per_epoch,
            "epoch_s_extrapolated": per_epoch / rate,
            "note": f"{steps} timed steps after {warmup} warm-up steps, extrapolated to one "
                    f"epoch of {per_epoch}"}


def stage_pretrain(workdir, size, steps, warmup, batch_size=100, shuffle_buffer=10000,
                   optimizer=OPTIMIZERS[0], **_):
    from s3rec_tf.config import EncoderConfig, PretrainConfig
    from s3rec_tf.data import streaming
    from s3rec_tf.data.source import data_source
    from s3rec_tf.training import pretraining_job
    prepared = _scale_paths(workdir, size)["prepared"]
    source = data_source(streaming.StreamedData(prepared))
    t0 = time.perf_counter()
    samples = source.pretrain_samples(EncoderConfig().max_length)  # the job reuses the count
    count_s = time.perf_counter() - t0
    job = pretraining_job(PretrainConfig(batch_size=batch_size, seed=0, optimizer=optimizer,
                                         shuffle_buffer=shuffle_buffer,
                                         segment_negatives="batch"), source)
    model = job.model
    ds = job.train_dataset(epochs=2 + (warmup + steps) // job.steps_per_epoch)
    out = _fit_extrapolated(model, ds, warmup, steps, batch_size, samples)
    return {**out, "unit": "samples/s", "count_samples_s": count_s,
            "segment_negatives": "batch", "shuffle_buffer": shuffle_buffer,
            "optimizer": optimizer}


def stage_finetune(workdir, size, steps, warmup, batch_size=256, shuffle_buffer=10000,
                   optimizer=OPTIMIZERS[0], **_):
    from s3rec_tf.config import FinetuneConfig
    from s3rec_tf.data import streaming
    from s3rec_tf.training import finetuning_job
    prepared = _scale_paths(workdir, size)["prepared"]
    data = streaming.StreamedData(prepared)
    job = finetuning_job(FinetuneConfig(loss="bce", batch_size=batch_size, seed=0,
                                        optimizer=optimizer, shuffle_buffer=shuffle_buffer),
                         data)
    model = job.model
    ds = job.train_dataset(epochs=2 + (warmup + steps) // job.steps_per_epoch)
    out = _fit_extrapolated(model, ds, warmup, steps, batch_size, data.num_users)
    return {**out, "unit": "sequences/s", "loss": "bce", "shuffle_buffer": shuffle_buffer,
            "optimizer": optimizer}


def stage_evaluate(workdir, size, users, **_):
    """Full ranking (test split) of the first `users` users, extrapolated to all users."""
    from s3rec_tf.data import streaming
    from s3rec_tf.models.layers import SequenceEncoder
    from s3rec_tf.models import NextItemModel
    prepared = _scale_paths(workdir, size)["prepared"]
    data = streaming.StreamedData(prepared)
    evaluator = streaming.StreamEvaluator(
        NextItemModel(SequenceEncoder(data.num_items, data.num_attributes)))
    first = evaluator.evaluator.batch_size
    t0 = time.perf_counter()
    evaluator.ranks(streaming.StreamSplit(prepared, "test", limit=first), "full")
    warm = time.perf_counter() - t0
    n = min(users, data.num_users)
    t0 = time.perf_counter()
    evaluator.ranks(streaming.StreamSplit(prepared, "test", limit=n), "full")
    dt = time.perf_counter() - t0
    return {"throughput": n / dt, "unit": "users/s", "warmup_s": warm, "users": n,
            "scoring_batch": first, "per_epoch": data.num_users,
            "epoch_s_extrapolated": data.num_users * dt / n,
            "note": f"full ranking of {n} users (after one warm-up batch), extrapolated to "
                    f"all {data.num_users}"}


def case_catalogue(items, optimizer, steps, warmup, batch_size=100, attributes=60,
                   max_length=50, **_):
    """Pretraining steps of the paper's model over a catalogue of `items` items.

    Synthetic full-width batches (uniform random items, `attributes` attributes,
    three per item), so only the catalogue size and the optimizer change between
    cases: the time of a step that grows with `items` is the embedding tables'.
    """
    import numpy as np
    import tensorflow as tf
    from s3rec_tf.data import inputs
    from s3rec_tf.models.layers import SequenceEncoder
    from s3rec_tf.models import S3RecPretrainer
    from s3rec_tf.training import make_optimizer
    rng = np.random.default_rng(0)
    flat = tf.constant(rng.integers(1, items + 1, 100 * batch_size * max_length), tf.int32)
    table = rng.integers(1, attributes + 1, (items + 2, 3)).astype("int32")

    def batch(i):
        seed = tf.stack([i, tf.constant(0, tf.int64)])
        starts = tf.random.stateless_uniform([batch_size], seed, 0,
                                             int(flat.shape[0]) - max_length, tf.int32)
        return inputs.make_pretrain_batch(starts, tf.fill([batch_size], max_length), seed,
                                          flat, flat, items, max_length, 0.2)

    ds = tf.data.Dataset.range(warmup + steps).map(batch).cache()
    for _ in ds:  # built before timing: the steps alone are timed
        pass
    model = S3RecPretrainer(SequenceEncoder(items, attributes), table)
    model.compile(optimizer=make_optimizer(optimizer, 1e-3))
    warm, dt = _time_fit(model, ds, warmup, steps)
    return {"throughput": steps * batch_size / dt, "unit": "samples/s", "warmup_s": warm,
            "steps": steps, "batch_size": batch_size, "items": items, "optimizer": optimizer,
            "step_s": dt / steps}


def catalogue_plan(sizes, steps: int = 20, warmup: int = 5) -> list:
    """`--catalogue`: pretraining steps at each catalogue size, with each optimizer."""
    return [{"case": "catalogue", "key": f"catalogue/{name}items/{optimizer}", "items": items,
             "optimizer": optimizer, "steps": steps, "warmup": warmup}
            for name, items in sizes.items() for optimizer in OPTIMIZERS]


def catalogue_table(report: dict) -> str:
    """Markdown: seconds per pretraining step by catalogue size and optimizer, with the
    step time relative to the smallest catalogue and `lazy-adam`'s speed-up."""
    step = {}
    for r in report["results"].values():
        if r["config"]["case"] == "catalogue":
            step[(r["config"]["items"], r["config"]["optimizer"])] = statistics.median(
                x["step_s"] for x in r["runs"])
    sizes = sorted({items for items, _ in step})
    lines = ["| items | " + " | ".join(f"{o} s/step (x smallest)" for o in OPTIMIZERS)
             + " | lazy-adam speed-up |", "|---|" + "---|" * (len(OPTIMIZERS) + 1)]
    for items in sizes:
        cells = [f"{step[(items, o)]:.3f} ({step[(items, o)] / step[(sizes[0], o)]:.2f}x)"
                 for o in OPTIMIZERS]
        lines.append(f"| {items:,} | " + " | ".join(cells) + " | "
                     f"{step[(items, OPTIMIZERS[0])] / step[(items, OPTIMIZERS[1])]:.2f}x |")
    return "\n".join(lines)


def _tree_rss_mb(root: int) -> float:
    """Resident memory of process `root` and all its descendants, summed (from /proc)."""
    parents, rss = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                for line in f:
                    if line.startswith("PPid:"):
                        parents[int(entry)] = int(line.split()[1])
                    elif line.startswith("VmRSS:"):
                        rss[int(entry)] = int(line.split()[1])
        except OSError:
            continue
    total = 0
    for pid, kb in rss.items():
        p = pid
        while p and p != root:
            p = parents.get(p, 0)
        total += kb if p == root else 0
    return total / 1024.0


def run_measured(spec: dict, sample_every_s: float = 1.0) -> dict:
    """Runs one stage in a fresh process; adds its peak memory and wall time.

    `peak_rss_mb`: the largest resident set of the stage process or of any
    descendant it waited for (Beam's workers), as `getrusage(RUSAGE_CHILDREN)`
    counts it, read for this one child with `os.wait4`. `peak_tree_rss_mb`:
    the largest sum over the process tree, sampled every `sample_every_s`.
    """
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, *CHILD, json.dumps(spec)], stdout=out,
                                stderr=err, env=env)
        tree = 0.0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            tree = max(tree, _tree_rss_mb(proc.pid))
            time.sleep(sample_every_s)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"benchmark stage {spec.get('key')} failed "
                               f"(exit {proc.returncode}):\n{err.read()[-3000:]}")
        result = json.loads(out.read().strip().splitlines()[-1])
    result.update(peak_rss_mb=usage.ru_maxrss / 1024.0, peak_tree_rss_mb=tree,
                  process_wall_s=wall)
    return result


def scale_plan(sizes, workdir: str, steps: int = 40, warmup: int = 5,
               eval_users: int = 2048, shuffle_buffer: int = 10000,
               optimizer: str = OPTIMIZERS[0]) -> list:
    """The stages of `--scale`, size by size (`sizes`: `{name: interactions}`)."""
    specs = []
    for size, interactions in sizes.items():
        common = {"workdir": workdir, "size": size, "runtime": {"workload": "default"}}
        specs += [
            {**common, "case": "scale_synth", "key": f"{size}/synth",
             "interactions": interactions, "items": max(1000, interactions // 10)},
            {**common, "case": "scale_prepare", "key": f"{size}/prepare"},
            {**common, "case": "scale_pretrain", "key": f"{size}/pretrain", "steps": steps,
             "warmup": warmup, "shuffle_buffer": shuffle_buffer, "optimizer": optimizer,
             "runtime": {"workload": "pretrain"}},
            {**common, "case": "scale_finetune", "key": f"{size}/finetune", "steps": steps,
             "warmup": warmup, "shuffle_buffer": shuffle_buffer, "optimizer": optimizer,
             "runtime": {"workload": "finetune-bce"}},
            {**common, "case": "scale_evaluate", "key": f"{size}/evaluate",
             "users": eval_users},
        ]
    return specs


def scale_table(report: dict) -> str:
    """Markdown: one row per size, seconds per stage (epochs extrapolated) and peak memory."""
    lines = ["| interactions | users | items | prepare s | pretrain epoch s* | "
             "fine-tune epoch s* | evaluation s* | peak RSS MB, one process (stage) | "
             "peak RSS MB, process tree (stage) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for size, r in report["sizes"].items():
        st = r["stages"]

        def cell(stage, key="epoch_s_extrapolated"):
            return f"{st[stage][key]:.0f}" if stage in st else "-"

        def peak(key):
            where = max(st, key=lambda k: st[k].get(key, 0)) if st else None
            return f"{st[where][key]:.0f} ({where})" if where and key in st[where] else "-"

        lines.append(f"| {r['interactions']:,} | {r.get('users', 0):,} | {r['items']:,} | "
                     f"{cell('prepare', 'wall_s')} | {cell('pretrain')} | {cell('finetune')} | "
                     f"{cell('evaluate')} | {peak('peak_rss_mb')} | "
                     f"{peak('peak_tree_rss_mb')} |")
    lines.append("")
    lines.append("\\* extrapolated from a fixed number of steps (evaluation: from a user "
                 "sample) to one epoch over all users")
    return "\n".join(lines)


def run_scale(args, argv) -> int:
    """`--scale`: synth, prepare, pretrain, fine-tune, evaluate at each size."""
    from s3rec_tf import provenance
    from s3rec_tf.io import write_json_atomic
    sizes = {s: parse_size(s) for s in args.sizes}
    workdir = args.workdir or tempfile.mkdtemp(prefix="s3rec-scale-")
    specs = [s for s in scale_plan(sizes, workdir, args.steps, args.warmup, args.eval_users,
                                optimizer=args.optimizer)
             if s["case"].removeprefix("scale_") in args.stages]
    out = args.output or os.path.join(RESULTS,
                                      f"bench-scale-{time.strftime('%Y%m%d-%H%M%S')}.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    report = {"scale": True, "sizes": {}, "targets": SCALE_TARGETS, "note": args.note,
              "model_config": {**bench.MODEL_CONFIG, "finetune_loss": "bce",
                               "segment_negatives": "batch", "shuffle_buffer": 10000,
                               "optimizer": args.optimizer},
              "workdir": workdir, **provenance.record(),
              "command": " ".join(["python", PROG, *argv])}
    last_of = {spec["size"]: spec for spec in specs}
    for spec in specs:
        size = spec["size"]
        entry = report["sizes"].setdefault(size, {"interactions": sizes[size],
                                                  "items": max(1000, sizes[size] // 10),
                                                  "stages": {}})
        print(f"[{spec['key']}] ...", flush=True)
        result = run_measured(spec)
        stage = spec["case"].removeprefix("scale_")
        entry["stages"][stage] = result
        if stage == "synth":
            entry.update(users=result["users"], interactions=result["interactions"])
        shown = {k: v for k, v in result.items() if k in SHOWN}
        print(f"[{spec['key']}] {json.dumps(shown)}", flush=True)
        report["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        write_json_atomic(out, report)  # each stage lands as soon as it is done
        if spec is last_of[size] and not args.keep_data:
            import shutil
            shutil.rmtree(os.path.join(workdir, size), ignore_errors=True)
    print(scale_table(report))
    print(f"Wrote {out}")
    return 0


#: The cases of these studies by name (a spec's `"case"`), beside the library's.
CASES = {**bench.CASES, "scale_synth": stage_synth, "scale_prepare": stage_prepare,
         "scale_pretrain": stage_pretrain, "scale_finetune": stage_finetune,
         "scale_evaluate": stage_evaluate, "catalogue": case_catalogue}


def workload_of(spec: dict) -> str:
    """The `s3rec_tf.runtime` workload of a case (a catalogue case pretrains)."""
    return "pretrain" if spec["case"] == "catalogue" else bench.workload_of(spec)


def run_catalogue(args, argv) -> int:
    """`--catalogue`: each optimizer at each catalogue size, round by round."""
    repeats = args.repeats or (1 if args.quick else 3)
    sizes = {c: parse_size(c, "--catalogue", "items") for c in args.catalogue}
    specs = bench.select(catalogue_plan(sizes, 10 if args.quick else 20), args, workload_of)
    runs = bench.run_rounds(specs, repeats, run=lambda spec: bench.run_case(spec, CHILD))
    report = bench.report_of(args, bench.summarize(specs, runs), repeats,
                             command=" ".join(["python", PROG, *argv]))
    out = args.output or os.path.join(
        RESULTS, f"bench-catalogue-{time.strftime('%Y%m%d-%H%M%S')}.json")
    bench.write_report(report, out)
    print(bench.format_table(report))
    print(catalogue_table(report))
    print(f"Wrote {out}")
    return 0


def build_parser():
    """`s3rec-tf bench`'s flags, and those of the two studies."""
    parser = bench.build_parser(PROG, __doc__)
    scale = parser.add_argument_group("scale (--scale)")
    scale.add_argument("--scale", action="store_true",
                       help="cost growth: at each --sizes, synthetic data, Beam preparation, "
                            "pretraining and fine-tuning (fixed steps, extrapolated to an "
                            "epoch) and evaluation (a user sample, extrapolated), streamed "
                            "from the prepared TFRecords, with each stage's peak memory")
    scale.add_argument("--sizes", nargs="+", default=list(SCALE_SIZES),
                       help="interactions per size (1M, 250k, ...); items: a tenth")
    scale.add_argument("--steps", type=number_type(int, 1), default=40,
                       help="timed training steps per stage")
    scale.add_argument("--warmup", type=number_type(int, 1), default=5,
                       help="warm-up steps (not timed; the clock starts when the last ends)")
    scale.add_argument("--eval-users", type=number_type(int, 1), default=2048,
                       help="users ranked (timed)")
    scale.add_argument("--workdir", help="where the data are written (default: a temporary "
                                         "directory); each size's data are deleted after it")
    scale.add_argument("--keep-data", action="store_true", help="keep each size's data")
    scale.add_argument("--stages", nargs="+", choices=SCALE_STAGES, default=list(SCALE_STAGES),
                       help="run only these stages (each needs the data of the ones before)")
    scale.add_argument("--optimizer", choices=OPTIMIZERS, default=OPTIMIZERS[0],
                       help="the training stages' optimizer (s3rec_tf.config.OPTIMIZERS)")
    parser.add_argument("--catalogue", nargs="+", metavar="ITEMS",
                        help="pretraining step time at these catalogue sizes (10k, 1M, ...; "
                             "synthetic batches), with each optimizer (adam, lazy-adam), "
                             "interleaved round by round")
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(bench.child(json.loads(args.child), CASES)))
        return 0
    if args.scale:
        return run_scale(args, argv)
    if args.catalogue:
        return run_catalogue(args, argv)
    parser.error("one of --scale or --catalogue is required")


if __name__ == "__main__":
    sys.exit(main())
