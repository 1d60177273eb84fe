"""Metrics of a fine-tuned model on a dataset's splits."""

from __future__ import annotations

from s3rec_tf.config import HISTORY_RULES
from s3rec_tf.data.reader import SequenceData
from s3rec_tf.data.source import DataSource, data_source
from s3rec_tf.evaluation import RankingEvaluator


def evaluate_model(model, data: SequenceData | DataSource, protocols=("full", "sampled"),
                   splits=("valid", "test"), max_length: int | None = None,
                   history_rule: str = HISTORY_RULES[0]) -> dict:
    """Metrics of `model` on `data` for each split and protocol.

    `data` is in memory or streamed (`s3rec_tf.data.source.data_source`):
    either way the users are ranked chunk by chunk (`DataSource.eval_chunks`)
    and the chunks' ranks combined, the same metrics; streamed data are
    ranked as they are read, with bounded memory. `max_length` defaults to
    the model's own maximum length; `history_rule` is full ranking's
    (`s3rec_tf.models.ranking.answer_ranks`).
    """
    max_length = max_length or model.encoder.max_length
    source = data_source(data)
    evaluator = RankingEvaluator(model, history_rule=history_rule)
    return {f"{split}/{protocol}": evaluator.evaluate(
                source.eval_chunks(split, max_length, evaluator.batch_size), protocol)
            for split in splits for protocol in protocols}
