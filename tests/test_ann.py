"""The optional ScaNN index (`s3rec_tf.ann`) and its `--index` wiring."""

import dataclasses
import json

import numpy as np
import pytest

from s3rec_tf import ann, batch, cli, serving
from s3rec_tf.data import reader

pytestmark = pytest.mark.skipif(not ann.scann_available(),
                                reason="the optional scann package is not installed")


def test_brute_force_top_k_and_recall():
    items = np.array([[1, 0], [0, 1], [2, 0], [-1, 0]], np.float32)
    idx, scores = ann.brute_force_top_k(items, np.array([[1, 0.1]], np.float32), 2)
    assert idx.tolist() == [[2, 0]]
    np.testing.assert_allclose(scores, [[2, 1]])
    assert ann.recall(np.array([[2, 3]]), idx) == 0.5


@pytest.mark.parametrize("partitioned", [False, True])
def test_scann_top10_agrees_with_brute_force(partitioned):
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((20, 16)).astype(np.float32) * 3
    items = (centers[rng.integers(0, 20, 4000)] +
             rng.standard_normal((4000, 16))).astype(np.float32)
    queries = rng.standard_normal((100, 16)).astype(np.float32)
    # the optional tree, from `partition_min_items` items on: here on a small case
    config = ann.ScannConfig(partition_min_items=1000 if partitioned else None)
    searcher = ann.build_scann(items, 10, config)
    approx, scores = ann.search(searcher, queries, 10)
    exact, exact_scores = ann.brute_force_top_k(items, queries, 10)
    assert approx.shape == (100, 10)
    assert ann.recall(approx, exact) >= 0.95
    # scores are exact dot products of the items returned
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", queries, items[approx]),
                               rtol=1e-4, atol=1e-4)


def test_recommender_with_scann_matches_brute_force(tiny_export, synthetic_dir):
    brute = serving.Recommender(tiny_export)
    approx = serving.Recommender(tiny_export, index="scann")
    histories = [h for _, h in reader.user_histories(synthetic_dir, "Tiny")[:40]]
    want = brute.query(histories, 10)
    got = approx.query(histories, 10)
    hits = []
    for h, w, g in zip(histories, want, got):
        assert len(g["items"]) == 10 and not {i for i, _ in g["items"]} & set(h)
        assert (g["num_known"], g["num_unknown"]) == (w["num_known"], w["num_unknown"])
        hits.append(len({i for i, _ in g["items"]} & {i for i, _ in w["items"]}) / 10)
        scores = dict(w["items"])
        for item, score in g["items"]:  # an item both found scores the same
            if item in scores:
                assert score == pytest.approx(scores[item], rel=1e-4, abs=1e-4)
    assert np.mean(hits) >= 0.95
    # history kept when asked, unknown ids counted
    answer = approx.query([histories[0] + ["nope"]], 5, exclude_history=False)[0]
    assert answer["num_unknown"] == 1 and answer["num_results"] == 5


def test_index_option_wiring(tiny_export, synthetic_dir, tmp_path, capsys, monkeypatch):
    user = reader.user_histories(synthetic_dir, "Tiny")[0][0]
    common = ["recommend", "--model", tiny_export, "--data", synthetic_dir, "--name", "Tiny",
              "--user", user, "-k", "5", "--json"]
    assert cli.main(common) == 0
    brute = json.loads(capsys.readouterr().out)
    assert cli.main([*common, "--index", "scann"]) == 0
    approx = json.loads(capsys.readouterr().out)
    assert len(approx["items"]) == 5 and len(set(approx["items"]) & set(brute["items"])) >= 4
    with pytest.raises(SystemExit) as e:
        cli.main([*common, "--index", "annoy"])
    assert e.value.code == 2
    assert "invalid choice: 'annoy'" in capsys.readouterr().err
    out = tmp_path / "recs"
    assert cli.main(["recommend-batch", "--model", tiny_export, "--data", synthetic_dir,
                     "--name", "Tiny", "--output", str(out), "--index", "scann",
                     "--beam-arg=--runner=DirectRunner"]) == 0
    assert batch.summary_of(str(out))["index"] == "scann"
    assert len(batch.read_output(str(out))["parquet"]) == 120
    # without the package: one clear line, exit 2
    monkeypatch.setattr(ann, "scann_available", lambda: False)
    capsys.readouterr()
    assert cli.main([*common, "--index", "scann"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install scann==1.3.2" in err[0]


def test_config_is_a_plain_record():
    assert dataclasses.asdict(ann.ScannConfig())["reorder"] >= 10
    with pytest.raises(ValueError, match="index"):
        serving.Recommender("unused", index="annoy")


def test_long_histories_still_get_k_items():
    # more history items than re-scored candidates: the index is asked for enough
    rng = np.random.default_rng(1)
    items = rng.standard_normal((3000, 16)).astype(np.float32)
    index = ann.ScannIndex([str(i) for i in range(3000)], items, ann.ScannConfig(reorder=20))
    queries = rng.standard_normal((2, 16)).astype(np.float32)
    history = [str(i) for i in range(0, 3000, 2)]  # every other item
    rows = index.top_k(queries, [history, []], 10, exclude_history=True)
    assert [len(r) for r in rows] == [10, 10]
    assert not {i for i, _ in rows[0]} & set(history)
    odd = np.arange(1, 3000, 2)
    exact, _ = ann.brute_force_top_k(items[odd], queries[:1], 10)
    assert ann.recall(np.array([[int(i) for i, _ in rows[0]]]), odd[exact]) >= 0.9
