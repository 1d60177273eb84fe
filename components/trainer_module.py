"""`run_fn` and `tuner_fn` of the standard TFX `Trainer` and `Tuner`.

One module for both Trainers: `custom_config["job"]` says which run it is.

- `pretrain`: `s3rec_tf.training.run_pretraining` on the prepared dataset;
  the pretrained model directory goes to `fn_args.serving_model_dir` (the
  next Trainer's `fn_args.base_model`); TensorBoard logs (total and the four
  per-head losses per epoch) to `fn_args.model_run_dir`.
- `finetune`: `s3rec_tf.training.run_finetuning` from `fn_args.base_model`;
  the library's model directory (with `best/`, `metrics.json`) under
  `<model>/s3rec/`, the TF Serving SavedModel
  (`s3rec_tf.serving.export_serving_model`) in `fn_args.serving_model_dir`
  for the Pusher; TensorBoard logs (loss, validation metrics per epoch) to
  `fn_args.model_run_dir`.

Several workers: `{"strategy": "multi-worker"}` in the hyperparameters and a
Vertex AI training configuration (`pipeline/kubeflow_v2_runner.py
--training-workers`); every replica runs `run_fn` with its `TF_CONFIG`, and only
the chief writes the model (`s3rec_tf.training.distribute`).

Hyperparameters: `custom_config["hyperparameters"]` (a flat dict of
`EncoderConfig` and the job's config fields; an unknown key is an error
naming it), then the Tuner's best values (`fn_args.hyperparameters`) for
the keys the job knows.

`tuner_fn`: a KerasTuner random search; each trial pretrains briefly and
fine-tunes with the trial's values and scores the best validation epoch
(`SEARCH_SPACE`, the trial budget `max_trials`, both overridable in the
Tuner's `custom_config`). A trial run whose hyperparameters set
`shuffle_buffer` streams its users, as the Trainers do.
"""

from __future__ import annotations

import os

from s3rec_tf.config import SERVING_K

#: Where the fine-tuning Trainer keeps the library's model inside its `Model` artifact.
LIBRARY_MODEL_DIR = "s3rec"

#: The default search space (choices per key): the fine-tuning learning rate,
#: dropout, hidden size and the four pretraining loss weights.
SEARCH_SPACE = {
    "learning_rate": [1e-3, 5e-4, 2e-4],
    "dropout": [0.2, 0.3, 0.5],
    "hidden_size": [32, 64],
    "aap_weight": [0.2, 0.5, 1.0],
    "mip_weight": [0.5, 1.0],
    "map_weight": [0.5, 1.0],
    "sp_weight": [0.2, 0.5, 1.0],
}
#: Trials of the default budget.
MAX_TRIALS = 4


def library_model_dir(model_uri: str) -> str:
    """The fine-tuned library model (`best/`, `metrics.json`) inside a `Model` artifact."""
    return os.path.join(model_uri, LIBRARY_MODEL_DIR)


def tuned_values(hyperparameters, job: str) -> dict:
    """The Tuner's best values (a KerasTuner config dict) that `job` knows."""
    from s3rec_tf import hparams
    if not hyperparameters:
        return {}
    values = hyperparameters.get("values", hyperparameters)
    known = set(hparams.known_keys(job))
    return {k: v for k, v in values.items() if k in known}


def _data(fn_args, stream: bool = False):
    """The prepared dataset of the Trainer's examples: streamed when `stream`."""
    from s3rec_tf.data import prepared
    return prepared.open_prepared(prepared.root_of(fn_args.train_files[0]), stream=stream)


def run_fn(fn_args) -> None:
    """The Trainer's entry point (see the module doc)."""
    from s3rec_tf import hparams, serving, training
    config = dict(fn_args.custom_config or {})
    job = config.get("job")
    params = dict(config.get("hyperparameters") or {})
    hparams.check(params, job)
    params.update(tuned_values(fn_args.hyperparameters, job))
    encoder_config, job_config = hparams.configs(params, job)
    # before any TensorFlow op: a multi-worker strategy configures collective ops
    dist = training.distribute.distribution(job_config.strategy)
    # a shuffle buffer streams the users from the prepared records (bounded memory)
    data = _data(fn_args, stream=bool(job_config.shuffle_buffer))
    if job == "pretrain":
        training.run_pretraining(data, fn_args.serving_model_dir, encoder_config, job_config,
                                 verbose=1, tensorboard_dir=fn_args.model_run_dir)
        return
    out = library_model_dir(os.path.dirname(fn_args.serving_model_dir.rstrip("/")))
    training.run_finetuning(data, out, fn_args.base_model, encoder_config, job_config,
                            verbose=1, tensorboard_dir=fn_args.model_run_dir)
    if not dist.is_chief:  # the chief exports
        return
    serving.export_serving_model(os.path.join(out, "best"), None,
                                 vocabulary=data.item_vocabulary,
                                 default_k=int(config.get("default_k", SERVING_K)),
                                 target_dir=fn_args.serving_model_dir)


def tuner_fn(fn_args):
    """The Tuner's entry point: a `TunerFnResult` with a KerasTuner random search.

    `custom_config`: `pretrain` / `finetune` (hyperparameters of each trial's
    runs, validated like the Trainers'), `search_space` (`{key: [choices]}`,
    default `SEARCH_SPACE`), `max_trials` (default `MAX_TRIALS`), `seed`.
    """
    import keras_tuner
    from tfx.components.tuner.component import TunerFnResult

    from s3rec_tf import hparams, training
    config = dict(fn_args.custom_config or {})
    pretrain_params = dict(config.get("pretrain") or {})
    finetune_params = dict(config.get("finetune") or {})
    hparams.check(pretrain_params, "pretrain")
    hparams.check(finetune_params, "finetune")
    space = dict(config.get("search_space") or SEARCH_SPACE)
    both = set(hparams.known_keys("pretrain")) | set(hparams.known_keys("finetune"))
    unknown = sorted(set(space) - both)
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) {unknown} in the search space; "
                         f"known: {sorted(both)}")
    hp = keras_tuner.HyperParameters()
    for key, choices in space.items():
        hp.Choice(key, list(choices))
    in_memory = []  # read once, on the first trial run that does not stream

    def data_for(job_config):
        """A trial run's data: streamed when its config has a shuffle buffer (bounded
        memory, as the Trainer's `run_fn`), else every user in memory, read once."""
        if job_config.shuffle_buffer:
            return _data(fn_args, stream=True)
        if not in_memory:
            in_memory.append(_data(fn_args))
        return in_memory[0]

    class S3RecSearch(keras_tuner.RandomSearch):
        """Each trial: pretraining, then fine-tuning from it; the score is the best
        validation metric of fine-tuning."""

        def run_trial(self, trial, *args, **kwargs):
            values = trial.hyperparameters.values
            root = os.path.join(fn_args.working_dir, "trials", trial.trial_id)
            pre = {**pretrain_params, **{k: v for k, v in values.items()
                                        if k in hparams.known_keys("pretrain")}}
            fine = {**finetune_params, **{k: v for k, v in values.items()
                                         if k in hparams.known_keys("finetune")}}
            enc, pre_cfg = hparams.configs(pre, "pretrain")
            training.run_pretraining(data_for(pre_cfg), os.path.join(root, "pretrained"),
                                     enc, pre_cfg, verbose=0)
            enc, fine_cfg = hparams.configs(fine, "finetune")
            summary = training.run_finetuning(data_for(fine_cfg), os.path.join(root, "finetuned"),
                                              os.path.join(root, "pretrained"), enc, fine_cfg,
                                              verbose=0)
            return {"valid_score": summary["metrics"][f"valid/{fine_cfg.valid_protocol}"][
                fine_cfg.valid_metric]}

    tuner = S3RecSearch(hypermodel=None, hyperparameters=hp, tune_new_entries=False,
                        objective=keras_tuner.Objective("valid_score", "max"),
                        max_trials=int(config.get("max_trials", MAX_TRIALS)),
                        seed=int(config.get("seed", 0)),
                        directory=os.path.join(fn_args.working_dir, "keras_tuner"),
                        project_name="s3rec", overwrite=True)
    return TunerFnResult(tuner=tuner, fit_kwargs={})
