"""``bisection_lagrangian``: the exact method for shared-server EdgeSplit (two coupled
budgets, the band B and the server's F), also exact in dedicated mode.

1. *Lower bound.* The two-resource Lagrangian of :mod:`pricing` separates by device: at
   prices (theta, 1 - theta) on (bandwidth, server) each device takes its cheapest cut in
   closed form, and tau(theta), the least makespan at which these cheapest choices fit the
   priced budget, is a certified lower bound. Its maximum over theta (golden-section search)
   is the convex-hull relaxation's makespan T_lo.
2. *Incumbent.* The cheapest cuts at prices next to the best theta, with resources
   allocated exactly (spec §5.3(d)): at the relaxation's optimum at most two devices mix
   two options, so one of these roundings is usually optimal.
3. *Proof.* Search for cuts that fit at T_probe = T_best (1 - gap) with
   :func:`pricing_search.search_fit` (Lagrangian proof, reduced-cost fixing, then a small
   branch and bound over the devices left free). Cuts found improve the incumbent and the
   search repeats; when none exist, T_probe is the certified bound and the incumbent is
   optimal within ``gap``.

Cost, with N devices and K <= |C| undominated cuts each: each tau(theta) is a safeguarded
Newton root in T at O(N K) per step (a handful of steps, warm-started), and the bound takes
about 45 of them (9 scanned prices, golden section to 1e-10 in theta), so
O(N K log(1/eps)) overall; each incumbent costs O(N log(1/eps)) (bisection on the closed-form
check); each search costs O(N K G) for the Lagrangian proof and the fixing on G ~ 100 grid
prices, plus O(F K G) per node for the F free devices. On random fleets the relaxation is
tight and F is small (often 0), so the whole solve is O(N K (log(1/eps) + G)); the branch
and bound is exponential in F in the worst case, which is what ``time_limit`` is for.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from edgeopt.models.edgesplit import EdgeSplitModel
from edgeopt.solvers.common.deadline import Deadline
from edgeopt.solvers.edgesplit.common import make_result
from edgeopt.solvers.edgesplit.pricing import (
    PricedOptions,
    equal_split_makespan,
    fixed_makespan,
    price,
    relaxation_bound,
    swap_path,
)
from edgeopt.solvers.edgesplit.pricing_search import search_fit
from edgeopt.solvers.edgesplit.resources import allocate_for_cuts
from edgeopt.solvers.result import Result, Status

DEFAULT_GAP = 1e-9
"""Relative gap at which the search stops: the incumbent is proven within it [-]."""

MIN_GAP = 1e-12
"""Smallest accepted ``gap``: well above the float error of the closed-form checks."""

PROOF_MARGIN = 1e-11
"""The reported bound is T_probe (1 - PROOF_MARGIN): the grid tests' rounding margin."""

ROUNDING_OFFSETS = (1e-9, 1e-6, 1e-3)
"""Rounding: the cheapest cuts at prices theta* - offset and theta* + offset, and every choice
on the path that switches the devices where they differ one at a time, are incumbents."""

TRACE_COLUMNS = ["stage", "T_lower_s", "T_upper_s", "free_devices", "nodes"]


def solve_bisection_lagrangian(
    model: EdgeSplitModel,
    *,
    backend: str | None = None,
    time_limit: float | None = None,
    seed: int | None = None,
    gap: float = DEFAULT_GAP,
) -> Result:
    """Exact minimum of J = R T with a certified bound (both server modes).

    ``gap`` is the relative gap (T_best - bound)/T_best at which the proof stops (default
    1e-9); ``time_limit`` [s] returns the incumbent, the best proven bound and status
    ``time_limit``.
    """
    if not MIN_GAP <= gap < 1e-3:
        raise ValueError(f"gap = {gap!r}: must be >= {MIN_GAP:g} and < 1e-3 (a relative optimality gap)")
    deadline = Deadline(time_limit)
    started = time.perf_counter()
    options = PricedOptions.from_model(model)
    state = _Incumbent(options)
    build_s = time.perf_counter() - started
    trace = [("equal split", state.bound, state.makespan, None, None)]

    status = Status.TIME_LIMIT
    if state.makespan == 0:
        status = Status.OPTIMAL
    elif not deadline.expired:
        relaxed = relaxation_bound(options, state.equal_split, deadline)
        state.bound = max(state.bound, relaxed.lower)
        _round(options, state, relaxed.theta, relaxed.upper)
        trace.append(("relaxation + rounding", state.bound, state.makespan, None, None))
        status = _prove(options, state, relaxed.theta, gap, deadline, trace)

    cuts = options.cuts(model, state.index)
    _, makespan, bandwidth, shares = allocate_for_cuts(model, cuts)
    return make_result(
        model,
        "bisection_lagrangian",
        status,
        cuts,
        bandwidth,
        shares,
        bound_per_round=min(state.bound, makespan),
        build_s=build_s,
        solve_s=time.perf_counter() - started - build_s,
        trace=pd.DataFrame(trace, columns=TRACE_COLUMNS),
        termination="optimal" if status is Status.OPTIMAL else "time_limit",
    )


class _Incumbent:
    """The best cuts found (option index per device), their makespan and the proven bound
    [s]. Starts from the equal-split cuts (each device's fastest cut with B/N and F/N)."""

    def __init__(self, options: PricedOptions):
        self.options = options
        equal = options.device_s + options.n_devices * (options.comm_s + options.server_s)
        index = np.argmin(equal, axis=1)
        self.equal_split = equal_split_makespan(options, index)
        self.bound = options.floor()
        self.index = index
        self.makespan = fixed_makespan(options, index)

    def offer(self, index: np.ndarray, makespan: float | None = None) -> bool:
        """Keep ``index`` if its exact makespan [s] (computed unless given) beats the incumbent's."""
        if makespan is None:
            makespan = fixed_makespan(self.options, index)
        if makespan < self.makespan:
            self.index, self.makespan = index, makespan
            return True
        return False

    @property
    def gap(self) -> float:
        return (self.makespan - self.bound) / self.makespan


def _round(options: PricedOptions, state: _Incumbent, theta: float, T: float) -> None:
    """Offer the roundings of the relaxation at its best price ``theta`` and makespan T [s]:
    at most two devices (or groups of identical devices) mix two cuts there, and the cheapest
    cuts just left and right of theta hold the two sides of each mixture."""
    x, y, z, usable = options.vectors(T)
    at_theta = np.where(usable, price(theta, x, y, z), np.inf)
    for offset in ROUNDING_OFFSETS:
        left = options.cheapest(max(0.0, theta - offset), T)
        right = options.cheapest(min(1.0, theta + offset), T)
        moving = np.flatnonzero(left != right)
        order = moving[np.argsort(at_theta[moving, right[moving]] - at_theta[moving, left[moving]], kind="stable")]
        switched, makespan = swap_path(options, left, right, order)
        index = left.copy()
        index[order[:switched]] = right[order[:switched]]
        state.offer(index, makespan)


def _prove(options: PricedOptions, state: _Incumbent, theta: float, gap: float, deadline, trace) -> Status:
    """Search below the incumbent until nothing fits within ``gap``; OPTIMAL or TIME_LIMIT."""
    while state.gap > gap:
        if deadline.expired:
            return Status.TIME_LIMIT
        probe = state.makespan * (1.0 - gap)
        outcome = search_fit(options, probe, theta, deadline)
        row = (outcome.free_devices, outcome.nodes)
        if outcome.index is not None:
            if not state.offer(outcome.index):
                raise RuntimeError("bisection_lagrangian: a choice that fits did not improve the incumbent")
            trace.append(("improved", state.bound, state.makespan, *row))
        elif outcome.complete:
            state.bound = max(state.bound, probe * (1.0 - PROOF_MARGIN))
            trace.append(("proof", state.bound, state.makespan, *row))
            return Status.OPTIMAL
        else:
            trace.append(("stopped", state.bound, state.makespan, *row))
            return Status.TIME_LIMIT
    return Status.OPTIMAL
