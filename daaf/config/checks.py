"""Declared ranges and choices of config values, checked once when a config is built.

A component declares the values its keys allow next to the keys, with :func:`declare_value_checks`
(the core keys in ``defaults.py``; an extension's keys beside its ``@config_extension``), and
:func:`daaf.config.build_config` checks every declared key of the finished config, so a value no
component could use is one line naming the key, the value and what is allowed, before any work::

    declare_value_checks({"MODEL.MY_BRANCH.WEIGHT": Range(0), "MODEL.MY_BRANCH.MODE": OneOf("a", "b")})
"""

import math
import numbers
import re
from typing import Dict, Optional, Sequence

from daaf.utils.errors import ConfigError

__all__ = [
    "ValueCheck",
    "Range",
    "OneOf",
    "ListOf",
    "Matches",
    "OrNone",
    "declare_value_checks",
    "declared_value_checks",
    "check_config_values",
]


class ValueCheck:
    """What a key allows: ``allows(value)``, and ``describe()`` in words ("an integer >= 1")."""

    def allows(self, value) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class Range(ValueCheck):
    """A number in [low, high] (either end open with ``low_open``/``high_open``, None: unbounded),
    an integer when ``integer``; finite unless ``allow_inf``."""

    def __init__(
        self, low=None, high=None, *, integer: bool = False, low_open: bool = False, high_open: bool = False, allow_inf: bool = False
    ):
        self.low, self.high, self.integer = low, high, integer
        self.low_open, self.high_open, self.allow_inf = low_open, high_open, allow_inf

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        if self.low is not None and self.high is not None:
            return f"{kind} in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{kind} {'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{kind} {'<' if self.high_open else '<='} {self.high:g}"
        return kind if self.allow_inf else f"a finite {kind.split(' ', 1)[1]}"

    def allows(self, value) -> bool:
        ok = _is_number(value) and (not self.integer or float(value).is_integer())
        if ok and math.isnan(value):
            ok = False
        if ok and math.isinf(value) and not self.allow_inf:
            ok = False
        if ok and self.low is not None:
            ok = value > self.low if self.low_open else value >= self.low
        if ok and self.high is not None:
            ok = value < self.high if self.high_open else value <= self.high
        return ok


class OneOf(ValueCheck):
    """One of the given values."""

    def __init__(self, *values):
        self.values = values

    def allows(self, value) -> bool:
        return any(type(value) is type(v) and value == v for v in self.values)

    def describe(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


class Matches(ValueCheck):
    """A string matching the regular expression ``pattern`` entirely, described as ``description``."""

    def __init__(self, pattern: str, description: str):
        self.pattern, self.description = re.compile(pattern), description

    def allows(self, value) -> bool:
        return isinstance(value, str) and self.pattern.fullmatch(value) is not None

    def describe(self) -> str:
        return self.description


class ListOf(ValueCheck):
    """A list or tuple of items that each pass ``item``, of one of the ``lengths`` (None: any)."""

    def __init__(self, item: ValueCheck, lengths: Optional[Sequence[int]] = None):
        self.item, self.lengths = item, tuple(lengths) if lengths is not None else None

    def allows(self, value) -> bool:
        if not isinstance(value, (list, tuple)) or (self.lengths is not None and len(value) not in self.lengths):
            return False
        return all(self.item.allows(v) for v in value)

    def describe(self) -> str:
        count = " or ".join(map(str, self.lengths)) if self.lengths else "any number of"
        return f"a list of {count} values, each {self.item.describe()}"


class OrNone(ValueCheck):
    """None, or a value ``check`` allows."""

    def __init__(self, check: ValueCheck):
        self.check = check

    def allows(self, value) -> bool:
        return value is None or self.check.allows(value)

    def describe(self) -> str:
        return f"None or {self.check.describe()}"


_CHECKS: Dict[str, ValueCheck] = {}


def declare_value_checks(checks: Dict[str, ValueCheck]) -> None:
    """Declare what the keys (full dotted names) allow; declaring a key again replaces its check."""
    for key, check in checks.items():
        if not isinstance(check, ValueCheck):
            raise TypeError(f"{key}: a ValueCheck is needed, got {check!r}")
        _CHECKS[key] = check


def declared_value_checks() -> Dict[str, ValueCheck]:
    """{key: check} of every declared key."""
    return dict(_CHECKS)


def _lookup(cfg, key: str):
    node = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


_MISSING = object()


def check_config_values(cfg) -> None:
    """ConfigError for the first declared key of ``cfg`` whose value is not allowed (keys the
    config does not have, such as those of an extension that is not loaded, are skipped)."""
    for key, check in _CHECKS.items():
        value = _lookup(cfg, key)
        if value is _MISSING:
            continue
        if not check.allows(value):
            raise ConfigError(f"{key}: {value!r} is not allowed; expected {check.describe()}")
