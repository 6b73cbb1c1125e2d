"""``bisection``: the exact polynomial method for dedicated mode (spec §5.1).

For a makespan T, device i needs at least bmin_i(T) = min_c D'_{i,c}/(T - A'_{i,c}) Hz
(over memory-feasible cuts with A' < T, or A' <= T when D' = 0). T is feasible iff
G(T) = sum_i bmin_i(T) <= B, and G is non-increasing, so T* = min{T : G(T) <= B} is found
by bisection. Cost O(N |C| log(1/tol)).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from edgeopt.models.edgesplit import EdgeSplitModel
from edgeopt.solvers.common.deadline import Deadline
from edgeopt.solvers.edgesplit.common import make_result
from edgeopt.solvers.edgesplit.resources import MAX_BISECTIONS, allocate_for_cuts
from edgeopt.solvers.result import Result, Status

TOLERANCE = 1e-12
"""Stop when T_hi - T_lo <= TOLERANCE * T_hi (spec §5.1)."""


def minimum_bandwidth(model: EdgeSplitModel, T: float) -> tuple[np.ndarray, np.ndarray]:
    """(bmin_i(T) in Hz, the argmin column of each device; inf where no option fits)."""
    table = model.options
    fixed, traffic = table.dedicated_s, table.bandwidth_seconds
    slack = T - fixed
    usable = table.feasible & ((slack > 0) | ((traffic == 0) & (slack >= 0)))
    with np.errstate(divide="ignore", invalid="ignore"):
        need = np.where(traffic == 0, 0.0, traffic / np.where(slack > 0, slack, 1.0))
    need = np.where(usable, need, np.inf)
    best = np.argmin(need, axis=1)
    return need[np.arange(len(best)), best], best


def equal_bandwidth_makespan(model: EdgeSplitModel) -> float:
    """Per-round makespan with b_i = B/N and each device's best cut: a feasible T."""
    table = model.options
    share = model.instance.bandwidth_hz / model.n_devices
    times = np.where(table.feasible, table.dedicated_s + table.bandwidth_seconds / share, np.inf)
    return float(times.min(axis=1).max())


def solve_bisection(
    model: EdgeSplitModel, *, backend: str | None = None, time_limit: float | None = None, seed: int | None = None
) -> Result:
    """Exact minimum of J in dedicated mode, with a proven bound R*T_lo."""
    deadline = Deadline(time_limit)
    started = time.perf_counter()
    table = model.options
    budget = model.instance.bandwidth_hz
    fixed = np.where(table.feasible, table.dedicated_s, np.inf)
    lower = float(fixed.min(axis=1).max())
    upper = equal_bandwidth_makespan(model)
    build_s = time.perf_counter() - started

    rows = []
    status, termination = Status.OPTIMAL, "converged"
    if minimum_bandwidth(model, lower)[0].sum() <= budget:
        upper = lower
    iteration = 0
    while upper - lower > TOLERANCE * upper and iteration < MAX_BISECTIONS:
        if deadline.expired:
            status, termination = Status.TIME_LIMIT, "time_limit"
            break
        middle = 0.5 * (lower + upper)
        if middle <= lower or middle >= upper:
            break
        needed = float(np.sum(minimum_bandwidth(model, middle)[0]))
        if needed <= budget:
            upper = middle
        else:
            lower = middle
        iteration += 1
        rows.append({"iteration": iteration, "T_lower_s": lower, "T_upper_s": upper, "bandwidth_needed_hz": needed})

    _, columns = minimum_bandwidth(model, upper)
    cuts = table.cuts[columns]
    _, makespan, bandwidth, _ = allocate_for_cuts(model, cuts)
    return make_result(
        model,
        "bisection",
        status,
        cuts,
        bandwidth,
        bound_per_round=lower,
        build_s=build_s,
        solve_s=time.perf_counter() - started - build_s,
        trace=pd.DataFrame(rows, columns=["iteration", "T_lower_s", "T_upper_s", "bandwidth_needed_hz"]),
        termination=termination,
    )
