"""The bad-input corpus: every bad input is refused cleanly and changes nothing.

Organised by class (data files, tabular input, arguments, checkpoints and
resumes, serving requests). A command-line case asserts exit code 2 (or the
documented code), exactly one line on stderr naming the file or field and
the reason, no traceback, and that no file was created or changed (the
directory tree is compared before and after). A serving case asserts a clear
error or a correct answer. Property-based tests feed random lines, bytes,
histories and k.

Output paths (existing files, foreign folders, the inputs themselves) have
their own corpus: `tests/test_outputs.py`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s3rec_tf import cli, serving
from s3rec_tf.data import reader
from s3rec_tf.errors import DataError

SMALL = ["--hidden-size", "16", "--max-length", "10", "--batch-size", "64"]
PROPERTY = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


# ------------------------------------------------------------------ helpers ---

def snapshot(root) -> dict:
    """Every path under `root` with its content digest (directories: None)."""
    out = {}
    for base, dirs, files in os.walk(root):
        for d in dirs:
            out[os.path.relpath(os.path.join(base, d), root)] = None
        for f in files:
            path = os.path.join(base, f)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, root)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def run_cli(capfd, argv):
    """`s3rec-tf argv` in this process: (exit code, stdout, non-empty stderr lines)."""
    capfd.readouterr()
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as e:  # argparse refuses an option while parsing
        code = e.code
    out, err = capfd.readouterr()
    return code, out, [line for line in err.splitlines() if line.strip()]


def assert_refused(capfd, argv, root, pattern, code=2):
    """Exit `code`, one stderr line matching `pattern`, nothing under `root` changed."""
    before = snapshot(root)
    got, _, err = run_cli(capfd, argv)
    assert got == code, (got, err)
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    assert err[0].startswith(f"s3rec-tf {argv[0]}: "), err[0]
    assert re.search(pattern, err[0]), (pattern, err[0])
    after = snapshot(root)
    assert after == before, {"created": sorted(set(after) - set(before)),
                             "removed": sorted(set(before) - set(after)),
                             "changed": sorted(k for k in before if k in after
                                               and before[k] != after[k])}


# -------------------------------------------------------------- data files ---
# name -> (files {name: text or bytes or None to omit}, stderr pattern)

SEQ = "1 1 2 3 4\n2 2 3 4 5\n3 3 4 5 6\n"
ATTRS = json.dumps({"1": [1], "2": [2], "3": [1, 2]})


def _seq(line):
    return SEQ + line + "\n"


DATA_FILE_CASES = {
    "item id 2**40": ({"D.txt": _seq("4 1 2 1099511627776")},
                      r"D\.txt:4: item id '1099511627776' is out of range"),
    "item id just past int32": ({"D.txt": _seq(f"4 1 2 {reader.MAX_ID + 1}")},
                                r"D\.txt:4: item id '2147483646' is out of range"),
    "attribute id 2**40": ({"D_item2attributes.json": json.dumps({"1": [2 ** 40]})},
                           r"D_item2attributes\.json \(field '1'\): attribute of item 1 "
                           r"'1099511627776' is out of range"),
    "exponent 1e3": ({"D.txt": _seq("4 1 2 1e3")}, r"D\.txt:4: item id '1e3' is not an integer"),
    "plus sign": ({"D.txt": _seq("4 1 +2 3")}, r"D\.txt:4: item id '\+2' is not an integer"),
    "float id": ({"D.txt": _seq("4 1 2 3.0")}, r"D\.txt:4: item id '3\.0' is not an integer"),
    "hexadecimal id": ({"D.txt": _seq("4 1 0x2 3")}, r"D\.txt:4: item id '0x2' is not"),
    "non-ASCII digit": ({"D.txt": _seq("4 1 \u0663 3")}, r"D\.txt:4: item id '\u0663' is not"),
    "digit separator": ({"D.txt": _seq("4 1 1_0 3")}, r"D\.txt:4: item id '1_0' is not"),
    "leading zeros": ({"D.txt": _seq("4 1 007 3")}, r"D\.txt:4: item id '007' has leading"),
    "zero id": ({"D.txt": _seq("4 0 1 2")}, r"D\.txt:4: item id '0' must be a positive"),
    "negative id": ({"D.txt": _seq("4 1 -2 3")}, r"D\.txt:4: item id '-2' must be a positive"),
    "user id past int64": ({"D.txt": _seq("99999999999999999999 1 2 3")},
                           r"D\.txt:4: user id '99999999999999999999' is out of range"),
    "sparse item ids": ({"D.txt": _seq("4 1 2 50000000")},
                        r"D\.txt: largest item id 50000000 but only 7 distinct items"),
    "sparse attribute ids": ({"D_item2attributes.json": json.dumps({"1": [50000000]})},
                             r"D_item2attributes\.json: largest attribute id 50000000"),
    "every user too short": ({"D.txt": "1 1 2\n2 2 3\n"},
                             r"D\.txt: no user has 3 or more items"),
    "duplicated user": ({"D.txt": _seq("1 1 2 3")}, r"D\.txt:4: user 1 appears again"),
    "blank line": ({"D.txt": SEQ + "\n" + "4 1 2 3\n"}, r"D\.txt:4: empty line"),
    "empty file": ({"D.txt": ""}, r"D\.txt: file is empty"),
    "not UTF-8": ({"D.txt": SEQ.encode() + b"4 1 \xff 3\n"},
                  r"D\.txt:4: not valid UTF-8 \(byte 0xff\)"),
    "NUL byte": ({"D.txt": _seq("4 1 2\x00 3")}, r"D\.txt:4: item id '2\\x00' is not"),
    "no interaction file": ({"D.txt": None}, r"D\.txt: file not found"),
    "interaction file is a directory": ({"D.txt": "<dir>"}, r"D\.txt: is a directory"),
    "no attribute file": ({"D_item2attributes.json": None},
                          r"D_item2attributes\.json: file not found"),
    "attributes not an object": ({"D_item2attributes.json": "[1, 2]"},
                                 r"expected a JSON object"),
    "attributes malformed JSON": ({"D_item2attributes.json": '{"1": [1'},
                                  r"D_item2attributes\.json:1: malformed JSON"),
    "attribute not an integer": ({"D_item2attributes.json": '{"1": ["a"]}'},
                                 r"\(field '1'\): attribute 'a' of item 1 is not an integer"),
    "attribute true": ({"D_item2attributes.json": '{"1": [true]}'},
                       r"attribute True of item 1 is not an integer"),
    "attribute float": ({"D_item2attributes.json": '{"1": [1.5]}'},
                        r"attribute 1\.5 of item 1 is not an integer"),
    "attribute list not a list": ({"D_item2attributes.json": '{"1": 3}'},
                                  r"attributes of item 1 must be a list"),
    "attribute item key 1e3": ({"D_item2attributes.json": '{"1e3": [1]}'},
                               r"\(field '1e3'\): item id '1e3' is not an integer"),
    "sample file short row": ({"D_sample.txt": "1 7 8 9\n2 7 8 9\n3 7 8 9\n"},
                              r"D_sample\.txt:1: 3 negatives, expected 99"),
    "sample file other users": ({"D_sample.txt": "9 " + " ".join(["1"] * 99) + "\n"},
                                r"D_sample\.txt: no negatives for 3 user\(s\)"),
    "sample file id past the catalogue": (
        {"D_sample.txt": "".join(f"{u} " + " ".join(str(i) for i in range(7, 106)) + "\n"
                                 for u in (1, 2, 3))},
        r"D_sample\.txt:1: negative item 105 exceeds the largest item id 6"),
}


def _write_data(folder, files):
    folder.mkdir(parents=True, exist_ok=True)
    content = {"D.txt": SEQ, "D_item2attributes.json": ATTRS, **files}
    for name, text in content.items():
        if text is None:
            continue
        if text == "<dir>":
            (folder / name).mkdir()
        elif isinstance(text, bytes):
            (folder / name).write_bytes(text)
        else:
            (folder / name).write_text(text, encoding="utf-8")


@pytest.mark.parametrize("case", sorted(DATA_FILE_CASES))
def test_data_files(case, tmp_path, capfd):
    files, pattern = DATA_FILE_CASES[case]
    _write_data(tmp_path / "data", files)
    assert_refused(capfd, ["pretrain", "--data", tmp_path / "data", "--name", "D", "--output",
                           tmp_path / "out", "--epochs", "1", *SMALL], tmp_path, pattern)


def test_data_dir_that_is_a_file(tmp_path, capfd):
    (tmp_path / "file").write_text("x")
    assert_refused(capfd, ["pretrain", "--data", tmp_path / "file", "--name", "D", "--output",
                           tmp_path / "out"], tmp_path, r"file/D\.txt: cannot read")


# ----------------------------------------------------------- tabular input ---

INTER_ROWS = [("u1", "a", 1), ("u1", "b", 2), ("u1", "c", 3), ("u2", "b", 1), ("u2", "c", 2),
              ("u2", "d", 3)]


def _csv(header, rows=INTER_ROWS, order=(0, 1, 2)):
    return header + "\n" + "".join(",".join(str(r[i]) for i in order) + "\n" for r in rows)


def _parquet(path, columns: dict):
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table(columns), path)


# name -> (format, {file: text or callable(path)}, stderr pattern)
TABULAR_CASES = {
    "CSV without a header": (
        "csv", {"S.csv": _csv("u0,a,1")},
        r"S\.csv \(field 'user_id'\): columns \['u0', 'a', '1'\] do not match the wanted "
        r"\['user_id', 'item_id', 'timestamp'\].*a header line naming the columns is required"),
    "CSV header missing a column": (
        "csv", {"S.csv": _csv("user_id,item_id", order=(0, 1))},
        r"S\.csv \(field 'timestamp'\): columns \['user_id', 'item_id'\] .*missing "
        r"\['timestamp'\]"),
    "CSV header with an unexpected column": (
        "csv", {"S.csv": "user_id,item_id,timestamp,rating\nu1,a,1,5\n"},
        r"S\.csv \(field 'rating'\): .*unexpected \['rating'\]"),
    "CSV header with a repeated column": (
        "csv", {"S.csv": "user_id,item_id,item_id,timestamp\nu1,a,a,1\n"},
        r"repeated \['item_id'\]"),
    "CSV empty file": ("csv", {"S.csv": ""}, r"S\.csv:1: no header line"),
    "CSV header not UTF-8": ("csv", {"S.csv": b"user_\xffid,item_id,timestamp\n"},
                             r"S\.csv:1: header is not valid UTF-8"),
    "attribute CSV with another header": (
        "csv", {"S.csv": _csv("user_id,item_id,timestamp"),
                "S_attributes.csv": "item,attr\na,red\n"},
        r"S_attributes\.csv \(field 'item_id'\): columns \['item', 'attr'\] do not match "
        r"the wanted \['item_id', 'attribute'\]"),
    "Parquet missing a column": (
        "parquet", {"S.parquet": lambda p: _parquet(p, {"user_id": ["u"], "item": ["i"]})},
        r"S\.parquet \(field 'item_id'\): columns \['user_id', 'item'\] .*missing "
        r"\['item_id', 'timestamp'\]; unexpected \['item'\]"),
    "Parquet with an unexpected column": (
        "parquet", {"S.parquet": lambda p: _parquet(p, {"user_id": ["u"], "item_id": ["i"],
                                                         "timestamp": [1.0], "x": [1]})},
        r"S\.parquet \(field 'x'\): .*unexpected \['x'\]"),
    "Parquet that is not Parquet": ("parquet", {"S.parquet": "user_id,item_id,timestamp\n"},
                                    r"S\.parquet: not a readable Parquet file"),
    "RecBole without item_id": ("recbole", {"S.inter": "user_id:token\titem:token\nu\ti\n"},
                                r"S\.inter:1 \(field 'item_id'\): header columns"),
    "no interaction file": ("csv", {}, r"S\.\*: no interaction file for format 'csv'"),
}


@pytest.mark.parametrize("case", sorted(TABULAR_CASES))
def test_tabular_input(case, tmp_path, capfd):
    fmt, files, pattern = TABULAR_CASES[case]
    data = tmp_path / "in"
    data.mkdir()
    for name, content in files.items():
        if callable(content):
            content(data / name)
        elif isinstance(content, bytes):
            (data / name).write_bytes(content)
        else:
            (data / name).write_text(content)
    assert_refused(capfd, ["prepare", "--input", data, "--format", fmt, "--name", "S",
                           "--output", tmp_path / "out", "--strict"], tmp_path, pattern)


def _shop(tmp_path):
    """Columns in another order, one bad row (line 4), enough items for 99 negatives."""
    rows = [("u1", "a", 3), ("u1", "b", 1)] + [("BAD",)] + [("u1", "c", 2), ("u2", "b", 5),
                                                            ("u2", "a", 6), ("u2", "c", 7)]
    rows += [(f"x{u}", f"i{u * 20 + j}", j) for u in range(6) for j in range(20)]
    lines = ["timestamp,user_id,item_id"]
    for r in rows:
        lines.append("notatime,u1,e" if r == ("BAD",) else f"{r[2]},{r[0]},{r[1]}")
    data = tmp_path / "in"
    data.mkdir()
    (data / "Shop.csv").write_text("\n".join(lines) + "\n")
    (data / "Shop_attributes.csv").write_text("attribute,item_id\nred,a\nblue,b\n")
    return data


def test_tabular_strict_names_the_first_bad_row(tmp_path, capfd):
    data = _shop(tmp_path)
    assert_refused(capfd, ["prepare", "--input", data, "--format", "csv", "--name", "Shop",
                           "--output", tmp_path / "out", "--strict",
                           "--beam-arg=--runner=DirectRunner"], tmp_path,
                   r"Shop\.csv:4: timestamp 'notatime' is not a number")


def test_bad_data_found_in_worker_processes_is_one_line(tmp_path, capfd):
    """The default runner's worker processes write their tracebacks to the shared
    standard error: `prepare` holds them back and reports the data error alone."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "D.txt").write_text(SEQ)  # 6 items: too few for 99 negatives per user
    (raw / "D_item2attributes.json").write_text(ATTRS)
    assert_refused(capfd, ["prepare", "--input", raw, "--name", "D", "--output",
                           tmp_path / "out"], tmp_path,
                   r"D\.txt: cannot draw sampled negatives: .* fewer than 99 negatives")


def test_tabular_columns_by_name_and_dropped_rows_named(tmp_path, capfd):
    """A correct answer: columns taken by name, the dropped row named in the summary."""
    from s3rec_tf.data import prepared as prepared_lib
    data = _shop(tmp_path)
    code, out, err = run_cli(capfd, ["prepare", "--input", data, "--format", "csv", "--name",
                                     "Shop", "--output", tmp_path / "out",
                                     "--beam-arg=--runner=DirectRunner"])
    assert code == 0 and not err, err
    stats = json.loads(out.splitlines()[0])
    assert stats["malformed_interactions"] == 1
    assert stats["dropped_rows"] == [f"{data / 'Shop.csv'}:4: timestamp 'notatime' is not a "
                                     f"number in 'notatime,u1,e'"]
    prepared = prepared_lib.read_prepared(str(tmp_path / "out"))
    vocab = prepared.item_vocabulary
    u1 = prepared.raw_user_ids.index("u1")
    assert [vocab[i - 1] for i in prepared.sequences[u1]] == ["b", "c", "a"]
    attrs = prepared.attribute_vocabulary
    a = vocab.index("a") + 1
    assert [attrs[x - 1] for x in prepared.item_attributes[a]] == ["red"]



def test_every_row_bad_names_the_first_row_and_its_reason(tmp_path, capfd):
    data = tmp_path / "in"
    data.mkdir()
    (data / "S.csv").write_text("user_id,item_id,timestamp\n" +
                                "".join(f"u{u},i{i},never\n" for u in range(3) for i in range(4)))
    assert_refused(capfd, ["prepare", "--input", data, "--format", "csv", "--name", "S",
                           "--output", tmp_path / "out", "--beam-arg=--runner=DirectRunner"],
                   tmp_path, r"S\.csv:2: timestamp 'never' is not a number in 'u0,i0,never'; "
                             r"no user has 3 or more valid events \(12 malformed rows")


def test_data_without_attributes_pretrains_without_aap_and_map(tmp_path, capfd):
    """An attribute file `{}`: fine-tuning and evaluation need none; pretraining switches
    AAP and MAP off, says so in one line and records it in config.json."""
    from s3rec_tf.data import synthetic
    seqs, attrs = synthetic.generate(num_users=40, num_items=ITEMS, num_topics=4,
                                     num_attributes=10, max_length=12, seed=3)
    synthetic.write(str(tmp_path / "data"), seqs, {}, "N")
    assert (tmp_path / "data" / "N_item2attributes.json").read_text() == "{}"
    code, out, err = run_cli(capfd, ["pretrain", "--data", tmp_path / "data", "--name", "N",
                                     "--output", tmp_path / "pre", *SMALL, "--num-layers", "1",
                                     "--epochs", "1"])
    assert code == 0 and err == ["Pretraining: N has no item attributes: AAP and MAP are "
                                 "switched off (aap_weight=0, map_weight=0, recorded in "
                                 "config.json)"], err
    saved = json.loads((tmp_path / "pre" / "config.json").read_text())
    assert (saved["aap_weight"], saved["map_weight"], saved["mip_weight"]) == (0.0, 0.0, 1.0)
    code, out, err = run_cli(capfd, ["finetune", "--data", tmp_path / "data", "--name", "N",
                                     "--pretrained", tmp_path / "pre", "--output",
                                     tmp_path / "ft", *SMALL, "--num-layers", "1",
                                     "--epochs", "1"])
    assert code == 0 and not err, err


def test_dropped_attribute_rows_are_counted_on_stderr(tmp_path, capsys):
    import argparse

    from s3rec_tf.cli.commands import _read
    # 150 items in 5 users of 30 (enough for 99 negatives each); items 151 and 152 unknown
    _write_data(tmp_path, {"D.txt": "".join(
        f"{u + 1} " + " ".join(str(u * 30 + i) for i in range(1, 31)) + "\n" for u in range(5)),
        "D_item2attributes.json": json.dumps({"1": [1], "151": [2], "152": [1]})})
    data = _read(argparse.Namespace(command="pretrain", data=str(tmp_path), name="D",
                                    negatives_seed=0))
    assert data.attribute_rows_dropped == 2 and sorted(data.item_attributes) == [1]
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"s3rec-tf pretrain: {tmp_path / 'D_item2attributes.json'}: 2 attribute "
                   f"row(s) dropped: their items are above the largest item id of D.txt (150)"]


# -------------------------------------------------------------- arguments ---
# Ranges of numeric options (batch sizes, epochs, k, lengths, probabilities):
# checked when the command line is parsed. name -> (argv, stderr pattern).

PRE = ["pretrain", "--data", "d", "--name", "n", "--output", "o"]
FT = ["finetune", "--data", "d", "--name", "n", "--output", "o", "--pretrained", "none"]
EV = ["evaluate", "--model", "m", "--data", "d", "--name", "n"]

#: Every numeric option out of its range (and the checks that span two options).
#: Each case is `(argv, words of the one error line)`.
ARGUMENT_CASES = [
    (PRE + ["--batch-size", "0"], "--batch-size: must be >= 1"),
    (PRE + ["--epochs", "0"], "--epochs: must be >= 1"),
    (PRE + ["--learning-rate", "0"], "--learning-rate/--lr: must be > 0"),
    (PRE + ["--lr", "-0.001"], "--learning-rate/--lr: must be > 0"),
    (PRE + ["--lr", "inf"], "--learning-rate/--lr: must be > 0"),
    (PRE + ["--mask-p", "1"], "--mask-p: must be in [0, 1)"),
    (PRE + ["--mask-p", "-0.1"], "--mask-p: must be in [0, 1)"),
    (PRE + ["--aap-weight", "-1"], "--aap-weight: must be >= 0"),
    (PRE + ["--aap-weight", "0", "--mip-weight", "0", "--map-weight", "0", "--sp-weight", "0"],
     "--aap-weight/--mip-weight/--map-weight/--sp-weight: and the other loss weights"),
    (PRE + ["--save-every", "-1"], "--save-every: must be >= 0"),
    (PRE + ["--seed", "-1"], "--seed: must be in [0, 4294967295]"),
    (PRE + ["--seed", "x"], "--seed: invalid int value"),
    (PRE + ["--hidden-size", "0"], "--hidden-size: must be >= 1"),
    (PRE + ["--num-layers", "0"], "--num-layers: must be >= 1"),
    (PRE + ["--num-heads", "0"], "--num-heads: must be >= 1"),
    (PRE + ["--hidden-size", "64", "--num-heads", "3"],
     "--hidden-size/--num-heads: must be a multiple of num_heads=3"),
    (PRE + ["--dropout", "1.0"], "--dropout: must be in [0, 1)"),
    (PRE + ["--attention-dropout", "-0.5"], "--attention-dropout: must be in [0, 1)"),
    (PRE + ["--initializer-range", "0"], "--initializer-range: must be > 0"),
    (PRE + ["--max-length", "1"], "--max-length: must be >= 2"),
    (PRE + ["--batch-size", "2.5"], "--batch-size: invalid int value"),
    (PRE + ["--negatives-seed", "-3"], "--negatives-seed: must be in [0, 4294967295]"),
    (PRE + ["--intra-op-threads", "-1"], "--intra-op-threads: must be >= 0"),
    (PRE + ["--inter-op-threads", "many"], "--inter-op-threads: invalid int value"),
    (FT + ["--batch-size", "0"], "--batch-size: must be >= 1"),
    (FT + ["--epochs", "0"], "--epochs: must be >= 1"),
    (FT + ["--patience", "0"], "--patience: must be >= 1"),
    (FT + ["--loss", "mse"], "--loss: invalid choice"),
    (FT + ["--sampled-negatives", "-1"], "--sampled-negatives: must be >= 0"),
    (FT + ["--sampled-negatives", "ten"], "--sampled-negatives: invalid int value"),
    (FT + ["--proposal", "zipf"], "--proposal: invalid choice"),
    (FT + ["--loss", "sampled-ce", "--sampled-negatives", "0"],
     "--sampled-negatives/--in-batch-negatives/--loss: must be >= 1 with loss 'sampled-ce'"),
    (FT + ["--loss", "sampled-ce", "--in-batch-negatives", "--jit-compile"],
     "--in-batch-negatives/--jit-compile: cannot be compiled with XLA"),
    (FT + ["--valid-protocol", "all"], "--valid-protocol: invalid choice"),
    (FT + ["--dropout", "2"], "--dropout: must be in [0, 1)"),
    (FT + ["--preset", "fastest"], "--preset: invalid choice"),
    (EV + ["--negatives-seed", "-1"], "--negatives-seed: must be in [0, 4294967295]"),
    (EV + ["--protocol", "some"], "--protocol: invalid choice"),
    (["synth", "--output", "o", "--users", "0"], "--users: must be >= 1"),
    (["synth", "--output", "o", "--items", "-5"], "--items: must be >= 1"),
    (["synth", "--output", "o", "--topics", "0"], "--topics: must be >= 1"),
    (["synth", "--output", "o", "--attributes", "0"], "--attributes: must be >= 1"),
    (["synth", "--output", "o", "--min-length", "2"], "--min-length: must be >= 3"),
    (["synth", "--output", "o", "--min-length", "9", "--max-length", "5"],
     "--min-length: must be <= --max-length=5"),
    (["synth", "--output", "o", "--items", "120", "--max-length", "40"],
     "--items: must be >= --max-length + 100"),
    (["synth", "--output", "o", "--seed", "-1"], "--seed: must be in [0, 4294967295]"),
    (["prepare", "--input", "i", "--name", "n", "--output", "o", "--k-core", "-1"],
     "--k-core: must be >= 0"),
    (["prepare", "--input", "i", "--name", "n", "--output", "o", "--seed", "-1"],
     "--seed: must be in [0, 4294967295]"),
    (["export", "--model", "m", "--output", "o", "--k", "0"], "--k: must be >= 1"),
    (["export", "--model", "m", "--output", "o", "--version", "-1"], "--version: must be >= 0"),
    (["recommend", "--model", "m", "--items", "1", "-k", "0"], "-k: must be >= 1"),
    (["recommend", "--model", "m"], "exactly one of --items and --user"),
    (["recommend", "--model", "m", "--items", "1", "--user", "7"],
     "exactly one of --items and --user"),
    (["recommend", "--model", "m", "--user", "7"], "--user: needs --data and --name"),
    (["parity", "--weights", "w", "--golden", "g", "--tolerance", "-1"],
     "--tolerance: must be >= 0"),
    (["import-weights", "--weights", "w", "--output", "o", "--num-heads", "0"],
     "--num-heads: must be >= 1"),
    (["pretrain", "--data", "d", "--name", "n"], "required: --output"),
]


@pytest.mark.parametrize("argv,words", ARGUMENT_CASES,
                         ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_arguments(argv, words, tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the cases' relative paths: nothing may appear here
    assert_refused(capfd, argv, tmp_path, re.escape(words))


# ------------------------------------------------ checkpoints and resumes ---

ITEMS = 120  # the catalogue of the corpus data set
SMALL_RUN = ["--hidden-size", "16", "--max-length", "10", "--batch-size", "256",
             "--num-layers", "1", "--no-trim-padding"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Data, a pretrained model (saved untrained: only its manifest matters here), one
    real one-epoch fine-tuning run (with `_resume/` and drawn negatives) and an export."""
    from s3rec_tf import artifacts, training
    from s3rec_tf.data import synthetic
    from s3rec_tf.models import S3RecPretrainer
    root = tmp_path_factory.mktemp("corpus")
    data = root / "data"
    seqs, attrs = synthetic.generate(num_users=30, num_items=ITEMS, num_topics=4,
                                     num_attributes=10, max_length=12, seed=3)
    synthetic.write(str(data), seqs, attrs, "Tiny")
    tiny = reader.read_dataset(str(data), "Tiny")
    assert tiny.num_items == ITEMS
    encoder = training.build_encoder(tiny, training.EncoderConfig(hidden_size=16, num_layers=1,
                                                                  max_length=10))
    artifacts.save_model(str(root / "pre"), S3RecPretrainer(encoder, tiny.attribute_table()),
                         "pretrained", artifacts.vocabulary_of(tiny), {})
    assert cli.main(["finetune", "--data", str(data), "--name", "Tiny", *SMALL_RUN,
                     "--epochs", "1", "--pretrained", "none", "--output", str(root / "ft")]) == 0
    assert (root / "ft" / "Tiny_sample.txt").exists()
    # the same name, another vocabulary (one more attribute on item 1)
    other = root / "other"
    shutil.copytree(data, other)
    attrs = json.loads((other / "Tiny_item2attributes.json").read_text())
    attrs["1"] = sorted(set(attrs["1"]) | {max(max(v) for v in attrs.values() if v) + 1})
    (other / "Tiny_item2attributes.json").write_text(json.dumps(attrs))
    export = serving.export_serving_model(str(root / "ft" / "best"), str(root / "serve"), 1)
    return {"root": root, "data": data, "other": other, "pre": root / "pre", "ft": root / "ft",
            "serve": root / "serve", "export": export}


def _ft(r, output, pretrained="none", data=None, *extra):
    return ["finetune", "--data", data or r["data"], "--name", "Tiny", "--pretrained",
            pretrained, "--output", output, *SMALL_RUN, "--epochs", "1", *extra]


def _corrupt_copy(src, dst, edit):
    shutil.copytree(src, dst)
    edit(dst)
    return dst


# name -> (argv builder (runs, scratch dir), stderr pattern)
CHECKPOINT_CASES = {
    "finetune: pretrained model missing": (
        lambda r, t: _ft(r, t / "new", t / "nope"), r"nope: pretrained model not found"),
    "finetune: pretrained is not a model": (
        lambda r, t: _ft(r, t / "new", r["data"]), r"no manifest\.json: not an s3rec-tf model"),
    "finetune: pretrained with another hidden size": (
        lambda r, t: _ft(r, t / "new", r["pre"], None, "--hidden-size", "32"),
        r"pretrained model .* does not match \(hidden_size: pretrained 16 vs requested 32\)"),
    "finetune: pretrained on other data": (
        lambda r, t: _ft(r, t / "new", r["pre"], r["other"]),
        r"pretrained model .* does not match the data \(num_attributes: model \d+ vs data"),
    "finetune: pretrained is a fine-tuned model": (
        lambda r, t: _ft(r, t / "new", r["ft"] / "best"),
        r"is a finetuned model, expected pretrained"),
    "finetune: pretrained weights truncated": (
        lambda r, t: _ft(r, t / "new", _corrupt_copy(
            r["pre"], t / "pre", lambda d: (d / "model.weights.h5").write_bytes(b"x"))),
        r"model\.weights\.h5: checksum mismatch"),
    "resume: the data differ": (
        lambda r, t: _ft(r, r["ft"], "none", r["other"], "--negatives-seed", "5"),
        r"_resume: cannot resume, the run differs .*vocabulary"),
    "resume: the settings differ": (
        lambda r, t: _ft(r, r["ft"], "none", None, "--learning-rate", "0.5"),
        r"_resume: cannot resume, the run differs .*learning_rate: checkpoint 0\.001 vs now 0\.5"),
    "resume: corrupt run signature": (
        lambda r, t: _ft(r, _corrupt_copy(
            r["ft"], t / "ft", lambda d: (d / "_resume" / "signature.json").write_text("{")),
            "none"),
        r"signature\.json: missing or corrupt"),
    "export: --output is a file": (
        lambda r, t: ["export", "--model", r["ft"], "--output", r["data"] / "Tiny.txt"],
        r"Tiny\.txt: is a file, expected the serving base directory"),
    "export: version exists": (
        lambda r, t: ["export", "--model", r["ft"], "--output", r["serve"], "--version", "1"],
        r"serve/1: already holds an s3rec-tf output \(assets\.extra/manifest\.json\); "
        r"--overwrite replaces it"),
    "export: vocabulary file missing": (
        lambda r, t: ["export", "--model", r["ft"], "--output", t / "s", "--vocabulary",
                      t / "v.txt"], r"v\.txt: file not found"),
    "export: vocabulary of another size": (
        lambda r, t: ["export", "--model", r["ft"], "--output", t / "s", "--vocabulary",
                      r["data"] / "Tiny_item2attributes.json"],
        rf"vocabulary has 1 ids but the model has {ITEMS} items"),
    "export: a pretrained model": (
        lambda r, t: ["export", "--model", r["pre"], "--output", t / "s"],
        r"is a pretrained model, expected finetuned"),
    "evaluate: model missing": (
        lambda r, t: ["evaluate", "--model", t / "nope", "--data", r["data"], "--name", "Tiny"],
        r"nope: model directory not found"),
    "evaluate: model of other data": (
        lambda r, t: ["evaluate", "--model", r["ft"], "--data", r["other"], "--name", "Tiny"],
        r"does not match the data"),
    "recommend: export missing": (
        lambda r, t: ["recommend", "--model", t / "nope", "--items", "1"],
        r"nope: no SavedModel"),
    "recommend: export damaged": (
        lambda r, t: ["recommend", "--model", _corrupt_copy(
            r["serve"], t / "serve", lambda d: (d / "1" / "saved_model.pb").write_bytes(b"x")),
            "--items", "1"],
        r"serve/1: not a loadable s3rec-tf export"),
}


@pytest.mark.parametrize("case", sorted(CHECKPOINT_CASES))
def test_checkpoints_and_resumes(case, runs, tmp_path, capfd):
    build, pattern = CHECKPOINT_CASES[case]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    argv = build(runs, scratch)
    # nothing anywhere changes: the runs of the fixture, the scratch copies
    before = snapshot(scratch)
    assert_refused(capfd, argv, runs["root"], pattern)
    assert snapshot(scratch) == before


def test_crashed_run_leaves_nothing_that_looks_like_output(runs, tmp_path, monkeypatch):
    """A crash after the checks, before the first epoch ends: no output folder at all.

    (A run killed later keeps only `_resume/`; `tests/test_interrupted.py`.)"""
    from s3rec_tf.data import inputs

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(inputs, "finetune_dataset", crash)
    before = snapshot(runs["root"])
    with pytest.raises(RuntimeError, match="simulated crash"):
        cli.main([str(a) for a in _ft(runs, tmp_path / "crash", runs["pre"])])
    assert not (tmp_path / "crash").exists()
    assert snapshot(runs["root"]) == before


# ------------------------------------------------------- serving requests ---

def _examples(histories, key="history", kind="bytes"):
    out = []
    for h in histories:
        if kind == "bytes":
            feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=[x.encode()
                                                                            for x in h]))
        else:
            feature = tf.train.Feature(int64_list=tf.train.Int64List(value=h))
        out.append(tf.train.Example(features=tf.train.Features(
            feature={key: feature})).SerializeToString())
    return tf.constant(out)


ALL = [str(i) for i in range(1, ITEMS + 1)]  # the catalogue, default vocabulary


def _check_fill(expected_results):
    def check(r):
        n = r["num_results"].numpy().tolist()
        assert n == expected_results, n
        ids = r["item_ids"].numpy().astype(str)
        scores = r["scores"].numpy()
        for row, count in enumerate(n):
            assert all(i != "" for i in ids[row][:count])
            assert np.isfinite(scores[row][:count]).all()
            assert (ids[row][count:] == serving.FILL_ID).all()
            assert (scores[row][count:] == serving.FILL_SCORE).all()
    return check


def _check_counts(known, unknown, results):
    def check(r):
        assert r["num_known"].numpy().tolist() == known
        assert r["num_unknown"].numpy().tolist() == unknown
        assert r["num_results"].numpy().tolist() == results
    return check


def _leaves(r, wanted):
    ids = set(r["item_ids"].numpy().astype(str).ravel()) - {serving.FILL_ID}
    assert ids <= set(wanted), ids - set(wanted)


# name -> (signature, inputs builder, error pattern or check(result))
SERVING_CASES = {
    "k = 0": ("serve_top_k", lambda: dict(history=tf.constant([["1"]]), k=tf.constant(0),
                                          exclude_history=tf.constant(True)), r"k must be >= 1"),
    "k < 0": ("serve_top_k", lambda: dict(history=tf.constant([["1"]]), k=tf.constant(-3),
                                          exclude_history=tf.constant(True)), r"k must be >= 1"),
    "negative int id": ("serve_int_ids", lambda: dict(history=tf.constant([[3, -1]], tf.int64)),
                        r"integer ids must be >= 0"),
    "example without history": ("serve_examples", lambda: dict(examples=tf.concat(
        [_examples([["1"]]), _examples([["1"]], key="items")], 0)),
        r"every tf.Example needs a bytes feature named history"),
    "example with int history": ("serve_examples",
                                 lambda: dict(examples=_examples([[1, 2]], kind="int")),
                                 r"history"),
    "example not an Example": ("serve_examples", lambda: dict(examples=tf.constant([b"not an example"])),
                               r"Could not parse example input"),
    "batch too large": ("serve_top_k", lambda: dict(
        history=tf.fill([serving.MAX_SCORES_PER_REQUEST // (ITEMS + 2) + 1, 1], "1"), k=tf.constant(1),
        exclude_history=tf.constant(True)), r"batch too large"),
    "history covers the catalogue": ("serve_top_k", lambda: dict(
        history=tf.constant([ALL, ["1"] + [""] * (ITEMS - 1)]), k=tf.constant(10),
        exclude_history=tf.constant(True)), _check_fill([0, 10])),
    "fewer eligible than k": ("serve_top_k", lambda: dict(
        history=tf.constant([ALL[:-3]]), k=tf.constant(8), exclude_history=tf.constant(True)),
        lambda r: (_check_fill([3])(r), _leaves(r, ALL[-3:]))),
    "k beyond the catalogue": ("serve_top_k", lambda: dict(
        history=tf.constant([["5"]]), k=tf.constant(10 ** 6), exclude_history=tf.constant(True)),
        lambda r: (_check_fill([ITEMS - 1])(r), _leaves(r, set(ALL) - {"5"}))),
    "int history covers the catalogue": ("serve_int_ids", lambda: dict(
        history=tf.constant([list(range(1, ITEMS + 1))], tf.int64)), _check_fill([0])),
    "examples cover the catalogue": ("serve_examples", lambda: dict(
        examples=_examples([ALL, []])), _check_fill([0, 10])),
    "unknown and padding ids counted": ("serve_top_k", lambda: dict(
        history=tf.constant([["1", "nope", "", " 2 ", "1e3"]]), k=tf.constant(3),
        exclude_history=tf.constant(True)), _check_counts([2], [2], [3])),
    "int id 2**40 is unknown": ("serve_int_ids", lambda: dict(
        history=tf.constant([[2 ** 40, 4, 0]], tf.int64)), _check_counts([1], [1], [10])),
    "empty batch": ("serve_top_k", lambda: dict(history=tf.zeros([0, 3], tf.string),
                                                k=tf.constant(2),
                                                exclude_history=tf.constant(True)),
                    _check_fill([])),
}


@pytest.fixture(scope="module")
def loaded(runs):
    return tf.saved_model.load(runs["export"])


@pytest.mark.parametrize("case", sorted(SERVING_CASES))
def test_serving_requests(case, loaded):
    name, build, expect = SERVING_CASES[case]
    fn = loaded.signatures[name]
    if isinstance(expect, str):
        with pytest.raises(tf.errors.InvalidArgumentError, match=expect):
            fn(**build())
    else:
        result = fn(**build())
        assert result is not None
        expect(result)


# wrong rank, missing and extra inputs: refused before the model runs
# (a loaded signature reports a binding TypeError, then TensorFlow's own check)
SERVING_SHAPE_CASES = {
    "rank-1 history": ("serve_top_k", dict(history=tf.constant(["1"]), k=tf.constant(2),
                                           exclude_history=tf.constant(True)),
                       r"history_must_be_batch_by_length"),
    "rank-3 history": ("serving_default", dict(history=tf.constant([[["1"]]])),
                       r"history_must_be_batch_by_length"),
    "missing k": ("serve_top_k", dict(history=tf.constant([["1"]]),
                                      exclude_history=tf.constant(True)), r"\bk\b"),
    "int ids as strings": ("serve_int_ids", dict(history=tf.constant([["1"]])),
                           r"int64 tensor but is a string tensor|history"),
    "k as a vector": ("serve_top_k", dict(history=tf.constant([["1"]]), k=tf.constant([2]),
                                          exclude_history=tf.constant(True)),
                      r"scalar|\bk\b"),
}


@pytest.mark.parametrize("case", sorted(SERVING_SHAPE_CASES))
def test_serving_request_shapes(case, loaded):
    name, inputs, pattern = SERVING_SHAPE_CASES[case]
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)) as info:
        loaded.signatures[name](**inputs)
    assert re.search(pattern, str(info.value)), str(info.value)[:300]


# name -> (REST body, signature, error pattern)
REST_CASES = {
    "no instances or inputs": ({}, "serve_top_k", r"exactly one of"),
    "both instances and inputs": ({"instances": [1], "inputs": {}}, "serve_top_k",
                                  r"exactly one of"),
    "empty instances": ({"instances": []}, "serve_top_k", r"non-empty list"),
    "missing k": ({"inputs": {"history": [["1"]], "exclude_history": True}}, "serve_top_k",
                  r"inputs lack \['k'\]"),
    "instance lacks an input": ({"instances": [{"history": ["1"]}]}, "serve_top_k",
                                r"instances lack input\(s\) \[.*'k'.*\]"),
    "history not a list of lists": ({"instances": ["1", "2"]}, "serving_default",
                                    r"must be a list of lists"),
    "string ids for int ids": ({"instances": [["a"]]}, "serve_int_ids", r"does not fit int64"),
    "int id beyond int64": ({"instances": [[2 ** 70]]}, "serve_int_ids", r"does not fit int64"),
}


@pytest.mark.parametrize("case", sorted(REST_CASES))
def test_rest_requests(case, loaded):
    body, name, pattern = REST_CASES[case]
    specs = loaded.signatures[name].structured_input_signature[1]
    with pytest.raises(ValueError, match=pattern):
        serving.rest_to_signature_inputs(body, specs)


# name -> (items, k, extra flags, exit code, stdout lines, stderr pattern or None)
RECOMMEND_CASES = {
    "some ids unknown": (["3", "nope", "9", "x"], 4, [], 0, 4,
                         r"2 of 4 given id\(s\) are unknown to the model and were ignored"),
    "all ids unknown": (["nope"], 3, [], 0, 3, r"1 of 1 given id\(s\) are unknown"),
    "history covers the catalogue": (ALL, 5, [], 1, 0, r"nothing to recommend: every item"),
    "fewer eligible than k": (ALL[2:], 5, [], 0, 2, None),
    "history included": (ALL, 5, ["--include-history"], 0, 5, None),
    "empty id": (["3", " "], 3, [], 2, 0, r"error: history 1, position 2: empty item id"),
}


@pytest.mark.parametrize("case", sorted(RECOMMEND_CASES))
def test_recommend_command(case, runs, capfd):
    items, k, flags, code, lines, pattern = RECOMMEND_CASES[case]
    before = snapshot(runs["root"])
    got, out, err = run_cli(capfd, ["recommend", "--model", runs["serve"], "--items", *items,
                                    "-k", str(k), *flags])
    assert got == code, err
    printed = out.splitlines()
    assert len(printed) == lines
    excluded = set() if flags else set(items)
    for line in printed:
        item, score = line.split()
        assert item in ALL and item not in excluded and np.isfinite(float(score))
    if pattern is None:
        assert not err
    else:
        assert len(err) == 1 and re.search(pattern, err[0]), err
    assert snapshot(runs["root"]) == before


# ------------------------------------------------------------- properties ---

ID_TOKENS = st.one_of(st.integers(1, 30).map(str), st.sampled_from(
    ["0", "-1", "+3", "1e3", "3.0", "007", "0x1f", "\u0663", "1_0", str(2 ** 40),
     str(reader.MAX_ID + 1), str(2 ** 64), "x", "", "\x00", "\ufeff1"]))
LINES = st.lists(st.lists(ID_TOKENS, min_size=0, max_size=7).map(" ".join), max_size=6)


@PROPERTY
@given(LINES, st.dictionaries(ID_TOKENS, st.lists(st.one_of(
    st.integers(-2, 2 ** 41), st.booleans(), st.floats(allow_nan=False), st.text(max_size=2)),
    max_size=3), max_size=4))
def test_random_files_either_read_or_give_a_located_data_error(tmp_path, lines, attrs):
    folder = tmp_path / "p"
    folder.mkdir(exist_ok=True)
    (folder / "R.txt").write_text("\n".join(lines) + "\n")
    (folder / "R_item2attributes.json").write_text(json.dumps(attrs))
    try:
        data = reader.read_dataset(str(folder), "R")
    except DataError as e:
        assert str(e).startswith(str(folder))
    else:
        ids = np.concatenate(data.sequences)
        assert ids.min() >= 1 and ids.max() <= reader.MAX_ID
        assert all(((a >= 1) & (a <= reader.MAX_ID)).all() for a in
                   data.item_attributes.values())


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.binary(max_size=200), st.binary(max_size=60))
def test_random_bytes_on_the_command_line_give_exit_2_and_one_line(tmp_path, capfd, seq,
                                                                   attrs):
    ws = tmp_path / "ws"
    shutil.rmtree(ws, ignore_errors=True)
    ws.mkdir()
    (ws / "B.txt").write_bytes(seq)
    (ws / "B_item2attributes.json").write_bytes(attrs)
    # reading comes first; `--pretrained` names nothing, so no run can start
    assert_refused(capfd, ["finetune", "--data", ws, "--name", "B", "--pretrained", ws / "none",
                           "--output", tmp_path / "out"], tmp_path,
                   r"B\.txt|B_item2attributes\.json|none")


HISTORY_IDS = st.one_of(st.sampled_from(ALL), st.sampled_from(["0", "201", "nope", "1e3", "-4",
                                                                " 7 ", "\u0663"]))


@PROPERTY
@given(st.lists(st.lists(HISTORY_IDS, max_size=40), min_size=1, max_size=3),
       st.integers(1, 260), st.booleans())
def test_random_histories_never_answer_an_excluded_padding_or_unknown_id(loaded, histories, k,
                                                                         exclude):
    width = max(len(h) for h in histories) or 1
    batch = [h + [""] * (width - len(h)) for h in histories]
    r = loaded.signatures["serve_top_k"](history=tf.constant(batch), k=tf.constant(k),
                                         exclude_history=tf.constant(exclude))
    ids = r["item_ids"].numpy().astype(str)
    scores = r["scores"].numpy()
    for row, h in enumerate(histories):
        known = {x.strip() for x in h} & set(ALL)
        eligible = len(ALL) - (len(known) if exclude else 0)
        n = int(r["num_results"][row])
        assert n == min(k, eligible)
        assert int(r["num_known"][row]) == sum(x.strip() in known for x in h)
        real = ids[row][:n].tolist()
        assert len(set(real)) == n and set(real) <= set(ALL)
        if exclude:
            assert not set(real) & known
        assert np.isfinite(scores[row][:n]).all()
        assert (ids[row][n:] == serving.FILL_ID).all()


# ------------------------------------------------------------------ census ---

CLASSES = {
    "data files": len(DATA_FILE_CASES) + 3,
    "tabular input": len(TABULAR_CASES) + 4,
    "arguments": len(ARGUMENT_CASES),
    "checkpoints and resumes": len(CHECKPOINT_CASES) + 1,
    "serving requests": (len(SERVING_CASES) + len(SERVING_SHAPE_CASES) + len(REST_CASES)
                         + len(RECOMMEND_CASES)),
}

