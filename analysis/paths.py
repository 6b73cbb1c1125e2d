"""Field paths into canonical instance JSON: ``bandwidth_hz``, ``devices[2].flops_per_s``,
``learning.shift``. Used by sweeps, sensitivity and the command line to name a parameter.

    >>> document = {"devices": [{"flops_per_s": 1.0}, {"flops_per_s": 2.0}], "bandwidth_hz": 5.0}
    >>> get_field(document, "devices[1].flops_per_s")
    2.0
    >>> set_field(document, "bandwidth_hz", 7.0)["bandwidth_hz"], document["bandwidth_hz"]
    (7.0, 5.0)
"""

from __future__ import annotations

import copy
import re
from typing import Any

_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


class FieldPathError(KeyError):
    """A field path that is malformed or names nothing in the document."""

    def __str__(self) -> str:
        return str(self.args[0])


def parse_path(path: str) -> list[str | int]:
    """``'devices[2].flops_per_s'`` -> ``['devices', 2, 'flops_per_s']``."""
    parts: list[str | int] = []
    position = 0
    for match in _TOKEN.finditer(path):
        name, index = match.groups()
        between = path[position:match.start()]
        expected = "" if (index is not None or not parts) else "."
        if between != expected:
            break
        parts.append(int(index) if index is not None else name)
        position = match.end()
    if not parts or position != len(path) or not isinstance(parts[0], str):
        raise FieldPathError(f"{path!r} is not a field path (e.g. 'bandwidth_hz', 'devices[2].flops_per_s')")
    return parts


def _walk(document: Any, parts: list[str | int], path: str) -> Any:
    value = document
    for depth, part in enumerate(parts):
        shown = path if depth == len(parts) - 1 else "".join(
            f"[{p}]" if isinstance(p, int) else ("." if i else "") + p for i, p in enumerate(parts[: depth + 1])
        )
        if isinstance(part, int):
            if not isinstance(value, list) or part >= len(value):
                size = len(value) if isinstance(value, list) else 0
                raise FieldPathError(f"{path!r}: {shown} does not exist (the list has {size} entries)")
        elif not isinstance(value, dict) or part not in value:
            keys = ", ".join(sorted(value)) if isinstance(value, dict) else "none"
            raise FieldPathError(f"{path!r}: no field {part!r} here; fields: {keys}")
        value = value[part]
    return value


def get_field(document: dict[str, Any], path: str) -> Any:
    """The value at ``path``; ``FieldPathError`` names what is missing."""
    return _walk(document, parse_path(path), path)


def set_field(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``document`` with ``path`` set to ``value`` (the field must exist)."""
    parts = parse_path(path)
    _walk(document, parts, path)
    changed = copy.deepcopy(document)
    holder = _walk(changed, parts[:-1], path) if len(parts) > 1 else changed
    holder[parts[-1]] = value
    return changed


def with_fields(model: Any, values: dict[str, Any]) -> Any:
    """A new model of the same class with the given field paths changed (validated again)."""
    document = model.to_dict()
    for path, value in values.items():
        document = set_field(document, path, value)
    return type(model).from_dict(document)
