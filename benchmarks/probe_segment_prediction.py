#!/usr/bin/env python3
"""How well a pretrained model's Segment Prediction head tells the true segment.

Loads pretrained model directories (`s3rec-tf pretrain` output, its
`epochs-N/` snapshots, or the authors' weights `.npz`) and scores pretraining
samples of a dataset in inference mode (dropout off), with fixed masks and
segments (`--seed`). Per model it prints: the SP loss per sample (the
original's `BCE(sigmoid(sigmoid(pos) - sigmoid(neg)), 1)`; ln 2 = 0.693 when
the head cannot tell, 0.313 at best), the share of samples whose true segment
scores above the random one, the share of saturated scores (sigmoid beyond
0.999 or below 0.001) and the mean logits.

Usage:
    python benchmarks/probe_segment_prediction.py --data ../shared/data/s3rec --name Beauty \\
        --model P/epochs-10 P/epochs-20 ../shared/golden/Beauty-epochs-150.weights.npz \\
        [--samples 2000] [--seed 1] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def probe(model, dataset) -> dict:
    """SP statistics of `model` over the batches of `dataset` (inference mode)."""
    import numpy as np
    import tensorflow as tf

    from s3rec_tf import losses
    pos, neg = [], []
    for batch in dataset:
        p, n = model.segment_logits(batch, training=False)
        pos.append(p.numpy())
        neg.append(n.numpy())
    pos, neg = np.concatenate(pos).astype("float64"), np.concatenate(neg).astype("float64")
    sp = losses.pairwise_sigmoid_loss(tf.constant(pos, tf.float32), tf.constant(neg, tf.float32))
    scores = 1.0 / (1.0 + np.exp(-np.clip(np.concatenate([pos, neg]), -500, 500)))
    return {"samples": int(pos.size), "sp_loss": float(np.mean(sp.numpy())),
            "true_segment_above": float(np.mean(pos > neg)),
            "saturated": float(np.mean((scores > 0.999) | (scores < 0.001))),
            "pos_logit": float(pos.mean()), "neg_logit": float(neg.mean())}


def load(path: str, data, work: str):
    from s3rec_tf import artifacts, training
    if path.endswith(".npz"):
        path = training.import_original_weights(
            path, os.path.join(work, os.path.basename(path)[:-len(".npz")]), data)
    model, _ = artifacts.load_pretrainer(path)
    return model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--model", nargs="+", required=True, metavar="DIR_OR_NPZ")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="also write the statistics here")
    args = parser.parse_args(argv)
    from s3rec_tf import runtime
    runtime.configure("pretrain")
    from s3rec_tf.data import inputs
    from s3rec_tf.data.reader import read_dataset
    data = read_dataset(args.data, args.name)
    arrays = inputs.pretrain_arrays(data, 50)
    dataset = inputs.pretrain_dataset(arrays, 100, seed=args.seed).take(
        math.ceil(args.samples / 100))
    rows = {}
    with tempfile.TemporaryDirectory() as work:
        for path in args.model:
            rows[path] = probe(load(path, data, work), dataset)
            r = rows[path]
            print(f"{path}: sp_loss {r['sp_loss']:.4f}  true segment above "
                  f"{r['true_segment_above']:.3f}  saturated {r['saturated']:.3f}  "
                  f"logits pos {r['pos_logit']:.2f} neg {r['neg_logit']:.2f}  "
                  f"({r['samples']} samples)", flush=True)
    if args.json:
        from s3rec_tf import provenance
        from s3rec_tf.io import write_json_atomic
        write_json_atomic(args.json, {
            "command": " ".join(["python", "benchmarks/probe_segment_prediction.py",
                                 *(argv if argv is not None else sys.argv[1:])]),
            "commit": provenance.git_commit(), "machine": provenance.machine(),
            "seed": args.seed, "models": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
