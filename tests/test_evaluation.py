import numpy as np

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
