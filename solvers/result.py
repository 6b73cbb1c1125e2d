"""The one Result type every solver returns, whatever the model or backend.

A Result separates what a solver *claims* (``objective`` of its point, proven ``bound``) from
how it stopped (``status``, ``termination``) and from what the model's own evaluator
*confirmed* (``verified``, ``evaluation``). Times are measured with ``time.perf_counter``;
the solver's self-reported time is kept apart in ``timings.solver_reported_s``.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from edgeopt.solvers.common.termination import Reason, Termination


class Status(str, Enum):
    """How a solve ended. Only ``optimal`` claims a proven bound within 1e-6 of the objective."""

    OPTIMAL = "optimal"
    FEASIBLE = "feasible"
    INFEASIBLE = "infeasible"
    TIME_LIMIT = "time_limit"
    ITERATION_LIMIT = "iteration_limit"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value

    @property
    def has_point(self) -> bool:
        """Whether a Result with this status may carry a decision."""
        return self in (Status.OPTIMAL, Status.FEASIBLE, Status.TIME_LIMIT, Status.ITERATION_LIMIT)


CANONICAL_STATUSES = ("optimal", "feasible", "infeasible", "time_limit", "error")
"""Statuses of the canonical solution JSON (v1); ``iteration_limit`` is written as
``feasible`` with ``"termination": "limit/iterations"`` so readers of v1 keep working."""


_TERMINATION_OF_STATUS: dict[Status, Termination] = {
    Status.OPTIMAL: Termination(Reason.OPTIMAL),
    Status.FEASIBLE: Termination(Reason.FEASIBLE),
    Status.INFEASIBLE: Termination(Reason.INFEASIBLE),
    Status.TIME_LIMIT: Termination.limit_reached("time"),
    Status.ITERATION_LIMIT: Termination.limit_reached("iterations"),
    Status.ERROR: Termination(Reason.ERROR),
}
"""How a method stopped when it only set a status."""


@dataclass(frozen=True)
class Timings:
    """Wall-clock seconds: model building, solving, the whole call; and the solver's own figure."""

    build_s: float = 0.0
    solve_s: float = 0.0
    wall_s: float = 0.0
    solver_reported_s: float | None = None


@dataclass(frozen=True)
class Result:
    """Outcome of ``solve``.

    ``solution`` holds the canonical solution arrays in the model's JSON names and order
    (EdgeSplit: ``cuts``, ``bandwidth_hz``, ``server_share_flops_per_s``,
    ``per_device_time_s``). ``breakdown`` holds per-device component arrays (seconds).
    ``objective`` and ``bound`` are in the model's objective unit (EdgeSplit: seconds).
    ``instance_hash`` is the solved instance's ``Model.content_hash()`` (SHA-256 hex), so a
    saved result can be re-checked against its instance (``edgeopt check``).
    """

    model: str
    method: str
    status: Status
    objective: float | None = None
    bound: float | None = None
    solution: dict[str, Any] = field(default_factory=dict)
    device_names: tuple[str, ...] = ()
    breakdown: dict[str, list[float]] = field(default_factory=dict)
    timings: Timings = field(default_factory=Timings)
    solver: str | None = None
    solver_version: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    trace: Any = None
    termination: Termination | str | None = None
    verified: bool | None = None
    evaluation: Any = None
    message: str | None = None
    infeasible_reason: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    instance_hash: str | None = None

    def __post_init__(self) -> None:
        # Methods may name how they ended in words ('time_limit', 'converged') or leave it to
        # the status: one type here.
        termination = Termination.coerce(self.termination)
        if termination is None:
            termination = _TERMINATION_OF_STATUS[self.status]
        object.__setattr__(self, "termination", termination)

    # ---- derived ---------------------------------------------------------------------
    @property
    def gap(self) -> float | None:
        """Relative gap (objective - bound) / |objective|, or ``None`` without a bound."""
        if self.objective is None or self.bound is None:
            return None
        if self.objective == 0:
            return 0.0 if self.bound == 0 else math.inf
        return (self.objective - self.bound) / abs(self.objective)

    @property
    def feasible(self) -> bool:
        """True when the Result carries a point the evaluator accepted."""
        return bool(self.status.has_point and self.verified)

    def replace(self, **changes: Any) -> Result:
        return replace(self, **changes)

    # ---- output ----------------------------------------------------------------------
    def to_dict(self, include_trace: bool = False) -> dict[str, Any]:
        """The canonical solution document (see the model's spec), plus optional extras.

        Beyond the canonical fields it carries what :meth:`from_dict` needs to rebuild the
        Result: ``result_status`` (the exact status; ``status`` is the canonical v1 one),
        ``gap``, ``timings`` (build, solve, wall and the solver's own seconds),
        ``instance_sha256``, ``device_names`` and ``solution_keys`` (which top-level fields
        are the solution). Non-finite numbers are written as null.
        """
        status = self.status.value
        if self.status is Status.ITERATION_LIMIT:
            status = Status.FEASIBLE.value
        document: dict[str, Any] = {
            "model": self.model,
            "status": status,
            "objective": _finite_or_none(self.objective),
            "bound": _finite_or_none(self.bound),
        }
        document.update(self.solution)
        document.update(
            {
                "method": self.method,
                "solver": self.solver,
                "wall_time_s": self.timings.wall_s,
            }
        )
        termination = Termination.coerce(self.termination)  # a Termination since __post_init__
        optional = {
            "message": self.message,
            "infeasible_reason": self.infeasible_reason,
            "termination": None if termination is None else str(termination),
            "termination_detail": None if termination is None else termination.detail,
            "solver_version": self.solver_version,
            "seed": self.seed,
            "verified": None if self.verified is None else bool(self.verified),
        }
        document.update({k: v for k, v in optional.items() if v is not None})
        document.update(self.extras)
        if self.breakdown:
            document["breakdown"] = self.breakdown
        if self.options:
            document["options"] = {k: _jsonable(v) for k, v in self.options.items()}
        if include_trace and self.trace is not None:
            document["trace"] = json.loads(self.trace.to_json(orient="records"))
        document.update(
            {
                "result_status": self.status.value,
                "gap": _finite_or_none(self.gap),
                "timings": {
                    "build_s": self.timings.build_s,
                    "solve_s": self.timings.solve_s,
                    "wall_s": self.timings.wall_s,
                    "solver_reported_s": self.timings.solver_reported_s,
                },
                "instance_sha256": self.instance_hash,
                "device_names": list(self.device_names),
                "solution_keys": list(self.solution),
            }
        )
        return document

    def to_json(self, indent: int | None = 2, include_trace: bool = False) -> str:
        """The canonical solution JSON text."""
        return json.dumps(self.to_dict(include_trace=include_trace), indent=indent)

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> Result:
        """The Result a :meth:`to_dict` document describes (``evaluation`` is not stored:
        re-evaluate with ``edgeopt.solvers.api.verify``). Raises ``ValueError`` naming the
        field when the document is not a result."""
        missing = [key for key in _REQUIRED_KEYS if key not in document]
        if missing:
            raise ValueError(f"not a result document: missing field(s) {missing}")
        status_text = document.get("result_status", document["status"])
        try:
            status = Status(status_text)
        except ValueError:
            allowed = ", ".join(s.value for s in Status)
            raise ValueError(f"status = {status_text!r}: must be one of {allowed}") from None
        keys = document.get("solution_keys")
        if keys is None:  # a document written before solution_keys: every unknown field
            keys = [key for key in document if key not in _ENVELOPE_KEYS]
        solution = {key: document[key] for key in keys if key in document}
        extras = {k: v for k, v in document.items() if k not in _ENVELOPE_KEYS and k not in solution}
        timings = document.get("timings") or {"wall_s": document["wall_time_s"]}
        trace = document.get("trace")
        if trace is not None:
            import pandas as pd

            trace = pd.DataFrame(trace)
        return cls(
            model=document["model"],
            method=document["method"],
            status=status,
            objective=document["objective"],
            bound=document["bound"],
            solution=solution,
            device_names=tuple(document.get("device_names") or ()),
            breakdown=dict(document.get("breakdown") or {}),
            timings=Timings(
                build_s=timings.get("build_s", 0.0),
                solve_s=timings.get("solve_s", 0.0),
                wall_s=timings.get("wall_s", document["wall_time_s"]),
                solver_reported_s=timings.get("solver_reported_s"),
            ),
            solver=document["solver"],
            solver_version=document.get("solver_version"),
            options=dict(document.get("options") or {}),
            seed=document.get("seed"),
            trace=trace,
            termination=_termination(document),
            verified=document.get("verified"),
            message=document.get("message"),
            infeasible_reason=document.get("infeasible_reason"),
            extras=extras,
            instance_hash=document.get("instance_sha256"),
        )

    @classmethod
    def from_json(cls, text: str) -> Result:
        """The Result of a :meth:`to_json` text (or of ``edgeopt solve --json``)."""
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"not JSON: {error}") from None
        if not isinstance(document, dict):
            raise ValueError(f"not a result document: a JSON {type(document).__name__}, not an object")
        return cls.from_dict(document)

    def to_frame(self):
        """Per-device values (solution arrays and time breakdown) as a pandas DataFrame."""
        import pandas as pd

        columns = {}
        count = len(self.device_names)
        for key, value in {**self.solution, **self.breakdown}.items():
            if isinstance(value, (list, tuple)) and len(value) == count and count:
                columns[key] = list(value)
        frame = pd.DataFrame(columns, index=pd.Index(list(self.device_names), name="device"))
        return frame

    def summary(self) -> str:
        """A few readable lines: status, objective, bound, gap, verification, the scalar
        decisions of the solution (e.g. two_stage's rounds and pre-training batch), times."""
        lines = [f"{self.model} / {self.method}" + (f" ({self.solver})" if self.solver else "")]
        lines.append(f"  status      {self.status.value}" + (f"  [{self.termination}]" if self.termination else ""))
        if self.message:
            lines.append(f"  message     {self.message}")
        lines.append(f"  objective   {_fmt(self.objective)}")
        lines.append(f"  bound       {_fmt(self.bound)}")
        gap = self.gap
        lines.append(f"  gap         {'-' if gap is None else f'{gap:.3e}'}")
        lines.append(f"  verified    {self.verified}")
        for name, value in self.solution.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                lines.append(f"  {name:<11} {_fmt(float(value)) if isinstance(value, float) else value}")
        if isinstance(self.solution.get("per_round"), dict):
            rounds = len(next(iter(self.solution["per_round"].values()), []))
            lines.append(f"  per_round   {rounds} rounds of per-device values (the lists show "
                         "round 0; all rounds in to_json())")
        t = self.timings
        lines.append(f"  wall time   {t.wall_s:.4f} s (build {t.build_s:.4f} s, solve {t.solve_s:.4f} s)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        gap = self.gap
        parts = [
            f"status={self.status.value}",
            f"objective={_fmt(self.objective)}",
            f"bound={_fmt(self.bound)}",
            f"gap={'-' if gap is None else f'{gap:.2e}'}",
            f"verified={self.verified}",
            f"wall={self.timings.wall_s:.3g}s",
        ]
        return f"Result({self.model}/{self.method}: " + ", ".join(parts) + ")"

    def _repr_html_(self) -> str:
        rows = [
            ("model / method", f"{self.model} / {self.method}"),
            ("solver", f"{self.solver or '-'} {self.solver_version or ''}"),
            ("status", self.status.value + (f" [{self.termination}]" if self.termination else "")),
            ("objective", _fmt(self.objective)),
            ("bound", _fmt(self.bound)),
            ("gap", "-" if self.gap is None else f"{self.gap:.3e}"),
            ("verified", str(self.verified)),
            ("wall time", f"{self.timings.wall_s:.4f} s"),
        ]
        if self.message:
            rows.append(("message", self.message))
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
            f"{html.escape(str(v))}</td></tr>"
            for k, v in rows
        )
        table = f"<table>{body}</table>"
        if self.device_names:
            table += self.to_frame()._repr_html_()
        return table


_REQUIRED_KEYS = ("model", "status", "objective", "bound", "method", "solver", "wall_time_s")
_ENVELOPE_KEYS = frozenset(_REQUIRED_KEYS) | {
    "message", "infeasible_reason", "termination", "termination_detail", "solver_version", "seed", "verified",
    "breakdown", "options", "trace", "result_status", "gap", "timings", "instance_sha256",
    "device_names", "solution_keys",
}
"""Fields of a result document that are not solution fields or extras."""


def _termination(document: dict[str, Any]) -> Termination | None:
    """The Termination of a result document: its text form and detail (a document written
    before Termination existed may hold a method's own word, coerced as on construction)."""
    text = document.get("termination")
    if text is None:
        return None
    try:
        return Termination.parse(text, document.get("termination_detail"))
    except ValueError:
        return Termination.coerce(text)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.9g}"


def _finite_or_none(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except TypeError:
        return repr(value)


def infeasible_result(
    model: Any, method: str, solution: dict[str, Any], reason: str, message: str, **extras: Any
) -> Result:
    """A Result with status ``infeasible``: the model's empty ``solution`` arrays, a reason
    code and a message naming the binding cause (``extras`` hold the numbers)."""
    return Result(
        model=model.model_id,
        method=method,
        status=Status.INFEASIBLE,
        solution=solution,
        device_names=model.device_names,
        infeasible_reason=reason,
        message=message,
        termination=Termination(Reason.INFEASIBLE, detail=reason),
        extras=extras,
    )
