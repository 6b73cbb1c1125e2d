"""Errors raised for bad instances: each names the field path, the value and the allowed range."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InstanceIssue:
    """One problem found in an instance.

    ``path`` is the field path in the canonical JSON (``devices[2].flops_per_s``), ``value``
    the offending value (``None`` when the field is missing) and ``message`` what is allowed.
    ``missing``: a required field is absent; ``unknown``: the path names no field of the format.
    """

    path: str
    value: object
    message: str
    missing: bool = False
    unknown: bool = False

    def __str__(self) -> str:
        if self.missing or self.unknown:
            return f"{self.path}: {self.message}"
        return f"{self.path} = {self.value!r}: {self.message}"


class InstanceError(ValueError):
    """An instance failed validation; ``issues`` lists every problem found."""

    def __init__(self, issues: list[InstanceIssue] | InstanceIssue, context: str = "instance"):
        self.issues = [issues] if isinstance(issues, InstanceIssue) else list(issues)
        self.context = context
        lines = "\n".join(f"  - {issue}" for issue in self.issues)
        count = len(self.issues)
        super().__init__(f"invalid {context} ({count} problem{'s' * (count != 1)}):\n{lines}")
