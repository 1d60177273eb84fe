"""Low-level file writing: atomic files and directories, JSON, checksums.

Every file or directory this library writes goes through here: it is written
to a temporary sibling and renamed into place, so an interrupted write never
leaves a file or directory that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile

import numpy as np

from s3rec_tf.errors import ArtifactError


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _missing_ancestors(path: str) -> list:
    """The directories above `path` that do not exist yet, deepest first."""
    missing = []
    parent = os.path.dirname(path)
    while parent and not os.path.exists(parent):
        missing.append(parent)
        up = os.path.dirname(parent)
        if up == parent:
            break
        parent = up
    return missing


def _remove_empty(dirs) -> None:
    for d in dirs:  # deepest first
        try:
            os.rmdir(d)
        except OSError:
            break


def _check_parent(path: str) -> None:
    for ancestor in [os.path.dirname(path), *_ancestors(os.path.dirname(path))]:
        if os.path.exists(ancestor) and not os.path.isdir(ancestor):
            raise ArtifactError(f"{ancestor}: is a file, expected a directory (to hold "
                                f"{path})")


def _ancestors(path: str) -> list:
    out = []
    while True:
        up = os.path.dirname(path)
        if not up or up == path:
            return out
        out.append(up)
        path = up


def _replace(src: str, dst: str) -> None:
    """Renames `src` to `dst`, replacing what is there (a directory too).

    An existing directory is first renamed aside, and removed only once `src`
    is in place: at every moment one complete version exists.
    """
    if os.path.lexists(dst) and (os.path.isdir(src) or
                                 (os.path.isdir(dst) and not os.path.islink(dst))):
        parent = os.path.dirname(dst)
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(dst)}.old-", dir=parent)
        os.rmdir(old)
        os.replace(dst, old)
        try:
            os.replace(src, dst)
        except BaseException:
            os.replace(old, dst)  # put the old version back
            raise
        shutil.rmtree(old)
    else:
        os.replace(src, dst)


def _is_nonempty_dir(path: str) -> bool:
    return os.path.isdir(path) and not os.path.islink(path) and bool(os.listdir(path))


def _check_target(path: str, replace: bool, merge: bool) -> None:
    """Refuses a `path` that `write_atomic_dir` may not write (see there)."""
    if os.path.lexists(path) and not os.path.isdir(path):
        raise ArtifactError(f"{path}: is a file, expected a directory")
    if not (replace or merge) and _is_nonempty_dir(path):
        raise ArtifactError(f"{path}: already exists and is not empty")


def write_atomic_dir(path: str, fill, replace: bool = False, merge: bool = False) -> None:
    """Calls `fill(tmp_dir)` then moves `tmp_dir` to `path`.

    The one way this library writes a directory: nothing appears at `path`
    until `fill` has returned; if `fill` raises (a refusal, a crash, Ctrl-C),
    the temporary directory and any parent directories this call created are
    removed, so a failed write leaves the file system as it was.

    An absent `path` or an empty directory is written; a file is always
    refused; a non-empty directory is refused unless `replace` or `merge`
    says what to do with it. Whether an existing directory may be replaced is
    the caller's decision, made before any work (`s3rec_tf.outputs`).

    Args:
        path: str. The directory to create.
        fill: callable `fill(tmp_dir)` writing the contents. With `merge` it
            may return the names it wrote in the order they are to be moved.
        replace: bool. Replace an existing non-empty `path`: it is renamed
            aside, the new directory renamed into place, and only then is the
            old one removed. Defaults to `False`: an existing non-empty `path`
            is refused with an `ArtifactError` before `fill` runs.
        merge: bool. Keep what an existing `path` holds besides what `fill`
            wrote (a run's output directory, which also holds its checkpoint
            and snapshots): each entry `fill` wrote replaces its namesake in
            `path` by one rename, in the order `fill` returns (name order for
            the rest), so the entry moved last can mark the others complete.
            Defaults to `False`.
    """
    path = os.path.abspath(path)
    _check_parent(path)
    _check_target(path, replace, merge)
    parent = os.path.dirname(path)
    created = _missing_ancestors(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.tmp-", dir=parent)
    try:
        order = fill(tmp)
        _check_target(path, replace, merge)  # nothing appeared there meanwhile
        if merge and os.path.isdir(path):
            written = os.listdir(tmp)
            names = [n for n in (order or []) if n in written]
            for name in names + sorted(set(written) - set(names)):
                _replace(os.path.join(tmp, name), os.path.join(path, name))
            os.rmdir(tmp)
        elif os.path.lexists(path):
            _replace(tmp, path)  # a non-empty one only with `replace` (checked above)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        raise


def write_file_atomic(path: str, content) -> None:
    """Writes `content` (str or bytes) to `path` via a temporary sibling and a rename.

    A reader never sees a half-written file; a failure leaves `path` (and its
    directory) as they were.
    """
    path = os.path.abspath(path)
    _check_parent(path)
    if os.path.isdir(path):
        raise ArtifactError(f"{path}: is a directory, expected a file")
    created = _missing_ancestors(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = content.encode() if isinstance(content, str) else content
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.tmp-",
                               dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        _remove_empty(created)
        raise


def write_json_atomic(path: str, obj) -> None:
    """`obj` as indented, key-sorted JSON, written with `write_file_atomic`."""
    write_file_atomic(path, json.dumps(obj, indent=2, sort_keys=True,
                                       default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
