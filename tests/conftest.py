import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

SHARED = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
GOLDEN = os.path.join(SHARED, "golden")
DATA = os.path.join(SHARED, "data", "s3rec")


def shared_file(*parts):
    """Path under ../shared, or skip the test saying why."""
    path = os.path.join(SHARED, *parts)
    if not os.path.exists(path):
        pytest.skip(f"{path} is absent: the real datasets and golden files live in ../shared "
                    f"beside the repository (see README, 'Data')")
    return path


def write_prepared(data, out) -> str:
    """A prepared directory of `data` (the layout `s3rec-tf prepare` writes), without Beam."""
    import json

    import tensorflow as tf
    from s3rec_tf.data import prepared
    os.makedirs(prepared.split_dir(out, prepared.SEQUENCES_SPLIT))
    os.makedirs(prepared.split_dir(out, prepared.ATTRIBUTES_SPLIT))
    half = data.num_users // 2  # two shards, as a runner writes
    for shard, users in enumerate((range(half), range(half, data.num_users))):
        path = os.path.join(prepared.split_dir(out, prepared.SEQUENCES_SPLIT),
                            f"sequences-0000{shard}-of-00002.tfrecord")
        with tf.io.TFRecordWriter(path) as w:
            for u in users:
                w.write(prepared.sequence_example(str(data.user_ids[u]), data.sequences[u],
                                                  data.sample_negatives[u]))
    with tf.io.TFRecordWriter(os.path.join(prepared.split_dir(out, prepared.ATTRIBUTES_SPLIT),
                                           "item_attributes-00000-of-00001.tfrecord")) as w:
        for item, attrs in data.item_attributes.items():
            w.write(prepared.attribute_example(item, attrs))
    with open(os.path.join(out, prepared.ITEM_VOCABULARY), "w") as f:
        f.writelines(f"{i}\n" for i in range(1, data.num_items + 1))
    with open(os.path.join(out, prepared.ATTRIBUTE_VOCABULARY), "w") as f:
        f.writelines(f"{i}\n" for i in range(1, data.num_attributes + 1))
    with open(os.path.join(out, prepared.STATS), "w") as f:
        json.dump({"users": data.num_users, "config": {"name": data.name, "seed": 1},
                   "negatives": data.sample_source, "users_too_short": 0}, f)
    return str(out)


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory):
    from s3rec_tf.data import synthetic
    out = tmp_path_factory.mktemp("synthetic")
    seqs, attrs = synthetic.generate(num_users=120, num_items=200, num_topics=8,
                                     num_attributes=20, max_length=25, seed=3)
    synthetic.write(str(out), seqs, attrs, "Tiny")
    return str(out)


@pytest.fixture(scope="session")
def tiny_data(synthetic_dir):
    from s3rec_tf.data.reader import read_dataset
    return read_dataset(synthetic_dir, "Tiny", negatives_seed=1)


@pytest.fixture(scope="session")
def tiny_finetuned(tiny_data, tmp_path_factory):
    """The best model (`<run>/ft/best`) of a brief fine-tuning run on `tiny_data`."""
    from s3rec_tf import training
    out = tmp_path_factory.mktemp("tiny_export")
    training.run_finetuning(tiny_data, str(out / "ft"), None,
                            training.EncoderConfig(hidden_size=16, max_length=10, num_layers=1),
                            training.FinetuneConfig(epochs=1, batch_size=64, seed=0), verbose=0)
    return str(out / "ft" / "best")


@pytest.fixture(scope="session")
def tiny_export(tiny_finetuned):
    """An export (`s3rec-tf export`, paper-format ids) of `tiny_finetuned`, at `<run>/serve/1`."""
    from s3rec_tf import serving
    run = os.path.dirname(os.path.dirname(tiny_finetuned))
    return serving.export_serving_model(tiny_finetuned, os.path.join(run, "serve"), version=1)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
