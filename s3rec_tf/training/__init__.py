"""Pretraining and fine-tuning runs: seeded, checkpointed, resumable.

`run_pretraining` and `run_finetuning` are what the CLI and the TFX
components call. Each writes into an output directory:

- `_resume/`: a `tf.train.Checkpoint` of model, optimizer and run state,
  saved every epoch; rerunning the same command resumes from it (after an
  interruption, or with a larger `--epochs` to train further).
- pretraining: the pretrained model directory at `<output>/` (plus
  `<output>/epochs-N/` snapshots every `save_every` epochs, and
  `history.jsonl`: the per-sample losses of each epoch, one JSON line each);
- fine-tuning: the best model by validation metric (`<output>/best/`, kept
  in `_resume/best/` while the run goes on) and `metrics.json`, both written
  when the run completes;
- `config.json`: the run's resolved configuration (its recipe, for
  `--config`; the model directories' manifests are the record of their
  models, and loading reads only them), written when the run completes;
- `<Name>_sample.txt`: the sampled negatives, when they were drawn rather
  than read from the data directory, written when the run completes.

A refused run (bad data, a missing or mismatched pretrained model, a resume
whose data or settings differ) writes nothing: every check runs before the
first file is written.

The package, by job: `jobs` (the one builder of a model, its optimizer, batches and
callbacks from a config and data, for the runs, the Tuner and the benches),
`pretraining` and `finetuning` (the two runs),
`resume` (the `_resume/` checkpoint), `runs` (logging, the epoch callback and the
saved files both runs share), `encoders` (build, load or import an encoder),
`evaluate` (metrics of a model), `optim` (Adam as the original's, and `lazy-adam`),
`distribute` (`--strategy`: several devices or workers).
"""

from s3rec_tf.config import EncoderConfig, FinetuneConfig, PretrainConfig
from s3rec_tf.training import distribute
from s3rec_tf.training.encoders import (build_encoder, import_original_weights,
                                        load_pretrained_encoder)
from s3rec_tf.training.evaluate import evaluate_model
from s3rec_tf.training.finetuning import run_finetuning
from s3rec_tf.training.jobs import (Job, finetune_sampling, finetuning_job,
                                    next_item_loss_options, pretraining_job)
from s3rec_tf.training.optim import DenseGradientAdam, LazyAdam, adam, make_optimizer
from s3rec_tf.training.pretraining import run_pretraining
from s3rec_tf.training.resume import RESUME_DIR
from s3rec_tf.training.runs import save_run_config

__all__ = ["distribute", "EncoderConfig", "PretrainConfig", "FinetuneConfig", "DenseGradientAdam", "adam",
           "LazyAdam", "make_optimizer",
           "RESUME_DIR", "build_encoder", "load_pretrained_encoder", "import_original_weights",
           "evaluate_model", "run_pretraining", "run_finetuning", "save_run_config",
           "finetune_sampling", "next_item_loss_options", "Job", "pretraining_job",
           "finetuning_job"]
