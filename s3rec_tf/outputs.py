"""Where a command may write: one rule for every output path, checked before any work.

A command never deletes or replaces anything the user did not name as its
own output, and never writes into or over one of its inputs:

- an output folder may be absent or empty;
- an existing non-empty folder is refused, except
  - a run's own unfinished (or finished, to train further) run, marked by
    `_resume/`, which the run resumes (`resumable`);
  - with `overwrite`, a folder this project wrote, marked by one of the
    command's marker files (a model's `manifest.json`, a run's `_resume/`, a
    prepared dataset's `stats.json`, ...): it is replaced once the new
    output is complete;
- a folder the project did not write is refused even with `overwrite`;
- an output that is an existing file is refused (a result file is replaced
  only with `overwrite`, and only if it is a JSON object, as this project
  writes them);
- an output equal to an input, inside an input, or holding an input is
  refused.

Every refusal is an `OutputError` naming the path and the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile

from s3rec_tf.errors import OutputError

#: What `check_output_dir` / `check_output_file` decided.
NEW = "new"          # absent: created
EMPTY = "empty"      # an empty folder: written into
RESUME = "resume"    # a run's `_resume/`: resumed
REPLACE = "replace"  # a project's earlier output, with `overwrite`: replaced
#: The folder that marks a resumable run (`s3rec_tf.training.resume`).
RESUME_DIR = "_resume"


def _real(path: str) -> str:
    return os.path.realpath(os.path.abspath(path))


def _inside(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder and path != folder


def check_inputs(path: str, inputs=()) -> None:
    """Refuses an output `path` that is, lies inside or holds one of `inputs`.

    Args:
        path: str. The output.
        inputs: iterable of str | None. The command's input files and folders
            (None entries are skipped).

    Raises:
        OutputError: `path` overlaps an input.
    """
    out = _real(path)
    for given in inputs:
        if not given:
            continue
        source = _real(given)
        if out == source:
            raise OutputError(path, f"is an input of this command ({given}); name a new "
                                    f"or empty folder for the output")
        if _inside(out, source):
            raise OutputError(path, f"lies inside the input {given}; name a folder outside "
                                    f"it for the output")
        if _inside(source, out):
            raise OutputError(path, f"holds the input {given}; name a folder that does not "
                                    f"contain the command's inputs")


def _check_ancestors(path: str) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    while parent and not os.path.exists(parent):
        up = os.path.dirname(parent)
        if up == parent:
            break
        parent = up
    if parent and not os.path.isdir(parent):
        raise OutputError(path, f"{parent} is a file, expected a directory to hold the output")


def marked(path: str, markers=()) -> str | None:
    """The first of `markers` (paths relative to `path`) that exists, or None."""
    for marker in markers:
        if os.path.lexists(os.path.join(path, marker)):
            return marker
    return None


def check_output_dir(path: str, inputs=(), overwrite: bool = False, resumable: bool = False,
                     markers=()) -> str:
    """What writing the output folder `path` will do, or a refusal (see the module).

    Args:
        path: str. The output folder.
        inputs: iterable of str | None. The command's inputs, which the
            output may not equal, lie inside or hold.
        overwrite: bool. The command's `--overwrite`: replace a folder this
            project wrote (one holding one of `markers`).
        resumable: bool. A folder holding `_resume/` is the command's own
            run, which it resumes (without `overwrite`).
        markers: iterable of str. Paths, relative to `path`, that mark a
            folder as the output of this command (e.g. `manifest.json`).

    Returns:
        `NEW` (absent), `EMPTY` (an empty folder), `RESUME` (a run to
        resume) or `REPLACE` (an earlier output to replace, with `overwrite`).

    Raises:
        OutputError: the path may not be written.
    """
    markers = tuple(markers) + ((RESUME_DIR,) if resumable else ())
    _check_ancestors(path)
    if os.path.lexists(path) and not os.path.isdir(path):
        raise OutputError(path, "is a file, expected a folder for the output (name a new or "
                                "empty folder)")
    check_inputs(path, inputs)
    if not os.path.exists(path):
        return NEW
    if not os.listdir(path):
        return EMPTY
    found = marked(path, markers)
    if overwrite:
        if found is None:
            raise OutputError(path, "is not empty and was not written by s3rec-tf (no "
                                    f"{' or '.join(markers) or 'marker file'}); --overwrite "
                                    "replaces only a folder s3rec-tf wrote: name a new or "
                                    "empty folder")
        return REPLACE
    if resumable and os.path.isdir(os.path.join(path, RESUME_DIR)):
        return RESUME
    if found is not None:
        raise OutputError(path, f"already holds an s3rec-tf output ({found}); --overwrite "
                                f"replaces it, or name a new or empty folder")
    raise OutputError(path, "is not empty; name a new or empty folder (a command never "
                            "writes into a folder holding other files)")


def check_output_file(path: str, inputs=(), overwrite: bool = False) -> str:
    """What writing the result file `path` (a JSON record) will do, or a refusal.

    Args:
        path: str. The output file.
        inputs: iterable of str | None. The command's inputs, which the file
            may not equal or lie inside.
        overwrite: bool. Replace an existing file, if it is a JSON object (as
            this project writes its records).

    Returns:
        `NEW` or `REPLACE`.

    Raises:
        OutputError: the path may not be written.
    """
    _check_ancestors(path)
    if os.path.isdir(path):
        raise OutputError(path, "is a folder, expected a file")
    check_inputs(path, inputs)
    if not os.path.lexists(path):
        return NEW
    if not overwrite:
        raise OutputError(path, "already exists; --overwrite replaces it, or name a new file")
    try:
        with open(path, encoding="utf-8") as f:
            ours = isinstance(json.load(f), dict)
    except (OSError, ValueError):
        ours = False
    if not ours:
        raise OutputError(path, "is not a JSON record written by s3rec-tf; --overwrite "
                                "replaces only a file s3rec-tf wrote: name a new file")
    return REPLACE


@contextlib.contextmanager
def replacing(path: str, decision: str):
    """Around a run that writes the folder `path` as it goes (training runs).

    With `decision == REPLACE`, the earlier output is renamed aside first and
    removed once the block completes. If the block fails before anything was
    written at `path`, the earlier output is put back; if it fails later,
    the new (resumable) run stays and the earlier output is removed. Any
    other decision: the block runs as is.
    """
    if decision != REPLACE:
        yield
        return
    path = os.path.abspath(path)
    aside = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.old-",
                             dir=os.path.dirname(path))
    os.rmdir(aside)
    os.replace(path, aside)
    try:
        yield
    except BaseException:
        if not os.path.lexists(path):
            os.replace(aside, path)
        else:
            shutil.rmtree(aside)
        raise
    shutil.rmtree(aside)
