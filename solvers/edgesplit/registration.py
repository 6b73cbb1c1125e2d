"""Declarations of every EdgeSplit method (imported by the registry; no backend imports here)."""

from __future__ import annotations

import math

from edgeopt.solvers.common.options import Option
from edgeopt.solvers.edgesplit.common import empty_solution
from edgeopt.solvers.registry import Capability as Cap
from edgeopt.solvers.registry import ModelSolvers, SolverSpec

_PKG = "edgeopt.solvers.edgesplit"


def _dedicated_only(model) -> str | None:
    return "needs server_mode 'dedicated' (use bisection_lagrangian or misocp_perspective)" if model.shared else None


def _shared_only(model) -> str | None:
    return None if model.shared else "is a shared-mode method (use bisection_mckp in dedicated mode)"


def _enumerable(model) -> str | None:
    count = math.prod(int(row.sum()) for row in model.options.feasible)
    return None if count <= 2_000_000 else f"{count} cut vectors are too many to enumerate"


def _bigm_ready(model) -> str | None:
    table = model.options
    if (table.bandwidth_seconds[table.feasible] == 0).any() or (model.shared and (table.server_flops[table.feasible] == 0).any()):
        return "a zero-traffic or zero-server option makes big-M infinite (use misocp_perspective)"
    return None


_SCIP_OPTIONS = {
    "mip_gap": Option("relative gap for SCIP", float, default=1e-9, minimum=0.0, maximum=1.0,
                      open_maximum=True),
}

SPECS = (
    SolverSpec(
        "bisection", "edgesplit", "exact", f"{_PKG}.bisection:solve_bisection",
        "bisection on the makespan with per-device minimum bandwidth (spec §5.1)",
        frozenset({Cap.INTEGER, Cap.PROVES_OPTIMALITY, Cap.REPORTS_BOUND, Cap.TIME_LIMIT}),
        supports=_dedicated_only,
    ),
    SolverSpec(
        "brute_force", "edgesplit", "exact", f"{_PKG}.enumeration:solve_brute_force",
        "every vector of memory-feasible cuts, resources exact for each (test reference)",
        frozenset({Cap.INTEGER, Cap.PROVES_OPTIMALITY, Cap.REPORTS_BOUND, Cap.TIME_LIMIT}),
        supports=_enumerable,
    ),
    SolverSpec(
        "enum_two_resource", "edgesplit", "exact", f"{_PKG}.enumeration:solve_enum_two_resource",
        "pruned enumeration of undominated cut vectors with the exact two-resource check (§5.3d)",
        frozenset({Cap.INTEGER, Cap.PROVES_OPTIMALITY, Cap.REPORTS_BOUND, Cap.TIME_LIMIT}),
        supports=_enumerable,
    ),
    SolverSpec(
        "bisection_lagrangian", "edgesplit", "exact", f"{_PKG}.lagrangian:solve_bisection_lagrangian",
        "two-resource Lagrangian bound on the makespan, rounding, reduced-cost fixing and a small "
        "branch and bound (both modes; the exact method of shared mode)",
        frozenset({Cap.INTEGER, Cap.PROVES_OPTIMALITY, Cap.REPORTS_BOUND, Cap.TIME_LIMIT}),
        options={"gap": Option("relative optimality gap at which the proof stops", float, default=1e-9,
                               minimum=0.0, maximum=1.0, open_maximum=True)},
    ),
    SolverSpec(
        "misocp_perspective", "edgesplit", "exact", f"{_PKG}.misocp:solve_misocp_perspective",
        "mixed-integer SOCP, perspective form, Pyomo + SCIP (§5.3b)",
        frozenset({Cap.INTEGER, Cap.PROVES_OPTIMALITY, Cap.REPORTS_BOUND, Cap.TIME_LIMIT}),
        backends=("scip",), options=_SCIP_OPTIONS,
    ),
    SolverSpec(
        "misocp_bigm", "edgesplit", "exact", f"{_PKG}.misocp:solve_misocp_bigm",
        "mixed-integer SOCP with big-M rows, Pyomo + SCIP (§5.3a)",
        frozenset({Cap.INTEGER, Cap.PROVES_OPTIMALITY, Cap.REPORTS_BOUND, Cap.TIME_LIMIT}),
        backends=("scip",), supports=_bigm_ready, options=_SCIP_OPTIONS,
    ),
    SolverSpec(
        "bisection_mckp", "edgesplit", "exact", f"{_PKG}.mckp:solve_bisection_mckp",
        "bisection with a multiple-choice knapsack MILP check, HiGHS (§5.3c)",
        frozenset({Cap.INTEGER, Cap.PROVES_OPTIMALITY, Cap.REPORTS_BOUND, Cap.TIME_LIMIT}),
        backends=("highs",), supports=_dedicated_only,
    ),
    SolverSpec(
        "bisection_mckp_grid", "edgesplit", "approximate", f"{_PKG}.mckp:solve_bisection_mckp_grid",
        "shared mode: bisection with a two-row knapsack on a slack-split grid; a restriction, upper bound only",
        frozenset({Cap.INTEGER, Cap.TIME_LIMIT}),
        backends=("highs",), supports=_shared_only, options={"grid": Option("number Q of slack splits", int, default=16, minimum=1)},
    ),
    SolverSpec(
        "relaxation_perspective", "edgesplit", "relaxation", f"{_PKG}.relaxation:solve_relaxation_perspective",
        "convex-hull (perspective) relaxation in cvxpy: lower bound plus a rounded feasible point (§5.4)",
        frozenset({Cap.REPORTS_BOUND, Cap.DUALS, Cap.TIME_LIMIT}),
        backends=("clarabel", "ecos", "scs"),
        options={"fix": Option("{'cuts': [...]}: one cut per device (fix-and-relax: the duals of the "
                               "convex resource problem are derivatives of J)", dict)},
    ),
    SolverSpec(
        "alternating", "edgesplit", "heuristic", f"{_PKG}.alternating:solve_alternating",
        "the paper's alternating algorithm: cuts, then resources, until no cut changes (§5.2)",
        frozenset({Cap.TIME_LIMIT}),
        options={"max_iterations": Option("cap on partition/resource rounds", int, default=100, minimum=1)},
    ),
    SolverSpec(
        "baseline_equal_resources", "edgesplit", "baseline", f"{_PKG}.baselines:solve_equal_resources",
        "equal bandwidth (and server share), best cut per device", frozenset(),
    ),
    SolverSpec(
        "baseline_common_cut", "edgesplit", "baseline", f"{_PKG}.baselines:solve_common_cut",
        "one cut for all devices, resources optimised", frozenset(),
    ),
    SolverSpec(
        "baseline_fedavg", "edgesplit", "baseline", f"{_PKG}.baselines:solve_fedavg",
        "full local training (FedAvg), bandwidth optimised", frozenset(),
    ),
    SolverSpec(
        "baseline_sequential_sl", "edgesplit", "baseline", f"{_PKG}.baselines:solve_sequential_sl",
        "vanilla split learning: one device at a time with all resources", frozenset(),
    ),
)

BASELINES = tuple(s.method for s in SPECS if s.kind == "baseline")


def choose(model, kind: str, backend: str | None) -> str:
    """Default method for a kind ('exact', 'relaxation', 'heuristic', ...) and backend."""
    if kind == "exact":
        if backend == "scip":
            return "misocp_perspective"
        if backend == "highs":
            if model.shared:
                raise ValueError(
                    "HiGHS has no exact method for server_mode 'shared': use solver='scip', or "
                    "method='bisection_mckp_grid' for HiGHS's restriction (an upper bound only)"
                )
            return "bisection_mckp"
        return "bisection_lagrangian" if model.shared else "bisection"
    if kind == "relaxation":
        return "relaxation_perspective"
    if kind == "heuristic":
        return "alternating"
    if kind == "approximate":
        return "bisection_mckp_grid"
    raise ValueError(f"kind {kind!r} has no default method for edgesplit; name a method: {', '.join(BASELINES)}")


EDGESPLIT_SOLVERS = ModelSolvers("edgesplit", SPECS, choose, empty_solution)
