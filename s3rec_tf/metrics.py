"""Ranking metrics from the 0-based rank of the answer, as the original defines them.

For one answer per user, `HR@k = mean(rank < k)`,
`NDCG@k = mean([rank < k] / log2(rank + 2))` and `MRR = mean(1 / (rank + 1))`
(the original's `get_metric`, `recall_at_k` and `ndcg_k` reduce to these).
"""

from __future__ import annotations

import numpy as np

FULL_KS = (5, 10, 20)
SAMPLED_HR_KS = (1, 5, 10)
SAMPLED_NDCG_KS = (5, 10)


def hit_rate(ranks, k: int) -> float:
    """Share of answers ranked in the top `k`."""
    ranks = np.asarray(ranks)
    return float(np.mean(ranks < k)) if ranks.size else 0.0


def ndcg(ranks, k: int) -> float:
    """NDCG@k with a single relevant item per user."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if not ranks.size:
        return 0.0
    return float(np.mean(np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)))


def mrr(ranks) -> float:
    """Mean reciprocal rank."""
    ranks = np.asarray(ranks, dtype=np.float64)
    return float(np.mean(1.0 / (ranks + 1.0))) if ranks.size else 0.0


def full_ranking_metrics(ranks) -> dict:
    """HR@5/10/20, NDCG@5/10/20 and MRR (full ranking protocol)."""
    out = {}
    for k in FULL_KS:
        out[f"HR@{k}"] = hit_rate(ranks, k)
        out[f"NDCG@{k}"] = ndcg(ranks, k)
    out["MRR"] = mrr(ranks)
    return out


def sampled_metrics(ranks) -> dict:
    """HR@1/5/10, NDCG@5/10 and MRR (the paper's 99-negative protocol)."""
    out = {f"HR@{k}": hit_rate(ranks, k) for k in SAMPLED_HR_KS}
    out.update({f"NDCG@{k}": ndcg(ranks, k) for k in SAMPLED_NDCG_KS})
    out["MRR"] = mrr(ranks)
    return out
