"""The `s3rec-tf` command line.

Every hyperparameter of the paper is a flag with the paper's default. Bad
input prints one line naming the file, line and reason, and exits with 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time


def _add_encoder_flags(p):
    g = p.add_argument_group("encoder (paper defaults)")
    g.add_argument("--hidden-size", type=int, default=64)
    g.add_argument("--num-layers", type=int, default=2)
    g.add_argument("--num-heads", type=int, default=2)
    g.add_argument("--dropout", type=float, default=0.5, help="hidden dropout")
    g.add_argument("--attention-dropout", type=float, default=0.5)
    g.add_argument("--initializer-range", type=float, default=0.02)
    g.add_argument("--max-length", type=int, default=50)


def _add_data_flags(p, output_for_negatives=True):
    p.add_argument("--data", required=True, help="directory with <NAME>.txt and "
                                                 "<NAME>_item2attributes.json")
    p.add_argument("--name", required=True, help="dataset name, e.g. Beauty, LastFM")
    p.add_argument("--negatives-seed", type=int, default=0,
                   help="seed of the 99 sampled negatives when <NAME>_sample.txt is absent")


def _add_runtime_flags(p):
    g = p.add_argument_group("CPU runtime (see s3rec_tf.runtime)")
    g.add_argument("--intra-op-threads", default="auto",
                   help="threads per op (0: TensorFlow's default); auto: the measured best "
                        "for this command (s3rec_tf.runtime.WORKLOADS)")
    g.add_argument("--inter-op-threads", default="auto", help="ops run concurrently")
    g.add_argument("--onednn", choices=("auto", "on", "off"), default="auto",
                   help="TensorFlow's oneDNN kernels; auto: off for pretraining, on otherwise")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s3rec-tf", description="S3-Rec in Keras 3: pretrain, fine-tune, evaluate.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write a seeded synthetic dataset in the S3-Rec format")
    p.add_argument("--output", required=True)
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--items", type=int, default=500)
    p.add_argument("--topics", type=int, default=20)
    p.add_argument("--attributes", type=int, default=60)
    p.add_argument("--min-length", type=int, default=5)
    p.add_argument("--max-length", type=int, default=40)
    p.add_argument("--name", default="Synthetic")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("prepare", help="Beam preprocessing: raw data -> prepared TFRecords")
    p.add_argument("--input", required=True, help="directory with the raw files")
    p.add_argument("--format", dest="input_format", default="s3rec",
                   choices=("s3rec", "csv", "parquet", "recbole"))
    p.add_argument("--name", required=True, help="dataset name (file stem)")
    p.add_argument("--output", required=True)
    p.add_argument("--k-core", type=int, default=0, help="k-core filter (0: off)")
    p.add_argument("--strict", action="store_true",
                   help="fail on the first malformed row instead of dropping and counting it")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled negatives")
    p.add_argument("--beam-arg", action="append", default=None, dest="beam_args",
                   help="a Beam pipeline option, repeatable (default: DirectRunner, "
                        "multi-processing, 2 workers), e.g. --beam-arg=--runner=DataflowRunner")

    p = sub.add_parser("pretrain", help="pretrain with AAP, MIP, MAP and SP")
    _add_runtime_flags(p)
    _add_data_flags(p)
    p.add_argument("--output", required=True)
    _add_encoder_flags(p)
    g = p.add_argument_group("pretraining (paper defaults)")
    g.add_argument("--epochs", type=int, default=150)
    g.add_argument("--batch-size", type=int, default=100)
    g.add_argument("--learning-rate", "--lr", type=float, default=1e-3)
    g.add_argument("--mask-p", type=float, default=0.2)
    g.add_argument("--aap-weight", type=float, default=0.2)
    g.add_argument("--mip-weight", type=float, default=1.0)
    g.add_argument("--map-weight", type=float, default=1.0)
    g.add_argument("--sp-weight", type=float, default=0.5)
    g.add_argument("--save-every", type=int, default=10,
                   help="write a model snapshot epochs-N/ every N epochs")
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--no-trim-padding", dest="trim_padding", action="store_false",
                   help="pad every batch to --max-length as the original does (slower, "
                        "same results)")
    g.add_argument("--jit-compile", action="store_true", help="compile steps with XLA")

    p = sub.add_parser("finetune", help="fine-tune a next-item model")
    _add_runtime_flags(p)
    _add_data_flags(p)
    p.add_argument("--pretrained", required=True,
                   help="pretrained model directory, or 'none' for no pretraining (SASRec)")
    p.add_argument("--output", required=True)
    _add_encoder_flags(p)
    g = p.add_argument_group("fine-tuning (paper defaults)")
    g.add_argument("--loss", choices=("bce", "ce"), default="bce",
                   help="bce: the paper's, one negative per position; ce: full softmax")
    g.add_argument("--epochs", type=int, default=200)
    g.add_argument("--batch-size", type=int, default=256)
    g.add_argument("--learning-rate", "--lr", type=float, default=1e-3)
    g.add_argument("--patience", type=int, default=10)
    g.add_argument("--valid-protocol", choices=("sampled", "full"), default="sampled",
                   help="early stopping on sampled MRR or full-ranking NDCG@20")
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--no-trim-padding", dest="trim_padding", action="store_false")
    g.add_argument("--jit-compile", action="store_true")
    p.add_argument("--record", help="also write a results JSON (metrics, command, seed, "
                                    "commit, machine, wall time) to this path")

    p = sub.add_parser("evaluate", help="rank the validation and test answers")
    _add_runtime_flags(p)
    p.add_argument("--model", required=True, help="fine-tuned model directory")
    _add_data_flags(p)
    p.add_argument("--protocol", choices=("full", "sampled", "both"), default="both")
    p.add_argument("--output", help="JSON file for the metrics "
                                    "(default: <model>/evaluation.json)")

    p = sub.add_parser("export", help="write a TF Serving SavedModel of a fine-tuned model")
    p.add_argument("--model", required=True, help="fine-tuned model directory")
    p.add_argument("--output", required=True, help="serving base dir; writes <output>/<version>")
    p.add_argument("--version", type=int, help="version number (default: Unix time)")
    p.add_argument("--k", type=int, default=10, help="k of the serving_default signature")
    p.add_argument("--vocabulary", help="file with one raw item id per line (line i = item "
                                        "i+1); default: the paper format's ids 1..N")

    p = sub.add_parser("recommend", help="top-k items for a history, from an export")
    p.add_argument("--model", required=True, help="export base or version directory")
    p.add_argument("--items", nargs="+", required=True, help="the history, oldest first")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--include-history", action="store_true",
                   help="allow items of the history in the results")

    sub.add_parser("bench", help="speed benchmarks (see `s3rec-tf bench --help`)",
                   add_help=False)

    p = sub.add_parser("parity", help="compare with the original code's golden outputs")
    p.add_argument("--weights", required=True, help="<Name>-epochs-150.weights.npz")
    p.add_argument("--golden", required=True, help="golden_<Name>.npz")
    p.add_argument("--tolerance", type=float, default=1e-4)

    p = sub.add_parser("import-weights",
                       help="turn the authors' .npz weights into a pretrained model directory")
    p.add_argument("--weights", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--data", help="dataset directory, to record its vocabulary")
    p.add_argument("--name")
    p.add_argument("--num-heads", type=int, default=2)
    return parser


def _read(args):
    from s3rec_tf.data.reader import read_dataset
    # reading writes nothing: a run saves drawn negatives with its output
    data = read_dataset(args.data, args.name, negatives_seed=args.negatives_seed)
    print(f"Read {data.name}: {data.num_users} users, {data.num_items} items, "
          f"{data.num_interactions()} interactions, {data.num_attributes} attributes; "
          f"negatives: {data.sample_source}", flush=True)
    return data


def _encoder_config(args):
    from s3rec_tf.training import EncoderConfig
    return EncoderConfig(hidden_size=args.hidden_size, num_layers=args.num_layers,
                         num_heads=args.num_heads, dropout=args.dropout,
                         attention_dropout=args.attention_dropout,
                         initializer_range=args.initializer_range, max_length=args.max_length)


def _fill(cls, args):
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in vars(args).items() if k in names})


def print_metrics(results: dict) -> None:
    """Prints `{split/protocol: {metric: value}}` as a table."""
    for key, values in results.items():
        print(f"{key:<16}" + "  ".join(f"{k}={v:.4f}" for k, v in values.items()))


def resolve_model_dir(path: str) -> str:
    """A fine-tuning output dir holds the model in `best/`; accept either."""
    from s3rec_tf.artifacts import MANIFEST
    if not os.path.exists(os.path.join(path, MANIFEST)) and \
            os.path.exists(os.path.join(path, "best", MANIFEST)):
        return os.path.join(path, "best")
    return path


def _workload(args) -> str:
    if args.command == "pretrain":
        return "pretrain"
    if args.command == "finetune":
        return f"finetune-{args.loss}"
    return "default"


def run(args) -> int:
    from s3rec_tf import runtime
    runtime.configure(_workload(args), getattr(args, "intra_op_threads", "auto"),
                      getattr(args, "inter_op_threads", "auto"),
                      {"on": True, "off": False}.get(getattr(args, "onednn", "auto"), "auto"))
    if args.command == "synth":
        from s3rec_tf.data import synthetic
        seqs, attrs = synthetic.generate(args.users, args.items, args.topics, args.attributes,
                                         args.min_length, args.max_length, args.seed)
        paths = synthetic.write(args.output, seqs, attrs, args.name)
        print(f"Wrote {len(seqs)} users, {args.items} items: {paths['sequences']}, "
              f"{paths['attributes']}")
        return 0
    if args.command == "parity":
        from s3rec_tf.parity import run_parity
        errors = run_parity(args.weights, args.golden)
        worst = max(errors.values())
        for k, v in errors.items():
            print(f"{k:<26} max relative error {v:.3e}  "
                  f"{'ok' if v <= args.tolerance else 'FAIL'}")
        print(f"parity {'passed' if worst <= args.tolerance else 'FAILED'} "
              f"(tolerance {args.tolerance:g})")
        return 0 if worst <= args.tolerance else 1
    if args.command == "export":
        from s3rec_tf import serving
        vocabulary = serving.read_vocabulary(args.vocabulary) if args.vocabulary else None
        path = serving.export_serving_model(resolve_model_dir(args.model), args.output,
                                            args.version, vocabulary, args.k)
        print(f"Exported {path}")
        return 0
    if args.command == "recommend":
        from s3rec_tf import serving
        # exit 0: results printed; 1: nothing left to recommend; 2: bad input
        rec = serving.Recommender(args.model)
        answer = rec.query([args.items], args.k, not args.include_history)[0]
        for item, score in answer["items"]:
            print(f"{item} {score:.6f}")
        if answer["num_unknown"]:
            print(f"s3rec-tf recommend: {answer['num_unknown']} of {len(args.items)} given "
                  f"id(s) are unknown to the model and were ignored", file=sys.stderr)
        if not answer["items"]:
            print("s3rec-tf recommend: nothing to recommend: every item of the catalogue is "
                  "in the history (--include-history allows them)", file=sys.stderr)
            return 1
        return 0
    if args.command == "import-weights":
        from s3rec_tf.training import import_original_weights
        data = _read(argparse.Namespace(**{**vars(args), "output": None,
                                           "negatives_seed": 0})) if args.data else None
        import_original_weights(args.weights, args.output, data, args.num_heads)
        print(f"Imported {args.weights} -> {args.output}")
        return 0
    if args.command == "prepare":
        from s3rec_tf.data import preprocess
        stats = preprocess.prepare(args.input, args.output, preprocess.PrepareConfig(
            input_format=args.input_format, name=args.name, k_core=args.k_core,
            strict=args.strict, seed=args.seed), args.beam_args)
        print(json.dumps({k: v for k, v in stats.items() if k not in ("config", "input")},
                         sort_keys=True))
        print(f"Prepared {args.output}")
        return 0
    if args.command == "pretrain":
        from s3rec_tf.training import PretrainConfig, run_pretraining
        data = _read(args)
        run_pretraining(data, args.output, _encoder_config(args), _fill(PretrainConfig, args))
        return 0
    if args.command == "finetune":
        from s3rec_tf import provenance  # noqa: F401  (records the commit at start)
        from s3rec_tf.training import FinetuneConfig, run_finetuning
        data = _read(args)
        pretrained = None if args.pretrained.lower() == "none" else args.pretrained
        start = time.time()
        summary = run_finetuning(data, args.output, pretrained, _encoder_config(args),
                                 _fill(FinetuneConfig, args))
        if args.record:
            from s3rec_tf import artifacts, provenance
            os.makedirs(os.path.dirname(os.path.abspath(args.record)), exist_ok=True)
            artifacts.write_json_atomic(args.record, {
                **summary, **provenance.record(),
                "protocols": ["full", "sampled"], "wall_time_s": round(time.time() - start, 1)})
            history = os.path.join(args.output, "history.jsonl")
            if os.path.exists(history):  # per-epoch validation values, for the plots
                stem = args.record[:-5] if args.record.endswith(".json") else args.record
                shutil.copyfile(history, stem + ".history.jsonl")
            print(f"Recorded {args.record}")
        print(f"Best epoch {summary['best_epoch']}; metrics of the best model:")
        print_metrics(summary["metrics"])
        return 0
    if args.command == "evaluate":
        from s3rec_tf import artifacts
        from s3rec_tf.training import evaluate_model
        model_dir = resolve_model_dir(args.model)
        model, manifest = artifacts.load_next_item_model(model_dir)
        data = _read(argparse.Namespace(**{**vars(args), "output": None}))
        artifacts.check_vocabulary(manifest, artifacts.vocabulary_of(data), f"model {model_dir}")
        protocols = ("full", "sampled") if args.protocol == "both" else (args.protocol,)
        start = time.time()
        results = evaluate_model(model, data, protocols,
                                 max_length=manifest["encoder_config"]["max_length"])
        print_metrics(results)
        out = args.output or os.path.join(model_dir, "evaluation.json")
        artifacts.write_json_atomic(out, {"model": os.path.abspath(model_dir),
                                          "dataset": data.name, "metrics": results,
                                          "negatives": data.sample_source,
                                          "wall_time_s": round(time.time() - start, 2)})
        print(f"Wrote {out}")
        return 0
    raise AssertionError(args.command)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:
        from s3rec_tf import bench
        return bench.main(argv[1:])
    args = build_parser().parse_args(argv)
    from s3rec_tf.errors import S3RecError
    try:
        return run(args)
    except S3RecError as e:
        print(f"s3rec-tf {args.command}: error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # argument values rejected by the library
        print(f"s3rec-tf {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"s3rec-tf {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
