"""Solver declarations: what each method is, what it can do, and whether it can run here.

Each model registers a :class:`ModelSolvers` (its list of :class:`SolverSpec` and the rule
that picks a default method). Entries name their implementation as ``"module:function"``
and are imported only when used, so ``edgeopt solvers`` and the command line start fast.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Capability(str, Enum):
    """Features a solver may declare; the cross-check test matrix is generated from these."""

    INTEGER = "integer"
    PROVES_OPTIMALITY = "proves_optimality"
    REPORTS_BOUND = "reports_bound"
    DUALS = "duals"
    WARM_START = "warm_start"
    TIME_LIMIT = "time_limit"


class Availability(Enum):
    """Whether a solver can run on this machine; truthy only when it can."""

    AVAILABLE = "available"
    NOT_INSTALLED = "not installed"

    def __bool__(self) -> bool:
        return self is Availability.AVAILABLE


BACKEND_MODULES: dict[str, tuple[str, ...]] = {
    "scip": ("pyomo", "pyscipopt"),
    "highs": ("highspy",),
    "clarabel": ("cvxpy", "clarabel"),
    "ecos": ("cvxpy", "ecos"),
    "scs": ("cvxpy", "scs"),
    "scipy": ("scipy",),
}
"""Python modules each backend needs (checked without importing them)."""

KINDS = ("exact", "relaxation", "heuristic", "baseline", "approximate")


@dataclass(frozen=True)
class SolverSpec:
    """One solution method of one model.

    ``kind``: 'exact' (proves optimality), 'relaxation' (valid lower bound + rounded point),
    'heuristic', 'baseline' (a reference policy of the spec) or 'approximate' (a restriction
    with an upper bound only). ``backends`` are the values ``solve(..., solver=)`` accepts,
    the first being the default; empty for pure-Python methods. ``supports`` returns why a
    model cannot be solved by this method (``None`` when it can). ``options`` documents the
    keyword options the method accepts.
    """

    method: str
    model: str
    kind: str
    entry: str
    description: str
    capabilities: frozenset[Capability]
    backends: tuple[str, ...] = ()
    supports: Callable[[Any], str | None] | None = None
    options: dict[str, str] = field(default_factory=dict)

    def availability(self, backend: str | None = None) -> Availability:
        """Whether the method (with ``backend``, default: its first) can run here."""
        chosen = backend or (self.backends[0] if self.backends else None)
        if chosen is None:
            return Availability.AVAILABLE
        modules = BACKEND_MODULES.get(chosen, ())
        if all(importlib.util.find_spec(name) is not None for name in modules):
            return Availability.AVAILABLE
        return Availability.NOT_INSTALLED

    def unsupported_reason(self, model: Any) -> str | None:
        return None if self.supports is None else self.supports(model)

    def load(self) -> Callable[..., Any]:
        module, name = self.entry.split(":")
        return getattr(importlib.import_module(module), name)

    def has(self, capability: Capability) -> bool:
        return capability in self.capabilities


@dataclass(frozen=True)
class ModelSolvers:
    """All methods of one model and the rule ``choose(model, kind, backend) -> method``."""

    model: str
    specs: tuple[SolverSpec, ...]
    choose: Callable[[Any, str, str | None], str]
    empty_solution: Callable[[Any], dict[str, Any]]

    def spec(self, method: str) -> SolverSpec:
        for spec in self.specs:
            if spec.method == method:
                return spec
        names = ", ".join(s.method for s in self.specs)
        raise ValueError(f"unknown method {method!r} for model {self.model!r}: choose one of {names}")


MODEL_SOLVERS: dict[str, str] = {
    "edgesplit": "edgeopt.solvers.edgesplit.registration:EDGESPLIT_SOLVERS",
    "fl_energy": "edgeopt.solvers.fl_energy.registration:FL_ENERGY_SOLVERS",
    "tinyfel": "edgeopt.solvers.tinyfel.registration:TINYFEL_SOLVERS",
    "two_stage": "edgeopt.solvers.two_stage.registration:TWO_STAGE_SOLVERS",
}


def solvers_for(model_id: str) -> ModelSolvers:
    """The registered methods of ``model_id``."""
    if model_id not in MODEL_SOLVERS:
        raise ValueError(f"no solvers registered for model {model_id!r}")
    module, name = MODEL_SOLVERS[model_id].split(":")
    return getattr(importlib.import_module(module), name)
