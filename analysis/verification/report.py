"""Check results and the report that collects them (text, HTML for Jupyter, JSON records).

A :class:`Check` is one verified statement: a derivation step (kind ``symbolic``) or a
simulated measurement compared with a bound (kind ``simulated``). A :class:`Report` is the
list of checks of one model; it passes when every check passes.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from typing import Any

KINDS = ("symbolic", "simulated")

CATEGORIES = ("step", "bound", "consistency", "comparison")
"""What a check is about: a derivation step, a bound against a simulation, a consistency check
of the simulation (e.g. its clock against the model's evaluator), or the optimiser against a
baseline in simulation."""


@dataclass(frozen=True)
class Check:
    """One verified statement.

    ``name`` identifies the step or configuration; ``category`` is one of
    :data:`CATEGORIES`; ``statement`` says what is claimed; ``how`` says how it was checked;
    ``detail`` gives the numbers behind the verdict.
    Simulated checks also carry ``measured`` (the seed mean of the measured quantity),
    ``bound`` (what it must not exceed), ``stderr`` (standard error of ``measured``),
    ``seeds`` (independent runs) and ``config`` (the configuration, printed when it fails).
    ``measured`` and ``bound`` share the unit of the quantity (squared gradient norm, or
    seconds for time-to-target comparisons).
    """

    name: str
    kind: str
    category: str
    statement: str
    how: str
    passed: bool
    detail: str = ""
    measured: float | None = None
    bound: float | None = None
    stderr: float | None = None
    seeds: int | None = None
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind = {self.kind!r}: must be one of {KINDS}")
        if self.category not in CATEGORIES:
            raise ValueError(f"category = {self.category!r}: must be one of {CATEGORIES}")

    @classmethod
    def nothing_to_compare(cls, name: str, method: str, result: Any, seeds: int) -> Check:
        """A comparison that cannot run because ``method`` found no feasible point (passed:
        nothing is claimed; the status and message say why)."""
        return cls(name=name, kind="simulated", category="comparison",
                   statement=f"{method} has no feasible point on this preset (nothing to "
                             "compare)",
                   how="solve() status", passed=True,
                   detail=f"{result.status.value}: {result.message}", seeds=seeds)

    @property
    def ratio(self) -> float | None:
        """measured / bound (how tight the bound is; <= 1 where it holds), or ``None``."""
        if self.measured is None or not self.bound:
            return None
        return self.measured / self.bound

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready dict: name, kind, category, passed, statement, how, detail; simulated
        checks add measured, bound, ratio, stderr, seeds and config."""
        record: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "category": self.category,
            "passed": self.passed,
            "statement": self.statement,
            "how": self.how,
            "detail": self.detail,
        }
        if self.kind == "simulated":
            record.update(
                measured=_finite(self.measured),
                bound=_finite(self.bound),
                ratio=_finite(self.ratio),
                stderr=_finite(self.stderr),
                seeds=self.seeds,
                config=self.config,
            )
        return record


@dataclass(frozen=True)
class Report:
    """The checks of one model. ``passed`` is true when every check passed."""

    model: str
    checks: tuple[Check, ...]
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.passed)

    def __add__(self, other: Report) -> Report:
        if other.model != self.model:
            raise ValueError(f"cannot join reports of {self.model!r} and {other.model!r}")
        return Report(self.model, self.checks + other.checks, self.notes + other.notes)

    def to_records(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per check (see :meth:`Check.to_record`)."""
        return [check.to_record() for check in self.checks]

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_records(), indent=indent)

    def to_frame(self):
        """The checks as a pandas DataFrame (one row per check)."""
        import pandas as pd

        return pd.DataFrame(self.to_records())

    def __str__(self) -> str:
        verdict = "all checks passed" if self.passed else f"{len(self.failures)} check(s) FAILED"
        lines = [f"verification of {self.model}: {len(self.checks)} checks, {verdict}"]
        for check in self.checks:
            mark = "ok  " if check.passed else "FAIL"
            lines.append(f"[{mark}] {check.kind:<9} {check.name}")
            lines.append(f"         {check.statement}")
            lines.append(f"         checked: {check.how}")
            if check.kind == "simulated" and check.measured is not None:
                ratio = "-" if check.ratio is None else f"{check.ratio:.3g}"
                lines.append(
                    f"         measured {check.measured:.6g} +- {check.stderr or 0.0:.2g} "
                    f"vs bound {check.bound:.6g} (ratio {ratio}, {check.seeds} seeds)"
                )
            if check.detail:
                lines.append(f"         {check.detail}")
            if not check.passed and check.config:
                lines.append(f"         failing configuration: {json.dumps(check.config)}")
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        verdict = "all checks passed" if self.passed else f"{len(self.failures)} check(s) FAILED"
        head = (
            "<tr><th>step / configuration</th><th>kind</th><th>statement</th>"
            "<th>checked how</th><th>measured / bound</th><th>passed</th></tr>"
        )
        rows = []
        for check in self.checks:
            numbers = ""
            if check.kind == "simulated" and check.measured is not None:
                ratio = "-" if check.ratio is None else f"{check.ratio:.3g}"
                numbers = f"{check.measured:.4g} / {check.bound:.4g} (ratio {ratio}, {check.seeds} seeds)"
            colour = "#2a7" if check.passed else "#c22"
            cells = [
                html.escape(check.name),
                check.kind,
                html.escape(check.statement)
                + (f"<br><small>{html.escape(check.detail)}</small>" if check.detail else ""),
                html.escape(check.how),
                html.escape(numbers),
                f"<b style='color:{colour}'>{'yes' if check.passed else 'NO'}</b>",
            ]
            rows.append(
                "<tr>" + "".join(f"<td style='text-align:left'>{c}</td>" for c in cells) + "</tr>"
            )
        notes = "".join(f"<p><small>{html.escape(note)}</small></p>" for note in self.notes)
        return (
            f"<p><b>verification of {html.escape(self.model)}</b>: {len(self.checks)} checks, "
            f"{verdict}</p><table>{head}{''.join(rows)}</table>{notes}"
        )


def jsonable(value: Any) -> Any:
    """``value`` with tuples turned into lists and numpy scalars into Python numbers,
    recursively (what a configuration's ``settings`` must be)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return value.item()
    return value


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None
