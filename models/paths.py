"""The field-path language of canonical instance JSON, used wherever a field is named.

    bandwidth_hz                 a top-level field
    devices[2].flops_per_s       a field of one list entry (0-based)
    devices[*].memory_bytes      the same field of every entry
    layers[3].param_bytes        learning.shift        metadata.source

``Model.with_changes``, sweeps (``--param``), sensitivity and the ``import`` command all
parse, read and write fields through this module. Against a schema (the model's pydantic
instance class) every name is checked before anything changes, and an unknown name is an
error naming the path and the nearest known field:

    >>> document = {"devices": [{"flops_per_s": 1.0}, {"flops_per_s": 2.0}], "bandwidth_hz": 5.0}
    >>> get_field(document, "devices[1].flops_per_s"), get_field(document, "devices[*].flops_per_s")
    (2.0, [1.0, 2.0])
    >>> set_field(document, "devices[*].flops_per_s", 3.0)["devices"], document["bandwidth_hz"]
    ([{'flops_per_s': 3.0}, {'flops_per_s': 3.0}], 5.0)
    >>> set_field(document, "bandwith_hz", 1.0)
    Traceback (most recent call last):
    ...
    edgeopt.models.paths.FieldPathError: bandwith_hz: unknown field; did you mean 'bandwidth_hz'?
"""

from __future__ import annotations

import copy
import difflib
import re
import types
import typing
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import BaseModel

from edgeopt.models.errors import InstanceError, InstanceIssue


class _Every:
    """The ``[*]`` part of a path: every entry of a list."""

    def __repr__(self) -> str:
        return "EVERY"


EVERY = _Every()
"""The wildcard index ``[*]`` in a parsed path."""

Part = str | int | _Every

_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+|\*)\]")
FREE_FORM = "metadata"
"""The one field whose content is free-form (any keys), wherever a schema declares it."""


class FieldPathError(InstanceError, KeyError):
    """A field path that is malformed or names no field; ``issues[0].path`` is the path."""

    def __init__(self, path: str, message: str):
        super().__init__(InstanceIssue(path, None, message, unknown=True), "field path")

    def __str__(self) -> str:
        return str(self.issues[0])


# ---- parsing -------------------------------------------------------------------------------
def parse_path(path: str) -> tuple[Part, ...]:
    """``'devices[2].flops_per_s'`` -> ``('devices', 2, 'flops_per_s')``; ``[*]`` -> :data:`EVERY`."""
    parts: list[Part] = []
    position = 0
    for match in _TOKEN.finditer(path):
        name, index = match.groups()
        between = path[position:match.start()]
        if between != ("" if (index is not None or not parts) else "."):
            break
        parts.append(name if index is None else EVERY if index == "*" else int(index))
        position = match.end()
    if not parts or position != len(path) or not isinstance(parts[0], str):
        raise FieldPathError(
            str(path),
            "is not a field path (e.g. 'bandwidth_hz', 'devices[2].flops_per_s', "
            "'devices[*].memory_bytes')",
        )
    return tuple(parts)


def format_path(parts: Iterable[Part]) -> str:
    """The inverse of :func:`parse_path`."""
    text = ""
    for part in parts:
        if isinstance(part, str):
            text += ("." if text else "") + part
        else:
            text += "[*]" if part is EVERY else f"[{part}]"
    return text or "(root)"


def suggestion(name: str, known: Iterable[str]) -> str:
    """``"did you mean 'x'?"`` for the nearest known name, else the list of known names."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    hint = f"; free-form data belongs under {FREE_FORM!r}" if FREE_FORM in known else ""
    return f"known fields here: {', '.join(known) or 'none'}{hint}"


# ---- schema ----------------------------------------------------------------------------------
def _strip(annotation: Any) -> Any:
    """``X`` of ``Annotated[X, ...]`` and of ``X | None``."""
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return _strip(members[0])
    return annotation


def _is_record(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def check_path(schema: type[BaseModel], path: str | tuple[Part, ...]) -> Any:
    """Check every name of ``path`` against ``schema``; return the field's ``FieldInfo``
    (``None`` inside a free-form object). ``FieldPathError`` names the first unknown part."""
    return _resolve(schema, parse_path(path) if isinstance(path, str) else path)[0]


def known_fields(schema: type[BaseModel], parent: tuple[Part, ...]) -> list[str]:
    """The field names the record at ``parent`` declares (``[]`` if it is not a record)."""
    annotation = _strip(_resolve(schema, parent)[1])
    return list(annotation.model_fields) if _is_record(annotation) else []


def _resolve(schema: type[BaseModel], parts: tuple[Part, ...]) -> tuple[Any, Any]:
    """(``FieldInfo`` of the last name or ``None``, annotation at the end of ``parts``)."""
    shown = format_path(parts)
    current: Any = schema
    info = None
    for depth, part in enumerate(parts):
        current = _strip(current)
        if isinstance(part, str):
            if not _is_record(current):
                if current is dict or typing.get_origin(current) is dict or current is Any:
                    return None, Any  # inside a free-form object every key is allowed
                raise FieldPathError(shown, f"{format_path(parts[:depth])} has no fields")
            info = current.model_fields.get(part)
            if info is None:
                known = current.model_fields
                raise FieldPathError(
                    format_path(parts[: depth + 1]), f"unknown field; {suggestion(part, known)}"
                )
            current = info.annotation
        else:
            if typing.get_origin(current) is not list:
                raise FieldPathError(shown, f"{format_path(parts[:depth])} is not a list")
            current = typing.get_args(current)[0]
    return info, current


def field_unit(schema: type[BaseModel], path: str) -> str:
    """The declared unit of the field at ``path`` (``'-'`` when dimensionless or free-form)."""
    info = check_path(schema, path)
    extra = getattr(info, "json_schema_extra", None)
    return extra.get("unit", "-") if isinstance(extra, dict) else "-"


def field_label(schema: type[BaseModel], path: str) -> str:
    """``'bandwidth_hz [Hz]'``: a path with its unit, for axis labels."""
    unit = field_unit(schema, path)
    return path if unit == "-" else f"{path} [{unit}]"


# ---- documents -------------------------------------------------------------------------------
def _locations(document: Any, parts: tuple[Part, ...], path: str, create: bool) -> list[tuple]:
    """Every concrete location ``path`` names in ``document``, as tuples of keys/indices.
    With ``create`` the last name may be absent (it is set from a schema-checked path)."""
    found: list[tuple] = [()]
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        nxt = []
        for location in found:
            value = _at(document, location)
            where = format_path(location) if location else "(root)"
            if isinstance(part, str):
                if not isinstance(value, dict):
                    state = "null" if value is None else f"a {type(value).__name__}"
                    raise FieldPathError(path, f"{where} is {state}, not an object: set it whole")
                if part not in value and not (create and last):
                    raise FieldPathError(path, f"unknown field; {suggestion(part, value)}")
                nxt.append((*location, part))
            else:
                if not isinstance(value, list):
                    raise FieldPathError(path, f"{where} is not a list")
                if isinstance(part, _Every):
                    nxt.extend((*location, index) for index in range(len(value)))
                elif part >= len(value):
                    raise FieldPathError(
                        path, f"{format_path((*location, part))} does not exist "
                              f"(the list has {len(value)} entries)",
                    )
                else:
                    nxt.append((*location, part))
        found = nxt
    return found


def _at(document: Any, location: tuple) -> Any:
    for key in location:
        document = document[key]
    return document


def get_field(document: dict[str, Any], path: str) -> Any:
    """The value at ``path``, or the list of values for a ``[*]`` path."""
    parts = parse_path(path)
    values = [_at(document, loc) for loc in _locations(document, parts, path, create=False)]
    return values if EVERY in parts else values[0]


def expand(document: dict[str, Any], path: str) -> list[str]:
    """The concrete paths a (``[*]``) path names: ``devices[*].x`` -> ``devices[0].x``, ..."""
    return [format_path(loc) for loc in _locations(document, parse_path(path), path, False)]


def set_field(
    document: dict[str, Any], path: str, value: Any, schema: type[BaseModel] | None = None
) -> dict[str, Any]:
    """A deep copy of ``document`` with ``path`` set to ``value`` (every entry for ``[*]``).

    Without ``schema`` the field must exist in ``document``; with it, the path is checked
    against the schema first, so a declared field absent from the document may be set.
    """
    return set_fields(document, {path: value}, schema)


def set_fields(
    document: dict[str, Any], values: dict[str, Any], schema: type[BaseModel] | None = None
) -> dict[str, Any]:
    """:func:`set_field` for several paths at once, applied in order; all are checked before
    anything is written (``document`` itself is never changed)."""
    changed = copy.deepcopy(document)
    for path, value in values.items():
        if not isinstance(path, str):
            raise FieldPathError(repr(path), "a field path must be a string")
        parts = parse_path(path)
        if schema is not None:
            check_path(schema, parts)
        for location in _locations(changed, parts, path, create=schema is not None):
            _at(changed, location[:-1])[location[-1]] = copy.deepcopy(value)
    return changed
