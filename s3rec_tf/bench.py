"""Benchmarks that print numbers: training, evaluation and serving speed.

`s3rec-tf bench` runs each case in its own process (so its peak resident
memory is its own), repeats it, and reports medians. Compilation/warm-up time
is measured separately from steady-state throughput. Results go to one JSON
with the configuration, library versions, CPU model, thread count and commit,
and a table is printed.

With `--original DIR` (DIR: `../shared/tools/original-speed`, the authors'
PyTorch code and its timing script) the original is timed in the same run,
interleaved with our cases round by round, in its own virtualenv (made by
DIR/setup.sh; torch is never imported here), and the table shows both figures
and their ratio. Without it, the ratio is to the original's reference figures
(REFERENCE.md), measured elsewhere: orientation only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from s3rec_tf.config import number_type  # imports no TensorFlow
from s3rec_tf.config import OPTIMIZERS

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


def original_python(original_dir: str) -> str:
    """The python of the original code's virtualenv (created by its `setup.sh` once)."""
    setup = os.path.join(original_dir, "setup.sh")
    if not os.path.isfile(setup) or not os.path.isfile(
            os.path.join(original_dir, "time_original.py")):
        raise SystemExit(f"s3rec-tf bench: error: {original_dir} does not hold the original "
                         "code's setup.sh and time_original.py")
    proc = subprocess.run(["bash", setup], capture_output=True, text=True)
    python = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    if proc.returncode != 0 or not os.path.exists(python):
        raise SystemExit(f"s3rec-tf bench: error: {setup} failed (exit {proc.returncode}): "
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
        `(model, dataset, batch_size, unit)`: the paper's encoder and model
        compiled with the paper's Adam, a `tf.data.Dataset` of training batches
        (seed 0), and the throughput's unit.
    """
    from s3rec_tf.config import FINETUNE_LOSSES, FinetuneConfig, PretrainConfig
    from s3rec_tf.data import inputs
    from s3rec_tf.layers import SequenceEncoder
    from s3rec_tf.models import NextItemModel, S3RecPretrainer
    from s3rec_tf.training import adam, finetune_sampling, next_item_loss_options
    encoder = SequenceEncoder(data.num_items, data.num_attributes)
    if work == "pretrain":
        batch_size = batch_size or PretrainConfig().batch_size
        arrays = inputs.pretrain_arrays(data)
        epochs = 2 + steps // inputs.steps_per_epoch(arrays.num_samples, batch_size)
        ds = inputs.pretrain_dataset(arrays, batch_size, seed=0, epochs=epochs)
        model, unit = S3RecPretrainer(encoder, data.attribute_table()), "samples/s"
    elif work in FINETUNE_LOSSES:
        config = FinetuneConfig(loss=work)
        batch_size = batch_size or config.batch_size
        arrays = inputs.finetune_arrays(data)
        epochs = 2 + steps // inputs.steps_per_epoch(len(arrays.input_ids), batch_size)
        ds = inputs.finetune_dataset(arrays, batch_size, seed=0, epochs=epochs,
                                     **finetune_sampling(config, arrays))
        model = NextItemModel(encoder, **next_item_loss_options(config, arrays))
        unit = "sequences/s"
    else:
        raise ValueError(f"work must be 'pretrain' or one of {FINETUNE_LOSSES}. "
                         f"Received: work={work!r}")
    model.compile(optimizer=adam(1e-3))
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


# ------------------------------------------------------------------ scale bench

#: `bench --scale` sizes: name -> interactions; the catalogue is a tenth of that
#: (1M -> 100k items, 10M -> 1M items).
SCALE_SIZES = {"1M": 1_000_000, "3M": 3_000_000, "10M": 10_000_000}
#: Targets of the scale issue on a 2-core machine.
SCALE_TARGETS = {"peak_rss_mb_at_10M": 8192, "cost": "linear in interactions"}
SCALE_STAGES = ("synth", "prepare", "pretrain", "finetune", "evaluate")


def parse_size(text: str, flag: str = "--sizes", unit: str = "interactions") -> int:
    """`1M`, `3M`, `250k`, `20000` -> a count (interactions, or items for --catalogue)."""
    t = text.strip().lower()
    try:
        scale = {"k": 1_000, "m": 1_000_000}.get(t[-1:], 1)
        value = int(float(t[:-1] if scale > 1 else t) * scale)
    except ValueError:
        raise SystemExit(f"s3rec-tf bench: error: argument {flag}: not a size: {text!r} "
                         f"(e.g. 1M, 250k, 20000)") from None
    if value < 1000:
        raise SystemExit(f"s3rec-tf bench: error: argument {flag}: {text!r} is below 1000 "
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
    from s3rec_tf.data import preprocess
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
    from s3rec_tf.data import streaming
    from s3rec_tf.layers import SequenceEncoder
    from s3rec_tf.models import S3RecPretrainer
    from s3rec_tf.training import make_optimizer
    prepared = _scale_paths(workdir, size)["prepared"]
    data = streaming.StreamedData(prepared)
    t0 = time.perf_counter()
    samples = streaming.count_samples(prepared)
    count_s = time.perf_counter() - t0
    ds = streaming.pretrain_stream(prepared, data.num_items, batch_size=batch_size, seed=0,
                                   shuffle_buffer=shuffle_buffer, segment_negatives="batch")
    model = S3RecPretrainer(SequenceEncoder(data.num_items, data.num_attributes),
                            data.attribute_table())
    model.compile(optimizer=make_optimizer(optimizer, 1e-3))
    out = _fit_extrapolated(model, ds.repeat(), warmup, steps, batch_size, samples)
    return {**out, "unit": "samples/s", "count_samples_s": count_s,
            "segment_negatives": "batch", "shuffle_buffer": shuffle_buffer,
            "optimizer": optimizer}


def stage_finetune(workdir, size, steps, warmup, batch_size=256, shuffle_buffer=10000,
                   optimizer=OPTIMIZERS[0], **_):
    from s3rec_tf.data import streaming
    from s3rec_tf.layers import SequenceEncoder
    from s3rec_tf.models import NextItemModel
    from s3rec_tf.training import make_optimizer
    prepared = _scale_paths(workdir, size)["prepared"]
    data = streaming.StreamedData(prepared)
    ds = streaming.finetune_stream(prepared, data.num_items, batch_size=batch_size, seed=0,
                                   shuffle_buffer=shuffle_buffer)
    model = NextItemModel(SequenceEncoder(data.num_items, data.num_attributes), loss="bce")
    model.compile(optimizer=make_optimizer(optimizer, 1e-3))
    out = _fit_extrapolated(model, ds.repeat(), warmup, steps, batch_size, data.num_users)
    return {**out, "unit": "sequences/s", "loss": "bce", "shuffle_buffer": shuffle_buffer,
            "optimizer": optimizer}


def stage_evaluate(workdir, size, users, **_):
    """Full ranking (test split) of the first `users` users, extrapolated to all users."""
    from s3rec_tf.data import streaming
    from s3rec_tf.layers import SequenceEncoder
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
    from s3rec_tf.layers import SequenceEncoder
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


CASES = {"prepare": case_prepare, "pretrain": case_pretrain, "finetune": case_finetune, "evaluate": case_evaluate,
         "serving": case_serving, "scale_synth": stage_synth, "scale_prepare": stage_prepare,
         "scale_pretrain": stage_pretrain, "scale_finetune": stage_finetune,
         "scale_evaluate": stage_evaluate, "catalogue": case_catalogue}


def workload_of(spec: dict) -> str:
    """The `s3rec_tf.runtime` workload the CLI would use for this case."""
    from s3rec_tf import runtime
    if spec["case"] in ("pretrain", "catalogue"):
        return "pretrain"
    if spec["case"] == "finetune":
        return runtime.training_workload(spec.get("loss", "bce"))
    return "default"


def _child(spec: dict) -> dict:
    from s3rec_tf import runtime
    runtime.configure(**spec.get("runtime", {}))
    result = CASES[spec["case"]](**spec)
    result["runtime"] = runtime.settings()
    result["peak_rss_mb"] = _peak_rss_mb()
    return result


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
        proc = subprocess.Popen([sys.executable, "-m", "s3rec_tf.bench", "--child",
                                 json.dumps(spec)], stdout=out, stderr=err, env=env)
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
    """The stages of `bench --scale`, size by size (`sizes`: `{name: interactions}`)."""
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


def run_scale(args) -> int:
    """`bench --scale`: synth, prepare, pretrain, fine-tune, evaluate at each size."""
    from s3rec_tf import provenance
    from s3rec_tf.io import write_json_atomic
    sizes = {s: parse_size(s) for s in args.sizes}
    workdir = args.workdir or tempfile.mkdtemp(prefix="s3rec-scale-")
    specs = [s for s in scale_plan(sizes, workdir, args.steps, args.warmup, args.eval_users,
                                optimizer=args.optimizer)
             if s["case"].removeprefix("scale_") in args.stages]
    out = args.output or os.path.join("results", f"bench-scale-{time.strftime('%Y%m%d-%H%M%S')}"
                                                 f".json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    report = {"scale": True, "sizes": {}, "targets": SCALE_TARGETS, "note": args.note,
              "model_config": {"hidden": 64, "layers": 2, "heads": 2, "max_length": 50,
                               "pretrain_batch": 100, "finetune_batch": 256,
                               "finetune_loss": "bce", "segment_negatives": "batch",
                               "shuffle_buffer": 10000, "optimizer": args.optimizer},
              "workdir": workdir, **provenance.record()}
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
        print(f"[{spec['key']}] {json.dumps({k: v for k, v in result.items() if k in ('wall_s', 'throughput', 'epoch_s_extrapolated', 'peak_rss_mb', 'peak_tree_rss_mb')})}",
              flush=True)
        report["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        write_json_atomic(out, report)  # each stage lands as soon as it is done
        if spec is last_of[size] and not args.keep_data:
            import shutil
            shutil.rmtree(os.path.join(workdir, size), ignore_errors=True)
    print(scale_table(report))
    print(f"Wrote {out}")
    return 0


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


def catalogue_plan(sizes, steps: int = 20, warmup: int = 5) -> list:
    """`bench --catalogue`: pretraining steps at each catalogue size, with each optimizer."""
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="s3rec-tf bench", description=__doc__)
    parser.add_argument("--data", default=os.path.join("..", "shared", "data", "s3rec"))
    parser.add_argument("--quick", action="store_true", help="a spot check (< 2 minutes)")
    parser.add_argument("--repeats", type=number_type(int, 1), default=None,
                        help="runs per case; the median is reported (default 3, quick 1)")
    parser.add_argument("--only", nargs="*", help="run only cases whose key starts with these")
    parser.add_argument("--output", default=None, help="JSON path (default: "
                                                       "results/bench-<time>.json)")
    parser.add_argument("--intra-op-threads", default="auto",
                        help="threads per op; auto: per case, as the CLI (s3rec_tf.runtime)")
    parser.add_argument("--inter-op-threads", default="auto")
    parser.add_argument("--onednn", choices=("auto", "on", "off"), default="auto")
    from s3rec_tf.runtime import PRECISIONS  # imports no TensorFlow
    parser.add_argument("--precision", choices=tuple(PRECISIONS), default="float32",
                        help="compute precision of every case (s3rec_tf.runtime.PRECISIONS)")
    parser.add_argument("--original", metavar="DIR",
                        help="also time the original PyTorch code in DIR (its setup.sh and "
                             "time_original.py, e.g. ../shared/tools/original-speed), "
                             "interleaved with our cases, and report side-by-side ratios")
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
    scale.add_argument("--note", default="", help="recorded with the results (e.g. "
                                                  "what else ran on the machine)")
    parser.add_argument("--catalogue", nargs="+", metavar="ITEMS",
                        help="instead of the cases above: pretraining step time at these "
                             "catalogue sizes (10k, 1M, ...; synthetic batches), with each "
                             "optimizer (adam, lazy-adam), interleaved round by round")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return 0
    if args.scale:
        return run_scale(args)
    from s3rec_tf import provenance
    repeats = args.repeats or (1 if args.quick else 3)
    specs = (catalogue_plan({c: parse_size(c, "--catalogue", "items") for c in args.catalogue},
                            10 if args.quick else 20)
             if args.catalogue else plan(args.data, args.quick))
    if args.only:
        specs = [s for s in specs if any(s["key"].startswith(o) for o in args.only)]
    settings = {"intra_op_threads": args.intra_op_threads,
                "inter_op_threads": args.inter_op_threads,
                "onednn": {"on": True, "off": False}.get(args.onednn, "auto"),
                "precision": args.precision}
    for spec in specs:
        spec["runtime"] = {"workload": workload_of(spec), **settings}
    python = original_python(args.original) if args.original else None
    need = original_plan(specs) if python else {}
    runs = {spec["key"]: [] for spec in specs}
    original_runs = {key: [] for key in ORIGINAL_CASES}
    # Round by round, so that the original and each case see the same machine state.
    for r in range(repeats):
        for name, pretrain_only in need.items():
            print(f"[original/{name}] run {r + 1}/{repeats} ...", flush=True)
            found = run_original(python, args.original, args.data, name, pretrain_only)
            for key, (dataset, kind) in ORIGINAL_CASES.items():
                if (dataset, kind) in found:
                    original_runs[key].append(found[(dataset, kind)])
        for spec in specs:
            # latency percentiles already pool >= 1000 requests: one run per serving case
            if spec["case"] == "serving" and r > 0:
                continue
            print(f"[{spec['key']}] run {r + 1}/{repeats} ...", flush=True)
            runs[spec["key"]].append(run_case(spec))
    results = {}
    for spec in specs:
        key = spec["key"]
        metric = "p99_ms" if spec["case"] == "serving" else "throughput"
        median = statistics.median(x[metric] for x in runs[key])
        results[key] = {"median": median, "metric": metric, "runs": runs[key],
                        "unit": runs[key][0]["unit"], "config": spec,
                        "peak_rss_mb": max(x["peak_rss_mb"] for x in runs[key])}
        theirs = original_runs.get(BASELINE_OF.get(key, key))
        if theirs:
            results[key]["original"] = {
                "runs": theirs, "median": statistics.median(theirs),
                "round_ratios": [o[metric] / t for o, t in zip(runs[key], theirs)],
                "steps": ORIGINAL_STEPS, "case": BASELINE_OF.get(key, key)}
    report = {"results": results, "quick": args.quick, "repeats": repeats,
              "original": ({"dir": os.path.abspath(args.original), "threads": 2,
                            "note": "timed side by side, interleaved round by round"}
                           if args.original else None),
              "model_config": {"hidden": 64, "layers": 2, "heads": 2, "max_length": 50,
                               "pretrain_batch": 100, "finetune_batch": 256},
              "runtime": settings, "note": args.note,
              **provenance.record()}
    out = args.output or os.path.join("results", f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    from s3rec_tf.io import write_json_atomic
    write_json_atomic(out, report)
    print(format_table(report))
    if args.catalogue:
        print(catalogue_table(report))
    print(f"Wrote {out}")
    return 0


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

if __name__ == "__main__":
    import s3rec_tf  # noqa: F401
    sys.exit(main())
