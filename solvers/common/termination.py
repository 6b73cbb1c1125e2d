"""Why a solve stopped, in the manner of OR-Tools MathOpt: a reason, which limit, the solver's words.

``Result.status`` says what the answer is worth (optimal, feasible, infeasible, time_limit,
...); a :class:`Termination` says why the method stopped. Its text form is the reason, or
``limit/<which>`` when a limit stopped it::

    >>> str(Termination(Reason.OPTIMAL))
    'optimal'
    >>> t = Termination.limit_reached("time", detail="maxTimeLimit")
    >>> str(t), t.limit, t.detail
    ('limit/time', <Limit.TIME: 'time'>, 'maxTimeLimit')
    >>> Termination.parse("limit/iterations").limit is Limit.ITERATIONS
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any


class Reason(str, Enum):
    """How a method ended.

    ``optimal``: proven optimal (a bound within the optimality gap); ``feasible``: the
    method ran to its end with a point and no optimality claim (heuristics, baselines,
    rounded relaxations); ``infeasible`` / ``unbounded``: proven; ``no_solution_found``: the
    method ended without a point and without proving infeasibility; ``limit``: a limit
    stopped it (see :class:`Limit`); ``error``: the backend failed.
    """

    OPTIMAL = "optimal"
    FEASIBLE = "feasible"
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    NO_SOLUTION_FOUND = "no_solution_found"
    LIMIT = "limit"
    ERROR = "error"


class Limit(str, Enum):
    """Which limit stopped a method: wall time, iterations, branch-and-bound nodes, an interrupt."""

    TIME = "time"
    ITERATIONS = "iterations"
    NODES = "nodes"
    INTERRUPT = "interrupt"


@dataclass(frozen=True)
class Termination:
    """A reason, the limit when the reason is ``limit``, and the solver's own detail string."""

    reason: Reason
    limit: Limit | None = None
    detail: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", Reason(self.reason))
        if self.limit is not None:
            object.__setattr__(self, "limit", Limit(self.limit))
        if (self.reason is Reason.LIMIT) != (self.limit is not None):
            raise ValueError(f"termination {self.reason.value!r}: a limit is given exactly when the reason is 'limit'")

    @classmethod
    def limit_reached(cls, limit: Limit | str, detail: str | None = None) -> Termination:
        return cls(Reason.LIMIT, Limit(limit), detail)

    @classmethod
    def parse(cls, text: str, detail: str | None = None) -> Termination:
        """The inverse of ``str``: ``'optimal'``, ``'limit/time'``, ..."""
        reason, _, limit = text.partition("/")
        try:
            return cls(Reason(reason), Limit(limit) if limit else None, detail)
        except ValueError:
            known = [r.value for r in Reason if r is not Reason.LIMIT] + [f"limit/{lim.value}" for lim in Limit]
            raise ValueError(f"termination {text!r}: one of {', '.join(known)}") from None

    @classmethod
    def coerce(cls, value: Termination | str | None) -> Termination | None:
        """A Termination from a Termination, its text form, or a method's own word for
        finishing (``'converged'``, ``'enumerated'`` ...: reason ``feasible``, the word kept
        as the detail); ``'time_limit'`` and ``'iteration_limit'`` are the limits."""
        if value is None or isinstance(value, Termination):
            return value
        legacy = _LEGACY.get(value)
        if legacy is not None:
            return Termination(legacy[0], legacy[1], value if legacy[0] is Reason.FEASIBLE else None)
        try:
            return cls.parse(value)
        except ValueError:
            return cls(Reason.FEASIBLE, detail=value)

    @property
    def is_limit(self) -> bool:
        return self.reason is Reason.LIMIT

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason.value, "limit": None if self.limit is None else self.limit.value,
                "detail": self.detail}

    def __str__(self) -> str:
        return self.reason.value if self.limit is None else f"limit/{self.limit.value}"

    def __eq__(self, other: object) -> bool:
        """Equal to another Termination field by field, or to its own text form."""
        if isinstance(other, str):
            return str(self) == other
        if isinstance(other, Termination):
            return (self.reason, self.limit, self.detail) == (other.reason, other.limit, other.detail)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(str(self))


TIME_LIMIT_REACHED = Termination.limit_reached("time")
"""The termination of a method stopped by its ``time_limit``."""


_LEGACY: dict[str, tuple[Reason, Limit | None]] = {
    "time_limit": (Reason.LIMIT, Limit.TIME),
    "iteration_limit": (Reason.LIMIT, Limit.ITERATIONS),
    "node_limit": (Reason.LIMIT, Limit.NODES),
    "interrupted": (Reason.LIMIT, Limit.INTERRUPT),
    "converged": (Reason.FEASIBLE, None),
    "enumerated": (Reason.FEASIBLE, None),
}


def pyomo_termination(condition: Any) -> Termination:
    """The Termination of a Pyomo ``contrib.solver`` ``TerminationCondition``, the condition's
    name kept as the detail (conditions without a counterpart, such as ``objectiveLimit`` or
    ``licensingProblems``, are ``error``). One map for every Pyomo-backed method."""
    name = getattr(condition, "name", str(condition))
    mapped = _PYOMO.get(name)
    if mapped is None:
        return Termination(Reason.ERROR, detail=name)
    reason, limit = mapped
    return Termination(reason, limit, name)


_PYOMO: dict[str, tuple[Reason, Limit | None]] = {
    "convergenceCriteriaSatisfied": (Reason.OPTIMAL, None),
    "maxTimeLimit": (Reason.LIMIT, Limit.TIME),
    "iterationLimit": (Reason.LIMIT, Limit.ITERATIONS),
    "minStepLength": (Reason.NO_SOLUTION_FOUND, None),
    "interrupted": (Reason.LIMIT, Limit.INTERRUPT),
    "provenInfeasible": (Reason.INFEASIBLE, None),
    "locallyInfeasible": (Reason.NO_SOLUTION_FOUND, None),
    "infeasibleOrUnbounded": (Reason.INFEASIBLE, None),
    "unbounded": (Reason.UNBOUNDED, None),
}
