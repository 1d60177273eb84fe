"""The paper's defaults, in one place, with their ranges and their validation.

`EncoderConfig`, `PretrainConfig` and `FinetuneConfig` are the single home of
every hyperparameter: the layer constructors, the pretrainer's default loss
weights, the command line's flags (names, types, defaults, help, choices),
`--config` files, presets and the TFX components' parameters all derive from
them. Each field carries its help text and allowed range in its metadata;
constructing a config checks every field and the cross-field rules, so an
out-of-range value never reaches the model.

This module does not import TensorFlow.

Example:
>>> from s3rec_tf.config import EncoderConfig, PretrainConfig, from_mapping
>>> PretrainConfig(epochs=10).loss_weights
{'aap': 0.2, 'mip': 1.0, 'map': 1.0, 'sp': 0.5}
>>> from_mapping(EncoderConfig, {"hidden_size": 32}, "run.toml").hidden_size
32
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib

from s3rec_tf.config.fields import (  # noqa: F401  (part of this module's API)
    Param, _convert, _count, _param, _probability, _Validated, check_value, number_type,
    params, validate)
from s3rec_tf.errors import ConfigError

__all__ = ["ConfigError", "EncoderConfig", "DROPOUT_FIELDS", "PretrainConfig",
           "FinetuneConfig", "PRESETS", "Param", "PrepareConfig", "params", "check_value",
           "validate", "from_mapping", "to_dict", "preset_values",
           "read_config_file", "normalize_key", "configs_from_mapping"]

#: Negatives per user of the sampled-ranking protocol (the authors' `<Name>_sample.txt`).
NUM_NEGATIVES = 99

#: `k` of the serving signature `serving_default` and the default `k` of every
#: recommendation (`s3rec-tf export` / `recommend`, `Recommender`, the batch recommender).
SERVING_K = 10

#: Seeds feed NumPy and TensorFlow generators: unsigned 32-bit.
MAX_SEED = 2**32 - 1

#: The BCE of the attribute objectives (AAP, MAP): the original's, then the logits form
#: (`s3rec_tf.losses.attribute_loss`).
ATTRIBUTE_BCE_MODES = ("original", "softplus")

#: The Segment Prediction loss (`s3rec_tf.losses.segment_loss`): the original's
#: `BCE(sigmoid(sigmoid(pos) - sigmoid(neg)), 1)`, then `BCE(sigmoid(pos - neg), 1)`
#: on the logits' gap, which does not saturate when both scores do.
SEGMENT_LOSS_MODES = ("original", "logit-gap")

#: The Masked Item Prediction loss (`s3rec_tf.models.S3RecPretrainer`): the original's
#: pairwise `BCE(sigmoid(sigmoid(pos) - sigmoid(neg)), 1)` against one random item, then
#: the full softmax over the catalogue (`s3rec_tf.losses.masked_item_ce_loss`).
MIP_LOSS_MODES = ("original", "ce")

#: The pretraining learning rate over the run (`s3rec_tf.training.optim.learning_rate_schedule`):
#: constant (the paper's), then a linear warm-up over `warmup_epochs` followed by a cosine
#: decay to 0 at the last epoch.
LR_SCHEDULES = ("constant", "cosine")

#: The raw data formats `prepare` reads (`s3rec_tf.data.formats`): the paper's text
#: files, CSV, Parquet and RecBole atomic files; the first is the default.
INPUT_FORMATS = ("s3rec", "csv", "parquet", "recbole")

#: The fine-tuning losses (`s3rec_tf.models.NextItemModel`); the first is the paper's.
FINETUNE_LOSSES = ("bce", "ce", "sampled-ce")

#: Where `sampled-ce` draws its negatives from: every item alike, or in proportion to
#: its frequency as a training target (`s3rec_tf.data.inputs.proposal_weights`).
PROPOSALS = ("uniform", "popularity")

#: How a run spreads over devices and workers (`s3rec_tf.training.distribute`).
STRATEGIES = ("none", "mirrored", "multi-worker")

#: The optimizer (`s3rec_tf.training.optim`): Adam as the original's PyTorch Adam (every
#: row of an embedding table decays and moves each step), or Adam that updates only the
#: rows a batch looks up, whose step cost does not grow with the catalogue.
OPTIMIZERS = ("adam", "lazy-adam")

#: The rows fine-tuning trains on (`s3rec_tf.data.inputs.finetune_arrays`): one per user
#: with a next-item target at every position (the original's), or one per prefix of each
#: user's training sequence with its next item as the only target.
TRAINING_ROWS = ("sequences", "prefixes")

#: Where Segment Prediction's negative segment is cut (`s3rec_tf.data.streaming`): the
#: concatenation of all sequences (the paper's), or of the batch's users' sequences.
SEGMENT_NEGATIVES = ("all", "batch")
#: Pretraining samples of an epoch: every prefix of each user's training part (the
#: paper's), or one prefix per user, its length drawn uniformly each epoch.
PREFIX_SAMPLING = ("every", "one-per-user")

#: What a full ranking does with the items of the user's history (the items before
#: the answer), in evaluation, validation and serving (`s3rec_tf.models.ranking`);
#: the first is the default. `remove`: they leave the ranking, and an answer that is
#: one of them is a miss (what the export serves, `exclude_history` true); `original`:
#: they stay with score 0, the answer too when it is one of them, and the padding and
#: mask rows are ranked as well (the original code's rule, comparable with the papers
#: that reuse its evaluation); `keep`: they stay with their own scores (the export with
#: `exclude_history` false).
HISTORY_RULES = ("remove", "original", "keep")

#: The help of every `history_rule` option (a `FinetuneConfig` field, `evaluate`'s flag).
HISTORY_RULE_HELP = ("full ranking's treatment of the user's history items: remove: they "
                     "leave the ranking and a repeat answer is a miss (what the export "
                     "serves); original: they score 0, the answer too (the original code's, "
                     "comparable with the literature); keep: they keep their scores (the "
                     "export with exclude_history false)")


def _shuffle_buffer(what: str):
    return _param(0, f"0: read all users into memory and shuffle all {what} each epoch (the "
                     f"original's); N > 0: stream the prepared TFRecords (--data from "
                     f"`s3rec-tf prepare`), shuffling through a buffer of N {what}, so "
                     f"memory does not grow with the users", minimum=0)


def _seed(default, help):
    return _param(default, help, minimum=0, maximum=MAX_SEED)


def _learning_rate():
    return _param(1e-3, "Adam learning rate", minimum=0.0, exclusive_minimum=True,
                  aliases=("--lr",))


def _optimizer():
    """The `optimizer` field of both training configs (one definition)."""
    return _param(OPTIMIZERS[0], "adam: the original's (dense updates: each step decays and "
                                 "moves every embedding row); lazy-adam: only the rows the "
                                 "batch looks up are updated, so a step's cost does not grow "
                                 "with the catalogue (for large catalogues; not the paper's)",
                  choices=OPTIMIZERS)


def _strategy():
    """The `strategy` field of both training configs (one definition)."""
    return _param(STRATEGIES[0], "none: one device; mirrored: every local device "
                                 "(MirroredStrategy); multi-worker: the workers of TF_CONFIG "
                                 "(MultiWorkerMirroredStrategy). --batch-size is per worker: "
                                 "the global batch is batch_size x workers",
                  choices=STRATEGIES)


#: The `EncoderConfig` fields that fine-tuning may set apart from its pretrained
#: encoder's: the dropout rates, which act only in training. Every other field is the
#: architecture (`EncoderConfig.architecture`).
DROPOUT_FIELDS = ("dropout", "attention_dropout")


@dataclasses.dataclass
class EncoderConfig(_Validated):
    """Encoder hyperparameters (the paper's defaults).

    What a `s3rec_tf.models.layers.SequenceEncoder` is built from and gives back
    (`SequenceEncoder.from_encoder_config`, `SequenceEncoder.encoder_config`), and
    what a model directory's manifest records of its encoder (`encoder`).
    """

    hidden_size: int = _count(64, "width of embeddings and hidden states")
    num_layers: int = _count(2, "transformer blocks")
    num_heads: int = _count(2, "attention heads; must divide --hidden-size")
    dropout: float = _probability(0.5, "hidden dropout")
    attention_dropout: float = _probability(0.5, "dropout on attention probabilities")
    initializer_range: float = _param(0.02, "std of the normal weight initializer",
                                      minimum=0.0, exclusive_minimum=True)
    max_length: int = _param(50, "longest sequence the model reads (older items are cut)",
                             minimum=2)

    def architecture(self) -> dict:
        """The fields that fix the encoder's weights: all but the dropout rates.

        `initializer_range` is one of them: it is how the weights were drawn,
        so a pretrained encoder and its fine-tuning share it.
        """
        return {k: v for k, v in to_dict(self).items() if k not in DROPOUT_FIELDS}

    def architecture_differences(self, other: "EncoderConfig") -> list:
        """`[(field, self's value, other's value), ...]` of the architecture fields
        on which `other` differs, in declaration order."""
        mine, theirs = self.architecture(), other.architecture()
        return [(k, v, theirs[k]) for k, v in mine.items() if theirs[k] != v]

    def _check_fields(self):
        if self.hidden_size % self.num_heads:
            raise ConfigError("hidden_size", self.hidden_size,
                              f"must be a multiple of num_heads={self.num_heads}",
                              related=("num_heads",))


@dataclasses.dataclass
class PretrainConfig(_Validated):
    """Pretraining hyperparameters (the paper's defaults)."""

    epochs: int = _count(150, "pretraining epochs")
    batch_size: int = _count(100, "sequences per batch")
    learning_rate: float = _learning_rate()
    optimizer: str = _optimizer()
    mask_p: float = _probability(0.2, "probability of masking an item (MIP, MAP) and of "
                                      "the segment length (SP)")
    aap_weight: float = _param(0.2, "weight of the associated attribute prediction loss",
                               minimum=0.0)
    mip_weight: float = _param(1.0, "weight of the masked item prediction loss", minimum=0.0)
    map_weight: float = _param(1.0, "weight of the masked attribute prediction loss",
                               minimum=0.0)
    sp_weight: float = _param(0.5, "weight of the segment prediction loss", minimum=0.0)
    save_every: int = _param(10, "write a model snapshot epochs-N/ every N epochs (0: none)",
                             minimum=0)
    seed: int = _seed(42, "seed of initialisation, dropout, masks, segments and negatives")
    trim_padding: bool = _param(True, "cut each batch's columns of pure padding (same "
                                      "results, faster); --no-trim-padding pads to "
                                      "--max-length as the original does")
    jit_compile: bool = _param(False, "compile training steps with XLA")
    strategy: str = _strategy()
    attribute_bce: str = _param(
        ATTRIBUTE_BCE_MODES[0], "BCE of AAP and MAP: 'original' (PyTorch's BCELoss on "
        "probabilities, as the authors) or 'softplus' (BCE on logits)",
        choices=ATTRIBUTE_BCE_MODES)
    mip_loss: str = _param(
        MIP_LOSS_MODES[0], "MIP loss: 'original' (BCE of sigmoid(sigmoid(pos) - sigmoid(neg)) "
        "against one random item, as the authors) or 'ce' (softmax over every item)",
        choices=MIP_LOSS_MODES)
    segment_loss: str = _param(
        SEGMENT_LOSS_MODES[0], "SP loss: 'original' (BCE of sigmoid(sigmoid(pos) - "
        "sigmoid(neg)), as the authors; no gradient once both scores saturate) or "
        "'logit-gap' (BCE of sigmoid(pos - neg))", choices=SEGMENT_LOSS_MODES)
    shuffle_buffer: int = _shuffle_buffer("sequences and samples")
    lr_schedule: str = _param(
        LR_SCHEDULES[0], "constant: the paper's learning rate throughout; cosine: a linear "
        "warm-up over --warmup-epochs, then a cosine decay to 0 at --epochs",
        choices=LR_SCHEDULES)
    warmup_epochs: float = _param(1.0, "cosine: epochs of linear warm-up from 0 to "
                                       "--learning-rate", minimum=0.0)
    segment_negatives: str = _param(
        SEGMENT_NEGATIVES[0], "SP's negative segment: 'all' cuts it from the concatenation "
        "of all sequences (the paper's rule); 'batch' from the sequences of the users in the "
        "same batch (streaming, needs --shuffle-buffer > 0)", choices=SEGMENT_NEGATIVES)
    prefix_sampling: str = _param(
        PREFIX_SAMPLING[0], "the samples of an epoch: 'every' prefix of each user's training "
        "part (the paper's), or 'one-per-user': one prefix per user, its length drawn "
        "uniformly each epoch (6.7x fewer samples on Beauty)", choices=PREFIX_SAMPLING)

    @property
    def loss_weights(self) -> dict:
        """`{"aap": ..., "mip": ..., "map": ..., "sp": ...}`."""
        return {"aap": self.aap_weight, "mip": self.mip_weight, "map": self.map_weight,
                "sp": self.sp_weight}

    def _check_fields(self):
        if not any(self.loss_weights.values()):
            raise ConfigError("aap_weight", self.aap_weight,
                              "and the other loss weights must not all be 0",
                              related=("mip_weight", "map_weight", "sp_weight"))
        if self.segment_negatives == "batch" and not self.shuffle_buffer:
            raise ConfigError("segment_negatives", self.segment_negatives,
                              "needs streaming input (shuffle_buffer > 0)",
                              related=("shuffle_buffer",))


@dataclasses.dataclass
class FinetuneConfig(_Validated):
    """Fine-tuning hyperparameters (the paper's defaults)."""

    epochs: int = _count(200, "most fine-tuning epochs (early stopping may end sooner)")
    batch_size: int = _count(256, "sequences per batch")
    learning_rate: float = _learning_rate()
    optimizer: str = _optimizer()
    loss: str = _param("bce", "bce: the paper's, one sampled negative per position; "
                              "ce: full softmax over the catalogue; sampled-ce: softmax over "
                              "the target and sampled negatives, log-Q corrected",
                       choices=FINETUNE_LOSSES)
    sampled_negatives: int = _param(100, "sampled-ce: negatives drawn per sequence (shared by "
                                         "its positions) from --proposal; 0: in-batch "
                                         "negatives only", minimum=0)
    proposal: str = _param(PROPOSALS[0], "sampled-ce: the distribution negatives are drawn "
                                         "from: uniform over the items, or popularity (each "
                                         "item's frequency as a training target)",
                           choices=PROPOSALS)
    in_batch_negatives: bool = _param(False, "sampled-ce: also use the targets of the batch's "
                                             "other positions as negatives")
    training_rows: str = _param(
        TRAINING_ROWS[0], "sequences: one row per user, its next item a target at every "
        "position (the original's); prefixes: one row per prefix of each user's training "
        "sequence, its last position's next item the only target (as evaluation ranks)",
        choices=TRAINING_ROWS)
    patience: int = _count(10, "epochs without a validation gain before stopping")
    lr_decay: float = _param(1.0, "multiply the learning rate by this each time "
                                  "--lr-decay-patience epochs pass without a validation gain "
                                  "(1: never, the paper's)", minimum=0.0,
                             exclusive_minimum=True, maximum=1.0)
    lr_decay_patience: int = _count(3, "epochs without a validation gain before each decay of "
                                       "the learning rate (with --lr-decay below 1)")
    valid_protocol: str = _param("sampled", "early stopping on sampled MRR (99 negatives) "
                                            "or full-ranking NDCG@20",
                                 choices=("sampled", "full"))
    history_rule: str = _param(HISTORY_RULES[0], HISTORY_RULE_HELP,
                               choices=HISTORY_RULES)
    seed: int = _seed(42, "seed of initialisation, dropout, shuffling and negatives")
    trim_padding: bool = _param(True, "cut each batch's columns of pure padding (same "
                                      "results, faster)")
    jit_compile: bool = _param(False, "compile training steps with XLA")
    shuffle_buffer: int = _shuffle_buffer("sequences")
    strategy: str = _strategy()

    def _check_fields(self):
        if self.lr_decay < 1 and self.lr_decay_patience >= self.patience:
            raise ConfigError("lr_decay_patience", self.lr_decay_patience,
                              f"must be below patience={self.patience}, or early stopping "
                              "ends the run before the learning rate decays",
                              related=("patience", "lr_decay"))
        if self.loss == "sampled-ce" and not self.sampled_negatives \
                and not self.in_batch_negatives:
            raise ConfigError("sampled_negatives", self.sampled_negatives,
                              "must be >= 1 with loss 'sampled-ce' unless in_batch_negatives "
                              "is set", related=("in_batch_negatives", "loss"))
        if self.loss == "sampled-ce" and self.in_batch_negatives and self.jit_compile:
            raise ConfigError("in_batch_negatives", self.in_batch_negatives,
                              "cannot be compiled with XLA (the batch's distinct targets "
                              "vary in number); drop jit_compile", related=("jit_compile",))
        if self.training_rows != TRAINING_ROWS[0] and self.shuffle_buffer:
            raise ConfigError("training_rows", self.training_rows,
                              "needs in-memory input (shuffle_buffer 0): streaming reads one "
                              "row per user", related=("shuffle_buffer",))
        if self.loss == "sampled-ce" and self.shuffle_buffer:
            raise ConfigError("shuffle_buffer", self.shuffle_buffer,
                              "must be 0 with loss 'sampled-ce' (its proposal counts the "
                              "targets of all users in memory)", related=("loss",))

    @property
    def valid_metric(self) -> str:
        """MRR for the sampled protocol, NDCG@20 for full ranking (as the original)."""
        return "MRR" if self.valid_protocol == "sampled" else "NDCG@20"


@dataclasses.dataclass
class PrepareConfig:
    """Parameters of data preparation (`s3rec-tf prepare`, the pipeline's sequence step)."""

    input_format: str = INPUT_FORMATS[0]
    name: str = "Synthetic"
    k_core: int = 0            # 0: off (the paper's data is already 5-core)
    k_core_rounds: int = 10
    strict: bool = False       # fail on the first malformed row instead of dropping it
    seed: int = 0              # seed of the sampled negatives
    num_negatives: int = NUM_NEGATIVES

    @property
    def id_layout(self) -> str:
        """`paper` keeps the paper format's ids; `vocabulary` indexes any raw ids."""
        return "paper" if self.input_format == "s3rec" else "vocabulary"


#: The best measured fine-tuning (docs/results.md), shared by the `best` and `fast` presets.
_BEST_FINETUNING = {"loss": "ce", "valid_protocol": "full"}

#: Named recipes: values over the defaults. `values` apply to every command
#: that has a field of that name; `per_config` values only to the commands whose
#: config class is named (pretraining and fine-tuning both have `epochs`, for
#: example). A preset's keys that a command has no field for are ignored by that
#: command. `--preset` < `--config FILE` < flags.
PRESETS = {
    "paper": {
        "help": "the paper's recipe: the defaults (BCE fine-tuning with one sampled "
                "negative, early stopping on sampled MRR)",
        "values": {},
    },
    "best": {
        "help": "a longer recipe for both stages, within an hour on two cores for Beauty: "
                "40 pretraining epochs with the logit-gap Segment Prediction loss; the best "
                "measured fine-tuning (docs/results.md): full-softmax loss, early stopping "
                "on full-ranking NDCG@20",
        "values": {},
        "per_config": {
            "PretrainConfig": {"epochs": 40, "segment_loss": "logit-gap"},
            "FinetuneConfig": _BEST_FINETUNING,
        },
    },
    "fast": {
        "help": "a short recipe for both stages: 10 pretraining epochs with the logit-gap "
                "Segment Prediction loss (SP keeps learning), no snapshots; full-softmax "
                "fine-tuning with early stopping on full-ranking NDCG@20",
        "values": {},
        "per_config": {
            "PretrainConfig": {"epochs": 10, "segment_loss": "logit-gap", "save_every": 0},
            "FinetuneConfig": _BEST_FINETUNING,
        },
    },
}


def normalize_key(key: str, cls=None) -> str:
    """A flag or key spelling -> the field name.

    `--batch-size`, `batch-size` -> `batch_size`; with `cls`, an alias such
    as `lr` -> `learning_rate`.
    """
    name = key.lstrip("-").replace("-", "_")
    if cls is not None:
        for field, param in params(cls):
            if name in (normalize_key(a) for a in param.aliases):
                return field.name
    return name


def from_mapping(cls, mapping: dict, source: str):
    """Builds `cls` from `mapping`, refusing unknown keys.

    Args:
        cls: a config class.
        mapping: dict of field names (`-` or `_`) to values; missing fields
            keep their defaults.
        source: str. Where the mapping came from (a file, a component
            parameter), named in errors.

    Raises:
        ConfigError: an unknown key (all of them named), a wrong type or a
            value out of range.
    """
    if not isinstance(mapping, dict):
        raise ConfigError(None, mapping, "must be a mapping of hyperparameters", source=source)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = [k for k in mapping if normalize_key(k, cls) not in names]
    if unknown:
        raise unknown_keys_error(unknown, mapping, names, source)
    values = {normalize_key(k, cls): v for k, v in mapping.items()}
    values = {k: check_value(cls, k, v, source) for k, v in values.items()}
    try:
        return cls(**values)
    except ConfigError as e:
        raise ConfigError(e.field, e.value, e.reason, source=source,
                          related=e.related) from None


def configs_from_mapping(classes, mapping: dict, source: str) -> tuple:
    """Splits one flat mapping of hyperparameters into one config per class.

    What the TFX components and Trainer modules call with their
    `hyperparameters` parameter: `{"epochs": 50, "hidden_size": 32}` ->
    `(EncoderConfig(hidden_size=32), PretrainConfig(epochs=50))`.

    Args:
        classes: config classes, e.g. `(EncoderConfig, PretrainConfig)`.
        mapping: dict of field names (`-` or `_`, aliases) to values.
        source: str. Named in errors (e.g. `"Pretrain.hyperparameters"`).

    Raises:
        ConfigError: a key no class has (all of them named), a wrong type
            or a value out of range.
    """
    if not isinstance(mapping, dict):
        raise ConfigError(None, mapping, "must be a mapping of hyperparameters", source=source)
    owner = {}
    for key in mapping:
        owner[key] = next((cls for cls in classes if normalize_key(key, cls) in
                           {f.name for f in dataclasses.fields(cls)}), None)
    unknown = [k for k, cls in owner.items() if cls is None]
    if unknown:
        known = {f.name for cls in classes for f in dataclasses.fields(cls)}
        raise unknown_keys_error(unknown, mapping, known, source)
    return tuple(from_mapping(cls, {k: v for k, v in mapping.items() if owner[k] is cls},
                              source) for cls in classes)


def unknown_keys_error(unknown: list, mapping: dict, known, source: str) -> ConfigError:
    """The error for keys no field or option has, naming all of them."""
    others = f" (also unknown: {', '.join(map(repr, unknown[1:]))})" if unknown[1:] else ""
    return ConfigError(unknown[0], mapping[unknown[0]],
                       f"is not a known key{others}; known keys: {', '.join(sorted(known))}",
                       source=source)


def to_dict(config) -> dict:
    """The plain `{field: value}` dict of a config (JSON/TOML-ready)."""
    return dataclasses.asdict(config)


def preset_values(name: str, classes=()) -> dict:
    """The values of preset `name` for a command whose config classes are `classes`.

    Args:
        name: str. A key of `PRESETS`.
        classes: the command's config classes; their `per_config` values are
            added to the preset's common `values`.

    Returns:
        A new `{field: value}` dict.
    """
    if name not in PRESETS:
        raise ConfigError("preset", name, f"must be one of {', '.join(PRESETS)}")
    preset = PRESETS[name]
    values = dict(preset["values"])
    for cls in classes:
        values.update(preset.get("per_config", {}).get(cls.__name__, {}))
    return values


def read_config_file(path: str) -> dict:
    """Reads a flat `--config` file: TOML, or JSON when it ends in `.json`.

    Keys are flag names with `-` or `_` (`batch-size`, `batch_size`); a
    saved run configuration (`<output>/config.json`) reads back as it is.

    Raises:
        ConfigError: the file is missing, unparsable or not flat.
    """
    try:
        if path.endswith(".json"):
            with open(path) as f:
                values = json.load(f)
        else:
            with open(path, "rb") as f:
                values = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(None, path, "config file not found", source=path) from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(None, path, f"not a valid config file ({e})", source=path) from None
    except OSError as e:
        raise ConfigError(None, path, f"cannot read ({e.strerror})", source=path) from None
    if not isinstance(values, dict):
        raise ConfigError(None, values, "must hold key = value pairs", source=path)
    nested = [k for k, v in values.items() if isinstance(v, dict)]
    if nested:
        raise ConfigError(nested[0], values[nested[0]], "tables are not supported: write "
                          "the keys at the top level, as the flags", source=path)
    return values


def saved_config_path(output_dir: str) -> str:
    """Where a run saves its resolved configuration."""
    return os.path.join(output_dir, "config.json")
