"""`DataSource`: in-memory and streamed users behind one interface, the same rows and metrics."""

import ast
import glob
import os

import numpy as np
import pytest

from s3rec_tf.config import FinetuneConfig, PretrainConfig
from s3rec_tf.data import inputs, prepared
from s3rec_tf.data.source import InMemorySource, StreamedSource, data_source
from s3rec_tf.errors import DataError
from tests.conftest import write_prepared

MAX_LENGTH = 20


@pytest.fixture(scope="module")
def sources(tiny_data, tmp_path_factory):
    root = write_prepared(tiny_data, tmp_path_factory.mktemp("source") / "Tiny")
    return (data_source(prepared.read_prepared(root)),
            data_source(prepared.open_prepared(root, stream=True)))


def test_data_source_wraps_either_kind_of_data(sources, tiny_data):
    in_memory, streamed = sources
    assert isinstance(in_memory, InMemorySource) and isinstance(streamed, StreamedSource)
    assert data_source(streamed) is streamed
    assert isinstance(data_source(tiny_data), InMemorySource)
    assert in_memory.num_users == streamed.num_users == tiny_data.num_users
    assert in_memory.num_items == streamed.num_items == tiny_data.num_items


def test_both_sources_count_the_same_training_rows(sources, tiny_data):
    in_memory, streamed = sources
    samples = inputs.pretrain_arrays(tiny_data, MAX_LENGTH).num_samples
    assert in_memory.pretrain_samples(MAX_LENGTH) == streamed.pretrain_samples(MAX_LENGTH) \
        == samples
    assert in_memory.finetune_rows(MAX_LENGTH, "sequences") \
        == streamed.finetune_rows(MAX_LENGTH, "sequences") == tiny_data.num_users
    steps = inputs.steps_per_epoch(samples, 64)
    for source, config in ((in_memory, PretrainConfig(epochs=1)),  # streamed: in file order
                           (streamed, PretrainConfig(epochs=1, shuffle_buffer=0))):
        batches = list(source.pretrain_dataset(MAX_LENGTH, 64, config))
        assert len(batches) == steps
        assert sum(len(b["pos_items"]) for b in batches) == samples
    steps = inputs.steps_per_epoch(tiny_data.num_users, 32)
    for source, config in ((in_memory, FinetuneConfig(epochs=1)),
                           (streamed, FinetuneConfig(epochs=1, shuffle_buffer=40))):
        batches = list(source.finetune_dataset(MAX_LENGTH, 32, config, 0, {"negatives": True}))
        assert len(batches) == steps
        assert sum(len(b["input_ids"]) for b in batches) == tiny_data.num_users
        assert all("target_neg" in b for b in batches)


def test_both_sources_give_the_same_evaluation_chunks_and_metrics(sources):
    from s3rec_tf.models import NextItemModel
    from s3rec_tf.models.layers import SequenceEncoder
    from s3rec_tf.training import evaluate_model
    in_memory, streamed = sources
    for split in ("valid", "test"):
        got = [list(s.eval_chunks(split, MAX_LENGTH, chunk=50)) for s in sources]
        assert [len(c.answers) for c in got[0]] == [len(c.answers) for c in got[1]]
        for key in ("input_ids", "answers", "negatives"):
            assert np.array_equal(*(np.concatenate([getattr(c, key) for c in chunks])
                                    for chunks in got)), key
    model = NextItemModel(SequenceEncoder(in_memory.num_items, in_memory.data.num_attributes,
                                          hidden_size=16, max_length=MAX_LENGTH))
    expected = evaluate_model(model, in_memory)
    assert set(expected) == {"valid/full", "valid/sampled", "test/full", "test/sampled"}
    for got in (evaluate_model(model, streamed), evaluate_model(model, streamed.data)):
        for key, values in expected.items():
            for metric, value in values.items():
                assert got[key][metric] == pytest.approx(value, abs=1e-9), (key, metric)


@pytest.mark.parametrize("protocol", ["full", "sampled"])
def test_both_sources_give_the_same_ranking_batches(sources, protocol):
    batches = [list(s.ranking_dataset("valid", protocol, MAX_LENGTH, 32).as_numpy_iterator())
               for s in sources]
    assert len(batches[0]) == len(batches[1]) > 1
    for a, b in zip(*batches):
        assert set(a) == set(b)
        for key in set(a) - {"history"}:
            assert np.array_equal(a[key], b[key]), key
        if "history" in a:  # left-padded to the split's widest row or the batch's
            assert [r[r > 0].tolist() for r in a["history"]] == \
                [r[r > 0].tolist() for r in b["history"]]
            width = b["history"].shape[1]
            assert np.array_equal(a["history"][:, -width:], b["history"])


def test_each_source_refuses_what_it_cannot_train(sources):
    in_memory, streamed = sources
    with pytest.raises(DataError, match="prepared directory"):
        in_memory.check(PretrainConfig(shuffle_buffer=50, segment_negatives="batch"))
    in_memory.check(FinetuneConfig(training_rows="prefixes"))
    with pytest.raises(DataError, match="prefixes.*in memory"):
        streamed.check(FinetuneConfig(training_rows="prefixes"))
    with pytest.raises(DataError, match="sampled-ce.*in memory"):
        streamed.check(FinetuneConfig(loss="sampled-ce"))
    streamed.check(PretrainConfig(shuffle_buffer=50, segment_negatives="batch"))


#: What a fork on the kind of data reads: the stream's modules and markers, and the flags
#: that told the two apart (with `<...arrays> is None`: no arrays, so streamed).
_STREAM_NAMES = {"streaming", "StreamedData", "StreamEvaluator", "StreamSplit", "prepared_dir",
                 "prepared_dir_of", "evaluate_stream", "is_prepared", "open_prepared"}
_FORK_NAMES = {"shuffle_buffer", "stream", "streamed", "prepared_dir", "StreamedData"}


def _arrays_is_none(test) -> bool:
    return any(isinstance(n, ast.Compare) and any(isinstance(o, (ast.Is, ast.IsNot))
                                                   for o in n.ops)
               and "arrays" in getattr(n.left, "id", getattr(n.left, "attr", ""))
               for n in ast.walk(test))


def _names(node) -> set:
    out = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            out.add(n.id)
        elif isinstance(n, ast.Attribute):
            out.add(n.attr)
        elif isinstance(n, ast.Constant) and isinstance(n.value, str):
            out.add(n.value)
        elif isinstance(n, ast.alias):
            out.update(n.name.split("."))
    return out


def test_training_and_evaluation_do_not_branch_on_the_kind_of_data():
    """They read the users through `DataSource` alone: no module of `s3rec_tf.training` nor
    `s3rec_tf.evaluation` names the stream, and no condition tests a streaming flag."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    paths = sorted(glob.glob(os.path.join(root, "s3rec_tf", "training", "*.py"))) + [
        os.path.join(root, "s3rec_tf", "evaluation.py")]
    assert len(paths) > 5
    for path in paths:
        tree = ast.parse(open(path).read())
        code = [n for n in ast.walk(tree) if not isinstance(n, ast.Expr)]  # docstrings aside
        named = set().union(*(_names(n) for n in code if isinstance(
            n, (ast.Import, ast.ImportFrom, ast.Name, ast.Attribute, ast.Call))))
        assert not named & _STREAM_NAMES, (path, named & _STREAM_NAMES)
        for node in ast.walk(tree):
            tests = ([node.test] if isinstance(node, (ast.If, ast.IfExp, ast.While)) else
                     node.ifs if isinstance(node, ast.comprehension) else [])
            for test in tests:
                assert not _names(test) & _FORK_NAMES, (path, ast.unparse(test))
                assert not _arrays_is_none(test), (path, ast.unparse(test))
