"""The command line's arguments: types, flags, the per-command parser and `build_parser`.

Every hyperparameter of the paper is a flag generated from the config
dataclasses (`s3rec_tf.config`), with the paper's default, help and range.
Training commands also take `--config FILE` and `--preset`
(preset < file < flags). Every numeric option is range-checked when parsed.
A bad option prints one line naming it, or the file, key and reason, and
exits with 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import typing

from s3rec_tf import config
from s3rec_tf.config import _convert, number_type


# ---------------------------------------------------------------- argument types

def _threads(text):
    """`auto` or a thread count >= 0."""
    if text == "auto":
        return text
    return number_type(int, 0, what="thread count")(text)


_threads.kind = (str, int)
_SEED = number_type(int, 0, config.MAX_SEED, "seed")


def _field_type(cls, field, param):
    """An argparse `type` for a config field: its Python type and its range."""
    kind = typing.get_type_hints(cls)[field.name]

    def parse(text):
        value = _convert(kind, text)
        try:
            return config.check_value(cls, field.name, value)
        except config.ConfigError as e:
            raise argparse.ArgumentTypeError(f"{e.reason}. Received: {text}") from None
    parse.__name__ = kind.__name__
    parse.kind = kind
    return parse


def flag_of(name: str) -> str:
    """The command-line flag of a config field: `batch_size` -> `--batch-size`."""
    return "--" + name.replace("_", "-")


def _add_config_flags(p, cls, title):
    """One flag per field of `cls`: name, type, default, help and range from the field."""
    g = p.add_argument_group(title)
    for field, param in config.params(cls):
        kind = typing.get_type_hints(cls)[field.name]
        names = [flag_of(field.name), *param.aliases]
        if kind is bool:
            g.add_argument(*names, action=argparse.BooleanOptionalAction, default=field.default,
                           help=param.help)
        elif param.choices is not None:
            g.add_argument(*names, choices=param.choices, default=field.default,
                           help=param.help)
        else:
            g.add_argument(*names, type=_field_type(cls, field, param), default=field.default,
                           help=f"{param.help}; {param.describe()}")


def _add_data_flags(p):
    p.add_argument("--data", required=True, help="directory with <NAME>.txt and "
                                                 "<NAME>_item2attributes.json")
    p.add_argument("--name", required=True, help="dataset name, e.g. Beauty, LastFM")
    p.add_argument("--negatives-seed", type=_SEED, default=0,
                   help="seed of the 99 sampled negatives when <NAME>_sample.txt is absent")


def _add_runtime_flags(p):
    from s3rec_tf.runtime import PRECISIONS  # imports no TensorFlow
    g = p.add_argument_group("CPU runtime (see s3rec_tf.runtime)")
    g.add_argument("--intra-op-threads", type=_threads, default="auto",
                   help="threads per op (0: TensorFlow's default); auto: the measured best "
                        "for this command (s3rec_tf.runtime.WORKLOADS)")
    g.add_argument("--inter-op-threads", type=_threads, default="auto",
                   help="ops run concurrently")
    g.add_argument("--onednn", choices=("auto", "on", "off"), default="auto",
                   help="TensorFlow's oneDNN kernels; auto: off for pretraining, on otherwise")
    g.add_argument("--precision", choices=tuple(PRECISIONS), default="float32",
                   help="float32 (the original's), or mixed-bfloat16: the encoder computes "
                        "in bfloat16; variables, LayerNorms, heads and losses stay float32")


class CommandParser(argparse.ArgumentParser):
    """A command's parser: `--preset` < `--config FILE` < flags, all range-checked.

    With `config_classes` (or `accepts_config`), the command takes `--config
    FILE` whose keys are its flags' names (`-` or `_`); with
    `config_classes`, also `--preset`. After parsing, the namespace holds
    the resolved values, and `configs` the resolved config objects. Any
    error (unknown key, wrong type, out of range, cross-field rule) exits
    with 2 and one line naming the option, or the key and the file.

    Args:
        config_classes: tuple of config classes whose fields are flags.
        accepts_config: bool. Take `--config FILE` without config classes.
        check: callable(parser, namespace) | None. Cross-option checks; calls
            `parser.error`.
    """

    def __init__(self, *args, config_classes=(), accepts_config=False, check=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.config_classes = tuple(config_classes)
        self.accepts_config = accepts_config or bool(self.config_classes)
        self.check = check
        self._resolved = {}   # dest -> default, for options resolved after parsing
        self._required = {}   # dest -> flag, required unless a config file gives them
        if self.accepts_config:
            g = self.add_argument_group("configuration")
            g.add_argument("--config", metavar="FILE",
                           help="TOML (or JSON) file of option values, keys as the flags "
                                "(batch_size or batch-size); flags given here override it")
            if self.config_classes:
                g.add_argument("--preset", choices=tuple(config.PRESETS),
                               help="a named recipe under --config and the flags: " +
                                    "; ".join(f"{k}: {v['help']}"
                                              for k, v in config.PRESETS.items()))

    def error(self, message):
        """One line, `s3rec-tf <command>: error: <message>`, and exit code 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def finalize(self):
        """Makes every option resolvable from a preset or file (call after adding them)."""
        if not self.accepts_config:
            return self
        for action in self._actions:
            if not action.option_strings or action.dest in ("help", "config", "preset"):
                continue
            self._resolved[action.dest] = action.default
            if action.required:
                self._required[action.dest] = action.option_strings[0]
                action.required = False
                action.help = (action.help + " " if action.help else "") + \
                    "(required, here or in --config)"
            elif isinstance(action, argparse.BooleanOptionalAction) and action.help:
                action.help += f" (default: {'on' if action.default else 'off'})"
            elif (action.default is not None and action.help
                  and action.help is not argparse.SUPPRESS
                  and not isinstance(action, argparse.BooleanOptionalAction)):
                action.help += f" (default: {action.default})"
            action.default = argparse.SUPPRESS
        return self

    def parse_known_args(self, args=None, namespace=None):
        ns, extras = super().parse_known_args(args, namespace)
        if self.accepts_config:
            self._resolve(ns)
        if self.check is not None:
            self.check(self, ns)
        return ns, extras

    # -- resolution

    def _action(self, key):
        """The option a config-file key names (`batch-size`, `batch_size`, `lr`), or None."""
        for action in self._actions:
            if action.dest in self._resolved and key in (
                    {action.dest} | {config.normalize_key(o) for o in action.option_strings}):
                return action
        return None

    def _file_values(self, path):
        try:
            raw = config.read_config_file(path)
        except config.ConfigError as e:
            self.error(str(e))
        unknown = [k for k in raw if self._action(config.normalize_key(k)) is None]
        if unknown:
            self.error(str(config.unknown_keys_error(unknown, raw, self._resolved, path)))
        values = {}
        for key, value in raw.items():
            action = self._action(config.normalize_key(key))
            value = self._file_value(action, key, value, path)
            if (isinstance(action, argparse.BooleanOptionalAction)
                    and config.normalize_key(key) != action.dest
                    and config.normalize_key(key).startswith("no_")):
                value = not value  # `no-trim-padding = true`
            values[action.dest] = value
        return values

    def _file_value(self, action, key, value, path):
        """Checks a config-file value as its flag would be checked."""
        def fail(reason):
            self.error(f"{path}: `{key}` {reason}. Received: {key}={value!r}")

        for cls in self.config_classes:
            if action.dest in {f.name for f in dataclasses.fields(cls)}:
                try:
                    return config.check_value(cls, action.dest, value)
                except config.ConfigError as e:
                    fail(e.reason)
        if isinstance(action, (argparse.BooleanOptionalAction, argparse._StoreTrueAction,
                               argparse._StoreFalseAction)):
            if not isinstance(value, bool):
                fail("must be true or false")
            return value
        if isinstance(action, argparse._AppendAction):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                fail("must be a list of strings")
            return value
        kind = getattr(action.type, "kind", str)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds:
            kinds += (int,)
        if isinstance(value, bool) or not isinstance(value, kinds):
            fail(f"must be of type {' or '.join(k.__name__ for k in kinds)}")
        if action.choices is not None and value not in action.choices:
            fail(f"must be one of {', '.join(map(repr, action.choices))}")
        if action.type is not None:
            try:
                value = action.type(str(value))
            except argparse.ArgumentTypeError as e:
                fail(str(e).split(". Received")[0])
        return value

    def _resolve(self, ns):
        given = {dest: getattr(ns, dest) for dest in self._resolved if hasattr(ns, dest)}
        from_file = self._file_values(ns.config) if ns.config else {}
        preset = {}
        if getattr(ns, "preset", None):
            preset = {k: v for k, v in config.preset_values(ns.preset, self.config_classes).items()
                      if k in self._resolved}
        for dest, default in self._resolved.items():
            for layer in (given, from_file, preset):
                if dest in layer:
                    setattr(ns, dest, layer[dest])
                    break
            else:
                setattr(ns, dest, default)
        missing = [flag for dest, flag in self._required.items() if getattr(ns, dest) is None]
        if missing:
            self.error(f"the following arguments are required: {', '.join(missing)} "
                       f"(on the command line or in --config)")
        ns.configs = []
        for cls in self.config_classes:
            try:
                ns.configs.append(cls(**{f.name: getattr(ns, f.name)
                                         for f in dataclasses.fields(cls)}))
            except config.ConfigError as e:
                flags = "/".join(flag_of(f) for f in (e.field, *e.related))
                where = (f" (from {ns.config})"
                         if set(from_file) & {e.field, *e.related} else "")
                self.error(f"argument {flags}: {e.reason}. Received: "
                           f"{e.field}={e.value!r}{where}")


def _check_synth(parser, ns):
    if ns.min_length > ns.max_length:
        parser.error(f"argument --min-length: must be <= --max-length={ns.max_length}. "
                     f"Received: {ns.min_length}")
    if ns.items < ns.max_length + 100:
        parser.error(f"argument --items: must be >= --max-length + 100 = {ns.max_length + 100} "
                     f"(99 negatives per user). Received: {ns.items}")


def _check_recommend(parser, ns):
    if (ns.items is None) == (ns.user is None):
        parser.error("give exactly one of --items and --user")
    if ns.user is not None and not (ns.data and ns.name):
        parser.error("argument --user: needs --data and --name (the user's sequences)")


def _add_overwrite_flag(p, what="the output folder"):
    p.add_argument("--overwrite", action="store_true",
                   help=f"replace {what} if s3rec-tf wrote it (an earlier output of this "
                        f"command); a folder s3rec-tf did not write is refused even so")


def _add_index_flag(p):
    from s3rec_tf import ann
    p.add_argument("--index", choices=ann.INDEXES, default=ann.DEFAULT_INDEX,
                   help="brute: score the whole catalogue (exact); scann: a ScaNN index over "
                        "the item embeddings (approximate; needs scann==1.3.2)")


def build_parser() -> argparse.ArgumentParser:
    """The `s3rec-tf` parser: one subcommand per command of `s3rec_tf.cli.commands`."""
    from s3rec_tf.config import EncoderConfig, FinetuneConfig, PretrainConfig
    parser = argparse.ArgumentParser(
        prog="s3rec-tf", description="S3-Rec in Keras 3: pretrain, fine-tune, evaluate.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=CommandParser)
    count = functools.partial(number_type, int, 1)

    p = sub.add_parser("synth", help="write a seeded synthetic dataset in the S3-Rec format",
                       check=_check_synth)
    p.add_argument("--output", required=True)
    p.add_argument("--users", type=count(), default=1000)
    p.add_argument("--interactions", type=count(),
                   help="about this many interactions: sets the users from the expected "
                        "sequence length (instead of --users)")
    p.add_argument("--items", type=count(), default=500)
    p.add_argument("--topics", type=count(), default=20)
    p.add_argument("--attributes", type=count(), default=60)
    p.add_argument("--min-length", type=number_type(int, 3), default=5)
    p.add_argument("--max-length", type=number_type(int, 3), default=40)
    p.add_argument("--name", default="Synthetic")
    p.add_argument("--seed", type=_SEED, default=0)
    p.add_argument("--repeat-rate", type=number_type(float, 0, 1), default=0.0,
                   help="probability that an event repeats an item of the user's earlier "
                        "history (repeat consumption; 0: none)")
    _add_overwrite_flag(p)

    p = sub.add_parser("prepare", help="Beam preprocessing: raw data -> prepared TFRecords")
    p.add_argument("--input", required=True, help="directory with the raw files")
    p.add_argument("--format", dest="input_format", default=config.INPUT_FORMATS[0],
                   choices=config.INPUT_FORMATS)
    p.add_argument("--name", required=True, help="dataset name (file stem)")
    p.add_argument("--output", required=True)
    p.add_argument("--k-core", type=number_type(int, 0), default=0, help="k-core filter (0: off)")
    p.add_argument("--strict", action="store_true",
                   help="fail on the first malformed row instead of dropping and counting it")
    p.add_argument("--seed", type=_SEED, default=0, help="seed of the sampled negatives")
    p.add_argument("--beam-arg", action="append", default=None, dest="beam_args",
                   help="a Beam pipeline option, repeatable (default: DirectRunner, "
                        "multi-processing, 2 workers), e.g. --beam-arg=--runner=DataflowRunner")
    _add_overwrite_flag(p)

    p = sub.add_parser("pretrain", help="pretrain with AAP, MIP, MAP and SP",
                       config_classes=(EncoderConfig, PretrainConfig))
    _add_runtime_flags(p)
    _add_data_flags(p)
    p.add_argument("--output", required=True)
    p.add_argument("--tensorboard", metavar="DIR",
                   help="write TensorBoard scalars here (the four losses, their sum, the "
                        "learning rate)")
    _add_overwrite_flag(p, "the output folder (an earlier run: started afresh instead of "
                           "resumed)")
    _add_config_flags(p, EncoderConfig, "encoder (paper defaults)")
    _add_config_flags(p, PretrainConfig, "pretraining (paper defaults)")
    p.finalize()

    p = sub.add_parser("finetune", help="fine-tune a next-item model",
                       config_classes=(EncoderConfig, FinetuneConfig))
    _add_runtime_flags(p)
    _add_data_flags(p)
    p.add_argument("--pretrained", required=True,
                   help="pretrained model directory, or 'none' for no pretraining (SASRec)")
    p.add_argument("--output", required=True)
    p.add_argument("--tensorboard", metavar="DIR",
                   help="write TensorBoard scalars here (the loss, every validation metric, "
                        "the learning rate)")
    _add_config_flags(p, EncoderConfig, "encoder (paper defaults)")
    _add_config_flags(p, FinetuneConfig, "fine-tuning (paper defaults)")
    p.add_argument("--record", help="also write a results JSON (metrics, command, seed, "
                                    "commit, machine, wall time) to this path")
    _add_overwrite_flag(p, "the output folder (an earlier run: started afresh instead of "
                           "resumed) and the --record file")
    p.finalize()

    p = sub.add_parser("evaluate", help="rank the validation and test answers",
                       accepts_config=True)
    _add_runtime_flags(p)
    p.add_argument("--model", required=True, help="fine-tuned model directory")
    _add_data_flags(p)
    p.add_argument("--protocol", choices=("full", "sampled", "both"), default="both")
    p.add_argument("--history-rule", choices=config.HISTORY_RULES,
                   default=config.HISTORY_RULES[0], help=config.HISTORY_RULE_HELP)
    p.add_argument("--stream", action="store_true",
                   help="read a prepared directory (`s3rec-tf prepare` output) as a stream: "
                        "users are ranked chunk by chunk, so memory does not grow with them")
    p.add_argument("--output", help="JSON file for the metrics (default: "
                                    "<model>/evaluation.json, replaced: the one file evaluate "
                                    "adds to the model folder it reads)")
    _add_overwrite_flag(p, "the --output file")
    p.finalize()

    p = sub.add_parser("export", help="write a TF Serving SavedModel of a fine-tuned model")
    p.add_argument("--model", required=True, help="fine-tuned model directory")
    p.add_argument("--output", required=True, help="serving base dir; writes <output>/<version>")
    p.add_argument("--version", type=number_type(int, 0),
                   help="version number (default: Unix time)")
    p.add_argument("--k", type=count(), default=config.SERVING_K,
                   help="k of the serving_default signature")
    p.add_argument("--vocabulary", help="file with one raw item id per line (line i = item "
                                        "i+1); default: the paper format's ids 1..N")
    _add_overwrite_flag(p, "<output>/<version> (other versions are kept)")

    p = sub.add_parser("recommend", help="top-k items for a history or a known user, "
                                         "from an export", check=_check_recommend)
    p.add_argument("--model", required=True, help="export base or version directory")
    p.add_argument("--items", nargs="+", help="the history, oldest first")
    p.add_argument("--user", help="a user id of the paper format's <NAME>.txt: recommend "
                                  "after that user's whole history (needs --data, --name)")
    p.add_argument("--data", help="directory with <NAME>.txt (for --user)")
    p.add_argument("--name", help="dataset name (for --user)")
    p.add_argument("-k", type=count(), default=config.SERVING_K)
    p.add_argument("--include-history", action="store_true",
                   help="allow items of the history in the results")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object: items, scores and the signature's counts")
    _add_index_flag(p)

    p = sub.add_parser("recommend-batch",
                       help="top-k items for every user of a dataset (Beam RunInference), "
                            "as TFRecord and Parquet")
    p.add_argument("--model", required=True, help="export base or version directory")
    p.add_argument("--data", required=True,
                   help="a prepared dataset (s3rec-tf prepare), or a directory with <NAME>.txt")
    p.add_argument("--name", help="dataset name (for <NAME>.txt)")
    p.add_argument("--output", required=True,
                   help="output directory (appears only when complete)")
    p.add_argument("-k", type=count(), default=config.SERVING_K)
    p.add_argument("--include-history", action="store_true",
                   help="allow items of the history in the results")
    p.add_argument("--batch-size", type=count(),
                   help="most users per RunInference call (default: "
                        "s3rec_tf.batch.DEFAULT_BATCH_SIZE)")
    _add_index_flag(p)
    p.add_argument("--beam-arg", action="append", default=None, dest="beam_args",
                   help="a Beam pipeline option, repeatable (default: DirectRunner, "
                        "multi-processing, 2 workers), e.g. --beam-arg=--runner=DataflowRunner")
    p.add_argument("--record", help="also write a results JSON (users/s, command, commit, "
                                    "machine) to this path")
    _add_overwrite_flag(p, "the output folder and the --record file")

    sub.add_parser("bench", help="speed benchmarks (see `s3rec-tf bench --help`)",
                   add_help=False)

    p = sub.add_parser("parity", help="compare with the original code's golden outputs")
    p.add_argument("--weights", required=True, help="<Name>-epochs-150.weights.npz")
    p.add_argument("--golden", required=True, help="golden_<Name>.npz")
    p.add_argument("--tolerance", type=number_type(float, 0.0), default=1e-4)

    p = sub.add_parser("import-weights",
                       help="turn the authors' .npz weights into a pretrained model directory")
    p.add_argument("--weights", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--data", help="dataset directory, to record its vocabulary")
    p.add_argument("--name")
    p.add_argument("--num-heads", type=count(), default=config.EncoderConfig().num_heads)
    _add_overwrite_flag(p)
    return parser
