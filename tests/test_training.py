import contextlib
import io
import json
import os
import shutil

import numpy as np
import pytest

from s3rec_tf import artifacts, training
from s3rec_tf.errors import ArtifactError

ENC = training.EncoderConfig(hidden_size=16, max_length=20, num_layers=1)


def _pretrain(data, out, epochs, **kw):
    cfg = training.PretrainConfig(epochs=epochs, batch_size=64, save_every=1, seed=5, **kw)
    return training.run_pretraining(data, str(out), ENC, cfg, verbose=0)


def _weights(path):
    model, _ = artifacts.load_pretrainer(str(path))
    return [w.copy() for w in model.get_weights()]


@pytest.fixture(scope="module")
def pretrained(tiny_data, tmp_path_factory):
    """A one-epoch `_pretrain` run; tests that resume it work on a copy (`_copy`)."""
    out = tmp_path_factory.mktemp("pre")
    _pretrain(tiny_data, out, 1)
    return str(out)


def _copy(run, to):
    """A copy of the run directory `run` at `to` (what resuming it may change)."""
    shutil.copytree(run, to)
    return to


def test_pretraining_resumes_exactly(tiny_data, pretrained, tmp_path):
    _pretrain(tiny_data, tmp_path / "straight", 2)
    summary = _pretrain(tiny_data, _copy(pretrained, tmp_path / "resumed"), 2)
    assert summary["resumed_from_epoch"] == 1
    assert os.path.exists(tmp_path / "resumed" / "epochs-1" / artifacts.MANIFEST)
    for a, b in zip(_weights(tmp_path / "straight"), _weights(tmp_path / "resumed")):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with open(tmp_path / "resumed" / "history.jsonl") as f:  # one line per epoch, resumed too
        rows = [json.loads(line) for line in f]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all({"loss", "aap_loss", "mip_loss", "map_loss", "sp_loss"} <= set(r) for r in rows)


def test_resume_refuses_a_different_run(tiny_data, pretrained, tmp_path):
    run = _copy(pretrained, tmp_path / "p")
    with pytest.raises(ArtifactError, match="mask_p"):
        _pretrain(tiny_data, run, 2, mask_p=0.3)


def test_resume_reads_a_setting_missing_from_an_older_checkpoint_as_its_default(
        tiny_data, pretrained, tmp_path):
    _copy(pretrained, tmp_path / "p")
    path = tmp_path / "p" / training.RESUME_DIR / "signature.json"
    signature = json.loads(path.read_text())
    del signature["segment_loss"]  # written before the setting existed
    path.write_text(json.dumps(signature))
    _pretrain(tiny_data, tmp_path / "p", 2)  # the default: the same run, resumes
    # resuming rewrote the signature with the setting: a different value is refused
    with pytest.raises(ArtifactError,
                       match="segment_loss: checkpoint 'original' vs now 'logit-gap'"):
        _pretrain(tiny_data, tmp_path / "p", 3, segment_loss="logit-gap")


def _finetune_config(loss):
    return training.FinetuneConfig(epochs=3, batch_size=64, patience=1, loss=loss, seed=1)


@pytest.fixture(scope="module")
def finetuned(tiny_data, pretrained, tmp_path_factory):
    """`finetuned(loss)`: `(output dir, summary)` of the `_finetune_config(loss)` run from
    `pretrained`, run once per loss."""
    runs = {}

    def run(loss):
        if loss not in runs:
            out = tmp_path_factory.mktemp(f"finetuned-{loss}")
            runs[loss] = (out, training.run_finetuning(tiny_data, str(out), pretrained, ENC,
                                                       _finetune_config(loss), verbose=0))
        return runs[loss]
    return run


@pytest.mark.parametrize("loss", ["bce", "ce"])
def test_finetune_keeps_best_and_reports_both_protocols(finetuned, loss):
    out, summary = finetuned(loss)
    assert set(summary["metrics"]) == {"valid/full", "valid/sampled", "test/full",
                                       "test/sampled"}
    history = [json.loads(line) for line in open(out / "history.jsonl")]
    scores = [h["valid_sampled/MRR"] for h in history]
    assert summary["best_epoch"] == int(np.argmax(scores)) + 1
    # early stopping with patience 1: stops one epoch after the last gain
    assert len(history) <= 3
    manifest = artifacts.read_manifest(str(out / "best"))
    assert manifest["kind"] == "finetuned" and artifacts.task_config(manifest)["loss"] == loss
    with open(out / "metrics.json") as f:
        assert json.load(f)["metrics"] == summary["metrics"]


def test_finetune_refuses_missing_or_mismatched_pretrained(tiny_data, pretrained, tmp_path):
    cfg = training.FinetuneConfig(epochs=1)
    with pytest.raises(ArtifactError, match="not found"):
        training.run_finetuning(tiny_data, str(tmp_path / "a"), str(tmp_path / "missing"),
                                ENC, cfg, verbose=0)
    bigger = training.EncoderConfig(hidden_size=32, max_length=20)
    with pytest.raises(ArtifactError, match="hidden_size: pretrained 16 vs requested 32"):
        training.run_finetuning(tiny_data, str(tmp_path / "b"), pretrained, bigger, cfg,
                                verbose=0)
    from s3rec_tf.data.reader import SequenceData
    other = SequenceData("Other", tiny_data.user_ids, tiny_data.sequences,
                         tiny_data.num_items + 5, tiny_data.num_attributes,
                         tiny_data.item_attributes, tiny_data.sample_negatives)
    with pytest.raises(ArtifactError, match="num_items"):
        training.run_finetuning(other, str(tmp_path / "c"), pretrained, ENC, cfg, verbose=0)


def test_same_seed_same_metrics(tiny_data, tmp_path):
    cfg = training.FinetuneConfig(epochs=2, batch_size=64, seed=3)
    a = training.run_finetuning(tiny_data, str(tmp_path / "a"), None, ENC, cfg, verbose=0)
    b = training.run_finetuning(tiny_data, str(tmp_path / "b"), None, ENC, cfg, verbose=0)
    assert a["metrics"] == b["metrics"]


def test_import_original_weights(tmp_path):
    from tests.conftest import shared_file
    weights = shared_file("golden", "LastFM-epochs-150.weights.npz")
    out = training.import_original_weights(weights, str(tmp_path / "imported"))
    model, manifest = artifacts.load_pretrainer(out)
    assert manifest["vocabulary"]["num_items"] == 3646
    import numpy as np
    from s3rec_tf.original_weights import read_npz
    np.testing.assert_array_equal(model.encoder.item_table.numpy(),
                                  read_npz(weights)["item_embeddings.weight"])


def _event_tags(log_dir):
    """{tag: [steps]} of every scalar in the event files under `log_dir`."""
    import glob

    import tensorflow as tf
    tags = {}
    for path in glob.glob(os.path.join(str(log_dir), "**", "events.out.tfevents.*"),
                          recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append(event.step)
    return tags


@pytest.fixture(scope="module")
def logged_runs(tiny_data, tmp_path_factory):
    """Two pretraining epochs, then two fine-tuning epochs from them, with `verbose=1`
    and TensorBoard logs (`<root>/tb-pre`, `<root>/tb-ft`): the root and each run's
    standard output (not a terminal)."""
    root = tmp_path_factory.mktemp("logged")
    runs = {
        "pre": lambda: training.run_pretraining(
            tiny_data, str(root / "pre"), ENC,
            training.PretrainConfig(epochs=2, batch_size=64, seed=5), verbose=1,
            tensorboard_dir=str(root / "tb-pre")),
        "ft": lambda: training.run_finetuning(
            tiny_data, str(root / "ft"), str(root / "pre"), ENC,
            training.FinetuneConfig(epochs=2, batch_size=64, patience=5, seed=1), verbose=1,
            tensorboard_dir=str(root / "tb-ft"))}
    out = {}
    for name, run in runs.items():
        with contextlib.redirect_stdout(io.StringIO()) as stdout:
            run()
        out[name] = stdout.getvalue()
    return root, out


def test_tensorboard_logs_losses_metrics_and_learning_rate(logged_runs):
    root, _ = logged_runs
    tags = _event_tags(root / "tb-pre")
    assert {"loss", "aap_loss", "mip_loss", "map_loss", "sp_loss",
            "learning_rate"} <= set(tags), tags
    assert tags["loss"] == [1, 2]
    tags = _event_tags(root / "tb-ft")
    metrics = {"valid_sampled/" + m for m in ("HR@1", "HR@5", "HR@10", "NDCG@5", "NDCG@10",
                                              "MRR")}
    assert {"loss", "learning_rate"} | metrics <= set(tags), tags
    assert tags["valid_sampled/MRR"] == [1, 2]


def test_runs_save_their_resolved_configuration(pretrained, finetuned):
    from s3rec_tf.config import from_mapping, to_dict
    saved = json.loads(open(os.path.join(pretrained, "config.json")).read())
    assert saved == {**to_dict(ENC), **to_dict(training.PretrainConfig(
        epochs=1, batch_size=64, save_every=1, seed=5))}
    cfg = _finetune_config("ce")
    out, _ = finetuned("ce")
    saved = json.loads((out / "config.json").read_text())
    assert from_mapping(training.FinetuneConfig, {k: v for k, v in saved.items()
                                                  if k in to_dict(cfg)}, "saved") == cfg


def test_progress_outside_a_terminal_is_one_line_per_epoch(logged_runs):
    from s3rec_tf.monitoring import fit_verbosity

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert fit_verbosity(1, Terminal()) == 1 and fit_verbosity(1, io.StringIO()) == 0
    assert fit_verbosity(0, Terminal()) == 0
    _, out = logged_runs
    epoch_lines = [line for line in out["pre"].splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epoch_lines] == ["epoch 1/2", "epoch 2/2"]
    assert "mip_loss=" in epoch_lines[0]
    assert "\r" not in out["pre"] and "\x08" not in out["pre"] and "━" not in out["pre"]
    epoch_lines = [line for line in out["ft"].splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epoch_lines] == ["epoch 1/2", "epoch 2/2"]
    assert all("loss=" in line and "MRR=" in line for line in epoch_lines)
    assert "\r" not in out["ft"] and "━" not in out["ft"]  # no progress bar


def test_learning_rate_decays_on_plateaus_and_resumes_decayed(tiny_data, tmp_path):
    # a rate too small to move the ranking: every epoch after the first is a plateau
    cfg = dict(batch_size=64, seed=2, patience=4, lr_decay=0.5, lr_decay_patience=1,
               learning_rate=1e-6)

    def expected_rates(history):
        """Each epoch without a gain halves the next one's rate."""
        expected, best = [1e-6], -1.0
        for score in [h["valid_sampled/MRR"] for h in history][:-1]:
            expected.append(expected[-1] * (1.0 if score > best else 0.5))
            best = max(best, score)
        return expected

    # interrupted after 3 epochs, then resumed: the decayed rate and the best score so far
    # come from the checkpoint
    training.run_finetuning(tiny_data, str(tmp_path), None, ENC,
                            training.FinetuneConfig(epochs=3, **cfg), verbose=0)
    history = [json.loads(line) for line in open(tmp_path / "history.jsonl")]
    assert [h["learning_rate"] for h in history] == pytest.approx(expected_rates(history),
                                                                  rel=1e-6)
    training.run_finetuning(tiny_data, str(tmp_path), None, ENC,
                            training.FinetuneConfig(epochs=4, **cfg), verbose=0)
    history = [json.loads(line) for line in open(tmp_path / "history.jsonl")]
    expected = expected_rates(history)
    assert len(history) == 4 and min(expected) < 1e-6  # the decay is exercised
    assert [h["learning_rate"] for h in history] == pytest.approx(expected, rel=1e-6)


def test_lr_decay_patience_must_come_before_early_stopping():
    from s3rec_tf.errors import ConfigError
    with pytest.raises(ConfigError, match="lr_decay_patience.*below patience=3"):
        training.FinetuneConfig(patience=3, lr_decay=0.5, lr_decay_patience=3)
    training.FinetuneConfig(patience=3, lr_decay_patience=3)  # no decay: no constraint


def test_finetune_on_prefix_rows(tiny_data, tmp_path, capsys):
    cfg = training.FinetuneConfig(epochs=1, batch_size=64, loss="ce", seed=1,
                                  training_rows="prefixes")
    summary = training.run_finetuning(tiny_data, str(tmp_path), None, ENC, cfg, verbose=1)
    rows = sum(len(s) - 3 for s in tiny_data.sequences)
    assert f"{rows} prefixes, {-(-rows // 64)} steps/epoch" in capsys.readouterr().out
    assert summary["best_epoch"] == 1
    from s3rec_tf.errors import ConfigError
    with pytest.raises(ConfigError, match="training_rows.*shuffle_buffer 0"):
        training.FinetuneConfig(training_rows="prefixes", shuffle_buffer=100)
