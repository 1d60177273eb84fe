"""Benchmarks that print numbers: training, evaluation and serving speed.

`s3rec-tf bench` runs each case in its own process (so its peak resident
memory is its own), repeats it, and reports medians. Compilation/warm-up time
is measured separately from steady-state throughput. Results go to one JSON
with the configuration, library versions, CPU model, thread count and commit,
and a table is printed.

The pieces (`plan`, `run_rounds`, `summarize`, `report_of`) are public so
that other harnesses can run the same cases and write the same JSON layout.
"""

from __future__ import annotations

import dataclasses

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from s3rec_tf.config import number_type  # imports no TensorFlow

#: The model configuration every case runs (the paper's), as recorded in the JSON.
MODEL_CONFIG = {"hidden": 64, "layers": 2, "heads": 2, "max_length": 50,
                "pretrain_batch": 100, "finetune_batch": 256}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _read(data_dir, name):
    from s3rec_tf.data.reader import read_dataset
    return read_dataset(data_dir, name)


def _time_fit(model, ds, warmup: int, steps: int):
    """Seconds of `warmup` steps (tracing included), then of `steps` timed steps.

    One `fit` call runs both, on one iterator, as training runs its epochs
    (Keras keeps the iterator across epochs when `steps_per_epoch` is given):
    the clock starts when the last warm-up step ends. The timed steps include
    Keras's loop and the input pipeline building each batch live, not `fit`'s
    start (a new iterator, its first batch from a cold pipeline), which
    training pays once per run.
    """
    import keras
    if warmup < 1 or steps < 1:
        raise ValueError(f"warmup and steps must be >= 1. Received: warmup={warmup}, "
                         f"steps={steps}")
    ends = []
    clock = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: ends.append(time.perf_counter()))
    t0 = time.perf_counter()
    model.fit(ds.take(warmup + steps), epochs=1, verbose=0, callbacks=[clock])
    if len(ends) != warmup + steps:
        raise RuntimeError(f"the dataset ran out after {len(ends)} of {warmup + steps} "
                           "batches")
    return ends[warmup - 1] - t0, ends[-1] - ends[warmup - 1]


def training_case(data, work: str, steps: int, batch_size: int | None = None):
    """The model and batches of a training case, as the command line builds them.

    Args:
        data: a dataset read by `s3rec_tf.data.reader.read_dataset`.
        work: `"pretrain"`, or a fine-tuning loss (`s3rec_tf.config.FINETUNE_LOSSES`).
        steps: batches the dataset must hold at least.
        batch_size: defaults to the command line's (`PretrainConfig` /
            `FinetuneConfig`).

    Returns:
        `(model, dataset, batch_size, unit)`: the job of the command line's
        config (`s3rec_tf.training.jobs`, seed 0): its compiled model and
        training batches, and the throughput's unit.
    """
    from s3rec_tf.config import FINETUNE_LOSSES, FinetuneConfig, PretrainConfig
    from s3rec_tf.training import finetuning_job, pretraining_job
    if work == "pretrain":
        config, build, unit = PretrainConfig(seed=0), pretraining_job, "samples/s"
    elif work in FINETUNE_LOSSES:
        config, build, unit = FinetuneConfig(loss=work, seed=0), finetuning_job, "sequences/s"
    else:
        raise ValueError(f"work must be 'pretrain' or one of {FINETUNE_LOSSES}. "
                         f"Received: work={work!r}")
    if batch_size:
        config = dataclasses.replace(config, batch_size=batch_size)
    job = build(config, data)
    ds = job.train_dataset(epochs=2 + steps // job.steps_per_epoch)
    model, batch_size = job.model, job.batch_size
    return model, ds, batch_size, unit


def case_pretrain(data_dir, name, steps, warmup, batch_size=None, **_):
    model, ds, batch_size, unit = training_case(_read(data_dir, name), "pretrain",
                                                warmup + steps, batch_size)
    warm, dt = _time_fit(model, ds, warmup, steps)
    return {"throughput": steps * batch_size / dt, "unit": unit,
            "warmup_s": warm, "steps": steps, "batch_size": batch_size}


def case_finetune(data_dir, name, steps, warmup, loss="bce", batch_size=None, **_):
    model, ds, batch_size, unit = training_case(_read(data_dir, name), loss, warmup + steps,
                                                batch_size)
    warm, dt = _time_fit(model, ds, warmup, steps)
    return {"throughput": steps * batch_size / dt, "unit": unit, "warmup_s": warm,
            "steps": steps, "batch_size": batch_size, "loss": loss}


def case_evaluate(data_dir, name, users, **_):
    from s3rec_tf.data import inputs
    from s3rec_tf.evaluation import RankingEvaluator
    from s3rec_tf.models.layers import SequenceEncoder
    from s3rec_tf.metrics import full_ranking_metrics
    from s3rec_tf.models import NextItemModel
    data = _read(data_dir, name)
    arrays = inputs.eval_arrays(data, "test")
    n = min(users, len(arrays.answers)) if users else len(arrays.answers)
    sub = inputs.EvalArrays(arrays.input_ids[:n], arrays.answers[:n], arrays.history[:n],
                            arrays.negatives[:n] if arrays.negatives is not None else None)
    evaluator = RankingEvaluator(NextItemModel(SequenceEncoder(data.num_items,
                                                               data.num_attributes)))
    t0 = time.perf_counter()
    full_ranking_metrics(evaluator.ranks(sub, "full"))
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    full_ranking_metrics(evaluator.ranks(sub, "full"))
    dt = time.perf_counter() - t0
    return {"throughput": n / dt, "unit": "users/s", "warmup_s": warm, "users": n}


def case_serving(num_items, requests, warmup, batch, **_):
    """Latency of the in-process SavedModel (`serving_default`)."""
    import numpy as np
    import tensorflow as tf
    from s3rec_tf import artifacts, serving
    from s3rec_tf.models.layers import SequenceEncoder
    from s3rec_tf.models import NextItemModel
    with tempfile.TemporaryDirectory() as tmp:
        model = NextItemModel(SequenceEncoder(num_items, 1))
        artifacts.save_model(os.path.join(tmp, "m"), model, "finetuned",
                             {"num_items": num_items, "num_attributes": 1,
                              "fingerprint": None}, {})
        path = serving.export_serving_model(os.path.join(tmp, "m"), os.path.join(tmp, "s"), 1)
        fn = tf.saved_model.load(path).signatures["serving_default"]
        rng = np.random.default_rng(0)
        lengths = np.minimum(rng.geometric(1 / 9, size=(requests + warmup, batch)), 60)

        def request(i):
            width = int(lengths[i].max())
            hist = np.full((batch, width), "", dtype=object)
            for r in range(batch):
                hist[r, :lengths[i, r]] = rng.integers(1, num_items + 1,
                                                       size=lengths[i, r]).astype(str)
            return tf.constant(hist.astype(str))

        prepared = [request(i) for i in range(requests + warmup)]
        t0 = time.perf_counter()
        for x in prepared[:warmup]:
            fn(history=x)
        warm = time.perf_counter() - t0
        times = []
        for x in prepared[warmup:]:
            t = time.perf_counter()
            fn(history=x)["item_ids"].numpy()
            times.append((time.perf_counter() - t) * 1000.0)
    times = np.asarray(times)
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)),
            "mean_ms": float(times.mean()), "requests": requests, "batch": batch,
            "num_items": num_items, "warmup_s": warm, "unit": "ms"}


def case_prepare(data_dir, name, **_):
    """Beam preprocessing (DirectRunner, 2 processes) of the paper-format files."""
    from s3rec_tf.data import prepare as preprocess
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        stats = preprocess.prepare(data_dir, os.path.join(tmp, "out"),
                                   preprocess.PrepareConfig(name=name))
        dt = time.perf_counter() - t0
    return {"throughput": stats["events_read"] / dt, "unit": "interactions/s",
            "wall_s": dt, "interactions": stats["events_read"]}


#: The cases by name: a spec's `"case"` picks one, called with the spec's fields.
CASES = {"prepare": case_prepare, "pretrain": case_pretrain, "finetune": case_finetune,
         "evaluate": case_evaluate, "serving": case_serving}
#: How `run_case` starts a case's process: `python -m s3rec_tf.bench --child SPEC`.
CHILD = ("-m", "s3rec_tf.bench", "--child")


def workload_of(spec: dict) -> str:
    """The `s3rec_tf.runtime` workload the CLI would use for this case."""
    from s3rec_tf import runtime
    if spec["case"] == "pretrain":
        return "pretrain"
    if spec["case"] == "finetune":
        return runtime.training_workload(spec.get("loss", "bce"))
    return "default"


def child(spec: dict, cases: dict | None = None) -> dict:
    """Runs one case in this process, with its runtime settings; adds them and the
    peak resident memory to its result.

    Args:
        spec: the case (`"case"` names it in `cases`; `"runtime"`: the
            `s3rec_tf.runtime.configure` arguments).
        cases: the case functions by name. Defaults to `CASES`.
    """
    from s3rec_tf import runtime
    runtime.configure(**spec.get("runtime", {}))
    result = (cases or CASES)[spec["case"]](**spec)
    result["runtime"] = runtime.settings()
    result["peak_rss_mb"] = _peak_rss_mb()
    return result


def run_case(spec: dict, command=CHILD) -> dict:
    """Runs one case in a fresh process and returns its JSON result.

    Args:
        spec: the case, as `plan` lists it.
        command: the arguments after the python executable that run `child`
            on the JSON spec appended to them. Defaults to this module's.
    """
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, *command, json.dumps(spec)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark case {spec} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def plan(data_dir: str, quick: bool, datasets=("Beauty", "LastFM"), serving_sizes=None):
    """The list of cases to run."""
    steps, warmup = (20, 5) if quick else (160, 20)
    specs = []
    for name in datasets:
        specs.append({"case": "pretrain", "key": f"pretrain/{name}", "data_dir": data_dir,
                      "name": name, "steps": steps, "warmup": warmup})
    specs.append({"case": "finetune", "key": "finetune_bce/Beauty", "data_dir": data_dir,
                  "name": "Beauty", "steps": steps // 2 if quick else 80, "warmup": warmup,
                  "loss": "bce"})
    specs.append({"case": "finetune", "key": "finetune_ce/Beauty", "data_dir": data_dir,
                  "name": "Beauty", "steps": steps // 2 if quick else 80, "warmup": warmup,
                  "loss": "ce"})
    specs.append({"case": "finetune", "key": "finetune_sampled-ce/Beauty", "data_dir": data_dir,
                  "name": "Beauty", "steps": steps // 2 if quick else 80, "warmup": warmup,
                  "loss": "sampled-ce"})
    specs.append({"case": "evaluate", "key": "evaluate_full/Beauty", "data_dir": data_dir,
                  "name": "Beauty", "users": 4096 if quick else 0})
    specs.append({"case": "prepare", "key": "prepare/Beauty", "data_dir": data_dir,
                  "name": "Beauty"})
    sizes = serving_sizes or ([12101] if quick else [12101, 1_000_000])
    for n in sizes:
        for batch in (1, 64):
            specs.append({"case": "serving", "key": f"serving/{n}items/batch{batch}",
                          "num_items": n, "batch": batch,
                          "requests": 200 if quick else (1000 if batch == 1 or n < 10 ** 5
                                                         else 1000),
                          "warmup": 20 if quick else 50})
    return specs


def build_parser(prog: str = "s3rec-tf bench", description: str | None = __doc__):
    """The flags of `s3rec-tf bench`; other harnesses add theirs to it."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--data", default=os.path.join("..", "shared", "data", "s3rec"))
    parser.add_argument("--quick", action="store_true", help="a spot check (< 2 minutes)")
    parser.add_argument("--repeats", type=number_type(int, 1), default=None,
                        help="runs per case; the median is reported (default 3, quick 1)")
    parser.add_argument("--only", nargs="*", help="run only cases whose key starts with these")
    parser.add_argument("--output", default=None, help="JSON path (default: "
                                                       "bench-<time>.json)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --output file (a JSON record)")
    parser.add_argument("--intra-op-threads", default="auto",
                        help="threads per op; auto: per case, as the CLI (s3rec_tf.runtime)")
    parser.add_argument("--inter-op-threads", default="auto")
    parser.add_argument("--onednn", choices=("auto", "on", "off"), default="auto")
    from s3rec_tf.runtime import PRECISIONS  # imports no TensorFlow
    parser.add_argument("--precision", choices=tuple(PRECISIONS), default="float32",
                        help="compute precision of every case (s3rec_tf.runtime.PRECISIONS)")
    parser.add_argument("--note", default="", help="recorded with the results (e.g. "
                                                   "what else ran on the machine)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser


def runtime_settings(args) -> dict:
    """The runtime flags of `build_parser` as `s3rec_tf.runtime.configure` arguments."""
    return {"intra_op_threads": args.intra_op_threads,
            "inter_op_threads": args.inter_op_threads,
            "onednn": {"on": True, "off": False}.get(args.onednn, "auto"),
            "precision": args.precision}


def select(specs: list, args, workload=workload_of) -> list:
    """The specs whose key starts with one of `--only`, each given its runtime settings."""
    if args.only:
        specs = [s for s in specs if any(s["key"].startswith(o) for o in args.only)]
    settings = runtime_settings(args)
    for spec in specs:
        spec["runtime"] = {"workload": workload(spec), **settings}
    return specs


def run_rounds(specs: list, repeats: int, run=None, before_round=None) -> dict:
    """`{key: [result, ...]}`: every case once per round, `repeats` rounds.

    Args:
        specs: the cases.
        repeats: rounds; a serving case runs in the first only (its latency
            percentiles already pool many requests).
        run: runs one spec and returns its result. Defaults to `run_case`.
        before_round: called with the round's index before its cases, if given.
    """
    runs = {spec["key"]: [] for spec in specs}
    for r in range(repeats):
        if before_round:
            before_round(r)
        for spec in specs:
            if spec["case"] == "serving" and r > 0:
                continue
            print(f"[{spec['key']}] run {r + 1}/{repeats} ...", flush=True)
            runs[spec["key"]].append((run or run_case)(spec))
    return runs


def summarize(specs: list, runs: dict) -> dict:
    """`{key: {"median", "metric", "runs", "unit", "config", "peak_rss_mb"}}`: the
    median throughput (serving: p99 latency) of each case's runs."""
    results = {}
    for spec in specs:
        key = spec["key"]
        metric = "p99_ms" if spec["case"] == "serving" else "throughput"
        results[key] = {"median": statistics.median(x[metric] for x in runs[key]),
                        "metric": metric, "runs": runs[key], "unit": runs[key][0]["unit"],
                        "config": spec,
                        "peak_rss_mb": max(x["peak_rss_mb"] for x in runs[key])}
    return results


def report_of(args, results: dict, repeats: int, **fields) -> dict:
    """The JSON of a bench: its results, settings and provenance (`fields` override)."""
    from s3rec_tf import provenance
    return {"results": results, "quick": args.quick, "repeats": repeats, "original": None,
            "model_config": dict(MODEL_CONFIG), "runtime": runtime_settings(args),
            "note": args.note, **provenance.record(), **fields}


def write_report(report: dict, out: str) -> None:
    """Writes the JSON at `out` (its folder made if needed), atomically."""
    from s3rec_tf.io import write_json_atomic
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    write_json_atomic(out, report)


def format_table(report: dict) -> str:
    """Markdown: each case's median (serving: p50 / p99 latency) and peak memory."""
    lines = ["| case | median | unit | peak RSS MB |", "|---|---|---|---|"]
    for key, r in report["results"].items():
        if key.startswith("serving"):
            p50 = statistics.median(x["p50_ms"] for x in r["runs"])
            value = f"p50 {p50:.2f} / p99 {r['median']:.2f}"
        else:
            value = f"{r['median']:.0f}"
        lines.append(f"| {key} | {value} | {r['unit']} | {r['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    from s3rec_tf.errors import OutputError
    from s3rec_tf.outputs import check_output_file
    out = args.output or f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    try:  # before any work, as every command
        check_output_file(out, inputs=(args.data,), overwrite=args.overwrite)
    except OutputError as e:
        print(f"s3rec-tf bench: error: {e}", file=sys.stderr)
        return 2
    repeats = args.repeats or (1 if args.quick else 3)
    specs = select(plan(args.data, args.quick), args)
    report = report_of(args, summarize(specs, run_rounds(specs, repeats)), repeats)
    write_report(report, out)
    print(format_table(report))
    print(f"Wrote {out}")
    return 0


if __name__ == "__main__":
    import s3rec_tf  # noqa: F401
    sys.exit(main())
