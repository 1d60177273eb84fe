#!/usr/bin/env python3
"""Serving under load: throughput, latency and answers from concurrent clients.

For each catalogue size, exports a randomly initialised `NextItemModel` over
that many items (`s3rec_tf.serving.export_serving_model`; raw ids `sku-1` ..
`sku-N`) and serves its `serving_default` signature, one history row per
request, in two ways:

- `python`: the SavedModel loaded in Python (`tf.saved_model.load(...)
  .signatures["serving_default"]`), called from a pool of client threads;
- `c`: TensorFlow's C API (`tests/c_api/serve_load.c`, compiled here), one
  session loaded the way TF Serving loads it, called from client pthreads.

Each way first answers every request alone, one after the other (the
reference, also the level-1 figures), then answers them all again from each
number of concurrent clients; a client sends its next request as soon as its
last one is answered. Per (size, way, level) the record holds the throughput
(requests/s), the p50 / p99 latency (ms), the failed requests, and how many
answers differ from the answer to the same request made alone (items
compared exactly, scores to 1e-5). The requests mix lengths from empty to
longer than the model's window, and unknown ids.

A Python request's latency covers building its input tensor, the call and
reading the answer back; a C request's covers `TF_SessionRun`.

Usage (the project's environment, from the repository root):
    python benchmarks/serving_load.py [--sizes 12000,1000000] [--levels 8,32,128]
        [--requests 2000,300] [--ways python,c] [--output benchmarks/results/serving-load.json]
        [--note TEXT]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import itertools
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import tensorflow as tf  # noqa: E402
from tensorflow.core.protobuf import saved_model_pb2  # noqa: E402

from s3rec_tf import artifacts, ids, provenance, serving  # noqa: E402
from s3rec_tf.io import write_json_atomic  # noqa: E402
from s3rec_tf.layers import SequenceEncoder  # noqa: E402  the encoder's one import here
from s3rec_tf.models import NextItemModel  # noqa: E402

C_SOURCE = os.path.join(ROOT, "tests", "c_api", "serve_load.c")
OUTPUT = os.path.join(ROOT, "benchmarks", "results", "serving-load.json")
WAYS = ("python", "c")
#: Answers agree when their items are equal and their scores within this.
TOLERANCE = 1e-5
#: Share of request ids that are not in the catalogue.
UNKNOWN_RATE = 0.05


class NoCompiler(RuntimeError):
    """No C compiler, or a TensorFlow without its C API files."""


def compile_program(output: str, source: str = C_SOURCE) -> str:
    """Compiles the C load client against the installed TensorFlow's C API.

    Args:
        output: str. The program's path.
        source: str. The C source. Defaults to `tests/c_api/serve_load.c`.

    Returns:
        `output`.

    Raises:
        NoCompiler: no compiler (`$CC`, `gcc` or `cc`), or no C API files.
        RuntimeError: the compiler failed.
    """
    compiler = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not compiler or not shutil.which(shlex.split(compiler)[0]):
        raise NoCompiler("no C compiler found (gcc, cc or $CC): cannot build the C API client")
    include, lib = tf.sysconfig.get_include(), tf.sysconfig.get_lib()
    header = os.path.join(include, "tensorflow", "c", "c_api.h")
    libs = [os.path.join(lib, n) for n in ("libtensorflow_cc.so.2",
                                           "libtensorflow_framework.so.2")]
    missing = [p for p in [header, *libs] if not os.path.exists(p)]
    if missing:
        raise NoCompiler(f"the installed TensorFlow has no C API files: {missing}")
    proc = subprocess.run(
        [*shlex.split(compiler), "-std=c99", "-pthread", "-Wall", "-O1", f"-I{include}", source,
         "-o", output, f"-L{lib}", "-l:libtensorflow_cc.so.2", "-l:libtensorflow_framework.so.2",
         f"-Wl,-rpath,{lib}"], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"compiling {source} failed:\n{proc.stderr}")
    return output


def item_ids(num_items: int) -> list:
    """The raw ids of the catalogue: item `i` is `sku-i`."""
    return [f"sku-{i}" for i in range(1, num_items + 1)]


def build_export(num_items: int, base: str, hidden_size: int | None = None,
                 max_length: int | None = None, default_k: int = 10, seed: int = 0) -> str:
    """Exports a randomly initialised `NextItemModel` over `num_items` items.

    Args:
        num_items: int. The catalogue size.
        base: str. A new directory for the model and its export.
        hidden_size: int | None. Defaults to the encoder's (the paper's).
        max_length: int | None. Defaults to the encoder's (the paper's).
        default_k: int. Items per answer. Defaults to `10`.
        seed: int. The weights' seed. Defaults to `0`.

    Returns:
        `(export version directory, encoder)`.
    """
    import keras
    keras.utils.set_random_seed(seed)
    sizes = {k: v for k, v in (("hidden_size", hidden_size), ("max_length", max_length)) if v}
    encoder = SequenceEncoder(num_items, 1, **sizes)
    model_dir = artifacts.save_model(os.path.join(base, "model"), NextItemModel(encoder),
                                     "finetuned", ids.vocabulary(num_items, 1), {})
    export_dir = serving.export_serving_model(model_dir, os.path.join(base, "serving"),
                                              version=1, vocabulary=item_ids(num_items),
                                              default_k=default_k)
    return export_dir, encoder


def make_requests(num_items: int, count: int, max_length: int, seed: int = 0) -> list:
    """`count` histories of raw ids: lengths 0 to `max_length + 5`, some ids unknown."""
    rng = np.random.default_rng(seed)
    requests = []
    for _ in range(count):
        length = int(rng.integers(0, max_length + 6))
        known = rng.integers(1, num_items + 1, length)
        unknown = rng.random(length) < UNKNOWN_RATE
        requests.append([f"unknown-{i}" if u else f"sku-{i}" for i, u in zip(known, unknown)])
    return requests


def signature_tensors(export_dir: str, signature: str = "serving_default") -> dict:
    """`{input or output key: tensor name}` of a signature, as `saved_model_cli show` lists."""
    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
        saved.ParseFromString(f.read())
    graph = next(g for g in saved.meta_graphs if "serve" in g.meta_info_def.tags)
    sig = graph.signature_def[signature]
    return {**{k: v.name for k, v in sig.inputs.items()},
            **{k: v.name for k, v in sig.outputs.items()}}


def python_pass(signature, requests: list, clients: int) -> dict:
    """Every request once, from `clients` threads calling the loaded signature.

    Returns:
        dict: `answers` (per request `(items, scores)`, `None` when it
        failed), `latency_s` (per request), `wall_s`, `errors` (messages).
    """
    answers, latency = [None] * len(requests), [0.0] * len(requests)
    errors, lock = [], threading.Lock()
    order = itertools.count()  # next() on a count is atomic under the GIL

    def client():
        while (r := next(order)) < len(requests):
            start = time.perf_counter()
            try:
                out = signature(history=tf.constant([requests[r] or [""]], tf.string))
                items = tuple(i.decode() for i in out["item_ids"].numpy()[0])
                answers[r] = (items, out["scores"].numpy()[0].astype(np.float64))
            except Exception as e:  # noqa: BLE001  a failed request is counted, not raised
                with lock:
                    errors.append(f"request {r}: {type(e).__name__}: {e}")
            latency[r] = time.perf_counter() - start

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    return {"answers": answers, "latency_s": latency, "wall_s": time.perf_counter() - start,
            "errors": errors}


def c_passes(program: str, export_dir: str, requests: list, levels: list,
             workdir: str) -> dict:
    """Every request once per level, from that many pthreads of the C program.

    Returns:
        `{level: pass}`, each pass as `python_pass` returns it.
    """
    path = os.path.join(workdir, "requests.txt")
    with open(path, "w") as f:
        f.writelines(",".join(r) + "\n" for r in requests)
    names = signature_tensors(export_dir)
    proc = subprocess.run([program, export_dir, names["history"], names["item_ids"],
                           names["scores"], path, *map(str, levels)], capture_output=True,
                          text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
                          timeout=6 * 3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{program} exited {proc.returncode}: {proc.stderr[-2000:]}")
    passes = {level: {"answers": [None] * len(requests), "latency_s": [0.0] * len(requests),
                      "errors": []} for level in levels}
    for line in proc.stdout.splitlines():
        fields = line.split("\t")
        if fields[0] == "#":
            level, wall_us, started = int(fields[1]), int(fields[2]), int(fields[3])
            passes[level]["wall_s"] = wall_us / 1e6
            if started != level:
                passes[level]["errors"].append(f"started {started} of {level} threads")
            continue
        level, r, ok, latency_us, items, scores = fields
        one = passes[int(level)]
        one["latency_s"][int(r)] = int(latency_us) / 1e6
        if ok == "1":
            one["answers"][int(r)] = (tuple(items.split(",")) if items else (),
                                      np.array(scores.split(","), np.float64)
                                      if scores else np.zeros(0))
    for line in proc.stderr.splitlines():  # "serve_load: 8 threads, request 3: reason"
        level = line.split(" threads,", 1)[0].removeprefix("serve_load: ")
        if level.isdigit() and int(level) in passes:
            passes[int(level)]["errors"].append(line.removeprefix("serve_load: "))
    return passes


def same_answer(a, b) -> bool:
    """Items equal, scores within `TOLERANCE` (absolute, or relative to the larger)."""
    if a is None or b is None or a[0] != b[0]:
        return False
    return bool(np.all(np.abs(a[1] - b[1]) <= TOLERANCE * np.maximum(1.0, np.abs(b[1]))))


def summarise(one: dict, reference: list) -> dict:
    """Throughput, latency percentiles, failures and differences from `reference`."""
    latency_ms = np.array(one["latency_s"]) * 1e3
    failed = sum(a is None for a in one["answers"])
    differ = sum(a is not None and not same_answer(a, b)
                 for a, b in zip(one["answers"], reference))
    return {"requests": len(one["answers"]),
            "throughput_rps": round(len(one["answers"]) / one["wall_s"], 2),
            "p50_ms": round(float(np.percentile(latency_ms, 50)), 3),
            "p99_ms": round(float(np.percentile(latency_ms, 99)), 3),
            "mean_ms": round(float(latency_ms.mean()), 3),
            "failed": failed, "differ_from_alone": differ,
            "equal_to_alone": failed == 0 and differ == 0,
            "errors": one["errors"][:5]}


def measure(num_items: int, levels: list, num_requests: int, workdir: str,
            program: str | None = None, ways=WAYS, hidden_size: int | None = None,
            max_length: int | None = None, default_k: int = 10, seed: int = 0,
            log=print) -> dict:
    """The load figures of one catalogue size.

    Args:
        num_items: int. The catalogue size.
        levels: list of int. Numbers of concurrent clients.
        num_requests: int. Requests per level.
        workdir: str. A directory for the export and the C program's input.
        program: str | None. The compiled C client (`compile_program`);
            required when `ways` has `"c"`.
        ways: the ways to serve, of `WAYS`.
        hidden_size, max_length: int | None. The encoder's sizes; default
            to the encoder's.
        default_k: int. Items per answer.
        seed: int. Seed of the weights and the requests.
        log: a one-argument callable for progress lines.

    Returns:
        dict: `items`, the model's sizes, `export_s`, `load_s` (Python),
        `c_alone_equals_python_alone`, and `results`: one row per (way,
        level), level 1 being the requests made alone.
    """
    start = time.perf_counter()
    export_dir, encoder = build_export(num_items, os.path.join(workdir, f"export-{num_items}"),
                                       hidden_size, max_length, default_k, seed)
    export_s = time.perf_counter() - start
    window = encoder.max_length
    requests = make_requests(num_items, num_requests, window, seed)
    out = {"items": num_items, "hidden_size": encoder.hidden_size,
           "max_length": window, "default_k": default_k, "requests": num_requests,
           "export_s": round(export_s, 2), "results": []}
    alone = {}
    if "python" in ways:
        start = time.perf_counter()
        signature = tf.saved_model.load(export_dir).signatures["serving_default"]
        out["load_s"] = round(time.perf_counter() - start, 2)
        python_pass(signature, requests[:1], 1)  # warm-up, untimed
        first = python_pass(signature, requests, 1)
        alone["python"] = first["answers"]
        passes = {1: first, **{level: python_pass(signature, requests, level)
                               for level in levels}}
        for level, one in passes.items():
            row = {"way": "python", "clients": level, **summarise(one, alone["python"])}
            out["results"].append(row)
            log(_line(num_items, row))
    if "c" in ways:
        passes = c_passes(program, export_dir, requests, [1, *levels], workdir)
        alone["c"] = passes[1]["answers"]
        for level, one in passes.items():
            row = {"way": "c", "clients": level, **summarise(one, alone["c"])}
            out["results"].append(row)
            log(_line(num_items, row))
    if len(alone) == 2:
        out["c_alone_equals_python_alone"] = all(
            same_answer(a, b) for a, b in zip(alone["c"], alone["python"]))
    return out


def _line(num_items: int, row: dict) -> str:
    return (f"{num_items} items, {row['way']}, {row['clients']} clients: "
            f"{row['throughput_rps']:.1f} req/s, p50 {row['p50_ms']:.2f} ms, "
            f"p99 {row['p99_ms']:.2f} ms, failed {row['failed']}, "
            f"differ {row['differ_from_alone']}")


def _ints(text: str) -> list:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected whole numbers separated by commas")
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected whole numbers >= 1")
    return values


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=_ints, default=[12000, 1000000],
                        help="catalogue sizes (items), comma-separated")
    parser.add_argument("--levels", type=_ints, default=[8, 32, 128],
                        help="numbers of concurrent clients, comma-separated")
    parser.add_argument("--requests", type=_ints, default=[2000, 300],
                        help="requests per level: one number, or one per size")
    parser.add_argument("--ways", default=",".join(WAYS),
                        help=f"ways to serve, comma-separated, of {', '.join(WAYS)}")
    parser.add_argument("--hidden-size", type=int, default=None)
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--k", type=int, default=10, help="items per answer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=OUTPUT)
    parser.add_argument("--note", default=None, help="a note kept in the record")
    args = parser.parse_args(argv)
    ways = [w for w in args.ways.split(",") if w]
    if not ways or set(ways) - set(WAYS):
        parser.error(f"--ways {args.ways}: expected some of {', '.join(WAYS)}")
    if len(args.requests) not in (1, len(args.sizes)):
        parser.error(f"--requests: one number, or one per size ({len(args.sizes)})")
    if os.path.isdir(args.output):
        parser.error(f"--output {args.output}: is a directory, expected a file")
    requests = args.requests * len(args.sizes) if len(args.requests) == 1 else args.requests
    command = " ".join(["python", os.path.relpath(os.path.abspath(__file__), ROOT),
                        *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
    load_at_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as workdir:
        program = None
        if "c" in ways:
            try:
                program = compile_program(os.path.join(workdir, "serve_load"))
            except NoCompiler as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
        sizes = [measure(n, args.levels, r, workdir, program, ways, args.hidden_size,
                         args.max_length, args.k, args.seed, log=lambda s: print(s, flush=True))
                 for n, r in zip(args.sizes, requests)]
    record = {"benchmark": "serving-load", "ways": ways, "levels": args.levels,
              "tolerance": TOLERANCE, "unknown_rate": UNKNOWN_RATE, "seed": args.seed,
              "sizes": sizes, "load_average_at_start": list(load_at_start),
              "no_failures": all(r["failed"] == 0 for s in sizes for r in s["results"]),
              "all_equal_to_alone": all(r["equal_to_alone"] for s in sizes
                                        for r in s["results"]),
              "note": args.note, **provenance.record({"command": command})}
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    write_json_atomic(args.output, record)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
