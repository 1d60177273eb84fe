"""ScaNN against brute force at a million synthetic items: recall@10 and latency per query.

The catalogue is synthetic: `--items` random item embeddings of the model's
width (`--dim`, 64 as the paper's hidden size), drawn from a seeded normal
distribution, and `--queries` query vectors drawn the same way. Random
vectors have no cluster structure, which makes them a hard case for a
partitioned index, not an easy one. Recall@10 is the mean share of the exact
top 10 (NumPy brute force) that ScaNN finds; latency is the wall time of one
query at a time (batch of one), median and 95th percentile, for ScaNN and
for brute force in NumPy. The index is built with `s3rec_tf.ann.ScannConfig`
(the defaults of `recommend --index scann`) unless flags change it.

    python benchmarks/scann_recall.py --output benchmarks/results/scann-recall-1M.json
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    from s3rec_tf import ann, provenance
    from s3rec_tf.io import write_json_atomic

    defaults = ann.ScannConfig()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--latency-queries", type=int, default=200,
                   help="queries timed one at a time")
    p.add_argument("--leaves-searched", type=float, default=defaults.leaves_searched)
    p.add_argument("--reorder", type=int, default=defaults.reorder)
    p.add_argument("--output", help="results JSON")
    args = p.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    items = rng.standard_normal((args.items, args.dim), dtype=np.float32)
    queries = rng.standard_normal((args.queries, args.dim), dtype=np.float32)
    config = dataclasses.replace(defaults, leaves_searched=args.leaves_searched,
                                 reorder=args.reorder)

    start = time.time()
    searcher = ann.build_scann(items, args.k, config)
    build_s = time.time() - start

    exact, _ = ann.brute_force_top_k(items, queries, args.k)
    approx, _ = ann.search(searcher, queries, args.k)
    recall = ann.recall(approx, exact)

    def latency(fn):
        times = []
        for q in queries[:args.latency_queries]:
            t = time.perf_counter()
            fn(q[None])
            times.append((time.perf_counter() - t) * 1000)
        return {"median_ms": round(float(np.median(times)), 3),
                "p95_ms": round(float(np.percentile(times, 95)), 3)}

    scann_latency = latency(lambda q: ann.search(searcher, q, args.k))
    brute_latency = latency(lambda q: ann.brute_force_top_k(items, q, args.k))
    result = {
        "what": "ScaNN vs brute force, random synthetic embeddings (seeded normal)",
        "items": args.items, "dim": args.dim, "queries": args.queries, "k": args.k,
        "seed": args.seed, "scann_config": dataclasses.asdict(config),
        f"recall@{args.k}": round(recall, 4), "build_s": round(build_s, 1),
        "latency_per_query": {"scann": scann_latency, "brute_force_numpy": brute_latency},
        "latency_queries": args.latency_queries,
        "note": "shared 2-core machine, other jobs running: timings are noisy",
        **provenance.record(),
    }
    result["command"] = " ".join(["python", "benchmarks/scann_recall.py", *(argv or sys.argv[1:])])
    print(f"recall@{args.k} {recall:.4f}; build {build_s:.1f}s; per query: ScaNN "
          f"{scann_latency['median_ms']} ms (p95 {scann_latency['p95_ms']}), brute force "
          f"{brute_latency['median_ms']} ms (p95 {brute_latency['p95_ms']})")
    if args.output:
        write_json_atomic(args.output, result)
        print(f"Wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
