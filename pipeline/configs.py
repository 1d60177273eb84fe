"""Pipeline settings: plain values (the embedded synthetic demo by default).

`pipeline/local_runner.py` and `pipeline/kubeflow_v2_runner.py` read these;
the local runner's command-line flags override some of them.
"""

PIPELINE_NAME = "s3rec-tf"

#: Where the local runner keeps everything (pipeline root, MLMD, serving dir).
LOCAL_ROOT = "runs/pipeline"

#: Input data: the synthetic demo by default; any dataset of a supported format
#: (`s3rec`, `recbole`, `csv`, `parquet`, `tfrecord`).
DATA_DIR = "runs/pipeline/data"
DATASET = "Synthetic"
INPUT_FORMAT = "s3rec"
K_CORE = 0
#: Seed of the drawn negatives (used when the dataset has no `<Name>_sample.txt`).
NEGATIVES_SEED = 0
#: A schema for ImportSchemaGen; None: the project's schema for `s3rec`/`recbole`,
#: SchemaGen's inferred one for the others.
SCHEMA_PATH = None

#: Hyperparameters: paper defaults unless overridden (fields of
#: `s3rec_tf.config.EncoderConfig` / `PretrainConfig` / `FinetuneConfig`;
#: an unknown key is an error). The demo keeps the paper's architecture but
#: trains briefly so it finishes in minutes.
PRETRAIN_HPARAMS = {"epochs": 3, "save_every": 0}
FINETUNE_HPARAMS = {"epochs": 20, "patience": 5}

#: The optional Tuner (off by default): its best values feed both Trainers.
ENABLE_TUNER = False
#: The Tuner's `custom_config`: trial budget, each trial's runs, and optionally
#: `search_space` (`{key: [choices]}`; default `components.trainer_module.SEARCH_SPACE`).
TUNER_CONFIG = {"max_trials": 4, "pretrain": {"epochs": 2, "save_every": 0},
                "finetune": {"epochs": 10, "patience": 3}}

#: Blessing: minimum metrics, and the metric that must not regress.
THRESHOLDS = {"test/sampled/HR@10": 0.2}
COMPARE_METRIC = "test/full/NDCG@10"

#: The optional BatchRecommender (off by default): every user's top-k from the
#: pushed model, with Beam RunInference (`s3rec_tf.batch`), as TFRecord and Parquet.
ENABLE_BATCH_RECOMMENDATIONS = False
#: Its parameters: `k`, and `index` (`brute`, exact; `scann`, needs scann==1.3.2).
BATCH_RECOMMENDATIONS = {"k": 10, "index": "brute"}

#: Beam options of the Beam components (ExampleGen, StatisticsGen, PrepareSequences).
BEAM_ARGS = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]

#: Vertex AI training (`pipeline/kubeflow_v2_runner.py --training-workers N`, N > 1).
VERTEX_PROJECT = "YOUR_PROJECT"
VERTEX_REGION = "us-central1"
TRAINING_MACHINE_TYPE = "n1-standard-8"
