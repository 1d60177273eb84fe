#!/usr/bin/env python3
"""Pretraining dynamics side by side: the original S3-Rec code and s3rec-tf.

Both implementations start from the same weights (a freshly initialised
original `S3RecModel`, exported as a state dict and loaded into ours through
`s3rec_tf.original_weights`), train on the same batches (drawn once by the
original `PretrainDataset` under a fixed `random.seed`) with dropout off, and
record per step, before the update: the four per-head losses (per sample),
the SP logits and how many of their sigmoid scores are saturated (> 0.999 or
< 0.001), the gradient norm (all weights, the encoder, the SP head) and the
norm of the SP context vector. The report lists them over windows of steps
and the largest relative gap of each head's loss between the two.

The original code is imported at run time from its folder
(`../shared/tools/original-speed/`, never copied into the project) by a
second process running the torch virtualenv's python (this same file with
`--side original`); the two exchange weights, batches and the per-step
records through `.npz`/`.jsonl` files in a work directory.

Usage (the project's venv; the torch venv comes from `setup.sh` there):
    python benchmarks/compare_original_training.py --name Beauty --users 2000 --steps 300 \\
        [--variants original,softplus] [--output benchmarks/results/sp-dynamics]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Where the records live.
RESULTS = os.path.join(ROOT, "benchmarks", "results")
SHARED = os.path.join(ROOT, "..", "shared")
ORIGINAL_DIR = os.path.join(SHARED, "tools", "original-speed")
KEYS = ("masked_item_sequence", "pos_items", "neg_items",
        "masked_segment_sequence", "pos_segment", "neg_segment")
HEADS = ("aap", "mip", "map", "sp")
WEIGHTS = {"aap": 0.2, "mip": 1.0, "map": 1.0, "sp": 0.5}
SATURATED = 0.999


def saturation(logits) -> float:
    p = 1.0 / (1.0 + np.exp(-np.clip(np.asarray(logits, np.float64), -500, 500)))
    return float(np.mean((p > SATURATED) | (p < 1.0 - SATURATED)))


def sp_stats(pos, neg) -> dict:
    pos, neg = np.asarray(pos, np.float64), np.asarray(neg, np.float64)
    sig = lambda x: 1.0 / (1.0 + np.exp(-np.clip(x, -500, 500)))  # noqa: E731
    return {"sp_pos_logit": float(pos.mean()), "sp_neg_logit": float(neg.mean()),
            "sp_pos_saturated": saturation(pos), "sp_neg_saturated": saturation(neg),
            "sp_gap": float(np.mean(sig(pos) - sig(neg)))}


# ---------------------------------------------------------------- original (torch)

def run_original(args) -> None:
    """Runs in the torch venv: exports init weights and batches, trains the original."""
    import torch
    sys.path.insert(0, os.path.abspath(args.original_dir))
    from datasets import PretrainDataset
    from models import S3RecModel
    from utils import get_item2attribute_json, get_user_seqs_long

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    user_seq, max_item, long_sequence = get_user_seqs_long(
        os.path.join(args.data, f"{args.name}.txt"))
    i2a, max_attribute = get_item2attribute_json(
        os.path.join(args.data, f"{args.name}_item2attributes.json"))
    a = argparse.Namespace(
        hidden_size=args.hidden_size, num_hidden_layers=2, num_attention_heads=2, hidden_act="gelu",
        attention_probs_dropout_prob=0.5, hidden_dropout_prob=0.5, initializer_range=0.02,
        max_seq_length=50, lr=args.lr, pre_batch_size=args.batch_size, mask_p=0.2,
        weight_decay=0.0, adam_beta1=0.9, adam_beta2=0.999, cuda_condition=False,
        item_size=max_item + 2, mask_id=max_item + 1, attribute_size=max_attribute + 1,
        item2attribute=i2a)
    model = S3RecModel(a)
    np.savez(os.path.join(args.work, "init.npz"),
             **{k: v.detach().numpy() for k, v in model.state_dict().items()})
    # The optimiser of the original PretrainTrainer.
    optim = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(a.adam_beta1, a.adam_beta2),
                             weight_decay=a.weight_decay)
    # Dropout off (nothing else differs between train and eval), or the paper's 0.5
    # with --dropout (then the two sides draw different masks: compare statistics).
    model.train(args.dropout)
    dataset = PretrainDataset(a, user_seq[:args.users], long_sequence)

    captured = []
    segment_prediction = model.segment_prediction

    def recording_segment_prediction(context, segment):
        with torch.no_grad():
            captured.append(torch.sum(model.sp_norm(context) * segment, -1).numpy().copy())
        return segment_prediction(context, segment)

    model.segment_prediction = recording_segment_prediction
    order = []
    batches = {k: [] for k in KEYS}
    records = []
    start = time.time()
    for step in range(args.steps):
        if len(order) < args.batch_size:  # a new epoch: the RandomSampler's fresh order
            fresh = list(range(len(dataset)))
            random.shuffle(fresh)
            order += fresh
        index, order = order[:args.batch_size], order[args.batch_size:]
        samples = [dataset[i] for i in index]
        tensors = [torch.stack([s[j] for s in samples]) for j in range(7)]
        for k, t in zip(KEYS, tensors[1:]):
            batches[k].append(t.numpy().astype(np.int32))
        captured.clear()
        parts = model.pretrain(*tensors)
        joint = sum(WEIGHTS[h] * p for h, p in zip(HEADS, parts))
        optim.zero_grad()
        joint.backward()
        groups = {"all": 0.0, "encoder": 0.0, "sp_head": 0.0}
        for name, param in model.named_parameters():
            if param.grad is None:
                continue
            sq = float(torch.sum(param.grad.double() ** 2))
            groups["all"] += sq
            if name.startswith("sp_norm"):
                groups["sp_head"] += sq
            elif not name.split(".")[0].endswith("_norm"):
                groups["encoder"] += sq
        optim.step()
        n = len(index)
        with torch.no_grad():
            context = model.item_encoder(
                model.add_position_embedding(tensors[4]),
                ((tensors[4] == 0).float() * -1e8)[:, None, None, :])[-1][:, -1]
        records.append({"step": step, **{h: float(p.detach()) / n for h, p in zip(HEADS, parts)},
                        **sp_stats(captured[0], captured[1]),
                        **{f"grad_norm_{g}": v ** 0.5 for g, v in groups.items()},
                        "context_norm": float(context.norm(dim=-1).mean())})
        if args.log_every and (step + 1) % args.log_every == 0:
            r = records[-1]
            print(f"original step {step + 1}: " + " ".join(
                f"{h}={r[h]:.4f}" for h in HEADS) + f" sp_sat={r['sp_pos_saturated']:.2f}"
                f" ({time.time() - start:.0f}s)", flush=True)
    np.savez(os.path.join(args.work, "batches.npz"),
             **{k: np.stack(v) for k, v in batches.items()},
             item_size=a.item_size, attribute_size=a.attribute_size)
    np.savez(os.path.join(args.work, "final.npz"),
             **{k: v.detach().numpy() for k, v in model.state_dict().items()})
    with open(os.path.join(args.work, "original.jsonl"), "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    print(f"original: {args.steps} steps in {time.time() - start:.0f}s", flush=True)


# ---------------------------------------------------------------- ours (tensorflow)

def _pretrainer(data, weights, variant: dict, dropout: float = 0.0):
    from s3rec_tf import original_weights as ow
    from s3rec_tf.layers import SequenceEncoder
    from s3rec_tf.models import S3RecPretrainer
    cfg = ow.encoder_config_from_weights(weights)
    encoder = SequenceEncoder(**cfg, dropout=dropout, attention_dropout=dropout)
    model = S3RecPretrainer(encoder, data.attribute_table(), **variant)
    ow.load_into_pretrainer(model, weights)
    return model


def torch_style_adam(learning_rate: float):
    """Adam as PyTorch orders it: epsilon added after the bias correction.

    Keras adds epsilon to the uncorrected `sqrt(v)`, which amounts to an
    epsilon `1 / sqrt(1 - beta_2^t)` times larger (31.6x at step 1): a
    measuring instrument here, to see whether that placement matters.
    """
    import tensorflow as tf
    from keras import ops

    from s3rec_tf.training import DenseGradientAdam

    class TorchStyleAdam(DenseGradientAdam):
        def update_step(self, gradient, variable, learning_rate):
            gradient = tf.convert_to_tensor(gradient)
            lr = ops.cast(learning_rate, variable.dtype)
            gradient = ops.cast(gradient, variable.dtype)
            step = ops.cast(self.iterations + 1, variable.dtype)
            correction_1 = 1 - ops.power(ops.cast(self.beta_1, variable.dtype), step)
            correction_2 = 1 - ops.power(ops.cast(self.beta_2, variable.dtype), step)
            m = self._momentums[self._get_variable_index(variable)]
            v = self._velocities[self._get_variable_index(variable)]
            self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
            self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v),
                                            1 - self.beta_2))
            denominator = ops.add(ops.divide(ops.sqrt(v), ops.sqrt(correction_2)), self.epsilon)
            self.assign_sub(variable, ops.divide(ops.multiply(m, lr / correction_1),
                                                 denominator))

    return TorchStyleAdam(learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8)


def run_ours(args, data, batches, init, final, name: str, variant: dict) -> list:
    """Trains our pretrainer on the original's batches; one record per step."""
    import tensorflow as tf

    from s3rec_tf.training import adam
    import keras
    variant = dict(variant)
    optimizer = {"adam": adam, "torch_adam": torch_style_adam,
                 "keras_adam": lambda lr: keras.optimizers.Adam(lr, epsilon=1e-8)}[
        variant.pop("optimizer", "adam")](args.lr)
    model = _pretrainer(data, init, variant, 0.5 if args.dropout else 0.0)
    variables = model.trainable_variables
    optimizer.build(variables)
    encoder_ids = {id(v) for v in model.encoder.trainable_variables}
    sp_ids = {id(v) for v in model.sp_dense.trainable_variables}

    @tf.function(reduce_retracing=True)
    def step(batch):
        # `S3RecPretrainer.train_step`, plus what the report needs.
        with tf.GradientTape() as tape:
            parts = model.compute_losses(batch, training=args.dropout)
            total = model._weighted(parts)
        grads = tape.gradient(total, variables)
        norms = {g: tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(tf.convert_to_tensor(x)))
                                      for x, v in zip(grads, variables) if keep(v)]))
                 for g, keep in (("all", lambda v: True),
                                 ("encoder", lambda v: id(v) in encoder_ids),
                                 ("sp_head", lambda v: id(v) in sp_ids))}
        pos, neg = model.segment_logits(batch, training=args.dropout)
        context = model.encoder(batch["masked_segment_sequence"], last_only=True)[:, -1]
        optimizer.apply(grads, variables)
        return parts, norms, pos, neg, tf.reduce_mean(tf.norm(context, axis=-1))

    records = []
    start = time.time()
    steps = batches["pos_items"].shape[0]
    for i in range(steps):
        batch = {k: tf.constant(batches[k][i]) for k in KEYS}
        parts, norms, pos, neg, context_norm = step(batch)
        n = batches["pos_items"].shape[1]
        records.append({"step": i, **{h: float(parts[h]) / n for h in HEADS},
                        **sp_stats(pos.numpy(), neg.numpy()),
                        **{f"grad_norm_{g}": float(v) for g, v in norms.items()},
                        "context_norm": float(context_norm)})
        if args.log_every and (i + 1) % args.log_every == 0:
            r = records[-1]
            print(f"ours[{name}] step {i + 1}: " + " ".join(f"{h}={r[h]:.4f}" for h in HEADS) +
                  f" sp_sat={r['sp_pos_saturated']:.2f} ({time.time() - start:.0f}s)",
                  flush=True)
    # Weights after training against the original's.
    reference = _pretrainer(data, final, variant)
    errors = []
    for a, b in zip(model.weights, reference.weights):
        if a.dtype == "float32":
            a, b = np.asarray(a), np.asarray(b)
            errors.append(float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12)))
    records[-1]["final_weights_max_relative_error"] = max(errors)
    records[-1]["final_weights_median_relative_error"] = float(np.median(errors))
    return records


# ---------------------------------------------------------------- report

def windows(records, size):
    for lo in range(0, len(records), size):
        chunk = records[lo:lo + size]
        yield lo, lo + len(chunk), {k: float(np.mean([r[k] for r in chunk]))
                                    for k in chunk[0] if k != "step" and
                                    all(k in r for r in chunk)}


def relative_gaps(ours, original):
    """Per head: max over steps of |ours - original| / original."""
    return {h: float(max(abs(a[h] - b[h]) / max(abs(b[h]), 1e-12)
                         for a, b in zip(ours, original))) for h in HEADS}


def report(args, original, ours: dict, meta: dict) -> str:
    lines = [f"# Pretraining dynamics: original S3-Rec vs s3rec-tf on {args.name}",
             "", *[f"{k}: {v}" for k, v in meta.items()], ""]
    cols = ("aap", "mip", "map", "sp", "sp_pos_saturated", "sp_neg_saturated", "sp_gap",
            "sp_pos_logit", "sp_neg_logit", "grad_norm_all", "grad_norm_encoder",
            "grad_norm_sp_head", "context_norm")
    header = f"{'steps':>9} {'run':<28}" + "".join(f"{c[:12]:>13}" for c in cols)
    lines += ["Means over windows of steps, before each update (losses per sample; "
              "saturated: share of sigmoid(SP logit) beyond 0.999 or below 0.001).", "",
              header]
    runs = {"original": original, **{f"ours:{k}": v for k, v in ours.items()}}
    per_run = {name: list(windows(rec, args.window)) for name, rec in runs.items()}
    for w in range(len(per_run["original"])):
        for name, rows in per_run.items():
            lo, hi, mean = rows[w]
            lines.append(f"{f'{lo}-{hi - 1}':>9} {name:<28}" +
                         "".join(f"{mean[c]:>13.4g}" for c in cols))
        lines.append("")
    lines.append("Largest relative gap of each head's per-step loss to the original's "
                 f"(first {args.early} steps | all {len(original)} steps), and weights "
                 "after the last step:")
    for name, rec in ours.items():
        early = relative_gaps(rec[:args.early], original[:args.early])
        full = relative_gaps(rec, original)
        last = rec[-1]
        lines.append(f"  {name:<26} " + "  ".join(
            f"{h} {early[h]:.1e} | {full[h]:.1e}" for h in HEADS) +
            f"   weights max rel err {last['final_weights_max_relative_error']:.1e}"
            f" (median {last['final_weights_median_relative_error']:.1e})")
    return "\n".join(lines) + "\n"


def torch_python(path: str | None) -> str:
    if path:
        return path
    out = subprocess.run(["bash", os.path.join(ORIGINAL_DIR, "setup.sh")], check=True,
                         capture_output=True, text=True).stdout.strip().splitlines()
    return out[-1]


def parse_variants(text: str) -> dict:
    """`original,softplus+torch_adam` -> `{name: settings}`.

    Each variant is an attribute BCE mode (`s3rec_tf.losses.ATTRIBUTE_BCE_MODES`),
    optionally with another optimiser than `s3rec_tf.training.adam`:
    `+torch_adam` (also epsilon placed as PyTorch does) or `+keras_adam`
    (plain `keras.optimizers.Adam`, which squares an embedding gradient's
    slices before summing duplicate rows).
    """
    from s3rec_tf.losses import ATTRIBUTE_BCE_MODES
    out = {}
    for name in text.split(","):
        mode, *extra = name.split("+")
        if mode not in ATTRIBUTE_BCE_MODES or len(extra) > 1 or \
                set(extra) - {"torch_adam", "keras_adam"}:
            raise SystemExit(f"--variants: unknown {name!r}; expected one of "
                             f"{ATTRIBUTE_BCE_MODES}, optionally with +torch_adam or +keras_adam")
        out[name] = {"attribute_bce": mode, **({"optimizer": extra[0]} if extra else {})}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--side", choices=("driver", "original"), default="driver")
    parser.add_argument("--data", default=os.path.join(SHARED, "data", "s3rec"))
    parser.add_argument("--name", default="Beauty")
    parser.add_argument("--users", type=int, default=2000,
                        help="use the first N users' pretraining samples")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="threads of each side (torch with 2 threads on a busy 2-core "
                             "machine runs ~10x slower than with 1)")
    parser.add_argument("--variants", default="original,softplus",
                        help="our attribute BCE modes to run (s3rec_tf.losses.ATTRIBUTE_BCE_MODES)")
    parser.add_argument("--window", type=int, default=25)
    parser.add_argument("--early", type=int, default=50)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--original-dir", default=ORIGINAL_DIR)
    parser.add_argument("--torch-python", default=None,
                        help="python of the torch venv (default: from setup.sh)")
    parser.add_argument("--work", default=None, help="exchange directory (default: a temp dir)")
    parser.add_argument("--dropout", action="store_true",
                        help="the paper's dropout 0.5 in both (masks differ: compare statistics)")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the original's run already in --work (same arguments)")
    parser.add_argument("--output", default=os.path.join(RESULTS, "sp-dynamics"))
    args = parser.parse_args(argv)
    if args.side == "original":
        run_original(args)
        return 0

    sys.path.insert(0, ROOT)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    variants = parse_variants(args.variants)
    work = args.work or tempfile.mkdtemp(prefix="sp-dynamics-")
    os.makedirs(work, exist_ok=True)
    python = torch_python(args.torch_python)
    command = [python, os.path.abspath(__file__), "--side", "original", "--work", work,
               *[f"--{k.replace('_', '-')}={getattr(args, k)}" for k in
                 ("data", "name", "users", "steps", "batch_size", "lr", "hidden_size", "seed",
                  "threads",
                  "log_every", "original_dir")], *(["--dropout"] if args.dropout else [])]
    started = time.time()
    if not (args.reuse and os.path.exists(os.path.join(work, "original.jsonl"))):
        subprocess.run(command, check=True)
    original_wall = time.time() - started

    import tensorflow as tf

    from s3rec_tf import original_weights as ow
    from s3rec_tf import provenance, runtime
    from s3rec_tf.data.reader import read_dataset
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    data = read_dataset(args.data, args.name)
    batches = ow.read_npz(os.path.join(work, "batches.npz"))
    if (int(batches["item_size"]), int(batches["attribute_size"])) != \
            (data.item_size, data.attribute_size):
        raise SystemExit("vocabulary differs between the original's reading and ours")
    init = ow.read_npz(os.path.join(work, "init.npz"))
    final = ow.read_npz(os.path.join(work, "final.npz"))
    with open(os.path.join(work, "original.jsonl")) as f:
        original = [json.loads(line) for line in f]
    ours, walls = {}, {"original": round(original_wall, 1)}
    for name, variant in variants.items():
        t = time.time()
        ours[name] = run_ours(args, data, batches, init, final, name, variant)
        walls[f"ours:{name}"] = round(time.time() - t, 1)

    meta = {"command": "python benchmarks/compare_original_training.py " + " ".join(
                sys.argv[1:] if argv is None else argv),
            "commit": provenance.git_commit(ROOT), "machine": provenance.machine(),
            "data": f"{args.name}: first {args.users} users' pretraining samples, batches of "
                    f"{args.batch_size} drawn by the original PretrainDataset "
                    f"(random.seed({args.seed}), torch.manual_seed({args.seed}) init)",
            "setup": f"same initial weights, same batches, dropout "
                     f"{'0.5 (masks differ)' if args.dropout else 'off'}, Adam lr {args.lr}",
            "variants": {k: v for k, v in variants.items()}, "wall_s": walls,
            "runtime": runtime.settings()}
    os.makedirs(args.output, exist_ok=True)
    text = report(args, original, ours, meta)
    stem = os.path.join(args.output, args.name + ("-dropout" if args.dropout else ""))
    with open(stem + ".txt", "w") as f:
        f.write(text)
    with open(stem + ".json", "w") as f:
        json.dump({**meta, "gaps": {k: relative_gaps(v, original) for k, v in ours.items()},
                   "original": original, "ours": ours}, f)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
