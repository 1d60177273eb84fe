"""`RankingEvaluator`: full and sampled ranking of the fine-tuned model, and the blessing.

Custom because TFMA evaluates examples one by one against labels; it cannot
rank the whole catalogue for each user with the user's history excluded,
nor rank the answer among the dataset's fixed sampled negatives. The
metrics are the library's (`s3rec_tf.training.evaluate_model`), the rule
the library's (`s3rec_tf.evaluation_gate.bless`).
"""


import json
import os

from tfx.dsl.component.experimental.annotations import (InputArtifact, OutputArtifact,
                                                        Parameter)
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from components.trainer_module import library_model_dir
from s3rec_tf.config import HISTORY_RULES


@component
def RankingEvaluator(
    examples: InputArtifact[standard_artifacts.Examples],
    model: InputArtifact[standard_artifacts.Model],
    evaluation: OutputArtifact[standard_artifacts.ModelEvaluation],
    blessing: OutputArtifact[standard_artifacts.ModelBlessing],
    baseline_model: InputArtifact[standard_artifacts.Model] = None,
    thresholds: Parameter[str] = "{}",
    compare_metric: Parameter[str] = "test/full/NDCG@10",
    history_rule: Parameter[str] = HISTORY_RULES[0],
) -> None:
    """Full and sampled ranking on validation and test; blesses or not.

    `examples`: the prepared dataset. Blessed when every threshold
    (`{"test/full/NDCG@10": 0.01, ...}`, minimum values) is met and
    `compare_metric` is not below the baseline's (the last blessed model,
    evaluated on the same data), when there is one. `history_rule`: full
    ranking's (`s3rec_tf.config.HISTORY_RULES`; the default, `remove`, is
    what the pushed export serves), named in `metrics.json` and the blessing.
    """
    from s3rec_tf import artifacts
    from s3rec_tf.io import write_json_atomic
    from s3rec_tf.data.prepared import open_prepared
    from s3rec_tf.evaluation_gate import bless, flatten
    from s3rec_tf.models.ranking import check_history_rule
    from s3rec_tf.training import evaluate_model
    check_history_rule(history_rule)
    # streamed: users are ranked chunk by chunk, the same metrics in bounded memory
    data = open_prepared(examples.uri, stream=True)

    def metrics_of(artifact):
        loaded, _ = artifacts.load_next_item_model(
            os.path.join(library_model_dir(artifact.uri), "best"))
        return flatten(evaluate_model(loaded, data, history_rule=history_rule))

    current = metrics_of(model)
    baseline = metrics_of(baseline_model) if baseline_model else None
    decision = bless(current, json.loads(thresholds or "{}"), compare_metric, baseline)
    report = {"model": model.uri, "metrics": current, "history_rule": history_rule,
              "negatives": data.sample_source,
              "baseline_model": baseline_model.uri if baseline_model else None,
              "baseline_metrics": baseline, **decision}
    write_json_atomic(os.path.join(evaluation.uri, "metrics.json"), report)
    blessing.set_int_custom_property("blessed", int(decision["blessed"]))
    blessing.set_string_custom_property("current_model", model.uri)
    blessing.set_string_custom_property("history_rule", history_rule)
    blessing.set_int_custom_property("current_model_id", model.id)
    if baseline_model:
        blessing.set_int_custom_property("baseline_model_id", baseline_model.id)
    open(os.path.join(blessing.uri, "BLESSED" if decision["blessed"] else "NOT_BLESSED"),
         "w").close()
    print("RankingEvaluator: " + ("BLESSED" if decision["blessed"] else "NOT BLESSED") +
          f" ({'; '.join(decision['reasons']) or 'all checks passed'}); "
          f"{compare_metric}={current.get(compare_metric, float('nan')):.4f}", flush=True)
