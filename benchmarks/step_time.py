#!/usr/bin/env python3
"""Throughput of one training step alone, on fixed batches: for A/B checks of a speed change.

Builds `--warmup + --steps` batches of the paper's configuration first, then
times the model's `train_step` (one `tf.function`, as Keras compiles it) in
blocks of 10 steps, `--rounds` passes over the batches, and prints the median
block's throughput. The input pipeline and Keras's `fit` loop are left out, so
the figure is the step's own cost. Run it from two checkouts in turn, under the
same load, to measure what a change gains:

    PYTHONPATH=/path/to/checkout python benchmarks/step_time.py --work bce --name Beauty

`--work`: `pretrain`, a fine-tuning loss (`bce`, `ce`, `sampled-ce`), or
`evaluate`: full-ranking evaluation of the test split by an untrained model (each
pass timed whole, `--rounds` x 5 passes after one warm-up pass); the CPU settings are
those the command line uses for that work (`s3rec_tf.runtime`).
"""

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.append(ROOT)  # a PYTHONPATH checkout comes first


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "s3rec"))
    parser.add_argument("--name", default="Beauty")
    parser.add_argument("--work", default="bce")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)

    import s3rec_tf
    from s3rec_tf import runtime
    if args.work == "evaluate":
        return _evaluate(args)
    try:
        workload = runtime.training_workload(args.work)
    except ValueError as e:
        parser.error(f"--work: {e}")
    runtime.configure(workload)
    import tensorflow as tf

    from s3rec_tf.bench import training_case
    from s3rec_tf.data.reader import read_dataset

    count = args.warmup + args.steps
    model, ds, batch_size, unit = training_case(read_dataset(args.data, args.name),
                                                args.work, count)
    batches = list(ds.take(count))
    step = tf.function(model.train_step, reduce_retracing=True)
    for batch in batches[:args.warmup]:
        step(batch)
    timed, blocks = batches[args.warmup:], []
    for _ in range(args.rounds):
        for lo in range(0, len(timed), 10):
            t0 = time.perf_counter()
            for batch in timed[lo:lo + 10]:
                step(batch)
            int(model.optimizer.iterations.numpy())  # waits for the steps
            blocks.append((time.perf_counter() - t0) / len(timed[lo:lo + 10]))
    print(f"{args.work}/{args.name}: {batch_size / statistics.median(blocks):.0f} {unit} "
          f"(median of {len(blocks)} blocks of up to 10 steps; s3rec_tf from "
          f"{os.path.dirname(os.path.dirname(os.path.abspath(s3rec_tf.__file__)))})")
    return 0


def _evaluate(args) -> int:
    import s3rec_tf
    from s3rec_tf import runtime
    runtime.configure("default")  # as `s3rec-tf evaluate`
    from s3rec_tf.data import inputs
    from s3rec_tf.data.reader import read_dataset
    from s3rec_tf.evaluation import RankingEvaluator
    from s3rec_tf.layers import SequenceEncoder
    from s3rec_tf.models import NextItemModel

    data = read_dataset(args.data, args.name)
    arrays = inputs.eval_arrays(data, "test")
    evaluator = RankingEvaluator(NextItemModel(SequenceEncoder(data.num_items,
                                                               data.num_attributes)))
    evaluator.ranks(arrays, "full")  # traces every batch shape
    passes = []
    for _ in range(args.rounds * 5):
        t0 = time.perf_counter()
        evaluator.ranks(arrays, "full")
        passes.append(time.perf_counter() - t0)
    print(f"evaluate/{args.name}: {len(arrays.answers) / statistics.median(passes):.0f} "
          f"users/s (median of {len(passes)} full-ranking passes over the test split; "
          f"s3rec_tf from {os.path.dirname(os.path.dirname(os.path.abspath(s3rec_tf.__file__)))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
