"""Low-level text reading: a UTF-8 file's contents or lines, or a `DataError`.

Imports nothing of the package above `errors`, so the id layout (`ids`), the
negatives and every reader can use it.
"""

from __future__ import annotations

from s3rec_tf.errors import DataError


def read_text(path: str) -> str:
    """A UTF-8 text file's contents; a missing, unreadable or non-UTF-8 file is a
    `DataError` naming the file (and the line of the first bad byte)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except IsADirectoryError:
        raise DataError(path, "is a directory, expected a file") from None
    except OSError as e:  # NotADirectoryError, PermissionError, ...
        raise DataError(path, f"cannot read ({e.strerror or type(e).__name__})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise DataError(path, f"not valid UTF-8 (byte 0x{raw[e.start]:02x})", line=line) from None


def read_lines(path: str) -> list:
    """`read_text` split into lines (without the final newline's empty line).

    Raises:
        DataError: as `read_text`, or an empty file.
    """
    lines = read_text(path).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise DataError(path, "file is empty")
    return lines
