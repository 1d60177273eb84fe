import dataclasses

import numpy as np
import pytest

from s3rec_tf import artifacts
from s3rec_tf.config import EncoderConfig
from s3rec_tf.errors import ArtifactError
from s3rec_tf.models import NextItemModel, S3RecPretrainer
from s3rec_tf.training import build_encoder, load_pretrained_encoder

PRETRAINED = EncoderConfig(hidden_size=8, num_layers=1, num_heads=2, max_length=6,
                           initializer_range=0.02, dropout=0.5, attention_dropout=0.5)
#: A value other than the pretrained one for each architecture field.
OTHER = {"hidden_size": 12, "num_layers": 2, "num_heads": 4, "max_length": 7,
         "initializer_range": 0.05}


@pytest.fixture(scope="module")
def pretrained(tiny_data, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("pre") / "model")
    model = S3RecPretrainer(build_encoder(tiny_data, PRETRAINED), tiny_data.attribute_table())
    artifacts.save_model(path, model, "pretrained", artifacts.vocabulary_of(tiny_data), {})
    return path, model


def test_every_architecture_field_is_checked():
    assert set(OTHER) == set(PRETRAINED.architecture())


@pytest.mark.parametrize("field", sorted(OTHER))
def test_a_different_architecture_field_is_refused_naming_it(tiny_data, pretrained, field):
    path, _ = pretrained
    requested = dataclasses.replace(PRETRAINED, **{field: OTHER[field]})
    message = (f"pretrained model {path} does not match "
               f"({field}: pretrained {getattr(PRETRAINED, field)} vs requested {OTHER[field]})")
    with pytest.raises(ArtifactError) as e:
        load_pretrained_encoder(path, tiny_data, requested)
    assert str(e.value) == message


def test_every_differing_field_is_named_on_one_line(tiny_data, pretrained):
    path, _ = pretrained
    requested = dataclasses.replace(PRETRAINED, hidden_size=12, max_length=7, dropout=0.1)
    with pytest.raises(ArtifactError) as e:
        load_pretrained_encoder(path, tiny_data, requested)
    assert str(e.value).endswith("(hidden_size: pretrained 8 vs requested 12; "
                                 "max_length: pretrained 6 vs requested 7)")
    assert "\n" not in str(e.value)


def test_other_dropout_rates_are_accepted_and_applied(tiny_data, pretrained, tmp_path):
    path, model = pretrained
    requested = dataclasses.replace(PRETRAINED, dropout=0.1, attention_dropout=0.2)
    encoder = load_pretrained_encoder(path, tiny_data, requested)
    assert encoder.encoder_config() == requested
    assert encoder.embedding.dropout_layer.rate == 0.1
    block = encoder.blocks[0]
    assert (block.dropout, block.attention_dropout) == (0.1, 0.2)
    assert block.attention_dropout_layer.rate == 0.2 and block.feedforward_dropout.rate == 0.1
    for a, b in zip(model.encoder.get_weights(), encoder.get_weights()):
        np.testing.assert_array_equal(a, b)
    # the fine-tuned model's manifest records the fine-tuning's rates
    artifacts.save_model(str(tmp_path / "ft"), NextItemModel(encoder), "finetuned",
                         artifacts.vocabulary_of(tiny_data), {})
    _, manifest = artifacts.load_next_item_model(str(tmp_path / "ft"))
    assert artifacts.encoder_config_of(manifest) == requested


def test_fine_tuning_a_pretrained_model_with_other_dropout_rates(tiny_data, pretrained,
                                                                 tmp_path):
    from s3rec_tf import training
    path, _ = pretrained
    requested = dataclasses.replace(PRETRAINED, dropout=0.1, attention_dropout=0.0)
    training.run_finetuning(tiny_data, str(tmp_path), path, requested,
                            training.FinetuneConfig(epochs=1, batch_size=64, seed=0),
                            verbose=0)
    model, manifest = artifacts.load_next_item_model(str(tmp_path / "best"))
    assert model.encoder.encoder_config() == requested
    assert manifest["encoder"]["dropout"] == 0.1
    assert not set(manifest["encoder"]) & set(manifest["hyperparameters"])
    assert manifest["hyperparameters"]["pretrained"] == path
