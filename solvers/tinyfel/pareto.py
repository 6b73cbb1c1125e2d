"""``pareto_sweep``: exact P2 (total latency R(a, n) T_round) by walking the staircase of
achievable bias levels, a P1 bisection per step (spec §5.2).

Let v = Phi + N (linear in the selection y) and T*(v) the least per-round latency T
(excluding T_dl) of a selection with Phi + N <= v. T*(v) is a non-increasing step function
and R(v) is non-decreasing, so the optimum sits at the left end of a step. The walk:

1. theta_1 = inf. Step i: the multiple-choice knapsack of :mod:`bisection_mckp` at
   T = theta_i with objective min v (bandwidth and K_min rows only) gives v_i, the least
   level of any selection finishing by theta_i. Stop if it is infeasible or v_i >= epsilon.
2. T*(v_i) by the bisection of :mod:`bisection_mckp` (feasibility checks, probes just below
   the incumbent) with the coverage row Phi + N <= v_i, bracketed by [T_min, latency of the
   step's own selection]; its options are equalised exactly and R(v) (T + T_dl) is
   recorded.
3. theta_{i+1} = T_i (1 - STEP), T_i the recorded latency; repeat.

Pruning: T_min is the P1 optimum without the coverage row (its proven lower bound is
used), a lower bound on every selection's T. Before bisecting step i the walk stops if
R(v_i) (T_min + T_dl) is already >= the best total.

Bound. Take any selection x with a finite R and the last step i with T(x) <= theta_i.
Step i is exact, so v(x) >= v_i; and T(x) > theta_{i+1} (otherwise step i + 1 would be a
later step with T(x) <= theta; if the walk ended there, step i + 1 found no selection or
only levels >= epsilon, excluding x). Hence R(x) (T(x) + T_dl) >= R(v_i) (theta_{i+1} +
T_dl). When the walk was pruned or stopped by the time limit at step j, the selections with
T <= theta_j have v >= v_j and T >= T_min, so their totals are >= R(v_j) (T_min + T_dl).
``bound`` is the least of these terms; it relies only on the exactness of the min-v steps
(HiGHS, gap 0, tolerances 1e-9), not on the bisections, which only decide how good the
recorded points are.

The walk (one row per Pareto point: ``bias_noise``, ``rounds``, ``round_latency_s``,
``total_latency_s``, ``bisection_steps``) is the Result's ``trace``; ``extras`` hold
``fastest_round_latency_s`` (T_min + T_dl, s).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd

from edgeopt.models.tinyfel import TinyFELModel
from edgeopt.models.tinyfel.convergence import rounds_needed
from edgeopt.solvers.common.deadline import Deadline
from edgeopt.solvers.highs_choice import highs_version
from edgeopt.solvers.result import Result, Status
from edgeopt.solvers.tinyfel.bisection_mckp import (
    Bisection,
    Choice,
    bisect,
    bracket,
    choose,
    energy_only,
    equalised_latency,
    unreachable,
)
from edgeopt.solvers.tinyfel.common import (
    equalise,
    finish_times,
    infeasible_result,
    make_result,
)

METHOD = "pareto_sweep"

STEP = 1e-9
"""Relative step below the last Pareto point's latency for the next search (spec §5.2)."""

TRACE_COLUMNS = [
    "point", "bias_noise", "rounds", "round_latency_s", "total_latency_s", "bisection_steps",
]


def unsupported(model: TinyFELModel) -> str | None:
    """Why the staircase walk does not model this instance (``None`` when it does)."""
    inst = model.instance
    if not model.total_latency:
        return "solves P2 (objective 'total_latency'); P1 needs bisection_mckp"
    if inst.aggregation != "unnormalised":
        return "the normalised aggregation has a non-linear bias bound (spec §9)"
    if inst.bias_form != "linear":
        return "R depends on the quadratic bias form, which is not linear (use brute_force)"
    return None


def _level(model: TinyFELModel, choice: Choice) -> float:
    """v = Phi + N of a selection [unit of G^2]."""
    terms = model.learning_terms(*choice)
    return terms.bias + terms.noise


def _rounds(model: TinyFELModel, level: float) -> int | None:
    """R at v = Phi + N (``None`` when the target is out of reach)."""
    learning = model.instance.learning
    return rounds_needed(learning.initial_gap, learning.learning_rate,
                         learning.target_stationarity, level, 0.0)


def _equalised(
    model: TinyFELModel, choice: Choice, start_s: float | None = None
) -> tuple[np.ndarray, float]:
    """(bandwidth [Hz], T [s] excluding T_dl) of a selection with equal finishing times."""
    selected, layers = choice
    bandwidth = equalise(model, selected, layers, start_s=start_s)
    if bandwidth is None:
        raise RuntimeError("options accepted by the knapsack do not fit the bandwidth budget")
    finish = finish_times(model, selected, layers, bandwidth)["finish_s"]
    return bandwidth, float(finish.max(initial=0.0))


def solve_pareto_sweep(
    model: TinyFELModel,
    *,
    backend: str | None = None,
    time_limit: float | None = None,
    seed: int | None = None,
    full_staircase: bool = False,
) -> Result:
    """Exact P2 with a proven bound (module docstring). ``full_staircase=True`` walks every
    Pareto point (no pruning; the ``trace`` is then the whole staircase). ``time_limit`` [s]
    is checked between knapsack solves: the walk then stops with status ``time_limit``, its
    best point and a valid bound. ``seed`` is unused (HiGHS is deterministic here)."""
    if not isinstance(full_staircase, bool):
        raise ValueError(f"full_staircase = {full_staircase!r}: must be True or False")
    started = time.perf_counter()
    deadline = Deadline(time_limit)
    table = model.options
    t_dl = table.downlink_s
    target = model.instance.learning.target_stationarity

    found = choose(model, energy_only(model), bias_limit=math.inf, objective="bias")
    if found is None:
        return unreachable(model, METHOD)
    level = _level(model, found)
    if level >= target:
        diagnosis = model.infeasibility()
        if diagnosis is not None:
            return infeasible_result(model, METHOD, diagnosis.reason, diagnosis.message,
                                     infeasible_details=diagnosis.details)
        return infeasible_result(
            model, METHOD, "target_unreachable",
            f"target unreachable: the least Φ + N of a selection meeting the bandwidth and "
            f"min_selected rows is {level:.6g} >= ε = {target:.6g}",
        )

    def free(T: float) -> Choice | None:
        return choose(model, table.min_bandwidth(T), bias_limit=math.inf, objective="feasible")

    def achieved(choice: Choice) -> float | None:
        return equalised_latency(model, choice)

    floor = bisect(bracket(model, free), free, deadline, achieved).lower

    best_choice, (best_bandwidth, best_latency) = found, _equalised(model, found)
    best_total = _rounds(model, level) * (best_latency + t_dl)
    points: list[dict] = []
    bounds: list[float] = []
    timed_out = False
    while True:
        rounds = _rounds(model, level)
        if rounds is None:  # every selection finishing by theta is out of reach
            break
        cutoff = rounds * (floor + t_dl)
        if (cutoff >= best_total and not full_staircase) or deadline.expired:
            timed_out = cutoff < best_total
            bounds.append(cutoff)
            break

        def check(T: float, limit: float = level) -> Choice | None:
            return choose(model, table.min_bandwidth(T), bias_limit=limit,
                          include_noise=True, margin=0.0, objective="feasible")

        _, upper = _equalised(model, found)
        start = Bisection(min(floor, upper), upper, found, from_heuristic=True)
        walk = bisect(start, check, deadline, achieved)
        bandwidth, latency = _equalised(model, walk.accepted, start_s=walk.upper)
        own = _level(model, walk.accepted)
        total = _rounds(model, own) * (latency + t_dl)
        points.append({
            "point": len(points) + 1, "bias_noise": own, "rounds": _rounds(model, own),
            "round_latency_s": latency + t_dl, "total_latency_s": total,
            "bisection_steps": len(walk.rows),
        })
        if total < best_total:
            best_choice, best_bandwidth, best_total = walk.accepted, bandwidth, total
        threshold = latency * (1.0 - STEP)
        bounds.append(rounds * (threshold + t_dl))
        found = choose(model, table.min_bandwidth(threshold), bias_limit=math.inf,
                       objective="bias")
        if found is None:
            break
        level = _level(model, found)

    result = make_result(
        model, METHOD, Status.TIME_LIMIT if timed_out else Status.OPTIMAL,
        best_choice[0], best_choice[1], best_bandwidth,
        solver="highs", solver_version=highs_version(),
        solve_s=time.perf_counter() - started,
        trace=pd.DataFrame(points, columns=TRACE_COLUMNS),
        termination="time_limit" if timed_out else "converged",
    )
    bound = min(min(bounds, default=result.objective), result.objective)
    return result.replace(
        bound=bound, extras={**result.extras, "fastest_round_latency_s": floor + t_dl}
    )
