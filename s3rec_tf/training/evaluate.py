"""Metrics of a fine-tuned model on a dataset's splits."""

from __future__ import annotations

from s3rec_tf.config import HISTORY_RULES
from s3rec_tf.data import inputs as inputs_lib
from s3rec_tf.data.reader import SequenceData
from s3rec_tf.evaluation import RankingEvaluator


def evaluate_model(model, data: SequenceData, protocols=("full", "sampled"),
                   splits=("valid", "test"), max_length: int | None = None,
                   history_rule: str = HISTORY_RULES[0]) -> dict:
    """Metrics of `model` on `data` for each split and protocol.

    `max_length` defaults to the model's own maximum length; `history_rule`
    is full ranking's (`s3rec_tf.models.ranking.answer_ranks`). Streamed data
    (`streaming.StreamedData`) are ranked as they are read, chunk by chunk:
    the same metrics with bounded memory.
    """
    max_length = max_length or model.encoder.max_length
    if getattr(data, "prepared_dir", None) is not None:
        from s3rec_tf.data import streaming
        return streaming.evaluate_stream(model, data.prepared_dir, protocols, splits,
                                         max_length, history_rule=history_rule)
    evaluator = RankingEvaluator(model, history_rule=history_rule)
    out = {}
    for split in splits:
        arrays = inputs_lib.eval_arrays(data, split, max_length)
        for protocol in protocols:
            out[f"{split}/{protocol}"] = evaluator.evaluate(arrays, protocol)
    return out
