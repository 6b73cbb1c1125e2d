"""Declarations of every ``fl_energy`` method (imported by the registry; no backend imports here)."""

from __future__ import annotations

import importlib.util

from edgeopt.solvers.common.options import Option
from edgeopt.solvers.fl_energy.common import empty_solution
from edgeopt.solvers.registry import BACKEND_MODULES, ModelSolvers, SolverSpec
from edgeopt.solvers.registry import Capability as Cap

_PKG = "edgeopt.solvers.fl_energy"


def _installed_first(backends: tuple[str, ...]) -> tuple[str, ...]:
    """``backends`` with the installed ones first (so the default is clarabel if installed,
    else ecos, else scs), checked without importing them."""
    def installed(name: str) -> bool:
        return all(importlib.util.find_spec(module) is not None for module in BACKEND_MODULES[name])

    return tuple(sorted(backends, key=lambda name: not installed(name)))


SPECS = (
    SolverSpec(
        "dual_decomposition", "fl_energy", "exact", f"{_PKG}.dual:solve_dual_decomposition",
        "bisection on the bandwidth price, a 1-D convex solve per device; certified dual bound",
        frozenset({Cap.PROVES_OPTIMALITY, Cap.REPORTS_BOUND, Cap.DUALS, Cap.TIME_LIMIT}),
        options={"gap": Option("relative gap at which the bisection stops", float, default=1e-9,
                               minimum=0.0, maximum=1.0, open_maximum=True)},
    ),
    SolverSpec(
        "convex_program", "fl_energy", "exact", f"{_PKG}.convex_program:solve_convex_program",
        "the convex program in cvxpy (exponential cone); bound = dual function at the backend's price",
        frozenset({Cap.PROVES_OPTIMALITY, Cap.REPORTS_BOUND, Cap.DUALS, Cap.TIME_LIMIT}),
        backends=_installed_first(("clarabel", "ecos", "scs")),
    ),
    SolverSpec(
        "lagrangian_bound", "fl_energy", "relaxation", f"{_PKG}.dual:solve_lagrangian_bound",
        "dual function on a geometric grid of bandwidth prices: best bound and recovered point",
        frozenset({Cap.REPORTS_BOUND, Cap.DUALS, Cap.TIME_LIMIT}),
        options={"prices": Option("number of prices on the grid", int, default=12, minimum=2)},
    ),
    SolverSpec(
        "equal_bandwidth", "fl_energy", "heuristic", f"{_PKG}.heuristics:solve_equal_bandwidth",
        "B/K each (raised to the deadline's minimum where needed), then the least feasible frequency",
        frozenset(),
    ),
    SolverSpec(
        "max_frequency", "fl_energy", "baseline", f"{_PKG}.heuristics:solve_max_frequency",
        "every CPU at f_max on the equal-bandwidth split (race to idle)",
        frozenset(),
    ),
)

def choose(model, kind: str, backend: str | None) -> str:
    """Default method of a kind: a conic backend picks ``convex_program``."""
    if kind == "exact":
        return "convex_program" if backend is not None else "dual_decomposition"
    if kind == "relaxation":
        return "lagrangian_bound"
    if kind == "heuristic":
        return "equal_bandwidth"
    raise ValueError(f"kind {kind!r} has no default method for fl_energy; name a method: {', '.join(s.method for s in SPECS if s.kind == 'baseline')}")


FL_ENERGY_SOLVERS = ModelSolvers("fl_energy", SPECS, choose, empty_solution)
