"""Declarations of every two-stage method (imported by the registry; no backend imports here).

Each implementing module defines ``unsupported(model) -> str | None`` (why it cannot solve
an instance), imported only when asked.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from edgeopt.models.two_stage import TwoStageModel
from edgeopt.solvers.common.options import Option
from edgeopt.solvers.registry import Capability as Cap
from edgeopt.solvers.registry import ModelSolvers, SolverSpec

_PKG = "edgeopt.solvers.two_stage"


def _supports(module: str) -> Callable[[TwoStageModel], str | None]:
    """``module.unsupported``, imported when first called."""

    def check(model: TwoStageModel) -> str | None:
        return importlib.import_module(f"{_PKG}.{module}").unsupported(model)

    return check


_SCA_OPTIONS = {
    "max_iterations": Option("SCA iterations per cell", int, default=200, minimum=1),
    "tolerance": Option("relative change of the objective that stops the SCA", float, default=1e-9,
                        minimum=0.0),
}


def _baseline(name: str, description: str, options: dict[str, Option] | None = None) -> SolverSpec:
    return SolverSpec(
        f"baseline_{name}", "two_stage", "baseline", f"{_PKG}.baselines:solve_{name}",
        description, frozenset(), supports=_supports("baselines"), options=options or {},
    )


SPECS = (
    SolverSpec(
        "exact", "two_stage", "exact", f"{_PKG}.exact:solve_exact",
        "global optimum over (M, N): cells visited by increasing valid lower bound, block "
        "bounds prune, each open cell's convex program (Clarabel) then its integer batches "
        "(branch and bound on the certified relaxation; SCIP or the staircase search as "
        "options) (spec §6.1)",
        frozenset({Cap.INTEGER, Cap.PROVES_OPTIMALITY, Cap.REPORTS_BOUND, Cap.TIME_LIMIT}),
        backends=("clarabel", "ecos", "scip"), supports=_supports("exact"),
        options={
            "integer": Option("exact integer cell solver: auto (bnb; scip when solver='scip'), "
                              "bnb, scip or staircase (K <= 2)", str, default="auto",
                              choices=("auto", "bnb", "scip", "staircase")),
            "prune": Option("False solves every feasible cell (for checks)", bool, default=True),
        },
    ),
    SolverSpec(
        "relaxation", "two_stage", "relaxation", f"{_PKG}.relaxation:solve_relaxation",
        "continuous batches in every cell (exponential-cone program), valid lower bound over "
        "all cells, floor-rounded best cell (spec §6.3)",
        frozenset({Cap.REPORTS_BOUND, Cap.TIME_LIMIT}),
        backends=("clarabel", "ecos", "scipy"), supports=_supports("relaxation"),
    ),
    SolverSpec(
        "relaxation_per_round", "two_stage", "relaxation",
        f"{_PKG}.relaxation_per_round:solve_relaxation_per_round",
        "per-round policy (spec §3.3; static or time-varying channels): continuous per-round "
        "batches in every cell, valid lower bound over all cells from the optimistic static "
        "instance, floor-rounded best cell with per-round resources",
        frozenset({Cap.REPORTS_BOUND, Cap.TIME_LIMIT}), backends=("clarabel",),
        supports=_supports("relaxation_per_round"),
    ),
    SolverSpec(
        "sca_grid", "two_stage", "heuristic", f"{_PKG}.sca:solve_sca_grid",
        "the paper's method: successive convex approximation in the original variables per "
        "cell, 2-D search over (M, N), floor rounding (spec §6.4); slower than exact, which "
        "closes cells with one conic solve and blocks with Lagrangian cuts, where this runs "
        "an SCA (tens of solves) per visited cell",
        frozenset({Cap.TIME_LIMIT}), backends=("clarabel", "ecos"), supports=_supports("sca"),
        options={
            "rounding": Option("rounding of the relaxed batches", str, default="floor",
                               choices=("floor", "floor_fill")),
            "search": Option("grid: cells skipped by valid bounds, same value as every cell; full: "
                             "SCA in every cell, for heat maps", str, default="grid",
                             choices=("grid", "full")),
            **_SCA_OPTIONS,
        },
    ),
    SolverSpec(
        "coarse_to_fine", "two_stage", "heuristic", f"{_PKG}.coarse_to_fine:solve_coarse_to_fine",
        "every s-th cell, then every cell near the best three coarse cells (spec §6.4)",
        frozenset({Cap.TIME_LIMIT}), backends=("clarabel", "ecos"),
        supports=_supports("coarse_to_fine"),
        options={
            "rounding": Option("rounding of the relaxed batches", str, default="floor_fill",
                               choices=("floor_fill", "floor")),
            "stride": Option("coarse stride s (default max(1, floor(max(M_max, N_max)/20)))", int,
                             minimum=1),
            **_SCA_OPTIONS,
        },
    ),
    _baseline("finetune_only", "no pre-training (M = 0), the rest optimised (spec §6.5)"),
    _baseline("equal_rounds", "M = N (option: a fixed ratio M/N), the rest optimised (spec §6.5)",
              {"ratio": Option("M/N", float, default=1.0, minimum=0.0)}),
    _baseline("fixed_batch", "batches fixed at 32 (option: batch), (M, N) chosen with the "
              "minimum-energy oracle (spec §6.5)", {"batch": Option("samples per batch", int, default=32, minimum=1)}),
    _baseline("split_budget", "each stage gets its own share of the energy and delay budgets "
              "(option: share) (spec §6.5)",
              {"share": Option("pre-training's share of E_max and T_max", float, default=0.5,
                              minimum=0.0, maximum=1.0)}),
    _baseline("max_resource", "maximum clocks and powers every round, batches and (M, N) "
              "optimised under the resulting linear costs (spec §6.5)"),
)

BASELINES = tuple(spec.method for spec in SPECS if spec.kind == "baseline")


def choose(model: TwoStageModel, kind: str, backend: str | None) -> str:
    """Default method for a kind ('exact', 'relaxation', 'heuristic'); with time-varying
    channels the relaxation is the per-round one."""
    defaults = {"exact": "exact", "relaxation": "relaxation", "heuristic": "sca_grid"}
    if model.derived.time_varying:
        defaults["relaxation"] = "relaxation_per_round"
    if kind in defaults:
        return defaults[kind]
    raise ValueError(
        f"kind {kind!r} has no default method for two_stage; name a method: {', '.join(BASELINES)}"
    )


def empty_solution(model: TwoStageModel) -> dict[str, Any]:
    """The canonical fields of an infeasible solution (spec §3.4)."""
    return model.empty_solution()


TWO_STAGE_SOLVERS = ModelSolvers("two_stage", SPECS, choose, empty_solution)
