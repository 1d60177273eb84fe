"""Approximate top-k over an export's item embeddings (ScaNN), for big catalogues.

An exported model scores item `i` as `query · item_table[i]`
(`serve_query_embedding` gives the query, `item_embeddings` the rows), so
the top-k is a maximum-inner-product search. `brute` (the default) scores
the whole catalogue in the SavedModel (`serve_top_k`), exactly; `scann`
searches a ScaNN index (`scann==1.3.2`, optional) built over the item
embeddings when the recommender starts: asymmetric hashing scores every item
cheaply, then the best `ScannConfig.reorder` candidates are re-scored
exactly; optionally (`partition_min_items`) a tree of about `sqrt(N)` leaves,
searched in part, comes first. Its scores are the
exact dot products of the candidates it keeps; an item it misses is simply
absent, so recall (not score) is what it trades. History items are excluded
by asking the index for `k + len(history)` neighbours and dropping them.

TF Serving exports stay brute force: stock TF Serving has no ScaNN ops.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

#: `--index` choices of `s3rec-tf recommend` / `recommend-batch`.
INDEXES = ("brute", "scann")
DEFAULT_INDEX = "brute"


@dataclasses.dataclass(frozen=True)
class ScannConfig:
    """How the ScaNN index is built (defaults measured by `benchmarks/scann_recall.py`)."""

    #: Catalogues of at least this many items are partitioned by the tree first; None:
    #: never (hashing over every item, then re-scoring, is what
    #: `benchmarks/results/scann-recall-1M.json` measures; in trial runs at a million
    #: random items the tree, searching half its leaves, was both slower and less exact).
    partition_min_items: int | None = None
    #: Leaves of the tree: `round(sqrt(N) * leaves_per_sqrt)`.
    leaves_per_sqrt: float = 1.0
    #: Share of the leaves searched per query (with the tree).
    leaves_searched: float = 0.5
    #: Candidates re-scored exactly (at least `k + len(history)`).
    reorder: int = 500
    #: Dimensions per block of the asymmetric hashing.
    dims_per_block: int = 2
    anisotropic_threshold: float = 0.2
    #: Most items the tree's k-means trains on.
    training_sample_size: int = 100_000


def scann_available() -> bool:
    try:
        import scann  # noqa: F401
    except ImportError:
        return False
    return True


def require_scann() -> None:
    if not scann_available():
        raise ValueError("--index scann needs the optional package scann==1.3.2 "
                         "(pip install scann==1.3.2)")


def build_scann(embeddings: np.ndarray, num_neighbors: int = 10,
                config: ScannConfig | None = None):
    """A ScaNN searcher (dot product) over `embeddings` [N, d] float32."""
    require_scann()
    from scann.scann_ops.py import scann_ops_pybind
    config = config or ScannConfig()
    embeddings = np.ascontiguousarray(embeddings, np.float32)
    n = len(embeddings)
    builder = scann_ops_pybind.builder(embeddings, num_neighbors, "dot_product")
    if config.partition_min_items is not None and n >= config.partition_min_items:
        leaves = max(2, int(round(math.sqrt(n) * config.leaves_per_sqrt)))
        builder = builder.tree(num_leaves=leaves,
                               num_leaves_to_search=max(1, int(round(leaves *
                                                                     config.leaves_searched))),
                               training_sample_size=min(n, config.training_sample_size))
    builder = builder.score_ah(config.dims_per_block,
                               anisotropic_quantization_threshold=config.anisotropic_threshold)
    return builder.reorder(max(config.reorder, num_neighbors)).build()


def search(searcher, queries: np.ndarray, k: int, reorder: int | None = None):
    """`(indices [B, <=k] int, scores)`: ScaNN's best `k` rows for each query, best first.

    `reorder`: candidates re-scored exactly (default: the index's, raised to `k`).
    """
    kwargs = {"pre_reorder_num_neighbors": max(reorder, k)} if reorder is not None else {}
    idx, scores = searcher.search_batched(np.ascontiguousarray(queries, np.float32),
                                          final_num_neighbors=k, **kwargs)
    return np.asarray(idx), np.asarray(scores)


def brute_force_top_k(embeddings: np.ndarray, queries: np.ndarray, k: int,
                      chunk: int = 64):
    """Exact `(indices, scores)` of the `k` largest dot products (for measuring recall).

    Scores `chunk` queries at a time, so memory stays `chunk * N` floats.
    """
    out_idx, out_scores = [], []
    for start in range(0, len(queries), chunk):
        scores = queries[start:start + chunk] @ embeddings.T
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1, kind="stable")
        idx = np.take_along_axis(part, order, 1)
        out_idx.append(idx)
        out_scores.append(np.take_along_axis(scores, idx, 1))
    return np.concatenate(out_idx), np.concatenate(out_scores)


def recall(approximate: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each row of `exact` found in the same row of `approximate`."""
    hits = [len(set(a.tolist()) & set(e.tolist())) / len(e) for a, e in zip(approximate, exact)]
    return float(np.mean(hits))


class ScannIndex:
    """The ScaNN side of `serving.Recommender(index="scann")`.

    Args:
        item_ids: list of raw ids, row `i` of `embeddings`.
        embeddings: [N, d] float32 item embeddings.
    """

    def __init__(self, item_ids, embeddings, config: ScannConfig | None = None):
        self.item_ids = list(item_ids)
        self.config = config or ScannConfig()
        self.searcher = build_scann(np.asarray(embeddings, np.float32), 10, self.config)

    def top_k(self, queries: np.ndarray, histories, k: int, exclude_history: bool) -> list:
        """`[(item_id, score), ...]` per query, best first, history items dropped."""
        n = len(self.item_ids)
        seen = [set(str(i).strip() for i in h) if exclude_history else set()
                for h in histories]
        wanted = min(n, k + max([len(s) for s in seen] + [0]))
        # a long history asks for more neighbours than `reorder`: re-score them all
        idx, scores = search(self.searcher, queries, wanted, max(self.config.reorder, wanted))
        out = []
        for r in range(len(histories)):
            row = []
            for i, s in zip(idx[r], scores[r]):
                if i < 0 or not np.isfinite(s):
                    continue
                item = self.item_ids[int(i)]
                if item not in seen[r]:
                    row.append((item, float(s)))
                if len(row) == k:
                    break
            out.append(row)
        return out
