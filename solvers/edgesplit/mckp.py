"""``bisection_mckp`` and ``bisection_mckp_grid``: bisection on the makespan T whose
feasibility check is a multiple-choice knapsack MILP solved by HiGHS (spec §5.3(c)).

Each check picks one column per device (binaries x, sum over the device's columns = 1);
columns are options (and, in shared mode, slack splits) and carry resource fractions
p = b/B and q = s/F needed to finish by T.

* Dedicated (exact): column (i, c) needs p = D'/(B (T - A')) (0 if D' = 0); minimise sum p x
  and compare with 1. Bound R*T_lo, status ``optimal``.
* Shared (a restriction): the slack t = T - A of an option is split as theta*t for traffic and
  (1 - theta)*t for the server, theta in {1/Q, ..., (Q-1)/Q}: p = D'/(B theta t),
  q = S/(F (1 - theta) t); options needing only one resource give it the whole slack. Two
  rows sum p <= 1, sum q <= 1. Every accepted T is feasible, so the result is an upper bound
  only: status ``feasible``, no bound.

Columns needing a fraction above 1 can never be chosen and are dropped; in shared mode so
are columns dominated in (p, q) by another column of the same device. The cuts of the last
accepted T are polished by solving resources exactly for them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from edgeopt.models.edgesplit import EdgeSplitModel
from edgeopt.solvers.common.deadline import Deadline
from edgeopt.solvers.edgesplit.bisection import TOLERANCE, equal_bandwidth_makespan
from edgeopt.solvers.edgesplit.common import make_result
from edgeopt.solvers.edgesplit.resources import MAX_BISECTIONS, allocate_for_cuts
from edgeopt.solvers.highs_choice import (
    INFINITY,
    HighsStopped,
    chosen_columns,
    highs_version,
    solve_choice,
)
from edgeopt.solvers.result import Result, Status

MAX_WIDENINGS = 60
"""The upper end of the bracket doubles its distance to the lower end at most this often."""

TRACE_COLUMNS = ["iteration", "T_lower_s", "T_upper_s", "accepted"]


class OutOfTime(Exception):
    """HiGHS stopped on its time limit before deciding a check."""


@dataclass(frozen=True)
class Columns:
    """Candidate columns of one check: owning device, table column (cut index), and the
    bandwidth and server fractions needed (dimensionless)."""

    device: np.ndarray
    option: np.ndarray
    p: np.ndarray
    q: np.ndarray


def choose_columns(
    columns: Columns, n_devices: int, cost: np.ndarray, rows: list[np.ndarray],
    time_limit: float | None, seed: int | None,
) -> np.ndarray | None:
    """Solve min cost.x s.t. one column per device, row.x <= 1 for each row, x binary.

    Returns the chosen column index of each device, or ``None`` if infeasible; raises
    :class:`OutOfTime` if HiGHS stops (on ``time_limit`` [s]) before deciding.
    """
    if np.any(np.bincount(columns.device, minlength=n_devices) == 0):
        return None
    try:
        x = solve_choice(
            columns.device, n_devices, cost, rows, [-INFINITY] * len(rows), [1.0] * len(rows),
            time_limit=time_limit, seed=seed,
        )
    except HighsStopped as stopped:
        raise OutOfTime(str(stopped)) from None
    return None if x is None else chosen_columns(columns.device, n_devices, x)


def within_budgets(columns: Columns, chosen: np.ndarray) -> bool:
    """Exact re-check of a HiGHS selection (which holds only up to HiGHS's tolerances)."""
    return math.fsum(columns.p[chosen]) <= 1.0 and math.fsum(columns.q[chosen]) <= 1.0


def dedicated_columns(model: EdgeSplitModel, T: float) -> Columns:
    """Options usable at makespan T [s] (A' < T, or A' <= T when D' = 0) with p <= 1."""
    table = model.options
    slack = T - table.dedicated_s
    traffic = table.bandwidth_seconds
    usable = table.feasible & ((slack > 0) | ((traffic == 0) & (slack >= 0)))
    band_seconds = model.instance.bandwidth_hz * np.where(slack > 0, slack, 1.0)
    need = np.where(traffic == 0, 0.0, traffic / band_seconds)
    device, option = np.nonzero(usable & (need <= 1.0))
    p = need[device, option]
    return Columns(device, option, p, np.zeros_like(p))


def _pareto(device: np.ndarray, option: np.ndarray, p: np.ndarray, q: np.ndarray) -> Columns:
    """Keep, per device, the columns not dominated in (p, q); among equal ones the first."""
    order = np.lexsort((q, p, device))
    kept: list[int] = []
    best_q, owner = math.inf, -1
    for j in order:
        if device[j] != owner:
            best_q, owner = math.inf, device[j]
        if q[j] < best_q:
            kept.append(j)
            best_q = q[j]
    keep = np.array(kept, dtype=int)
    return Columns(device[keep], option[keep], p[keep], q[keep])


def shared_columns(model: EdgeSplitModel, T: float, grid: int) -> Columns:
    """Slack-split columns at makespan T [s] with p, q <= 1, undominated per device."""
    table = model.options
    slack = T - table.device_s
    d = table.bandwidth_seconds / model.instance.bandwidth_hz
    e = table.server_s
    thetas = np.arange(1, grid) / grid
    safe = np.where(slack > 0, slack, 1.0)
    both = (d > 0) & (e > 0)
    usable = table.feasible & ((slack > 0) | (~(d > 0) & ~(e > 0) & (slack >= 0)))
    # Options needing one resource (or none) give it the whole slack: one column.
    device, option = np.nonzero(usable & ~both)
    p_parts = [np.where(d > 0, d / safe, 0.0)[device, option]]
    q_parts = [np.where(e > 0, e / safe, 0.0)[device, option]]
    devices, options = [device], [option]
    split_device, split_option = np.nonzero(usable & both)
    t = safe[split_device, split_option]
    for theta in thetas:
        devices.append(split_device)
        options.append(split_option)
        p_parts.append(d[split_device, split_option] / (theta * t))
        q_parts.append(e[split_device, split_option] / ((1 - theta) * t))
    device, option = np.concatenate(devices), np.concatenate(options)
    p, q = np.concatenate(p_parts), np.concatenate(q_parts)
    fits = (p <= 1.0) & (q <= 1.0)
    return _pareto(device[fits], option[fits], p[fits], q[fits])


Check = Callable[[float, float | None], np.ndarray | None]
"""check(T [s], time limit [s] or None) -> table column of each device's cut, or None if T
is rejected; may raise :class:`OutOfTime`."""


@dataclass(frozen=True)
class Bracket:
    """Outcome of :func:`bisect`: T_lo rejected (or tight) and T_hi accepted [s], the table
    columns chosen at T_hi, whether the time limit stopped it, and one trace row per step."""

    lower: float
    upper: float
    chosen: np.ndarray
    timed_out: bool
    rows: list[dict]


def bisect(check: Check, lower: float, upper: float, deadline: Deadline) -> Bracket:
    """Smallest accepted T in [lower, upper] [s], to T_hi - T_lo <= 1e-12 T_hi (at most 200
    steps). ``upper`` is first widened (doubling its distance to ``lower``) until accepted.
    The bracket checks run without a time limit, so there is always a point."""
    chosen = check(lower, None)
    if chosen is not None:
        return Bracket(lower, lower, chosen, False, [])
    chosen = check(upper, None)
    for _ in range(MAX_WIDENINGS):
        if chosen is not None:
            break
        upper = lower + 2.0 * (upper - lower)
        chosen = check(upper, None)
    if chosen is None:
        raise RuntimeError(f"no accepted makespan found up to {upper!r} s")
    rows: list[dict] = []
    while upper - lower > TOLERANCE * upper and len(rows) < MAX_BISECTIONS:
        middle = 0.5 * (lower + upper)
        if middle <= lower or middle >= upper:
            break
        try:
            if deadline.expired:
                raise OutOfTime("deadline")
            found = check(middle, deadline.remaining)
        except OutOfTime:
            return Bracket(lower, upper, chosen, True, rows)
        if found is not None:
            upper, chosen = middle, found
        else:
            lower = middle
        rows.append({"iteration": len(rows) + 1, "T_lower_s": lower, "T_upper_s": upper,
                     "accepted": found is not None})
    return Bracket(lower, upper, chosen, False, rows)


def _finish(model: EdgeSplitModel, method: str, started: float, bracket: Bracket, status: Status,
            bound_per_round: float | None) -> Result:
    """Polish the cuts chosen at T_hi (exact resources) and assemble the Result."""
    cuts = model.options.cuts[bracket.chosen]
    _, _, bandwidth, shares = allocate_for_cuts(model, cuts)
    return make_result(
        model, method, status, cuts, bandwidth, shares,
        bound_per_round=bound_per_round,
        solver="highs",
        solver_version=highs_version(),
        solve_s=time.perf_counter() - started,
        trace=pd.DataFrame(bracket.rows, columns=TRACE_COLUMNS),
        termination="time_limit" if bracket.timed_out else "converged",
    )


def solve_bisection_mckp(
    model: EdgeSplitModel, *, backend: str | None = None, time_limit: float | None = None,
    seed: int | None = None,
) -> Result:
    """Exact J in dedicated mode (§5.3(c)): the bisection of §5.1 with a HiGHS MCKP check.

    Bracket T_lo = max_i min_c A' and T_hi = the equal-bandwidth makespan, as ``bisection``.
    ``time_limit`` [s] stops the bisection (status ``time_limit``; the bound R*T_lo stays
    valid); ``seed`` is HiGHS's random seed.
    """
    deadline = Deadline(time_limit)
    started = time.perf_counter()
    n = model.n_devices

    def check(T: float, limit: float | None) -> np.ndarray | None:
        columns = dedicated_columns(model, T)
        picked = choose_columns(columns, n, columns.p, [], limit, seed)
        if picked is None or not within_budgets(columns, picked):
            return None
        return columns.option[picked]

    fixed = np.where(model.options.feasible, model.options.dedicated_s, np.inf)
    lower = float(fixed.min(axis=1).max())
    bracket = bisect(check, lower, equal_bandwidth_makespan(model), deadline)
    status = Status.TIME_LIMIT if bracket.timed_out else Status.OPTIMAL
    return _finish(model, "bisection_mckp", started, bracket, status, bound_per_round=bracket.lower)


def solve_bisection_mckp_grid(
    model: EdgeSplitModel, *, backend: str | None = None, time_limit: float | None = None,
    seed: int | None = None, grid: int = 16,
) -> Result:
    """Shared mode: an upper bound on J from the slack-split restriction with ``grid`` = Q
    splits (§5.3(c)), polished; status ``feasible`` (``time_limit`` if stopped), no bound.

    Bracket T_lo = max_i min_c A and T_hi = the equal-split makespan max_i min_c (A + N d + N e),
    widened until the restriction accepts it.
    """
    if isinstance(grid, bool) or int(grid) != grid or grid < 2:
        raise ValueError(f"grid = {grid!r}: must be an integer >= 2")
    deadline = Deadline(time_limit)
    started = time.perf_counter()
    table = model.options
    n = model.n_devices

    def check(T: float, limit: float | None) -> np.ndarray | None:
        columns = shared_columns(model, T, int(grid))
        cost = np.zeros(len(columns.p))
        picked = choose_columns(columns, n, cost, [columns.p, columns.q], limit, seed)
        if picked is None or not within_budgets(columns, picked):
            return None
        return columns.option[picked]

    fixed = np.where(table.feasible, table.device_s, np.inf)
    need = table.bandwidth_seconds / model.instance.bandwidth_hz + table.server_s
    equal_split = np.where(table.feasible, table.device_s + n * need, np.inf)
    lower, upper = float(fixed.min(axis=1).max()), float(equal_split.min(axis=1).max())
    bracket = bisect(check, lower, upper, deadline)
    status = Status.TIME_LIMIT if bracket.timed_out else Status.FEASIBLE
    return _finish(model, "bisection_mckp_grid", started, bracket, status, bound_per_round=None)
