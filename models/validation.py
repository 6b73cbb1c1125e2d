"""Pydantic field types and the translation of validation errors into ``InstanceError``.

Every numeric field of a canonical instance is declared once with its unit, range and
description (``field(...)``); the same declaration drives validation, the error messages
(``devices[2].flops_per_s = -1: must be a number > 0 [FLOP/s]``) and the parameter table
that models expose to users.
"""

from __future__ import annotations

import math
import types
import typing
from typing import Annotated, Any, Literal

import annotated_types as at
from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError
from pydantic.fields import FieldInfo

from edgeopt.models.errors import InstanceError, InstanceIssue
from edgeopt.models.paths import FieldPathError, check_path, known_fields, suggestion


class Record(BaseModel):
    """Base of canonical instance records: frozen; an unknown field is an error naming its path
    and the nearest known field. Free-form content goes in a declared :func:`metadata_field`."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class OpenRecord(BaseModel):
    """Base of solution documents, whose optional extras (``message``, ``trace``, ...) are
    kept on write: frozen, unknown fields allowed."""

    model_config = ConfigDict(extra="allow", frozen=True)


def metadata_field() -> Any:
    """The free-form ``metadata`` object of a record: any JSON content, kept on write (only
    when given), ignored by every solver."""
    return Field(
        None,
        description="free-form JSON object (provenance, notes); kept on write, ignored by solvers",
        json_schema_extra={"unit": "-"},
        exclude_if=lambda value: value is None,
    )


Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]
"""A finite real number; ints are accepted, booleans and strings are not."""

Integer = Annotated[int, Strict()]
"""A true integer; booleans, floats and strings are rejected."""

Flag = Annotated[bool, Strict()]
"""``true`` or ``false`` only (no 0/1, no strings)."""


def field(
    *,
    unit: str = "-",
    description: str,
    gt: float | None = None,
    ge: float | None = None,
    le: float | None = None,
    default: Any = ...,
) -> Any:
    """A pydantic ``Field`` carrying ``unit`` and ``description`` for the parameter table."""
    return Field(
        default,
        gt=gt,
        ge=ge,
        le=le,
        description=description,
        json_schema_extra={"unit": unit},
    )


def path_to_string(loc: tuple[Any, ...]) -> str:
    """``('devices', 2, 'flops_per_s')`` -> ``'devices[2].flops_per_s'``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text or "(root)"


class FieldProblem(ValueError):
    """Raised by cross-field validators: ``loc`` is relative to the validated object."""

    def __init__(self, loc: tuple[Any, ...], value: Any, message: str):
        self.loc, self.value, self.message = loc, value, message
        super().__init__(message)


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            member = members[0]
            if typing.get_origin(member) is Annotated:
                member = typing.get_args(member)[0]
            return member, True
    return annotation, False


def _resolve_field(schema: type[BaseModel], loc: tuple[Any, ...]):
    """The ``FieldInfo`` a validation error location points at (``None`` if not found)."""
    try:
        return check_path(schema, tuple(loc))
    except FieldPathError:
        return None


_BOUND_KINDS = ((at.Gt, "gt", ">"), (at.Ge, "ge", ">="), (at.Lt, "lt", "<"), (at.Le, "le", "<="))


def describe_allowed(info: Any, item: bool = False) -> str:
    """A phrase like ``'a number > 0 [FLOP/s]'`` built from a field's declaration; with
    ``item`` the phrase for one entry of a list field (``'a finite number >= 0 [ms]'``)."""
    if info is None:
        return "a valid value"
    annotation, optional = _unwrap_optional(info.annotation)
    metadata = list(info.metadata)
    if item and typing.get_origin(annotation) is list:
        annotation, metadata, optional = _list_item(annotation)
    bounds = []
    for meta in metadata:
        for kind, attr, symbol in _BOUND_KINDS:
            if isinstance(meta, kind):
                bounds.append(f"{symbol} {getattr(meta, attr):g}")
    if typing.get_origin(annotation) is Literal:
        text = "one of " + ", ".join(repr(v) for v in typing.get_args(annotation))
    elif annotation is bool:
        text = "true or false"
    elif annotation is int:
        text = "an integer"
    elif annotation is float:
        text = "a finite number"
    elif annotation is str:
        text = "a non-empty string"
    elif typing.get_origin(annotation) is list:
        text = "a list"
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        text = "an object"
    elif annotation is dict or typing.get_origin(annotation) is dict:
        text = "a free-form JSON object"
    else:
        text = "a valid value"
    if bounds:
        text += " " + " and ".join(bounds)
    unit = (info.json_schema_extra or {}).get("unit") if isinstance(info.json_schema_extra, dict) else None
    if unit and unit != "-":
        text += f" [{unit}]"
    if optional:
        text += " or null"
    return text


def _list_item(annotation: Any) -> tuple[Any, list[Any], bool]:
    """(type, constraint metadata, nullable) of the entries of ``list[...]``."""
    entry = typing.get_args(annotation)[0]
    base, optional = _unwrap_optional(entry)
    metadata: list[Any] = []
    pending = list(typing.get_args(entry)[1:]) if typing.get_origin(entry) is Annotated else []
    while pending:
        meta = pending.pop()
        metadata.append(meta)
        pending.extend(getattr(meta, "metadata", []) if isinstance(meta, FieldInfo) else [])
    return base, metadata, optional


def _lookup(document: Any, loc: tuple[Any, ...]) -> tuple[Any, bool]:
    value = document
    for part in loc:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return None, False
    return value, True


def _display(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return float("nan")
    return value


def validate_document(schema: type[BaseModel], document: Any, context: str) -> Any:
    """Validate ``document`` against ``schema``; raise ``InstanceError`` listing every problem."""
    if not isinstance(document, dict):
        raise InstanceError(
            InstanceIssue("(root)", type(document).__name__, "must be a JSON object"), context
        )
    try:
        return schema.model_validate(document)
    except ValidationError as error:
        issues = []
        for item in error.errors():
            loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and p in _UNION_TAGS))
            path = path_to_string(loc)
            info = _resolve_field(schema, loc)
            allowed = describe_allowed(info, item=bool(loc) and isinstance(loc[-1], int))
            problem = item.get("ctx", {}).get("error")
            if isinstance(problem, FieldProblem):
                full = loc + problem.loc
                issues.append(InstanceIssue(path_to_string(full), problem.value, problem.message))
                continue
            if item["type"] == "missing":
                issues.append(InstanceIssue(path, None, f"is required: {allowed}", missing=True))
                continue
            if item["type"] == "extra_forbidden":
                known = known_fields(schema, loc[:-1])
                message = f"unknown field; {suggestion(str(loc[-1]), known)}"
                issues.append(InstanceIssue(path, None, message, unknown=True))
                continue
            value, _ = _lookup(document, loc)
            reason = "must be " + allowed
            issues.append(InstanceIssue(path, _display(value), reason))
        raise InstanceError(issues, context) from None


_UNION_TAGS = {"float", "int", "bool", "str", "none", "constrained-float", "constrained-int"}


def require_unique_names(kind: str, items: list[Any]) -> None:
    """Raise ``FieldProblem`` at ``kind[i].name`` for the first name used twice."""
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        if item.name in seen:
            raise FieldProblem(
                (kind, index, "name"), item.name, f"must be unique (also used by {kind}[{seen[item.name]}])"
            )
        seen[item.name] = index
