"""Atomic files and directories: nothing half-written is ever visible."""

import os

import numpy as np
import pytest

from s3rec_tf import io
from s3rec_tf.errors import ArtifactError


def test_failed_write_leaves_nothing(tmp_path):
    def fill(tmp):
        open(os.path.join(tmp, "half"), "w").write("x")
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError):
        io.write_atomic_dir(str(tmp_path / "out"), fill)
    assert os.listdir(tmp_path) == []


def test_refused_or_failed_writes_leave_no_folder_behind(tmp_path):
    # a failed fill removes the parent folders the call created
    def fill(tmp):
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError):
        io.write_atomic_dir(str(tmp_path / "a" / "b" / "out"), fill)
    assert os.listdir(tmp_path) == []
    # replace=False refuses an existing directory before filling
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep").write_text("1")
    with pytest.raises(ArtifactError, match="already exists"):
        io.write_atomic_dir(str(tmp_path / "x"), lambda tmp: None, replace=False)
    assert (tmp_path / "x" / "keep").read_text() == "1"
    # a file where a parent directory should be is an ArtifactError, not a traceback
    (tmp_path / "f").write_text("file")
    with pytest.raises(ArtifactError, match="is a file, expected a directory"):
        io.write_atomic_dir(str(tmp_path / "f" / "out"), lambda tmp: None)
    with pytest.raises(ArtifactError, match="is a file, expected a directory"):
        io.write_json_atomic(str(tmp_path / "f" / "m.json"), {})
    assert sorted(os.listdir(tmp_path)) == ["f", "x"]


def test_write_file_atomic_replaces_whole_files_only(tmp_path, monkeypatch):
    path = tmp_path / "d" / "n.txt"
    io.write_file_atomic(str(path), "one\n")
    io.write_file_atomic(str(path), b"two\n")
    assert path.read_text() == "two\n"
    io.write_json_atomic(str(tmp_path / "d" / "m.json"), {"b": np.int64(2), "a": 1.5})
    assert (tmp_path / "d" / "m.json").read_text() == '{\n  "a": 1.5,\n  "b": 2\n}\n'

    def broken_replace(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        io.write_file_atomic(str(path), "three\n")
    assert path.read_text() == "two\n"
    assert sorted(os.listdir(tmp_path / "d")) == ["m.json", "n.txt"], "no temporary left"


def test_an_existing_directory_is_replaced_only_when_asked(tmp_path):
    def fill(tmp):
        open(os.path.join(tmp, "new"), "w").write("new")
    out = tmp_path / "out"
    out.mkdir()
    io.write_atomic_dir(str(out), fill)  # an empty folder is written
    assert os.listdir(out) == ["new"]
    (out / "keep").write_text("the user's")
    with pytest.raises(ArtifactError, match="already exists and is not empty"):
        io.write_atomic_dir(str(out), fill)  # the default: refused, before fill runs
    assert sorted(os.listdir(out)) == ["keep", "new"]
    io.write_atomic_dir(str(out), fill, replace=True)
    assert os.listdir(out) == ["new"]
    assert os.listdir(tmp_path) == ["out"], "the old folder is removed, nothing left aside"
    # a file is never replaced by a folder, even when asked
    (tmp_path / "f").write_text("file")
    for replace in (False, True):
        with pytest.raises(ArtifactError, match="is a file, expected a directory"):
            io.write_atomic_dir(str(tmp_path / "f"), fill, replace=replace)
    assert (tmp_path / "f").read_text() == "file"


def test_a_failed_replace_keeps_the_old_directory(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old").write_text("old")
    real = os.replace
    calls = []

    def second_rename_fails(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # the new folder into place
            raise OSError("disk full")
        return real(src, dst)
    monkeypatch.setattr(os, "replace", second_rename_fails)
    with pytest.raises(OSError, match="disk full"):
        io.write_atomic_dir(str(out), lambda tmp: None, replace=True)
    monkeypatch.setattr(os, "replace", real)
    assert os.listdir(out) == ["old"] and os.listdir(tmp_path) == ["out"]
