"""Typed per-method options: each method declares what it accepts, the registry checks what it gets.

    >>> spec = {"max_iterations": Option("cap on rounds", int, default=100, minimum=1)}
    >>> check_options("alternating", spec, {"max_iterations": 50})
    {'max_iterations': 50}
    >>> check_options("alternating", spec, {"max_iter": 5})
    Traceback (most recent call last):
    ...
    ValueError: method 'alternating' got unknown option 'max_iter' (did you mean 'max_iterations'?); allowed: max_iterations
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Option:
    """One keyword option of a method.

    ``kind`` is the accepted Python type (``int``, ``float``, ``bool``, ``str``, ``dict``;
    an int is accepted where a float is asked, a bool never where a number is asked);
    ``choices`` restricts the values; ``minimum`` / ``maximum`` bound numbers (inclusive, or
    exclusive above with ``open_maximum``). ``default`` documents the value used when the
    option is not given.
    """

    description: str
    kind: type = float
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None
    open_maximum: bool = False

    def requirement(self) -> str:
        """What a value must be: ``'an integer >= 1'``, ``'a number in [0, 1]'``, ``'true or false'``."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind is bool:
            return "True or False"
        noun = {int: "an integer", float: "a number", str: "a string", dict: "a mapping"}.get(
            self.kind, f"a {self.kind.__name__}"
        )
        low, high = self.minimum, self.maximum
        close = ")" if self.open_maximum else "]"
        if low is not None and high is not None:
            return f"{noun} in [{low:g}, {high:g}{close}"
        if low is not None:
            return f"{noun} >= {low:g}"
        if high is not None:
            return f"{noun} {'<' if self.open_maximum else '<='} {high:g}"
        return noun

    def describe(self) -> str:
        """``'an integer >= 1, default 100: cap on rounds'``: requirement, default and meaning."""
        default = "" if self.default is None else f", default {self.default!r}"
        return f"{self.requirement()}{default}: {self.description}"

    def check(self, method: str, name: str, value: Any) -> Any:
        """``value`` if it fits; else ``ValueError`` naming the method, the option and the range."""
        fits = value in self.choices if self.choices is not None else _is_kind(value, self.kind)
        if fits and self.kind in (int, float) and self.choices is None:
            fits = math.isfinite(value) and not (
                (self.minimum is not None and value < self.minimum)
                or (self.maximum is not None and value > self.maximum)
                or (self.open_maximum and value == self.maximum)
            )
        if not fits:
            raise ValueError(f"method {method!r}: option {name} = {value!r}: must be {self.requirement()}")
        return value


def _is_kind(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def check_options(method: str, declared: Mapping[str, Option], given: Mapping[str, Any]) -> dict[str, Any]:
    """The ``given`` options checked against the method's ``declared`` ones: an unknown name is
    an error suggesting the nearest declared one, a value of the wrong type or out of range is
    an error naming its range. Returns the options unchanged (as a new dict)."""
    for name in given:
        if name not in declared:
            close = difflib.get_close_matches(name, list(declared), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            allowed = ", ".join(sorted(declared)) or "none"
            raise ValueError(f"method {method!r} got unknown option {name!r}{hint}; allowed: {allowed}")
    return {name: declared[name].check(method, name, value) for name, value in given.items()}
