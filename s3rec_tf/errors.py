"""Errors raised for bad input, mismatched artifacts and corrupt files."""

from __future__ import annotations


class S3RecError(Exception):
    """Base class of every error the library raises on purpose."""


class DataError(S3RecError, ValueError):
    """Bad input data, located by file, line (or field) and reason.

    Args:
        path: str. The file the problem is in.
        reason: str. What is wrong.
        line: int | None. 1-based line number, if the problem has one.
        field: str | None. The field (column, JSON key) at fault, if any.
    """

    def __init__(self, path: str, reason: str, line: int | None = None,
                 field: str | None = None):
        self.path = str(path)
        self.reason = reason
        self.line = line
        self.field = field
        where = self.path
        if line is not None:
            where += f":{line}"
        if field is not None:
            where += f" (field {field!r})"
        super().__init__(f"{where}: {reason}")


class ArtifactError(S3RecError):
    """A model, checkpoint or manifest that is missing, corrupt or mismatched."""
