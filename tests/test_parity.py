"""Parity with the original code: the authors' weights reproduce golden outputs."""

import numpy as np
import pytest

from s3rec_tf import parity
from tests.conftest import shared_file


@pytest.mark.parametrize("name", ["Beauty", "LastFM"])
def test_golden_outputs_within_tolerance(name):
    weights = shared_file("golden", f"{name}-epochs-150.weights.npz")
    golden = shared_file("golden", f"golden_{name}.npz")
    errors = parity.run_parity(weights, golden)
    assert set(errors) == {"aap_loss", "mip_loss", "map_loss", "sp_loss",
                           "finetune_sequence_output", "finetune_last_scores"}
    for key, value in errors.items():
        assert value <= parity.DEFAULT_TOLERANCE, (key, value)


def test_relative_error_and_dense_table():
    assert parity.max_relative_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert parity.max_relative_error([1.0, 2.2], [1.0, 2.0]) == pytest.approx(0.1)
    attrs = np.zeros((1, 2, 4), int)
    attrs[0, 1, [1, 3]] = 1
    table = parity.table_from_dense(attrs, np.array([[0, 5]]), 7)
    assert table[5].tolist() == [1, 3] and table.shape == (7, 2)
