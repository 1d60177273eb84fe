import numpy as np
import pytest

from s3rec_tf.data.inputs import EvalArrays
from s3rec_tf.evaluation import RankingEvaluator


class _FixedScores:
    """Stands in for a NextItemModel: scores are a fixed table per user."""

    class encoder:  # noqa: N801
        num_items = 5
        item_size = 7
        mask_id = 6
        hidden_size = 7

    def __init__(self, scores):
        import tensorflow as tf
        self.scores = tf.constant(scores, tf.float32)
        self.encoder.item_table = tf.eye(7)

    def score_last(self, input_ids, training=None):
        import tensorflow as tf
        return tf.gather(self.scores, input_ids[:, -1])

    def last_output(self, input_ids, training=None):
        import tensorflow as tf
        return tf.gather(self.scores, input_ids[:, -1])


def test_full_ranking_excludes_history_and_non_items():
    # user row 0 (input last id 0 -> score row 0)
    scores = np.array([[9.0, 5.0, 4.0, 8.0, 3.0, 1.0, 99.0]] * 7)
    model = _FixedScores(scores)
    arrays = EvalArrays(input_ids=np.array([[0, 0]]), answers=np.array([2]),
                        history=np.array([[0, 3]]), negatives=np.array([[1, 4, 5]]))
    ranks = RankingEvaluator(model).ranks(arrays, "full")
    # items scoring above item 2 (4.0): 1 (5.0), 3 (8.0, in history: excluded),
    # 0 (padding) and 6 (mask id) excluded -> rank 1
    assert ranks.tolist() == [1]
    # sampled: answer 2 (4.0) vs negatives 1 (5.0), 4 (3.0), 5 (1.0) -> rank 1
    assert RankingEvaluator(model).ranks(arrays, "sampled").tolist() == [1]


def test_sampled_ties_go_to_the_answer_and_metrics_keys():
    scores = np.zeros((7, 7))
    model = _FixedScores(scores)
    arrays = EvalArrays(np.array([[0, 1]]), np.array([2]), np.array([[1]]),
                        np.array([[3, 4, 5]]))
    evaluator = RankingEvaluator(model)
    assert evaluator.ranks(arrays, "sampled").tolist() == [0]
    m = evaluator.evaluate(arrays, "sampled")
    assert m["HR@1"] == 1.0 and m["MRR"] == 1.0


def test_eval_batch_size_bounds_the_scores_and_users_of_a_batch():
    from s3rec_tf import evaluation
    assert evaluation.eval_batch_size(12_103) == evaluation.SCORES_PER_BATCH // 12_103 == 2772
    assert evaluation.eval_batch_size(1_000_002) * 1_000_002 <= evaluation.SCORES_PER_BATCH
    assert evaluation.eval_batch_size(7) == evaluation.MAX_USERS_PER_BATCH
    assert evaluation.RankingEvaluator(_FixedScores(np.zeros((7, 7)))).batch_size == 4096


# ------------------------------------------------------------------ the history rules

def reference_ranks(scores, answers, histories, rule):
    """numpy, one user at a time: the lowest and highest rank each rule allows.

`remove`: history items leave the ranking, a repeat answer is a miss (inf);
    `original`: history items, the answer too, score 0, every row of the table is
    ranked (padding and mask id too, as the original's `rating_pred`), and the
    answer may fall anywhere among the ids it ties with; `keep`: nothing leaves.
    Outside `original`, non-items (padding 0, the mask id) are never ranked, and
    ties count for the answer.
    """
    num_items = scores.shape[1] - 2
    low, high = [], []
    for row, answer, history in zip(scores, answers, histories):
        row = row.astype(np.float64).copy()
        seen = sorted({int(i) for i in history if i > 0})
        ranked = np.ones(len(row), bool)
        if rule != "original":
            ranked[[0, num_items + 1]] = False
        if rule == "remove":
            if answer in seen:
                low.append(np.inf)
                high.append(np.inf)
                continue
            ranked[seen] = False
        elif rule == "original":
            row[seen] = 0.0
        ranked[answer] = False
        low.append((row[ranked] > row[answer]).sum())
        ties = (row[ranked] == row[answer]).sum() if rule == "original" else 0
        high.append(low[-1] + ties)
    return np.asarray(low, np.float64), np.asarray(high, np.float64)


def reference_metrics(ranks):
    """HR@k, NDCG@k and MRR from 0-based ranks, a miss (inf) scoring 0."""
    out = {}
    for k in (5, 10, 20):
        out[f"HR@{k}"] = np.mean([r < k for r in ranks])
        out[f"NDCG@{k}"] = np.mean([1 / np.log2(r + 2) if r < k else 0.0 for r in ranks])
    out["MRR"] = np.mean([0.0 if np.isinf(r) else 1 / (r + 1) for r in ranks])
    return out


def test_each_history_rule_matches_a_numpy_reference_on_fixed_scores():
    # answers: 2 (not in the history), 3 (a repeat, its only history item), 4 (a repeat)
    scores = np.array([[9.0, 5.0, 4.0, 8.0, -1.0, -2.0, 99.0],
                       [9.0, 5.0, 4.0, 8.0, -1.0, -2.0, 99.0],
                       [9.0, -5.0, 4.0, 8.0, 6.0, -2.0, 99.0]])
    model = _FixedScores(scores)
    arrays = EvalArrays(input_ids=np.array([[0, 0], [0, 1], [0, 2]]),
                        answers=np.array([2, 3, 4]),
                        history=np.array([[0, 3, 5], [3, 3, 0], [0, 4, 4]]),
                        negatives=np.array([[1, 4, 5]] * 3))
    want = {"remove": [1, np.inf, np.inf],  # 3 (8.0) removed; repeats are misses
            "original": [3, 4, 4],  # 3 and 5 score 0, answers 3 and 4 too; 0 and 6 rank
            "keep": [2, 0, 1]}
    for rule, ranks in want.items():
        got = RankingEvaluator(model, history_rule=rule).ranks(arrays, "full")
        low, high = reference_ranks(scores, arrays.answers, arrays.history, rule)
        assert got.tolist() == ranks == low.tolist() == high.tolist()
        metrics = RankingEvaluator(model, history_rule=rule).evaluate(arrays, "full")
        assert metrics == pytest.approx(reference_metrics(low))


@pytest.fixture(scope="module")
def repeat_data(tmp_path_factory):
    from s3rec_tf.data import synthetic
    from s3rec_tf.data.reader import read_dataset
    out = str(tmp_path_factory.mktemp("repeats"))
    seqs, attrs = synthetic.generate(num_users=150, num_items=200, num_topics=8,
                                     num_attributes=20, max_length=25, seed=5,
                                     repeat_rate=0.4)
    synthetic.write(out, seqs, attrs, "Repeats")
    return read_dataset(out, "Repeats", negatives_seed=1)


def _random_model(data, max_length=20):
    import keras
    from s3rec_tf.models.layers import SequenceEncoder
    from s3rec_tf.models import NextItemModel
    keras.utils.set_random_seed(3)
    model = NextItemModel(SequenceEncoder(num_items=data.num_items,
                                          num_attributes=data.num_attributes, hidden_size=16,
                                          max_length=max_length, num_layers=1))
    model(np.zeros((1, max_length), "int32"))
    return model


def test_history_rules_on_repeat_answers_match_the_reference(repeat_data):
    from s3rec_tf.data.inputs import eval_arrays
    model = _random_model(repeat_data)
    arrays = eval_arrays(repeat_data, "test", 20)
    repeats = np.array([a in set(h.tolist()) for a, h in zip(arrays.answers, arrays.history)])
    assert 0.2 < repeats.mean() < 0.8  # the case the rules are about
    scores = model.score_last(arrays.input_ids).numpy()
    for rule in ("remove", "original", "keep"):
        evaluator = RankingEvaluator(model, batch_size=64, history_rule=rule)
        got = evaluator.ranks(arrays, "full")
        low, high = reference_ranks(scores, arrays.answers, arrays.history, rule)
        assert ((got >= low) & (got <= high)).all(), rule
        if rule != "original":  # no ties to place: exact
            assert got.tolist() == low.tolist()
            assert evaluator.evaluate(arrays, "full") == pytest.approx(reference_metrics(low))
        else:  # a repeat answer ties with the other history items, at 0
            assert (high > low)[repeats].mean() > 0.9
            assert evaluator.evaluate(arrays, "full") == pytest.approx(reference_metrics(got))
        if rule == "remove":  # a repeat answer is never a hit
            assert np.isinf(got[repeats]).all() and np.isfinite(got[~repeats]).all()
            assert evaluator.evaluate(arrays, "full")["HR@20"] <= 1 - repeats.mean()


def test_rules_agree_without_repeat_answers_and_sampled_ignores_the_rule(repeat_data):
    from s3rec_tf.data.inputs import eval_arrays
    model = _random_model(repeat_data)
    arrays = eval_arrays(repeat_data, "test", 20)
    fresh = np.array([a not in set(h.tolist()) for a, h in zip(arrays.answers, arrays.history)])
    subset = EvalArrays(arrays.input_ids[fresh], arrays.answers[fresh],
                        arrays.history[fresh], arrays.negatives[fresh])
    removed = RankingEvaluator(model, history_rule="remove")
    # no repeat answer: remove ranks as the exclusion always did, finite
    assert np.isfinite(removed.ranks(subset, "full")).all()
    sampled = {rule: RankingEvaluator(model, history_rule=rule).ranks(arrays, "sampled")
               for rule in ("remove", "original", "keep")}
    assert sampled["remove"].tolist() == sampled["original"].tolist() == \
        sampled["keep"].tolist()


def test_remove_ranks_what_the_export_serves(tiny_export, tiny_data):
    # the evaluator's top k (every item ranked as the answer) against the export's
    import os

    from s3rec_tf import artifacts
    from s3rec_tf.serving import Recommender
    model_dir = os.path.join(os.path.dirname(os.path.dirname(tiny_export)), "ft", "best")
    model, _ = artifacts.load_next_item_model(model_dir)
    max_length, num_items, k = model.encoder.max_length, tiny_data.num_items, 10
    histories = [[3, 9, 4, 9, 3], [12], list(range(1, 30)) + [7, 7], [5, 5, 5]]
    recommender = Recommender(tiny_export)
    try:
        for rule, exclude in (("remove", True), ("keep", False)):
            evaluator = RankingEvaluator(model, history_rule=rule)
            served = recommender.recommend([[str(i) for i in h] for h in histories], k,
                                           exclude_history=exclude)
            for history, answer in zip(histories, served):
                tail = np.zeros(max_length, np.int32)
                tail[max_length - min(len(history), max_length):] = history[-max_length:]
                items = np.arange(1, num_items + 1)
                arrays = EvalArrays(np.tile(tail, (num_items, 1)), items,
                                    np.tile(np.asarray(history, np.int32), (num_items, 1)),
                                    None)
                ranks = evaluator.ranks(arrays, "full")
                top = items[np.argsort(ranks, kind="stable")][:k]
                assert (ranks[np.argsort(ranks, kind="stable")][:k] < k).all()
                assert [int(i) for i, _ in answer] == top.tolist(), (rule, history)
                if exclude:
                    assert not set(top.tolist()) & set(history)
    finally:
        recommender.close()
