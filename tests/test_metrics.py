import numpy as np
import pytest

from s3rec_tf import metrics


def test_hand_computed_ranks():
    ranks = np.array([0, 3, 12, 25])
    assert metrics.hit_rate(ranks, 1) == 0.25
    assert metrics.hit_rate(ranks, 5) == 0.5
    assert metrics.hit_rate(ranks, 20) == 0.75
    assert metrics.ndcg(ranks, 5) == pytest.approx((1.0 + 1 / np.log2(5)) / 4)
    assert metrics.ndcg(ranks, 20) == pytest.approx((1.0 + 1 / np.log2(5) + 1 / np.log2(14)) / 4)
    assert metrics.mrr(ranks) == pytest.approx((1 + 1 / 4 + 1 / 13 + 1 / 26) / 4)


def test_metric_sets_have_the_papers_keys():
    full = metrics.full_ranking_metrics([0, 1])
    assert set(full) == {"HR@5", "HR@10", "HR@20", "NDCG@5", "NDCG@10", "NDCG@20", "MRR"}
    sampled = metrics.sampled_metrics([0, 1])
    assert set(sampled) == {"HR@1", "HR@5", "HR@10", "NDCG@5", "NDCG@10", "MRR"}
    assert sampled["HR@1"] == 0.5


def test_matches_original_get_metric():
    # the original's get_metric loop, written out
    ranks = np.random.default_rng(0).integers(0, 100, size=200)
    hit = ndcg = mrr = 0.0
    for r in ranks:
        mrr += 1.0 / (r + 1.0)
        if r < 10:
            ndcg += 1.0 / np.log2(r + 2.0)
            hit += 1.0
    n = len(ranks)
    assert metrics.hit_rate(ranks, 10) == pytest.approx(hit / n)
    assert metrics.ndcg(ranks, 10) == pytest.approx(ndcg / n)
    assert metrics.mrr(ranks) == pytest.approx(mrr / n)
