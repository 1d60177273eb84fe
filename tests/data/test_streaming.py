"""Streaming input from prepared TFRecords: the in-memory path's rows, bounded memory."""

import json
import os

import numpy as np
import pytest

from s3rec_tf.data import inputs, prepared, streaming
from s3rec_tf.data.reader import pad_left
from tests.conftest import write_prepared


@pytest.fixture(scope="module")
def prepared_dir(tiny_data, tmp_path_factory):
    return write_prepared(tiny_data, tmp_path_factory.mktemp("prepared") / "Tiny")


def test_streamed_data_has_the_id_spaces_without_the_users(prepared_dir, tiny_data):
    data = streaming.StreamedData(prepared_dir)
    assert data.sequences == () and data.num_users == tiny_data.num_users
    assert (data.num_items, data.num_attributes) == (tiny_data.num_items,
                                                     tiny_data.num_attributes)
    assert data.fingerprint() == tiny_data.fingerprint()
    assert data.num_interactions() == tiny_data.num_interactions()
    in_memory = prepared.open_prepared(prepared_dir)
    assert len(in_memory.sequences) == tiny_data.num_users
    assert isinstance(prepared.open_prepared(prepared_dir, stream=True), streaming.StreamedData)
    # what an export and a results record need: the same as the in-memory reader's
    assert data.item_vocabulary == in_memory.item_vocabulary
    assert data.attribute_vocabulary == in_memory.attribute_vocabulary
    assert data.sample_source == in_memory.sample_source == tiny_data.sample_source


def test_sample_count_and_long_sequence_match_the_in_memory_arrays(prepared_dir, tiny_data):
    arrays = inputs.pretrain_arrays(tiny_data, 20)
    assert streaming.count_samples(prepared_dir, 20) == arrays.num_samples
    assert np.array_equal(streaming.long_sequence(prepared_dir), arrays.long_sequence)


def _rows(batch, key):
    """Each row of `batch[key]` without its left padding, as a tuple."""
    return [tuple(int(v) for v in r[r > 0]) for r in batch[key].numpy()]


@pytest.mark.parametrize("rule", ["all", "batch"])
def test_pretrain_stream_yields_every_sample_once_per_epoch(prepared_dir, tiny_data, rule):
    arrays = inputs.pretrain_arrays(tiny_data, 20)
    expected = sorted(tuple(arrays.flat_items[s:s + n].tolist())
                      for s, n in zip(arrays.starts, arrays.lengths))
    ds = streaming.pretrain_stream(prepared_dir, tiny_data.num_items, 20, batch_size=32,
                                   seed=5, epochs=2, shuffle_buffer=64, segment_negatives=rule)
    steps = inputs.steps_per_epoch(arrays.num_samples, 32)
    batches = list(ds)
    assert len(batches) == 2 * steps
    for epoch in (batches[:steps], batches[steps:]):
        assert sorted(r for b in epoch for r in _rows(b, "pos_items")) == expected
    mask_id = tiny_data.num_items + 1
    universe = set(np.concatenate(tiny_data.sequences).tolist())
    for b in batches[:steps]:
        neg = b["neg_segment"].numpy()
        cut = neg[(neg > 0) & (neg != mask_id)]
        assert set(cut.tolist()) <= universe
        if rule == "batch":  # cut from the sequences of this batch's users
            users = set(np.concatenate([s for s in tiny_data.sequences
                                        if any(set(r) <= set(s.tolist())
                                               for r in _rows(b, "pos_items"))]).tolist())
            assert set(cut.tolist()) <= users
    # same seed, same batches; another seed, another order
    again = list(streaming.pretrain_stream(prepared_dir, tiny_data.num_items, 20, 32, seed=5,
                                           epochs=1, shuffle_buffer=64,
                                           segment_negatives=rule))
    assert all(np.array_equal(a["neg_items"], b["neg_items"])
               for a, b in zip(again, batches[:steps]))
    other = list(streaming.pretrain_stream(prepared_dir, tiny_data.num_items, 20, 32, seed=6,
                                           epochs=1, shuffle_buffer=64,
                                           segment_negatives=rule))
    assert _rows(other[0], "pos_items") != _rows(batches[0], "pos_items")


def test_one_prefix_per_user_streamed_is_the_in_memory_draw(prepared_dir, tiny_data):
    arrays = inputs.pretrain_arrays(tiny_data, 20)
    users = arrays.samples_per_epoch("one-per-user")
    assert streaming.count_samples(prepared_dir, 20, "one-per-user") == users
    kwargs = dict(seed=4, first_epoch=1, epochs=2, prefix_sampling="one-per-user")
    streamed = streaming.pretrain_stream(prepared_dir, tiny_data.num_items, 20, 16,
                                         shuffle_buffer=0, segment_negatives="all",
                                         num_users=tiny_data.num_users,
                                         **kwargs)
    in_memory = inputs.pretrain_dataset(arrays, 16, shuffle=False, **kwargs)
    a, b = list(streamed), list(in_memory)
    assert len(a) == len(b) == inputs.steps_per_epoch(users, 16)
    assert all(np.array_equal(x[k], y[k]) for x, y in zip(a, b) for k in x)
    with pytest.raises(ValueError, match="num_users"):
        streaming.pretrain_stream(prepared_dir, 10, prefix_sampling="one-per-user")


def test_pretrain_stream_resumes_at_an_epoch(prepared_dir, tiny_data):
    full = list(streaming.pretrain_stream(prepared_dir, tiny_data.num_items, 20, 50, seed=1,
                                          epochs=2, shuffle_buffer=30))
    resumed = list(streaming.pretrain_stream(prepared_dir, tiny_data.num_items, 20, 50,
                                             seed=1, first_epoch=1, epochs=2,
                                             shuffle_buffer=30))
    tail = full[len(full) - len(resumed):]
    assert all(np.array_equal(a[k], b[k]) for a, b in zip(tail, resumed) for k in a)


def test_finetune_stream_rows_are_the_in_memory_rows(prepared_dir, tiny_data):
    arrays = inputs.finetune_arrays(tiny_data, 20)
    ds = streaming.finetune_stream(prepared_dir, tiny_data.num_items, 20, batch_size=16,
                                   seed=2, shuffle_buffer=0, trim=False)
    batches = list(ds)
    assert len(batches) == inputs.steps_per_epoch(tiny_data.num_users, 16)
    x = np.concatenate([b["input_ids"].numpy() for b in batches])
    y = np.concatenate([b["target_pos"].numpy() for b in batches])
    assert np.array_equal(x, arrays.input_ids) and np.array_equal(y, arrays.target_pos)
    neg = np.concatenate([b["target_neg"].numpy() for b in batches])
    for u, s in enumerate(tiny_data.sequences):
        assert not set(neg[u][neg[u] > 0].tolist()) & set(s.tolist())
    assert np.array_equal(neg > 0, y > 0)
    shuffled = list(streaming.finetune_stream(prepared_dir, tiny_data.num_items, 20, 16, 2,
                                              shuffle_buffer=40))
    got = sorted(tuple(r) for b in shuffled for r in b["target_pos"].numpy()[:, -5:].tolist())
    assert got == sorted(tuple(r) for r in arrays.target_pos[:, -5:].tolist())


def test_streamed_evaluation_equals_in_memory_evaluation(prepared_dir, tiny_data):
    from s3rec_tf.models.layers import SequenceEncoder
    from s3rec_tf.models import NextItemModel
    from s3rec_tf.training import evaluate_model
    model = NextItemModel(SequenceEncoder(tiny_data.num_items, tiny_data.num_attributes,
                                          hidden_size=16, max_length=20))
    expected = evaluate_model(model, tiny_data)
    for got in (streaming.evaluate_stream(model, prepared_dir),
                evaluate_model(model, streaming.StreamedData(prepared_dir))):
        assert set(got) == set(expected)
        for key in expected:
            for metric, value in expected[key].items():
                assert got[key][metric] == pytest.approx(value, abs=1e-9), (key, metric)
    chunks = list(streaming.eval_chunks(prepared_dir, "test", 20, chunk=50, limit=70))
    assert [len(c.answers) for c in chunks] == [50, 20]
    assert np.array_equal(chunks[0].input_ids,
                          pad_left([s[:-1] for s in tiny_data.sequences[:50]], 20))


def test_bad_arguments_are_refused(prepared_dir, tmp_path):
    with pytest.raises(ValueError, match="segment_negatives"):
        streaming.pretrain_stream(prepared_dir, 10, segment_negatives="buffer")
    with pytest.raises(ValueError, match="shuffle_buffer"):
        streaming.finetune_stream(prepared_dir, 10, shuffle_buffer=-1)
    from s3rec_tf.errors import DataError
    os.makedirs(prepared.split_dir(str(tmp_path), prepared.SEQUENCES_SPLIT))
    with pytest.raises(DataError, match="no sequence files"):
        streaming.sequence_records(str(tmp_path))


def test_training_runs_streamed_end_to_end(prepared_dir, tiny_data, synthetic_dir, tmp_path,
                                          capsys):
    from s3rec_tf.config import EncoderConfig, FinetuneConfig, PretrainConfig
    from s3rec_tf.training import run_finetuning, run_pretraining
    data = streaming.StreamedData(prepared_dir)
    enc = EncoderConfig(hidden_size=16, num_layers=1, max_length=20)
    summary = run_pretraining(data, str(tmp_path / "pre"), enc, PretrainConfig(
        epochs=1, batch_size=64, shuffle_buffer=50, segment_negatives="batch", save_every=0),
        verbose=0)
    assert summary["samples_per_epoch"] == inputs.pretrain_arrays(tiny_data, 20).num_samples
    assert np.isfinite(summary["final_losses"]["sp_loss"])
    result = run_finetuning(data, str(tmp_path / "fine"), str(tmp_path / "pre"), enc,
                            FinetuneConfig(epochs=1, batch_size=64, shuffle_buffer=50),
                            verbose=0)
    assert set(result["metrics"]) == {"valid/full", "valid/sampled", "test/full",
                                      "test/sampled"}
    from s3rec_tf import cli  # `evaluate --stream`: the metrics the run reported
    out = tmp_path / "evaluation.json"
    assert cli.main(["evaluate", "--model", str(tmp_path / "fine"), "--data", prepared_dir,
                     "--name", "Tiny", "--stream", "--output", str(out)]) == 0
    got = json.loads(out.read_text())["metrics"]
    for key, values in result["metrics"].items():
        for metric, value in values.items():
            assert got[key][metric] == pytest.approx(value, abs=1e-9), (key, metric)
    capsys.readouterr()
    assert cli.main(["evaluate", "--model", str(tmp_path / "fine"), "--data", synthetic_dir,
                     "--name", "Tiny", "--stream"]) == 2
    assert "--stream streams a prepared directory" in capsys.readouterr().err
    with pytest.raises(Exception, match="prepared directory"):
        run_pretraining(tiny_data, str(tmp_path / "x"), enc,
                        PretrainConfig(epochs=1, shuffle_buffer=50), verbose=0)


def test_cli_streams_only_a_prepared_directory(synthetic_dir, tmp_path, capsys):
    from s3rec_tf import cli
    code = cli.main(["pretrain", "--data", synthetic_dir, "--name", "Tiny", "--output",
                     str(tmp_path / "out"), "--shuffle-buffer", "10"])
    assert code == 2
    assert "--shuffle-buffer streams a prepared directory" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()

