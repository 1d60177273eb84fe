"""`s3rec-tf recommend-batch` / `s3rec_tf.batch`: every user's top-k, equal to `Recommender`."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from s3rec_tf import batch, cli, serving
from s3rec_tf.data import prepared, reader

#: the in-process DirectRunner: small runs start faster than with worker processes
IN_PROCESS = ["--runner=DirectRunner"]


@pytest.fixture(scope="module")
def export(tiny_export):
    return tiny_export


@pytest.fixture(scope="module")
def paper_run(export, synthetic_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("paper") / "recs")
    summary = batch.recommend_batch(synthetic_dir, "Tiny", export, out, k=5,
                                    beam_args=IN_PROCESS, batch_size=32)
    return out, summary


def test_every_user_gets_the_recommenders_answer(paper_run, export, synthetic_dir):
    out, summary = paper_run
    histories = dict(reader.user_histories(synthetic_dir, "Tiny"))
    rows = batch.read_output(out)
    assert set(rows["tfrecord"]) == set(rows["parquet"]) == set(histories)
    assert summary["users"] == len(histories) == batch.summary_of(out)["users"]
    assert summary["users_per_s"] > 0 and summary["index"] == "brute"
    # a sample of users, each asked alone of the Python recommender
    rec = serving.Recommender(export)
    sample = sorted(histories)[::9]
    for user in sample:
        want = rec.query([histories[user]], 5)[0]
        for kind in ("tfrecord", "parquet"):
            row = rows[kind][user]
            assert row["item_ids"] == [i for i, _ in want["items"]], (kind, user)
            np.testing.assert_allclose(row["scores"], [s for _, s in want["items"]], rtol=1e-5)
            assert (row["num_results"], row["num_known"], row["num_unknown"]) == \
                (want["num_results"], want["num_known"], want["num_unknown"])
            assert not set(row["item_ids"]) & set(histories[user])
    assert not [f for f in os.listdir(os.path.dirname(out)) if f.startswith(".")]


def _write_prepared(data, out, order):
    """A prepared dataset whose item vocabulary is `order` (raw ids in another order)."""
    for split in prepared.SPLITS:
        os.makedirs(prepared.split_dir(out, split))
    index_of = {raw: i + 1 for i, raw in enumerate(order)}
    path = os.path.join(prepared.split_dir(out, prepared.SEQUENCES_SPLIT), "s-0.tfrecord")
    with tf.io.TFRecordWriter(path) as w:
        for user, seq, negs in zip(data.user_ids, data.sequences, data.sample_negatives):
            w.write(prepared.sequence_example(str(user), [index_of[str(i)] for i in seq],
                                              negs.tolist()))
    with open(os.path.join(out, prepared.ITEM_VOCABULARY), "w") as f:
        f.write("".join(f"{raw}\n" for raw in order))
    with open(os.path.join(out, prepared.ATTRIBUTE_VOCABULARY), "w") as f:
        f.write("1\n")
    with open(os.path.join(out, prepared.STATS), "w") as f:
        json.dump({"config": {"name": data.name, "seed": 1}, "users": data.num_users}, f)


def test_prepared_input_maps_indices_through_its_vocabulary(paper_run, export, tiny_data,
                                                             tmp_path):
    order = [str(i) for i in np.random.default_rng(0).permutation(
        np.arange(1, tiny_data.num_items + 1))]
    _write_prepared(tiny_data, str(tmp_path / "prep"), order)
    out = str(tmp_path / "recs")
    batch.recommend_batch(str(tmp_path / "prep"), None, export, out, k=5,
                          beam_args=IN_PROCESS)
    got, want = batch.read_output(out)["parquet"], batch.read_output(paper_run[0])["parquet"]
    assert set(got) == set(want)
    for user, row in want.items():  # scores differ in the last bits between batch sizes
        assert got[user]["item_ids"] == row["item_ids"]
        np.testing.assert_allclose(got[user]["scores"], row["scores"], rtol=1e-5)


def test_cli_with_beam_args_and_clear_errors(export, synthetic_dir, tmp_path, capsys):
    out = tmp_path / "recs"
    assert cli.main(["recommend-batch", "--model", export, "--data", synthetic_dir, "--name",
                     "Tiny", "--output", str(out), "-k", "3", "--include-history",
                     "--beam-arg=--runner=DirectRunner", "--record",
                     str(tmp_path / "rec.json")]) == 0
    record = json.loads((tmp_path / "rec.json").read_text())
    assert record["users"] == 120 and record["machine"]["cpu_count"] and "commit" in record
    assert record["command"].startswith("s3rec-tf")
    printed = json.loads(capsys.readouterr().out.splitlines()[0])
    assert printed["users"] == 120 and printed["k"] == 3
    summary = batch.summary_of(str(out))
    assert summary["beam_args"] == ["--runner=DirectRunner"]
    assert summary["exclude_history"] is False
    assert all(len(r["item_ids"]) == 3 for r in batch.read_output(str(out))["parquet"].values())
    for argv, words in (
            (["--model", str(tmp_path / "nope"), "--data", synthetic_dir, "--name", "Tiny"],
             "no SavedModel"),
            (["--model", export, "--data", synthetic_dir, "--name", "Nope"], "Nope.txt"),
            (["--model", export, "--data", synthetic_dir], "--name")):
        assert cli.main(["recommend-batch", *argv, "--output", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err
        assert not (tmp_path / "bad").exists()


def test_failed_run_leaves_nothing(export, synthetic_dir, tmp_path, monkeypatch):
    def broken(self, batch_, model, inference_args=None):
        raise RuntimeError("inference failed")

    monkeypatch.setattr(batch.RecommenderHandler, "run_inference", broken)
    with pytest.raises(Exception, match="inference failed"):
        batch.recommend_batch(synthetic_dir, "Tiny", export, str(tmp_path / "out" / "recs"),
                              beam_args=IN_PROCESS)
    assert not (tmp_path / "out").exists()
