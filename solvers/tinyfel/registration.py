"""Declarations of every TinyFEL method (imported by the registry; no backend imports here).

Each implementing module defines ``unsupported(model) -> str | None`` (why it cannot solve
an instance), imported only when asked.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from edgeopt.models.tinyfel import TinyFELModel
from edgeopt.solvers.common.options import Option
from edgeopt.solvers.registry import Capability as Cap
from edgeopt.solvers.registry import ModelSolvers, SolverSpec
from edgeopt.solvers.tinyfel.common import empty_solution

_PKG = "edgeopt.solvers.tinyfel"

EXACT = frozenset({Cap.INTEGER, Cap.PROVES_OPTIMALITY, Cap.REPORTS_BOUND, Cap.TIME_LIMIT})


def _supports(module: str) -> Callable[[TinyFELModel], str | None]:
    """``module.unsupported``, imported when first called."""

    def check(model: TinyFELModel) -> str | None:
        return importlib.import_module(f"{_PKG}.{module}").unsupported(model)

    return check


def _baseline(name: str, description: str, options: dict[str, Option] | None = None) -> SolverSpec:
    return SolverSpec(
        f"baseline_{name}", "tinyfel", "baseline", f"{_PKG}.baselines:solve_{name}",
        description, frozenset(), supports=_supports("baselines"), options=options or {},
    )


SPECS = (
    SolverSpec(
        "bisection_mckp", "tinyfel", "exact", f"{_PKG}.bisection_mckp:solve_bisection_mckp",
        "P1: bisection on the round latency with a multiple-choice knapsack MILP per step, "
        "HiGHS (spec §5.1)",
        EXACT, backends=("highs",), supports=_supports("bisection_mckp"),
    ),
    SolverSpec(
        "pareto_sweep", "tinyfel", "exact", f"{_PKG}.pareto:solve_pareto_sweep",
        "P2 (total latency): walk the staircase of achievable bias levels, a P1 bisection per "
        "step, HiGHS (spec §5.2)",
        EXACT, backends=("highs",), supports=_supports("pareto"),
        options={"full_staircase": Option("walk every Pareto point, no pruning (the trace is then "
                                          "the whole staircase)", bool, default=False)},
    ),
    SolverSpec(
        "minlp_perspective", "tinyfel", "exact", f"{_PKG}.minlp:solve_minlp_perspective",
        "P1 as one MINLP in perspective form (rate perspective as tangent cuts, rotated cones), "
        "Pyomo + SCIP; every bias form and aggregation rule (spec §5.3)",
        EXACT, backends=("scip",), supports=_supports("minlp"),
        options={"mip_gap": Option("SCIP's relative gap limits/gap", float, default=1e-7, minimum=0.0,
                                  maximum=1.0, open_maximum=True)},
    ),
    SolverSpec(
        "brute_force", "tinyfel", "exact", f"{_PKG}.brute_force:solve_brute_force",
        "every selection and option, each equalised exactly (P1 and P2, every bias form; "
        "at most 100,000 combinations)",
        frozenset({Cap.INTEGER, Cap.PROVES_OPTIMALITY, Cap.REPORTS_BOUND, Cap.TIME_LIMIT}),
        supports=_supports("brute_force"),
        options={"max_combinations": Option("refuse above this many combinations (solve() refuses "
                                            "above the default anyway)", int, default=100000, minimum=1)},
    ),
    SolverSpec(
        "relaxation_expcone", "tinyfel", "relaxation", f"{_PKG}.relaxation:solve_relaxation_expcone",
        "P1 convex relaxation (exponential cone) bisected on T: lower bound plus a rounded "
        "point, cvxpy (spec §5.4)",
        frozenset({Cap.REPORTS_BOUND, Cap.TIME_LIMIT}),
        backends=("clarabel", "ecos", "scs"), supports=_supports("relaxation"),
    ),
    SolverSpec(
        "relaxation_lagrangian", "tinyfel", "relaxation",
        f"{_PKG}.dual_rounding:solve_relaxation_lagrangian",
        "P1 LP relaxation of the knapsack (the same bound as relaxation_expcone) bisected on T "
        "through its Lagrangian dual, pure numpy: proven lower bound plus the rounded point",
        frozenset({Cap.REPORTS_BOUND}), supports=_supports("bisection_mckp"),
    ),
    SolverSpec(
        "lagrangian_rounding", "tinyfel", "heuristic",
        f"{_PKG}.dual_rounding:solve_lagrangian_rounding",
        "P1 heuristic: a coarse Lagrangian-dual bisection on T, then the dual's minimisers or a "
        "beam search over the devices left free, equalised; with the dual's proven bound",
        frozenset({Cap.REPORTS_BOUND}), supports=_supports("bisection_mckp"),
    ),
    SolverSpec(
        "bcd_admm", "tinyfel", "heuristic", f"{_PKG}.bcd_admm:solve_bcd_admm",
        "the paper-style heuristic: block-coordinate descent over bandwidth, layers and an lp-box "
        "ADMM selection block, with its trace (spec §5.5), plus our fixed-latency knapsack "
        "polish when the blocks stall (option polish)",
        frozenset({Cap.TIME_LIMIT}), supports=_supports("bcd_admm"),
        options={
            "max_iterations": Option("cap on outer BCD iterations", int, default=50, minimum=1),
            "init": Option("'all': every eligible device at n_k^max, equal bandwidth; 'relaxation': "
                           "the rounded point of relaxation_expcone", str, default="all",
                           choices=("all", "relaxation")),
            "admm": Option("selection block (spec §5.5)", str, default="lp_box",
                           choices=("lp_box", "nonconvex")),
            "polish": Option("our addition: when the blocks stall, a Lagrangian knapsack and "
                             "single/pair option moves at the current latency; false runs the "
                             "spec's algorithm alone", bool, default=True),
        },
    ),
    _baseline("full_model",
              "traditional FEL: every device trains the whole model, equal bandwidth (spec §5.6)",
              {"drop_memory_infeasible": Option("leave out devices without memory for the whole "
                                                "model and split B over the rest", bool,
                                                default=False)}),
    _baseline("uniform_ratio",
              "all eligible devices update the same number of top layers, the least meeting "
              "the bias budget (spec §5.6)"),
    _baseline("random_selection",
              "devices added in a seeded random order at their deepest option until the budget "
              "holds (spec §5.6)"),
    _baseline("channel_greedy",
              "devices added by descending channel gain at their deepest option until the "
              "budget holds (spec §5.6)"),
    _baseline("equal_bandwidth",
              "B/m to each of m selected devices, best m; options by a search over the "
              "finishing times with an exact knapsack check per step (it separates: sorting) "
              "(spec §5.6)"),
)

BASELINES = tuple(spec.method for spec in SPECS if spec.kind == "baseline")


def choose(model: TinyFELModel, kind: str, backend: str | None) -> str:
    """Default method for a kind ('exact', 'relaxation', 'heuristic') and backend."""
    if kind == "exact":
        if model.total_latency:
            return "pareto_sweep"
        if backend == "scip":
            return "minlp_perspective"
        linear = _supports("bisection_mckp")(model) is None
        if backend == "highs" and not linear:
            raise ValueError(
                "HiGHS's exact method needs the linear bias form and unnormalised aggregation: "
                "use solver='scip' (minlp_perspective)"
            )
        return "bisection_mckp" if linear else "minlp_perspective"
    linear = _supports("bisection_mckp")(model) is None
    if kind == "relaxation":
        return "relaxation_lagrangian" if linear else "relaxation_expcone"
    if kind == "heuristic":
        return "lagrangian_rounding" if linear else "bcd_admm"
    raise ValueError(
        f"kind {kind!r} has no default method for tinyfel; name a method: {', '.join(BASELINES)}"
    )


TINYFEL_SOLVERS = ModelSolvers("tinyfel", SPECS, choose, empty_solution)
