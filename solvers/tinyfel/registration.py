"""Declarations of every TinyFEL method (imported by the registry; no backend imports here)."""

from __future__ import annotations

from edgeopt.models.tinyfel import TinyFELModel
from edgeopt.solvers.registry import Capability as Cap
from edgeopt.solvers.registry import ModelSolvers, SolverSpec
from edgeopt.solvers.tinyfel.common import empty_solution

_PKG = "edgeopt.solvers.tinyfel"


def _linear_p1(model: TinyFELModel) -> str | None:
    from edgeopt.solvers.tinyfel.bisection_mckp import unsupported

    return unsupported(model)


SPECS = (
    SolverSpec(
        "bisection_mckp",
        "tinyfel",
        "exact",
        f"{_PKG}.bisection_mckp:solve_bisection_mckp",
        "bisection on the round latency with a multiple-choice knapsack MILP per step, HiGHS "
        "(spec §5.1)",
        frozenset({Cap.INTEGER, Cap.PROVES_OPTIMALITY, Cap.REPORTS_BOUND, Cap.TIME_LIMIT}),
        backends=("highs",),
        supports=_linear_p1,
    ),
)


def choose(model: TinyFELModel, kind: str, backend: str | None) -> str:
    """Default method for a kind ('exact', ...) and backend."""
    if kind == "exact":
        return "bisection_mckp"
    names = ", ".join(spec.method for spec in SPECS)
    raise ValueError(f"kind {kind!r} has no method for tinyfel yet; implemented: {names}")


TINYFEL_SOLVERS = ModelSolvers("tinyfel", SPECS, choose, empty_solution)
