"""The machinery of the config fields: their metadata, checks and value types.

A config field carries a `Param` (help, range, choices, flag aliases) in its
metadata; `check_value` and `validate` check values against it, and
`number_type` is the same kind of check for a command-line option that is not
a config field. `s3rec_tf.config` defines the fields with these; this module
imports nothing from the package but its errors.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing

from s3rec_tf.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Param:
    """Metadata of one hyperparameter: its help, range, choices and flag aliases.

    Args:
        help: str. One line for `--help` and the README.
        minimum: float | None. Lower bound, inclusive unless `exclusive_minimum`.
        maximum: float | None. Upper bound, inclusive unless `exclusive_maximum`.
        choices: tuple | None. The allowed values of a string field.
        aliases: tuple of str. More flag spellings (`"--lr"`).
    """

    help: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    choices: tuple | None = None
    aliases: tuple = ()

    def describe(self) -> str:
        """The allowed values in words: `>= 1`, `in [0, 1)`, `one of 'bce', 'ce'`."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        lo, hi = _number(self.minimum), _number(self.maximum)
        if lo is not None and hi is not None:
            return (f"in {'(' if self.exclusive_minimum else '['}{lo}, "
                    f"{hi}{')' if self.exclusive_maximum else ']'}")
        if lo is not None:
            return f"{'>' if self.exclusive_minimum else '>='} {lo}"
        if hi is not None:
            return f"{'<' if self.exclusive_maximum else '<='} {hi}"
        return "any value"

    def allows(self, value) -> bool:
        if self.choices is not None:
            return value in self.choices
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.minimum is not None and (value <= self.minimum if self.exclusive_minimum
                                         else value < self.minimum):
            return False
        if self.maximum is not None and (value >= self.maximum if self.exclusive_maximum
                                         else value > self.maximum):
            return False
        return True


def _number(x):
    """`1`, `0.5`, `4294967295`: a bound as a user would write it."""
    if x is None:
        return None
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _param(default, help: str, **kwargs):
    return dataclasses.field(default=default, metadata={"param": Param(help, **kwargs)})


def _probability(default, help):
    return _param(default, help, minimum=0.0, maximum=1.0, exclusive_maximum=True)


def _count(default, help, **kwargs):
    return _param(default, help, minimum=1, **kwargs)


class _Validated:
    """Checks every field's type and range, then the cross-field rules, on construction."""

    def __post_init__(self):
        validate(self)

    def _check_fields(self):
        """Cross-field rules; subclasses extend."""


def params(cls) -> list:
    """`[(field, Param), ...]` of a config class, in declaration order."""
    return [(f, f.metadata["param"]) for f in dataclasses.fields(cls)]


def _field_type(cls, field) -> type:
    return typing.get_type_hints(cls)[field.name]


def check_value(cls, name: str, value, source: str | None = None):
    """Checks and converts one value for field `name` of `cls`.

    Ints are accepted for float fields; bools are never taken for numbers,
    nor numbers for bools.

    Returns:
        The value converted to the field's type.

    Raises:
        ConfigError: naming the field, the value and what is allowed.
    """
    field = next((f for f in dataclasses.fields(cls) if f.name == name), None)
    if field is None:
        raise ConfigError(name, value, f"is not a hyperparameter of {cls.__name__}",
                          source=source)
    kind = _field_type(cls, field)
    ok = (isinstance(value, bool) if kind is bool
          else isinstance(value, int) and not isinstance(value, bool) if kind is int
          else isinstance(value, (int, float)) and not isinstance(value, bool) if kind is float
          else isinstance(value, kind))
    if not ok:
        raise ConfigError(name, value, f"must be of type {kind.__name__}, not "
                                       f"{type(value).__name__}", source=source)
    value = kind(value)
    param = field.metadata["param"]
    if not param.allows(value):
        raise ConfigError(name, value, f"must be {param.describe()}", source=source)
    return value


def validate(config, source: str | None = None) -> None:
    """Checks every field of `config` (type and range) and its cross-field rules.

    Raises:
        ConfigError: the first violation, naming the field, value and range.
    """
    cls = type(config)
    for field in dataclasses.fields(cls):
        setattr(config, field.name,
                check_value(cls, field.name, getattr(config, field.name), source))
    try:
        config._check_fields()
    except ConfigError as e:
        if source and not e.source:
            e = ConfigError(e.field, e.value, e.reason, source=source, related=e.related)
        raise e from None


def _convert(kind, text):
    """`kind(text)`, or argparse's one-line error for a value of the wrong type."""
    try:
        return kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: {text!r}") from None


def number_type(kind, minimum=None, maximum=None, what=None):
    """An argparse `type` that parses `kind` and checks its range when parsed."""
    def parse(text):
        value = _convert(kind, text)
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number. Received: {text}")
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            allowed = (f"in [{minimum}, {maximum}]" if minimum is not None and maximum is not None
                       else f">= {minimum}" if minimum is not None else f"<= {maximum}")
            raise argparse.ArgumentTypeError(f"must be {allowed}. Received: {text}")
        return value
    parse.__name__ = what or kind.__name__
    parse.kind = kind
    return parse
