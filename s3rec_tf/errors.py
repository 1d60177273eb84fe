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


class ConfigError(S3RecError, ValueError):
    """A hyperparameter or option that is unknown, of the wrong type or out of range.

    Args:
        field: str | None. The field (hyperparameter, key) at fault.
        value: the value received.
        reason: str. What is wrong, e.g. `"must be >= 1"`.
        source: str | None. Where the value came from (a file, a component
            parameter), named first in the message.
        related: tuple of str. Other fields of a cross-field rule.
    """

    def __init__(self, field: str | None, value, reason: str, source: str | None = None,
                 related: tuple = ()):
        self.field = field
        self.value = value
        self.reason = reason
        self.source = source
        self.related = tuple(related)
        text = reason if field is None else f"`{field}` {reason}. Received: {field}={value!r}"
        super().__init__(f"{source}: {text}" if source else text)


class OutputError(S3RecError):
    """An output path a command may not write (see `s3rec_tf.outputs`).

    Args:
        path: str. The output path.
        reason: str. Why it is refused.
    """

    def __init__(self, path: str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
