import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

from s3rec_tf import artifacts, serving, training

ENC = training.EncoderConfig(hidden_size=16, max_length=10)


@pytest.fixture(scope="module")
def exported(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("serving")
    cfg = training.FinetuneConfig(epochs=1, batch_size=64, seed=0)
    training.run_finetuning(tiny_data, str(out / "ft"), None, ENC, cfg, verbose=0)
    vocab = [f"item-{i}" for i in range(1, tiny_data.num_items + 1)]
    path = serving.export_serving_model(str(out / "ft" / "best"), str(out / "serve"),
                                        version=7, vocabulary=vocab, default_k=5)
    return {"path": path, "model_dir": str(out / "ft" / "best"), "vocab": vocab,
            "base": str(out / "serve")}


def library_top_k(model_dir, histories, k, exclude=True):
    """The library's own answer: NextItemModel scores, history removed, top k."""
    model, _ = artifacts.load_next_item_model(model_dir)
    max_len = model.encoder.max_length
    out = []
    for h in histories:
        ids = np.zeros((1, max_len), "int32")
        tail = h[-max_len:]
        if tail:
            ids[0, max_len - len(tail):] = tail
        scores = model.score_last(ids).numpy()[0].astype(np.float64)
        scores[[0, model.encoder.mask_id]] = -np.inf
        if exclude:
            scores[list(h)] = -np.inf
        order = np.argsort(-scores, kind="stable")[:k]
        out.append((order.tolist(), scores[order]))
    return out


def test_layout_assets_and_signatures(exported):
    path = exported["path"]
    assert path.endswith(os.path.join("serve", "7"))
    assert os.path.exists(os.path.join(path, "saved_model.pb"))
    assert os.path.exists(os.path.join(path, "assets", serving.VOCABULARY_ASSET))
    manifest = json.load(open(os.path.join(path, "assets.extra", "manifest.json")))
    assert manifest["serving"]["default_k"] == 5
    assert serving.resolve_export_dir(exported["base"]) == path


SCRIPT = r"""
import json, sys
import numpy as np, tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
hist = [["item-3", "item-9", "item-4"], ["item-12", "", ""]]
out = {}
r = m.signatures["serving_default"](history=tf.constant(hist))
out["default"] = [r["item_ids"].numpy().astype(str).tolist(), r["scores"].numpy().tolist()]
r = m.signatures["serve_top_k"](history=tf.constant(hist), k=tf.constant(7),
                                exclude_history=tf.constant(True))
out["top_k"] = [r["item_ids"].numpy().astype(str).tolist(), r["scores"].numpy().tolist()]
ex = []
for h in hist:
    e = tf.train.Example(features=tf.train.Features(feature={"history": tf.train.Feature(
        bytes_list=tf.train.BytesList(value=[x.encode() for x in h if x]))}))
    ex.append(e.SerializeToString())
r = m.signatures["serve_examples"](examples=tf.constant(ex))
out["examples"] = r["item_ids"].numpy().astype(str).tolist()
emb = m.signatures["item_embeddings"]()
out["emb_shape"] = list(emb["embeddings"].shape)
out["emb_first_id"] = emb["item_ids"].numpy()[0].decode()
print("RESULT" + json.dumps(out))
"""


def test_fresh_process_answers_equal_the_library(exported):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, exported["path"]], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.split("RESULT", 1)[1])
    want5 = library_top_k(exported["model_dir"], [[3, 9, 4], [12]], 5)
    want7 = library_top_k(exported["model_dir"], [[3, 9, 4], [12]], 7)

    def names(idx):
        return [f"item-{i}" for i in idx]

    for row, (idx, scores) in enumerate(want5):
        assert out["default"][0][row] == names(idx)
        np.testing.assert_allclose(out["default"][1][row], scores, rtol=1e-5)
        assert out["examples"][row] == names(idx)
    for row, (idx, _) in enumerate(want7):
        assert out["top_k"][0][row] == names(idx)
    assert out["emb_first_id"] == "item-1"
    assert out["emb_shape"] == [len(exported["vocab"]), 16]


def test_unknown_long_and_include_history(exported):
    rec = serving.Recommender(exported["path"])
    sig = rec.saved.signatures["serve_top_k"]
    long_history = [f"item-{i}" for i in range(1, 26)]  # longer than max_length 10
    r = sig(history=tf.constant([long_history + ["nope"]]), k=tf.constant(4),
            exclude_history=tf.constant(False))
    assert r["num_unknown"].numpy().tolist() == [1]
    assert r["num_known"].numpy().tolist() == [25]
    idx, _ = library_top_k(exported["model_dir"], [list(range(16, 26))], 4, exclude=False)[0]
    assert r["item_ids"].numpy().astype(str).tolist()[0] == [f"item-{i}" for i in idx]
    # excluded history never appears
    answers = rec.recommend([long_history], k=20)
    assert not {i for i, _ in answers[0]} & set(long_history)


def test_bad_requests_have_defined_answers_or_clear_errors(exported):
    rec = serving.Recommender(exported["path"])
    sig = rec.saved.signatures["serve_top_k"]
    # empty and all-unknown histories: a defined answer with num_known = 0
    for hist in ([["", ""]], [["x", "y"]]):
        r = sig(history=tf.constant(hist), k=tf.constant(3), exclude_history=tf.constant(True))
        assert r["num_known"].numpy().tolist() == [0]
        assert r["item_ids"].shape == (1, 3)
    # k larger than the catalogue is clipped; k <= 0 is a clear error
    r = sig(history=tf.constant([["item-1"]]), k=tf.constant(10 ** 6),
            exclude_history=tf.constant(False))
    assert r["item_ids"].shape[1] == len(exported["vocab"])
    with pytest.raises(tf.errors.InvalidArgumentError, match="k must be >= 1"):
        sig(history=tf.constant([["item-1"]]), k=tf.constant(0),
            exclude_history=tf.constant(True))
    with pytest.raises(ValueError, match="k must be >= 1"):
        rec.recommend([["item-1"]], k=-1)
    # an oversize batch is refused with a clear error, not an out-of-memory crash
    limit = serving.MAX_SCORES_PER_REQUEST // (len(exported["vocab"]) + 2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="batch too large"):
        sig(history=tf.fill([limit + 1, 1], "item-1"), k=tf.constant(1),
            exclude_history=tf.constant(True))
    # wrong dtype through the REST mapping
    specs = rec.saved.signatures["serve_int_ids"].structured_input_signature[1]
    with pytest.raises(ValueError, match="does not fit int64"):
        serving.rest_to_signature_inputs({"instances": [["a", "b"]]}, specs)


def test_rest_request_shapes_map_onto_signatures(exported):
    rec = serving.Recommender(exported["path"])
    default = rec.saved.signatures["serving_default"]
    specs = default.structured_input_signature[1]
    rows = serving.rest_to_signature_inputs(
        {"instances": [{"history": ["item-3", "item-9"]}, {"history": ["item-12"]}]}, specs)
    bare = serving.rest_to_signature_inputs({"instances": [["item-3", "item-9"], ["item-12"]]},
                                            specs)
    columns = serving.rest_to_signature_inputs(
        {"inputs": {"history": [["item-3", "item-9"], ["item-12"]]}}, specs)
    results = [default(**x)["item_ids"].numpy().tolist() for x in (rows, bare, columns)]
    assert results[0] == results[1] == results[2]
    top_specs = rec.saved.signatures["serve_top_k"].structured_input_signature[1]
    x = serving.rest_to_signature_inputs(
        {"inputs": {"history": [["item-3"]], "k": 3, "exclude_history": True}}, top_specs)
    assert rec.saved.signatures["serve_top_k"](**x)["item_ids"].shape == (1, 3)
    for bad in ({}, {"instances": []}, {"instances": [1], "inputs": {}},
                {"inputs": {"k": 3}}):
        with pytest.raises(ValueError):
            serving.rest_to_signature_inputs(bad, top_specs)


def test_export_refuses_bad_vocabulary_and_existing_version(exported):
    with pytest.raises(Exception, match="vocabulary has 2 ids"):
        serving.export_serving_model(exported["model_dir"], exported["base"], 8,
                                     vocabulary=["a", "b"])
    with pytest.raises(Exception, match="already exists"):
        serving.export_serving_model(exported["model_dir"], exported["base"], 7,
                                     vocabulary=exported["vocab"])


def test_cli_export_and_recommend(exported, tmp_path, capsys):
    from s3rec_tf import cli
    base = tmp_path / "serve"
    assert cli.main(["export", "--model", exported["model_dir"], "--output", str(base),
                     "--version", "3"]) == 0
    assert (base / "3" / "saved_model.pb").exists()
    capsys.readouterr()
    code = cli.main(["recommend", "--model", str(base), "--items", "3", "9", "-k", "4"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 4
    idx, scores = library_top_k(exported["model_dir"], [[3, 9]], 4)[0]
    assert [line.split()[0] for line in lines] == [str(i) for i in idx]
    # integer raw ids (the default vocabulary): serve_int_ids, 0 = padding
    loaded = tf.saved_model.load(str(base / "3"))
    r = loaded.signatures["serve_int_ids"](history=tf.constant([[3, 9, 0]], tf.int64))
    assert r["item_ids"].numpy().astype(str).tolist()[0][:4] == [str(i) for i in idx]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("tensorflow_model_server") is None,
                    reason="tensorflow_model_server is not on PATH (not installable on these "
                           "machines: no Docker engine, no Google apt repository)")
def test_real_tf_serving_rest_endpoint(exported):
    port = _free_port()
    proc = subprocess.Popen(["tensorflow_model_server", f"--rest_api_port={port}",
                             "--model_name=s3rec", f"--model_base_path={exported['base']}"])
    try:
        url = f"http://127.0.0.1:{port}/v1/models/s3rec:predict"
        body = json.dumps({"instances": [{"history": ["item-3", "item-9"]}]}).encode()
        for _ in range(60):
            try:
                with urllib.request.urlopen(urllib.request.Request(url, body)) as r:
                    answer = json.load(r)
                break
            except OSError:
                time.sleep(1)
        else:
            pytest.fail("TF Serving did not answer")
        idx, _ = library_top_k(exported["model_dir"], [[3, 9]], 5)[0]
        assert answer["predictions"][0]["item_ids"] == [f"item-{i}" for i in idx]
    finally:
        proc.terminate()


def test_fewer_eligible_than_k_gives_fill_and_counts(exported):
    rec = serving.Recommender(exported["path"])
    vocab = exported["vocab"]
    answer = rec.query([vocab[:-2], vocab, ["nope", vocab[0]]], k=5)
    assert [a["num_results"] for a in answer] == [2, 0, 5]
    assert {i for i, _ in answer[0]["items"]} == set(vocab[-2:])
    assert answer[1]["items"] == [] and answer[2]["num_unknown"] == 1
    sig = rec.saved.signatures["serve_top_k"]
    r = sig(history=tf.constant([vocab[:-2]]), k=tf.constant(5),
            exclude_history=tf.constant(True))
    assert r["item_ids"].numpy().astype(str)[0, 2:].tolist() == [serving.FILL_ID] * 3
    assert np.isneginf(r["scores"].numpy()[0, 2:]).all()
    assert rec.recommend([vocab], k=5) == [[]]
