"""Solver declarations: what each method is, what it can do, and whether it can run here.

Each model registers a :class:`ModelSolvers` (its list of :class:`SolverSpec` and the rule
that picks a default method). Entries name their implementation as ``"module:function"``
and are imported only when used, so ``edgeopt solvers`` and the command line start fast.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from edgeopt.models import plugins
from edgeopt.solvers.common.options import Option, check_options


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
    model cannot be solved by this method (``None`` when it can). ``options`` declares the
    keyword options the method accepts, typed (:class:`~edgeopt.solvers.common.Option`).
    """

    method: str
    model: str
    kind: str
    entry: str
    description: str
    capabilities: frozenset[Capability]
    backends: tuple[str, ...] = ()
    supports: Callable[[Any], str | None] | None = None
    options: dict[str, Option] = field(default_factory=dict)

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

    def check_options(self, given: dict[str, Any]) -> dict[str, Any]:
        """``given`` checked against the declared options (unknown name, type, range)."""
        return check_options(self.method, self.options, given)


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
        close = difflib.get_close_matches(method, [s.method for s in self.specs], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown method {method!r} for model {self.model!r}{hint}: choose one of {names}")

    def methods(self, kind: str | None = None) -> tuple[str, ...]:
        """The method ids, in declaration order, of one ``kind`` (all when ``None``)."""
        if kind is not None and kind not in KINDS:
            raise ValueError(f"kind {kind!r}: one of {', '.join(KINDS)}")
        return tuple(s.method for s in self.specs if kind is None or s.kind == kind)


GROUP = "edgeopt.solvers"
"""The entry-point group of solver sets: model id -> ``"module:ModelSolvers object"``."""


def registered_solver_sets() -> dict[str, str]:
    """model id -> ``"module:attribute"`` of every installed (or run-time registered) solver set."""
    return {name: plugin.target for name, plugin in plugins.plugins(GROUP).items()}


def register_solvers(model_id: str, target: str) -> None:
    """Make ``target`` (``"module:attribute"``, a :class:`ModelSolvers`) the methods of
    ``model_id`` in this process, without packaging it."""
    plugins.register(GROUP, model_id, target)


def unregister_solvers(model_id: str) -> None:
    """Undo :func:`register_solvers` (installed solver sets stay)."""
    plugins.unregister(GROUP, model_id)


def solvers_for(model_id: str) -> ModelSolvers:
    """The registered methods of ``model_id``."""
    registered = plugins.plugins(GROUP)
    if model_id not in registered:
        raise ValueError(
            f"no solvers registered for model {model_id!r}: registered are {', '.join(registered) or 'none'} "
            f"(entry-point group {GROUP!r})"
        )
    solvers = registered[model_id].load()
    if not isinstance(solvers, ModelSolvers) or solvers.model != model_id:
        raise TypeError(
            f"entry point {GROUP}:{model_id} = {registered[model_id].target} must be a ModelSolvers "
            f"for model {model_id!r}"
        )
    return solvers
