"""The commands of `s3rec-tf`: one function per command, `run_<command>(args) -> int`.

`run` checks every output path (`s3rec_tf.outputs`) and the inputs that can
be checked without reading them, before any work (the decisions go to
`args.decisions`); configures the CPU runtime; then calls the command's
function from `COMMANDS`. A function
returns the exit code (0: done; 1: `parity` failed, or `recommend` had
nothing to recommend) and raises `S3RecError` / `ValueError` for bad input,
which `s3rec_tf.cli.main` prints as one line with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

from s3rec_tf import outputs

#: The file that marks a folder as `s3rec-tf synth`'s output (its parameters).
SYNTH_RECORD = "synth.json"
#: What marks an export's version folder as this project's.
EXPORT_MARKER = os.path.join("assets.extra", "manifest.json")


# ------------------------------------------------------------------ helpers

def _read(args):
    from s3rec_tf.data import prepared
    from s3rec_tf.data.reader import read_dataset
    # reading writes nothing: a run saves drawn negatives with its output
    flag = ("--shuffle-buffer" if getattr(args, "shuffle_buffer", 0) else
            "--stream" if getattr(args, "stream", False) else None)
    if flag:  # streamed: users are read as they are needed
        from s3rec_tf.errors import DataError
        if not prepared.is_prepared(args.data):
            raise DataError(args.data, f"{flag} streams a prepared directory "
                                       "(the output of `s3rec-tf prepare`); this is not one")
        data = prepared.open_prepared(args.data, args.name, stream=True)
        print(f"Streaming {data.name} from {args.data}: {data.num_users} users, "
              f"{data.num_items} items, {data.num_attributes} attributes; negatives: "
              f"{data.sample_source}", flush=True)
        return data
    if prepared.is_prepared(args.data):  # `s3rec-tf prepare` output: the same contract
        data = prepared.read_prepared(args.data, args.name)
    else:
        data = read_dataset(args.data, args.name, negatives_seed=args.negatives_seed)
    print(f"Read {data.name}: {data.num_users} users, {data.num_items} items, "
          f"{data.num_interactions()} interactions, {data.num_attributes} attributes "
          f"({data.users_too_short} users with fewer than 3 items dropped); "
          f"negatives: {data.sample_source}", flush=True)
    if data.attribute_rows_dropped:
        print(f"s3rec-tf {getattr(args, 'command', 'read')}: "
              f"{os.path.join(args.data, args.name + '_item2attributes.json')}: "
              f"{data.attribute_rows_dropped} attribute row(s) dropped: their items are above "
              f"the largest item id of {args.name}.txt ({data.num_items})", file=sys.stderr,
              flush=True)
    return data


def user_history(data_dir: str, name: str, user: str) -> list:
    """The item ids of `user` in the paper format's `<data_dir>/<name>.txt`, oldest first.

    Raises:
        DataError: the file is missing or malformed, or has no such user.
    """
    from s3rec_tf.data.reader import user_histories
    from s3rec_tf.errors import DataError
    for user_id, history in user_histories(data_dir, name):
        if user_id == user.strip():
            return history
    raise DataError(os.path.join(data_dir, f"{name}.txt"),
                    f"no user {user!r} (the first token of each line is the user id)")


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


def _pretrained(args):
    return None if args.pretrained.lower() == "none" else args.pretrained


# ------------------------------------------------------ checks before work

def check_outputs(args) -> dict:
    """Every output path of `args.command`, checked before any work (`s3rec_tf.outputs`).

    Also the inputs that are cheap to check without reading them (a missing
    pretrained model or weights file).

    Returns:
        `{path: decision}` for each output folder or file the command writes.

    Raises:
        OutputError: an output that may not be written; ArtifactError /
            DataError: a missing input.
    """
    from s3rec_tf.artifacts import MANIFEST
    from s3rec_tf.errors import ArtifactError, DataError, OutputError
    command, overwrite = args.command, getattr(args, "overwrite", False)
    found = {}

    def folder(path, inputs, markers, resumable=False):
        found[path] = outputs.check_output_dir(path, inputs, overwrite, resumable, markers)

    def record(path, inputs, replace=overwrite):
        if path:
            found[path] = outputs.check_output_file(path, inputs, replace)

    if command == "synth":
        folder(args.output, (), (SYNTH_RECORD,))
    elif command == "prepare":
        from s3rec_tf.data.prepared import STATS
        folder(args.output, (args.input,), (STATS,))
    elif command in ("pretrain", "finetune"):
        pretrained = _pretrained(args) if command == "finetune" else None
        if pretrained and not os.path.exists(pretrained):
            raise ArtifactError(f"{pretrained}: pretrained model not found (pass "
                                f"--pretrained none to train without pretraining)")
        inputs = (args.data, pretrained)
        folder(args.output, inputs, (os.path.join("best", MANIFEST) if command == "finetune"
                                     else MANIFEST,), resumable=True)
        if args.tensorboard:
            if os.path.lexists(args.tensorboard) and not os.path.isdir(args.tensorboard):
                raise OutputError(args.tensorboard, "is a file, expected a folder for the "
                                                    "TensorBoard logs")
            outputs.check_inputs(args.tensorboard, inputs)
        if command == "finetune":
            record(args.record, inputs)
    elif command == "evaluate":
        if args.output:
            record(args.output, (args.data, args.model))
        else:  # the one file evaluate adds to the model folder it reads
            record(os.path.join(resolve_model_dir(args.model), "evaluation.json"),
                   (args.data,), replace=True)
    elif command == "export":
        if os.path.lexists(args.output) and not os.path.isdir(args.output):
            raise OutputError(args.output, "is a file, expected the serving base directory")
        if args.version is None:
            args.version = int(time.time())
        folder(os.path.join(args.output, str(args.version)), (args.model, args.vocabulary),
               (EXPORT_MARKER,))
    elif command == "recommend-batch":
        from s3rec_tf.batch import SUMMARY
        folder(args.output, (args.model, args.data), (SUMMARY,))
        record(args.record, (args.model, args.data))
    elif command == "import-weights":
        if not os.path.isfile(args.weights):
            raise DataError(args.weights, "file not found")
        folder(args.output, (args.weights, args.data), (MANIFEST,))
    return found


def _replace(args, path: str) -> bool:
    """Whether the checks approved replacing the earlier output at `path`."""
    return args.decisions[path] == outputs.REPLACE


def _replaced(args) -> None:
    """Says on stderr which earlier outputs the command replaced."""
    for path, decision in args.decisions.items():
        if decision == outputs.REPLACE:
            print(f"s3rec-tf {args.command}: replaced {path} (an earlier s3rec-tf output, "
                  f"--overwrite)", file=sys.stderr)


def _workload(args) -> str:
    if args.command == "pretrain":
        return "pretrain"
    if args.command == "finetune":
        from s3rec_tf.runtime import training_workload  # imports no TensorFlow
        return training_workload(args.loss)
    return "default"


# ----------------------------------------------------------------- commands

def run_synth(args) -> int:
    from s3rec_tf.data import synthetic
    from s3rec_tf.io import write_atomic_dir, write_json_atomic
    users = (synthetic.users_for(args.interactions, args.min_length, args.max_length)
             if args.interactions else args.users)
    # users are written as they are drawn: memory bounded by the catalogue
    attrs, seqs = synthetic.iter_generate(users, args.items, args.topics, args.attributes,
                                          args.min_length, args.max_length, args.seed,
                                          repeat_rate=args.repeat_rate)
    written = {}

    def fill(tmp):
        written.update(synthetic.write(tmp, seqs, attrs, args.name))
        write_json_atomic(os.path.join(tmp, SYNTH_RECORD), {
            "name": args.name, "users": written["users"], "items": args.items,
            "topics": args.topics, "attributes": args.attributes,
            "min_length": args.min_length, "max_length": args.max_length,
            "seed": args.seed, "repeat_rate": args.repeat_rate,
            "interactions": written["interactions"]})

    write_atomic_dir(args.output, fill, replace=_replace(args, args.output))
    paths = {k: os.path.join(args.output, os.path.basename(written[k]))
             for k in ("sequences", "attributes")}
    print(f"Wrote {written['users']} users, {written['interactions']} interactions, "
          f"{args.items} items: {paths['sequences']}, {paths['attributes']}")
    return 0


def run_parity(args) -> int:
    from s3rec_tf.parity import run_parity as compare
    errors = compare(args.weights, args.golden)
    worst = max(errors.values())
    for k, v in errors.items():
        print(f"{k:<26} max relative error {v:.3e}  "
              f"{'ok' if v <= args.tolerance else 'FAIL'}")
    print(f"parity {'passed' if worst <= args.tolerance else 'FAILED'} "
          f"(tolerance {args.tolerance:g})")
    return 0 if worst <= args.tolerance else 1


def run_export(args) -> int:
    from s3rec_tf import ids, serving
    vocabulary = ids.read_vocabulary(args.vocabulary) if args.vocabulary else None
    path = serving.export_serving_model(
        resolve_model_dir(args.model), args.output, args.version, vocabulary, args.k,
        replace=_replace(args, os.path.join(args.output, str(args.version))))
    print(f"Exported {path}")
    return 0


def run_recommend(args) -> int:
    from s3rec_tf import serving
    history = args.items if args.user is None else user_history(args.data, args.name,
                                                                args.user)
    # exit 0: results printed; 1: nothing left to recommend; 2: bad input
    rec = serving.Recommender(args.model, index=args.index)
    answer = rec.query([history], args.k, not args.include_history)[0]
    if args.json:
        print(json.dumps({"user": args.user, "history_length": len(history),
                          "items": [i for i, _ in answer["items"]],
                          "scores": [s for _, s in answer["items"]],
                          **{k: v for k, v in answer.items() if k != "items"}}))
    else:
        for item, score in answer["items"]:
            print(f"{item} {score:.6f}")
    if answer["num_unknown"]:
        print(f"s3rec-tf recommend: {answer['num_unknown']} of {len(history)} given "
              f"id(s) are unknown to the model and were ignored", file=sys.stderr)
    if not answer["items"]:
        print("s3rec-tf recommend: nothing to recommend: every item of the catalogue is "
              "in the history (--include-history allows them)", file=sys.stderr)
        return 1
    return 0


def run_recommend_batch(args) -> int:
    from s3rec_tf import batch, provenance  # noqa: F401  (records the commit at start)
    from s3rec_tf.io import write_json_atomic
    summary = batch.recommend_batch(args.data, args.name, args.model, args.output, args.k,
                                    not args.include_history, args.index, args.beam_args,
                                    args.batch_size or batch.DEFAULT_BATCH_SIZE,
                                    replace=_replace(args, args.output))
    print(json.dumps({k: summary[k] for k in ("users", "k", "index", "elapsed_s",
                                               "users_per_s")}, sort_keys=True))
    if args.record:
        write_json_atomic(args.record, {**summary, **provenance.record()})
        print(f"Recorded {args.record}")
    print(f"Wrote {args.output}")
    return 0


def run_import_weights(args) -> int:
    from s3rec_tf.training import import_original_weights
    data = _read(argparse.Namespace(**{**vars(args), "output": None,
                                       "negatives_seed": 0})) if args.data else None
    import_original_weights(args.weights, args.output, data, args.num_heads,
                            replace=_replace(args, args.output))
    print(f"Imported {args.weights} -> {args.output}")
    return 0


def run_prepare(args) -> int:
    from s3rec_tf.data import prepare as preprocess
    stats = preprocess.prepare(args.input, args.output, preprocess.PrepareConfig(
        input_format=args.input_format, name=args.name, k_core=args.k_core,
        strict=args.strict, seed=args.seed), args.beam_args,
        replace=_replace(args, args.output))
    print(json.dumps({k: v for k, v in stats.items() if k not in ("config", "input")},
                     sort_keys=True))
    print(f"Prepared {args.output}")
    return 0


def run_pretrain(args) -> int:
    from s3rec_tf.training import run_pretraining
    data = _read(args)
    encoder_config, pretrain_config = args.configs
    with outputs.replacing(args.output, args.decisions[args.output]):
        run_pretraining(data, args.output, encoder_config, pretrain_config,
                        tensorboard_dir=args.tensorboard)
    return 0


def run_finetune(args) -> int:
    from s3rec_tf import provenance  # noqa: F401  (records the commit at start)
    from s3rec_tf.io import write_json_atomic
    from s3rec_tf.training import run_finetuning
    data = _read(args)
    start = time.time()
    encoder_config, finetune_config = args.configs
    with outputs.replacing(args.output, args.decisions[args.output]):
        summary = run_finetuning(data, args.output, _pretrained(args), encoder_config,
                                 finetune_config, tensorboard_dir=args.tensorboard)
    if summary.get("chief") is False:  # another worker of a multi-worker run
        print("Fine-tuning done on this worker; the chief writes the model and metrics")
        return 0
    if args.record:
        os.makedirs(os.path.dirname(os.path.abspath(args.record)), exist_ok=True)
        write_json_atomic(args.record, {
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


def run_evaluate(args) -> int:
    from s3rec_tf import artifacts, provenance
    from s3rec_tf.io import write_json_atomic
    from s3rec_tf.training import evaluate_model
    model_dir = resolve_model_dir(args.model)
    model, manifest = artifacts.load_next_item_model(model_dir)
    data = _read(argparse.Namespace(**{**vars(args), "output": None}))
    artifacts.check_vocabulary(manifest, artifacts.vocabulary_of(data), f"model {model_dir}")
    protocols = ("full", "sampled") if args.protocol == "both" else (args.protocol,)
    start = time.time()
    results = evaluate_model(model, data, protocols,  # at the model's max_length
                             history_rule=args.history_rule)
    print_metrics(results)
    out = args.output or os.path.join(model_dir, "evaluation.json")
    write_json_atomic(out, {"model": os.path.abspath(model_dir), "dataset": data.name,
                            "metrics": results, "negatives": data.sample_source,
                            "history_rule": args.history_rule,
                            "wall_time_s": round(time.time() - start, 2),
                            **provenance.record()})
    print(f"Wrote {out}")
    return 0


#: command -> its function (`bench` is `s3rec_tf.bench.main`, called by `main`).
COMMANDS = {
    "synth": run_synth, "prepare": run_prepare, "pretrain": run_pretrain,
    "finetune": run_finetune, "evaluate": run_evaluate, "export": run_export,
    "recommend": run_recommend, "recommend-batch": run_recommend_batch,
    "parity": run_parity, "import-weights": run_import_weights,
}


def run(args) -> int:
    """Runs a parsed command line: every check first, then the command."""
    # before any work: nothing is read, trained or written; {path: decision}
    args.decisions = check_outputs(args)
    from s3rec_tf import runtime
    runtime.configure(_workload(args), getattr(args, "intra_op_threads", "auto"),
                      getattr(args, "inter_op_threads", "auto"),
                      {"on": True, "off": False}.get(getattr(args, "onednn", "auto"), "auto"),
                      getattr(args, "precision", "float32"))
    if args.command in ("pretrain", "finetune"):
        from s3rec_tf.training import distribute
        # before any TensorFlow op: a multi-worker strategy configures collective ops
        distribute.distribution(args.configs[1].strategy)
    code = COMMANDS[args.command](args)
    if code == 0:
        _replaced(args)
    return code
