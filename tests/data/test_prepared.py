"""The prepared dataset: layout, reader, and the command line reading it."""

import argparse

import numpy as np
import pytest

from s3rec_tf.data import prepared, preprocess
from s3rec_tf.errors import DataError


def test_layout_reader_and_the_command_line(tmp_path, synthetic_dir, tiny_data, capsys):
    from s3rec_tf.cli import commands as cli
    out = tmp_path / "prep"
    preprocess.prepare(synthetic_dir, str(out), preprocess.PrepareConfig(name="Tiny", seed=1),
                       beam_args=["--runner=DirectRunner"])
    assert prepared.is_prepared(str(out)) and not prepared.is_prepared(synthetic_dir)
    assert prepared.root_of(str(out / "Split-sequences" / "*")) == str(out)
    data = cli._read(argparse.Namespace(data=str(out), name="Tiny", negatives_seed=9,
                                        output=None))
    assert "negatives: generated(per-user, seed=1)" in capsys.readouterr().out
    np.testing.assert_array_equal(data.sample_negatives, tiny_data.sample_negatives)
    assert data.fingerprint() == tiny_data.fingerprint()


def test_not_a_prepared_directory(tmp_path):
    with pytest.raises(DataError, match="not a prepared data directory"):
        prepared.read_prepared(str(tmp_path))
    with pytest.raises(DataError, match="not a split of a prepared dataset"):
        prepared.root_of(str(tmp_path / "x" / "*"))
