import dataclasses
import inspect
import json
import os
import re
import subprocess
import sys

import pytest

from s3rec_tf import config
from s3rec_tf.config import (PRESETS, ConfigError, EncoderConfig, FinetuneConfig,
                             PretrainConfig, from_mapping, to_dict)
from s3rec_tf.errors import S3RecError

#: (config class, field, bad value, words the error must contain)
FIELD_CASES = [
    (PretrainConfig, "epochs", 0, ">= 1"),
    (PretrainConfig, "batch_size", 0, ">= 1"),
    (PretrainConfig, "learning_rate", 0.0, "> 0"),
    (PretrainConfig, "learning_rate", float("nan"), "> 0"),
    (PretrainConfig, "mask_p", 1.0, "in [0, 1)"),
    (PretrainConfig, "mask_p", -0.1, "in [0, 1)"),
    (PretrainConfig, "aap_weight", -1.0, ">= 0"),
    (PretrainConfig, "save_every", -1, ">= 0"),
    (PretrainConfig, "seed", -1, "in [0, 4294967295]"),
    (PretrainConfig, "batch_size", 2.5, "type int"),
    (PretrainConfig, "batch_size", True, "type int"),
    (PretrainConfig, "trim_padding", 1, "type bool"),
    (FinetuneConfig, "patience", 0, ">= 1"),
    (FinetuneConfig, "loss", "mse", "one of 'bce', 'ce', 'sampled-ce'"),
    (FinetuneConfig, "sampled_negatives", -1, ">= 0"),
    (FinetuneConfig, "proposal", "zipf", "one of 'uniform', 'popularity'"),
    (FinetuneConfig, "in_batch_negatives", 1, "type bool"),
    (FinetuneConfig, "valid_protocol", "all", "one of 'sampled', 'full'"),
    (FinetuneConfig, "epochs", 0, ">= 1"),
    (EncoderConfig, "dropout", 1.0, "in [0, 1)"),
    (EncoderConfig, "attention_dropout", -0.5, "in [0, 1)"),
    (EncoderConfig, "max_length", 1, ">= 2"),
    (EncoderConfig, "hidden_size", 0, ">= 1"),
    (EncoderConfig, "num_heads", 0, ">= 1"),
    (EncoderConfig, "initializer_range", 0.0, "> 0"),
]


@pytest.mark.parametrize("cls,field,value,words", FIELD_CASES)
def test_out_of_range_field_names_field_value_and_range(cls, field, value, words):
    with pytest.raises(ConfigError, match=f"`{field}` must") as info:
        cls(**{field: value})
    assert words in str(info.value) and info.value.field == field
    assert isinstance(info.value, S3RecError) and isinstance(info.value, ValueError)


def test_cross_field_rules():
    with pytest.raises(ConfigError, match="multiple of num_heads=3"):
        EncoderConfig(hidden_size=64, num_heads=3)
    with pytest.raises(ConfigError, match="must not all be 0"):
        PretrainConfig(aap_weight=0, mip_weight=0, map_weight=0, sp_weight=0)
    assert PretrainConfig(aap_weight=0, mip_weight=0, map_weight=0, sp_weight=0.1)
    with pytest.raises(ConfigError, match="sampled_negatives` must be >= 1 with loss"):
        FinetuneConfig(loss="sampled-ce", sampled_negatives=0)
    assert FinetuneConfig(loss="sampled-ce", sampled_negatives=0, in_batch_negatives=True)
    assert FinetuneConfig(loss="ce", sampled_negatives=0)  # only sampled-ce draws negatives
    with pytest.raises(ConfigError, match="cannot be compiled with XLA"):
        FinetuneConfig(loss="sampled-ce", in_batch_negatives=True, jit_compile=True)


def test_the_architecture_is_every_encoder_field_but_the_dropout_rates():
    paper = EncoderConfig()
    assert set(paper.architecture()) == (
        {f.name for f in dataclasses.fields(EncoderConfig)} - set(config.DROPOUT_FIELDS))
    other = EncoderConfig(hidden_size=32, max_length=20, dropout=0.1, attention_dropout=0.0)
    assert paper.architecture_differences(other) == [("hidden_size", 64, 32),
                                                     ("max_length", 50, 20)]


def test_ints_become_floats_but_not_the_reverse():
    cfg = PretrainConfig(learning_rate=1)
    assert isinstance(cfg.learning_rate, float)


def test_from_mapping_rejects_unknown_keys_naming_them_and_the_source():
    with pytest.raises(ConfigError) as info:
        from_mapping(FinetuneConfig, {"epoch": 50, "lrate": 1e-3, "loss": "ce"}, "params")
    message = str(info.value)
    assert message.startswith("params: `epoch` is not a known key")
    assert "'lrate'" in message and "epochs" in message


def test_from_mapping_accepts_flag_spellings_and_aliases():
    cfg = from_mapping(FinetuneConfig, {"batch-size": 8, "lr": 0.01, "valid_protocol": "full"},
                       "run.toml")
    assert (cfg.batch_size, cfg.learning_rate, cfg.valid_protocol) == (8, 0.01, "full")


def test_from_mapping_names_source_for_bad_values():
    with pytest.raises(ConfigError, match=r"^run.toml: `batch_size` must be of type int"):
        from_mapping(PretrainConfig, {"batch_size": "64"}, "run.toml")
    with pytest.raises(ConfigError, match=r"^run.toml: `hidden_size` must be a multiple"):
        from_mapping(EncoderConfig, {"num_heads": 5}, "run.toml")


def test_to_dict_round_trips():
    for cls in (EncoderConfig, PretrainConfig, FinetuneConfig):
        cfg = cls()
        assert from_mapping(cls, json.loads(json.dumps(to_dict(cfg))), "x") == cfg


def test_every_field_documents_itself():
    for cls in (EncoderConfig, PretrainConfig, FinetuneConfig):
        for field, param in config.params(cls):
            assert param.help, field.name
            # the default itself is valid
            assert param.allows(field.default), field.name


def test_the_configuration_guide_names_every_field_and_each_text_default():
    guide = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "docs", "configuration.md")
    text = open(guide, encoding="utf-8").read()
    for cls in (EncoderConfig, PretrainConfig, FinetuneConfig):
        rows = [line for line in text.splitlines() if line.startswith(f"| `{cls.__name__}` |")]
        assert len(rows) == 1, f"docs/configuration.md has no row for {cls.__name__}"
        for field in dataclasses.fields(cls):
            if isinstance(field.default, str):
                assert re.search(rf"`{field.name}`( / `\w+`)* `{field.default}`", rows[0]), \
                    f"{cls.__name__}.{field.name} (default {field.default!r})"
            else:
                assert f"`{field.name}`" in rows[0], f"{cls.__name__}.{field.name}"


def test_presets_name_only_known_fields():
    classes = {cls.__name__: cls for cls in (EncoderConfig, PretrainConfig, FinetuneConfig)}
    names = {f.name for cls in classes.values() for f in dataclasses.fields(cls)}
    assert set(PRESETS) == {"paper", "best", "fast"}
    for preset in PRESETS.values():
        assert set(preset["values"]) <= names and preset["help"]
        for cls_name, values in preset.get("per_config", {}).items():
            # a per-config value builds that config: known field, allowed value
            classes[cls_name](**values)
    assert config.preset_values("paper") == {}
    assert config.preset_values("best", (FinetuneConfig,)) == {"loss": "ce",
                                                               "valid_protocol": "full"}
    assert config.preset_values("best", (PretrainConfig,)) == {"epochs": 40,
                                                               "segment_loss": "logit-gap"}
    with pytest.raises(ConfigError, match="preset"):
        config.preset_values("fastest")


def test_a_preset_can_set_each_stage_apart():
    """`fast` gives pretraining and fine-tuning their own epochs."""
    pre = config.preset_values("fast", (EncoderConfig, PretrainConfig))
    fine = config.preset_values("fast", (EncoderConfig, FinetuneConfig))
    assert pre["epochs"] == 10 and pre["segment_loss"] == "logit-gap"
    assert "epochs" not in fine and fine["loss"] == "ce"
    assert "segment_loss" not in fine and "loss" not in pre
    # without the classes: the common values only
    assert config.preset_values("fast") == {}


def test_layer_and_loss_weight_defaults_derive_from_the_config():
    from s3rec_tf.models.layers import ItemPositionEmbedding, SequenceEncoder, TransformerBlock
    from s3rec_tf.models.pretrainer import DEFAULT_LOSS_WEIGHTS
    enc = to_dict(EncoderConfig())
    for layer in (SequenceEncoder, TransformerBlock, ItemPositionEmbedding):
        for name, p in inspect.signature(layer.__init__).parameters.items():
            if name in enc and p.default is not inspect.Parameter.empty:
                assert p.default == enc[name], (layer.__name__, name)
    assert DEFAULT_LOSS_WEIGHTS == PretrainConfig().loss_weights


def test_config_module_does_not_import_tensorflow():
    code = "import sys, s3rec_tf.config; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


def test_read_config_file(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('batch-size = 8\nloss = "ce"\n')
    assert config.read_config_file(str(toml)) == {"batch-size": 8, "loss": "ce"}
    js = tmp_path / "run.json"
    js.write_text('{"batch_size": 8}')
    assert config.read_config_file(str(js)) == {"batch_size": 8}
    bad = tmp_path / "bad.toml"
    bad.write_text("batch_size = = 8\n")
    with pytest.raises(ConfigError, match=f"^{bad}: not a valid config file"):
        config.read_config_file(str(bad))
    nested = tmp_path / "nested.toml"
    nested.write_text("[encoder]\nhidden_size = 8\n")
    with pytest.raises(ConfigError, match="tables are not supported"):
        config.read_config_file(str(nested))
    with pytest.raises(ConfigError, match="not found"):
        config.read_config_file(str(tmp_path / "missing.toml"))


def test_configs_from_mapping_splits_and_refuses_unknown_keys():
    enc, pre = config.configs_from_mapping((EncoderConfig, PretrainConfig),
                                           {"hidden_size": 32, "epochs": 50, "lr": 0.01},
                                           "Pretrain.hyperparameters")
    assert (enc.hidden_size, pre.epochs, pre.learning_rate) == (32, 50, 0.01)
    # `{"epoch": 50}` must not silently train for the default 150 epochs
    with pytest.raises(ConfigError, match=r"^Pretrain.hyperparameters: `epoch` is not a known"):
        config.configs_from_mapping((EncoderConfig, PretrainConfig), {"epoch": 50},
                                    "Pretrain.hyperparameters")
    with pytest.raises(ConfigError, match="`loss` is not a known key"):
        config.configs_from_mapping((EncoderConfig, PretrainConfig), {"loss": "ce"}, "x")



def test_batch_negative_segments_need_streaming_input():
    from s3rec_tf.config import PretrainConfig
    assert PretrainConfig().segment_negatives == "all" and PretrainConfig().shuffle_buffer == 0
    assert PretrainConfig(shuffle_buffer=100, segment_negatives="batch").shuffle_buffer == 100
    with pytest.raises(ConfigError, match="segment_negatives.*shuffle_buffer > 0"):
        PretrainConfig(segment_negatives="batch")
    with pytest.raises(ConfigError, match="shuffle_buffer"):
        PretrainConfig(shuffle_buffer=-1)
