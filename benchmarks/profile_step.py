#!/usr/bin/env python3
"""Where a training step's time goes: a TensorFlow profiler trace, summed by op.

Runs `--steps` training steps of the paper's configuration on real batches
(the step function alone; batches are built beforehand), traces them with
`tf.profiler`, and prints the kernel time per step by op type and by model
part, summed over the CPU's threads, next to the wall time per step. Then how
much of the traced span ran no kernel, one, or several at once, and the ops
that ran alone (the serial parts of a step, where a core idled).

Usage:
    python benchmarks/profile_step.py --name LastFM [--work pretrain|bce|ce|sampled-ce]
        [--data ../shared/data/s3rec] [--intra-op-threads auto] [--inter-op-threads auto]
        [--onednn auto|on|off]

`--work`: `pretrain` (the default), or a fine-tuning loss; the CPU settings are
those the command line uses for that work (`s3rec_tf.runtime`).
"""

import argparse
import collections
import glob
import os
import re
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "s3rec"))
    parser.add_argument("--name", default="LastFM")
    parser.add_argument("--work", default="pretrain")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--intra-op-threads", default="auto")
    parser.add_argument("--inter-op-threads", default="auto")
    parser.add_argument("--onednn", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)

    import s3rec_tf  # noqa: F401
    from s3rec_tf import runtime
    try:
        workload = runtime.training_workload(args.work)
    except ValueError as e:
        parser.error(f"--work: {e}")
    settings = runtime.configure(workload, args.intra_op_threads, args.inter_op_threads,
                                 {"on": True, "off": False}.get(args.onednn, "auto"))
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    from s3rec_tf.bench import training_case
    from s3rec_tf.data.reader import read_dataset

    data = read_dataset(args.data, args.name)
    model, ds, batch_size, unit = training_case(data, args.work, 10 + args.steps)
    batches = list(ds.take(10 + args.steps))
    step = tf.function(model.train_step, reduce_retracing=True)
    for b in batches[:10]:
        step(b)
    with tempfile.TemporaryDirectory() as logdir:
        t0 = time.perf_counter()
        for b in batches[10:]:
            step(b)
        untraced = (time.perf_counter() - t0) / args.steps
        tf.profiler.experimental.start(logdir)
        t0 = time.perf_counter()
        for b in batches[10:]:
            step(b)
        traced = (time.perf_counter() - t0) / args.steps
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        with open(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0],
                  "rb") as f:
            space.ParseFromString(f.read())

    by_type, by_part = collections.Counter(), collections.Counter()
    intervals = []
    plane = next(p for p in space.planes if p.name == "/host:CPU")
    for line in plane.lines:
        for event in line.events:
            name = plane.event_metadata[event.metadata_id].name
            if ":" not in name or "::" in name or " " in name:  # executor/Python events
                continue
            start = line.timestamp_ns * 1000 + event.offset_ps
            intervals.append((start, start + event.duration_ps, name))
            scope, op_type = name.rsplit(":", 1)
            by_type[op_type] += event.duration_ps
            part = "gradient" if scope.startswith("gradient_tape") else "forward"
            if "dropout" in scope:
                part += ", dropout"
            elif "transformer_block" in scope or "item_position_embedding" in scope:
                part += ", encoder"
            elif scope.startswith(("adam", "Adam")):
                part = "optimizer"
            else:
                part += ", heads and losses"
            by_part[part] += event.duration_ps
    total = sum(by_type.values())
    ms = 1e-9 / args.steps
    print(f"{data.name}, {args.work}: settings {settings}")
    print(f"wall time per step: {untraced * 1e3:.1f} ms ({batch_size / untraced:.0f} {unit}); "
          f"traced {traced * 1e3:.1f} ms")
    print(f"kernel time per step, summed over threads: {total * ms:.1f} ms")
    print("\n| part | ms/step | share |\n|---|---|---|")
    for part, ps in by_part.most_common():
        print(f"| {part} | {ps * ms:.1f} | {ps / total:.0%} |")
    print("\n| op type | ms/step | share |\n|---|---|---|")
    for op_type, ps in by_type.most_common(args.top):
        print(f"| {re.sub(r'^_', '', op_type)} | {ps * ms:.2f} | {ps / total:.1%} |")
    busy, alone = concurrency(intervals)
    span = sum(busy.values())
    print(f"\ntraced span per step: {span * ms:.1f} ms")
    print("\n| kernels running at once | ms/step | share of the span |\n|---|---|---|")
    for count in sorted(busy):
        print(f"| {count} | {busy[count] * ms:.1f} | {busy[count] / span:.1%} |")
    print("\n| op running alone | ms/step |\n|---|---|")
    for name, ps in alone.most_common(args.top):
        print(f"| {name} | {ps * ms:.2f} |")
    return 0


def concurrency(intervals):
    """How many kernels ran at once, over the span of `(start, end, name)` intervals.

    Returns:
        `(busy, alone)`: Counters of time by the number of kernels running
        (0 for gaps) and, for the stretches where exactly one ran, by its name.
    """
    edges = sorted([(start, 1, i) for i, (start, _, _) in enumerate(intervals)]
                   + [(end, -1, i) for i, (_, end, _) in enumerate(intervals)])
    busy, alone, running = collections.Counter(), collections.Counter(), set()
    last = edges[0][0] if edges else 0
    for time_ps, change, i in edges:
        if time_ps > last:
            busy[len(running)] += time_ps - last
            if len(running) == 1:
                alone[intervals[next(iter(running))][2]] += time_ps - last
        last = time_ps
        if change > 0:
            running.add(i)
        else:
            running.discard(i)
    return busy, alone


if __name__ == "__main__":
    sys.exit(main())
