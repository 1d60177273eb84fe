"""Benchmarks that print numbers: training, evaluation and serving speed.

`s3rec-tf bench` runs each case in its own process (so its peak resident
memory is its own), repeats it, and reports medians. Compilation/warm-up time
is measured separately from steady-state throughput. Results go to one JSON
with the configuration, library versions, CPU model, thread count and commit,
and a table with the ratio to the original code's figures (REFERENCE.md) is
printed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

#: The original PyTorch code on a 2-core CPU (REFERENCE.md, medians of 3 runs).
ORIGINAL = {
    "pretrain/Beauty": 173.0, "pretrain/LastFM": 194.0,
    "finetune_bce/Beauty": 1100.0, "evaluate_full/Beauty": 2470.0,
}
#: Goals (multiples of the original) from the speed issue.
GOALS = {"pretrain": 10.0, "finetune_bce": 3.0, "evaluate_full": 5.0}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _read(data_dir, name):
    from s3rec_tf.data.reader import read_dataset
    return read_dataset(data_dir, name)


def _time_fit(model, ds, warmup: int, steps: int):
    """Seconds of `warmup` steps (tracing included), then of `steps` timed steps.

    The timed batches are still built live by the input pipeline.
    """
    t0 = time.perf_counter()
    model.fit(ds.take(warmup), epochs=1, verbose=0)
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.fit(ds.skip(warmup).take(steps), epochs=1, verbose=0)
    return warm, time.perf_counter() - t0


def case_pretrain(data_dir, name, steps, warmup, batch_size=100, **_):
    from s3rec_tf.data import inputs
    from s3rec_tf.layers import SequenceEncoder
    from s3rec_tf.models import S3RecPretrainer
    from s3rec_tf.training import adam
    data = _read(data_dir, name)
    arrays = inputs.pretrain_arrays(data)
    per_epoch = inputs.steps_per_epoch(arrays.num_samples, batch_size)
    epochs = 1 + (warmup + steps) // per_epoch + 1
    ds = inputs.pretrain_dataset(arrays, batch_size, seed=0, epochs=epochs)
    model = S3RecPretrainer(SequenceEncoder(data.num_items, data.num_attributes),
                            data.attribute_table())
    model.compile(optimizer=adam(1e-3))
    warm, dt = _time_fit(model, ds, warmup, steps)
    return {"throughput": steps * batch_size / dt, "unit": "samples/s",
            "warmup_s": warm, "steps": steps, "batch_size": batch_size}


def case_finetune(data_dir, name, steps, warmup, loss="bce", batch_size=256, **_):
    from s3rec_tf.data import inputs
    from s3rec_tf.layers import SequenceEncoder
    from s3rec_tf.models import NextItemModel
    from s3rec_tf.training import adam
    data = _read(data_dir, name)
    arrays = inputs.finetune_arrays(data)
    per_epoch = inputs.steps_per_epoch(len(arrays.input_ids), batch_size)
    epochs = 1 + (warmup + steps) // per_epoch + 1
    ds = inputs.finetune_dataset(arrays, batch_size, seed=0, epochs=epochs,
                                 negatives=loss == "bce")
    model = NextItemModel(SequenceEncoder(data.num_items, data.num_attributes), loss=loss)
    model.compile(optimizer=adam(1e-3))
    warm, dt = _time_fit(model, ds, warmup, steps)
    return {"throughput": steps * batch_size / dt, "unit": "sequences/s", "warmup_s": warm,
            "steps": steps, "batch_size": batch_size, "loss": loss}


def case_evaluate(data_dir, name, users, **_):
    from s3rec_tf.data import inputs
    from s3rec_tf.evaluation import RankingEvaluator
    from s3rec_tf.layers import SequenceEncoder
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
    from s3rec_tf.layers import SequenceEncoder
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
    from s3rec_tf.data import preprocess
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        stats = preprocess.prepare(data_dir, os.path.join(tmp, "out"),
                                   preprocess.PrepareConfig(name=name))
        dt = time.perf_counter() - t0
    return {"throughput": stats["events_read"] / dt, "unit": "interactions/s",
            "wall_s": dt, "interactions": stats["events_read"]}


CASES = {"prepare": case_prepare, "pretrain": case_pretrain, "finetune": case_finetune, "evaluate": case_evaluate,
         "serving": case_serving}


def workload_of(spec: dict) -> str:
    """The `s3rec_tf.runtime` workload the CLI would use for this case."""
    if spec["case"] == "pretrain":
        return "pretrain"
    if spec["case"] == "finetune":
        return f"finetune-{spec.get('loss', 'bce')}"
    return "default"


def _child(spec: dict) -> dict:
    from s3rec_tf import runtime
    runtime.configure(**spec.get("runtime", {}))
    result = CASES[spec["case"]](**spec)
    result["runtime"] = runtime.settings()
    result["peak_rss_mb"] = _peak_rss_mb()
    return result


def run_case(spec: dict) -> dict:
    """Runs one case in a fresh process and returns its JSON result."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-m", "s3rec_tf.bench", "--child", json.dumps(spec)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark case {spec} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def plan(data_dir: str, quick: bool, datasets=("Beauty", "LastFM"), serving_sizes=None):
    """The list of cases to run."""
    steps, warmup = (20, 5) if quick else (150, 15)
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="s3rec-tf bench", description=__doc__)
    parser.add_argument("--data", default=os.path.join("..", "shared", "data", "s3rec"))
    parser.add_argument("--quick", action="store_true", help="a spot check (< 2 minutes)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="runs per case; the median is reported (default 3, quick 1)")
    parser.add_argument("--only", nargs="*", help="run only cases whose key starts with these")
    parser.add_argument("--output", default=None, help="JSON path (default: "
                                                       "results/bench-<time>.json)")
    parser.add_argument("--intra-op-threads", default="auto",
                        help="threads per op; auto: per case, as the CLI (s3rec_tf.runtime)")
    parser.add_argument("--inter-op-threads", default="auto")
    parser.add_argument("--onednn", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return 0
    from s3rec_tf import provenance
    repeats = args.repeats or (1 if args.quick else 3)
    specs = plan(args.data, args.quick)
    if args.only:
        specs = [s for s in specs if any(s["key"].startswith(o) for o in args.only)]
    settings = {"intra_op_threads": args.intra_op_threads,
                "inter_op_threads": args.inter_op_threads,
                "onednn": {"on": True, "off": False}.get(args.onednn, "auto")}
    for spec in specs:
        spec["runtime"] = {"workload": workload_of(spec), **settings}
    results = {}
    for spec in specs:
        runs = []
        # latency percentiles already pool >= 1000 requests: one run per serving case
        case_repeats = 1 if spec["case"] == "serving" else repeats
        for r in range(case_repeats):
            print(f"[{spec['key']}] run {r + 1}/{case_repeats} ...", flush=True)
            runs.append(run_case(spec))
        metric = "p99_ms" if spec["case"] == "serving" else "throughput"
        median = statistics.median(x[metric] for x in runs)
        results[spec["key"]] = {"median": median, "metric": metric, "runs": runs,
                                "unit": runs[0]["unit"], "config": spec,
                                "peak_rss_mb": max(x["peak_rss_mb"] for x in runs)}
    report = {"results": results, "quick": args.quick, "repeats": repeats,
              "model_config": {"hidden": 64, "layers": 2, "heads": 2, "max_length": 50,
                               "pretrain_batch": 100, "finetune_batch": 256},
              "runtime": settings,
              **provenance.record()}
    out = args.output or os.path.join("results", f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(report, f, indent=2)
    print(format_table(report))
    print(f"Wrote {out}")
    return 0


def format_table(report: dict) -> str:
    lines = ["| case | median | unit | original | ratio | goal | peak RSS MB |",
             "|---|---|---|---|---|---|---|"]
    for key, r in report["results"].items():
        base = ORIGINAL.get(key)
        ratio = f"{r['median'] / base:.1f}x" if base else ""
        goal = GOALS.get(key.split("/")[0])
        if key.startswith("serving"):
            p50 = statistics.median(x["p50_ms"] for x in r["runs"])
            value = f"p50 {p50:.2f} / p99 {r['median']:.2f}"
        else:
            value = f"{r['median']:.0f}"
        lines.append(f"| {key} | {value} | {r['unit']} | {base or ''} | {ratio} | "
                     f"{f'>= {goal:g}x' if goal else ''} | {r['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    import s3rec_tf  # noqa: F401
    sys.exit(main())
