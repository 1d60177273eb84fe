"""The blessing rule of the pipeline's ranking evaluator (library logic)."""

from __future__ import annotations


def flatten(results: dict) -> dict:
    """`{"test/full": {"NDCG@10": x}}` -> `{"test/full/NDCG@10": x}`."""
    return {f"{group}/{name}": value for group, metrics in results.items()
            for name, value in metrics.items()}


def bless(metrics: dict, thresholds: dict, compare_metric: str,
          baseline: dict | None = None, tolerance: float = 0.0) -> dict:
    """Decides whether a model is blessed.

    Args:
        metrics: flat metrics of the candidate.
        thresholds: `{metric: minimum}`; an unknown metric name is an error.
        compare_metric: the metric that must not fall below the baseline's.
        baseline: flat metrics of the last blessed model, or None.
        tolerance: allowed drop below the baseline (absolute).

    Returns:
        `{"blessed": bool, "reasons": [why not, ...]}`.
    """
    reasons = []
    for name, minimum in thresholds.items():
        if name not in metrics:
            raise ValueError(f"threshold on unknown metric {name!r}; known: {sorted(metrics)}")
        if metrics[name] < minimum:
            reasons.append(f"{name}={metrics[name]:.4f} < threshold {minimum}")
    if compare_metric not in metrics:
        raise ValueError(f"unknown compare_metric {compare_metric!r}; known: {sorted(metrics)}")
    if baseline is not None and metrics[compare_metric] < baseline[compare_metric] - tolerance:
        reasons.append(f"{compare_metric}={metrics[compare_metric]:.4f} below the last blessed "
                       f"model's {baseline[compare_metric]:.4f}")
    return {"blessed": not reasons, "reasons": reasons}
