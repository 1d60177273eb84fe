"""The output rule: no command deletes or replaces what the user did not name as its output.

Every writing command meets every bad output path (an existing file, a
non-empty folder it did not write, its input folder, a folder inside its
input) and must exit 2 with one stderr line, changing nothing: every file
under the test's folder keeps its checksum and nothing appears. The checks
run before any work, so no refusal reads data or trains.
"""

from __future__ import annotations

import json
import os

import pytest

from s3rec_tf import outputs
from s3rec_tf.errors import OutputError
from tests.test_bad_input_corpus import assert_refused, run_cli, snapshot

SMALL = ["--hidden-size", "8", "--num-layers", "1", "--max-length", "10", "--batch-size",
         "64", "--epochs", "1"]


@pytest.fixture
def ws(tmp_path, capfd):
    """A workspace: a synthetic dataset, stand-ins for the other inputs, a foreign folder
    and a file. The rule is checked on paths only, before any input is read."""
    assert run_cli(capfd, ["synth", "--output", tmp_path / "data", "--users", "60", "--items",
                           "200", "--name", "T"])[0] == 0
    for name in ("pre", "ft", "serve"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text("{}")
    (tmp_path / "w.npz").write_bytes(b"weights")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("the user's own file\n")
    (tmp_path / "file").write_text("a file\n")
    return tmp_path


def _data(ws):
    return ["--data", ws / "data", "--name", "T"]


#: command -> (argv with the output path `out`, input folder, the output's kind)
COMMANDS = {
    "synth": (lambda ws, out: ["synth", "--output", out, "--users", "60", "--items", "200"],
              None, "folder"),
    "prepare": (lambda ws, out: ["prepare", "--input", ws / "data", "--name", "T", "--output",
                                 out], "data", "folder"),
    "pretrain": (lambda ws, out: ["pretrain", *_data(ws), "--output", out, *SMALL],
                 "data", "folder"),
    "finetune": (lambda ws, out: ["finetune", *_data(ws), "--pretrained", ws / "pre",
                                  "--output", out, *SMALL], "pre", "folder"),
    "finetune --record": (lambda ws, out: ["finetune", *_data(ws), "--pretrained", "none",
                                           "--output", ws / "new", "--record", out, *SMALL],
                          "data", "file"),
    "finetune --tensorboard": (lambda ws, out: ["finetune", *_data(ws), "--pretrained", "none",
                                                "--output", ws / "new", "--tensorboard", out,
                                                *SMALL], "data", "logs"),
    "evaluate --output": (lambda ws, out: ["evaluate", "--model", ws / "ft", *_data(ws),
                                           "--output", out], "ft", "file"),
    "export": (lambda ws, out: ["export", "--model", ws / "ft", "--output", out, "--version",
                                "1"], "ft", "base"),
    "recommend-batch": (lambda ws, out: ["recommend-batch", "--model", ws / "serve",
                                         *_data(ws), "--output", out], "serve", "folder"),
    "recommend-batch --record": (lambda ws, out: ["recommend-batch", "--model", ws / "serve",
                                                  *_data(ws), "--output", ws / "new",
                                                  "--record", out], "data", "file"),
    "import-weights": (lambda ws, out: ["import-weights", "--weights", ws / "w.npz",
                                        *_data(ws), "--output", out], "data", "folder"),
    "bench --output": (lambda ws, out: ["bench", "--data", ws / "data", "--only", "prepare",
                                        "--output", out], "data", "file"),
}

#: bad output -> (path in the workspace, stderr pattern by the output's kind)
BAD_OUTPUTS = {
    "an existing file": (lambda ws, inp: ws / "file",
                         {"folder": r"file: is a file, expected a folder",
                          "file": r"file: already exists",
                          "logs": r"file: is a file, expected a folder",
                          "base": r"file: is a file, expected the serving base"}),
    "a foreign non-empty folder": (lambda ws, inp: ws / "mine",
                                   {"folder": r"mine: is not empty",
                                    "file": r"mine: is a folder, expected a file",
                                    "base": None}),
    "the input folder": (lambda ws, inp: ws / inp,
                         {"folder": r"is an input of this command",
                          "file": r"is a folder, expected a file",
                          "logs": r"is an input of this command",
                          "base": r"lies inside the input"}),
    "a folder inside the input": (lambda ws, inp: ws / inp / "sub",
                                  {"folder": r"sub: lies inside the input",
                                   "file": r"sub: lies inside the input",
                                   "logs": r"sub: lies inside the input",
                                   "base": r"lies inside the input"}),
}

CASES = [(command, bad) for command, (_, inp, kind) in COMMANDS.items()
         for bad, (_, patterns) in BAD_OUTPUTS.items()
         if patterns.get(kind) and (inp or bad not in ("the input folder",
                                                       "a folder inside the input"))]


@pytest.mark.parametrize("command,bad", CASES, ids=[" / ".join(c) for c in CASES])
def test_every_writing_command_refuses_every_bad_output(command, bad, ws, capfd):
    argv, inp, kind = COMMANDS[command]
    where, patterns = BAD_OUTPUTS[bad]
    assert_refused(capfd, argv(ws, where(ws, inp)), ws, patterns[kind])


def test_export_refuses_a_foreign_version_folder_and_keeps_other_versions(ws, capfd):
    base = ws / "serving"
    (base / "1").mkdir(parents=True)
    (base / "1" / "mine.txt").write_text("x")
    (base / "2").mkdir()
    for overwrite in ([], ["--overwrite"]):
        assert_refused(capfd, ["export", "--model", ws / "ft", "--output", base, "--version",
                               "1", *overwrite], ws, r"serving/1: is not empty")


def test_overwrite_replaces_an_earlier_output_and_says_so(ws, capfd):
    out = ws / "syn"
    argv = ["synth", "--output", out, "--users", "60", "--items", "200"]
    assert run_cli(capfd, argv)[0] == 0
    first = snapshot(out)
    assert_refused(capfd, argv + ["--seed", "1"], ws, r"syn: already holds an s3rec-tf "
                                                      r"output \(synth\.json\); --overwrite")
    code, _, err = run_cli(capfd, argv + ["--seed", "1", "--overwrite"])
    assert code == 0 and err == [f"s3rec-tf synth: replaced {out} (an earlier s3rec-tf "
                                 f"output, --overwrite)"]
    assert snapshot(out) != first and json.loads((out / "synth.json").read_text())["seed"] == 1
    assert sorted(os.listdir(ws)) == sorted(["data", "pre", "ft", "serve", "w.npz", "mine",
                                             "file", "syn"]), "nothing left aside"


@pytest.mark.parametrize("command", ["synth", "prepare", "pretrain", "recommend-batch",
                                     "import-weights"])
def test_overwrite_refuses_a_folder_the_project_did_not_write(command, ws, capfd):
    argv = COMMANDS[command][0](ws, ws / "mine") + ["--overwrite"]
    assert_refused(capfd, argv, ws, r"mine: is not empty and was not written by s3rec-tf")


def test_overwrite_refuses_a_record_the_project_did_not_write(ws, capfd):
    argv = COMMANDS["evaluate --output"][0](ws, ws / "file") + ["--overwrite"]
    assert_refused(capfd, argv, ws, r"file: is not a JSON record written by s3rec-tf")


def test_an_empty_output_folder_is_used(ws, capfd):
    (ws / "empty").mkdir()
    assert run_cli(capfd, ["synth", "--output", ws / "empty", "--users", "60", "--items",
                           "200"])[0] == 0
    assert (ws / "empty" / "Synthetic.txt").exists()


def test_pretrain_resumes_its_own_run_and_overwrite_starts_afresh(ws, capfd):
    out = ws / "run"
    argv = ["pretrain", *_data(ws), "--output", out, *SMALL]
    assert run_cli(capfd, argv)[0] == 0
    (out / "stale.txt").write_text("from the earlier run")
    # the run's own `_resume/`: resumed as before (nothing left to train)
    code, stdout, _ = run_cli(capfd, argv)
    assert code == 0 and "Resuming pretraining from epoch 1" in stdout
    code, stdout, err = run_cli(capfd, argv + ["--overwrite"])
    assert code == 0 and "Resuming" not in stdout
    assert err[-1] == (f"s3rec-tf pretrain: replaced {out} (an earlier s3rec-tf output, "
                       f"--overwrite)")
    assert not (out / "stale.txt").exists() and (out / "manifest.json").exists()
    assert not [n for n in os.listdir(ws) if n.startswith(".")], "nothing left aside"


# ---------------------------------------------------------------- the rule ---

def test_rule_decisions(tmp_path):
    check = outputs.check_output_dir
    assert check(str(tmp_path / "new")) == outputs.NEW
    (tmp_path / "empty").mkdir()
    assert check(str(tmp_path / "empty")) == outputs.EMPTY
    run = tmp_path / "run"
    (run / "_resume").mkdir(parents=True)
    assert check(str(run), resumable=True) == outputs.RESUME
    assert check(str(run), resumable=True, overwrite=True) == outputs.REPLACE
    with pytest.raises(OutputError, match="already holds an s3rec-tf output"):
        check(str(run), markers=("_resume",))
    with pytest.raises(OutputError, match="is not empty$|is not empty;"):
        check(str(run))
    with pytest.raises(OutputError, match="not written by s3rec-tf"):
        check(str(run), overwrite=True, markers=("manifest.json",))
    (run / "manifest.json").write_text("{}")
    assert check(str(run), overwrite=True, markers=("manifest.json",)) == outputs.REPLACE


def test_rule_refuses_files_and_overlaps_with_inputs(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "f").write_text("x")
    cases = {str(tmp_path / "f"): "is a file, expected a folder",
             str(tmp_path / "f" / "out"): "is a file, expected a directory",
             str(tmp_path / "in"): "is an input of this command",
             str(tmp_path / "in" / "a" / "b"): "lies inside the input",
             str(tmp_path): "holds the input"}
    for path, words in cases.items():
        with pytest.raises(OutputError, match=words) as info:
            outputs.check_output_dir(path, inputs=[str(tmp_path / "in"), None])
        assert str(info.value).startswith(f"{path}: ")
    # through a symbolic link, the same folder
    os.symlink(tmp_path / "in", tmp_path / "link")
    with pytest.raises(OutputError, match="is an input"):
        outputs.check_output_dir(str(tmp_path / "link"), inputs=[str(tmp_path / "in")])


def test_rule_for_result_files(tmp_path):
    check = outputs.check_output_file
    path = tmp_path / "r.json"
    assert check(str(path)) == outputs.NEW
    path.write_text('{"a": 1}')
    with pytest.raises(OutputError, match="already exists; --overwrite replaces it"):
        check(str(path))
    assert check(str(path), overwrite=True) == outputs.REPLACE
    path.write_text("not JSON")
    with pytest.raises(OutputError, match="not a JSON record written by s3rec-tf"):
        check(str(path), overwrite=True)
    with pytest.raises(OutputError, match="is a folder, expected a file"):
        check(str(tmp_path))


@pytest.mark.parametrize("fail_early", [True, False])
def test_replacing_puts_the_old_output_back_or_removes_it(tmp_path, fail_early):
    old = tmp_path / "run"
    old.mkdir()
    (old / "manifest.json").write_text("old")
    with pytest.raises(RuntimeError):
        with outputs.replacing(str(old), outputs.REPLACE):
            assert not old.exists()
            if not fail_early:
                (old / "_resume").mkdir(parents=True)
            raise RuntimeError("crash")
    if fail_early:  # nothing new was written: the earlier output is back
        assert (old / "manifest.json").read_text() == "old"
    else:  # the new run (resumable) stays
        assert os.listdir(old) == ["_resume"]
    assert os.listdir(tmp_path) == ["run"]
