"""The knapsack of spec §5.1 at a fixed latency T, decided through its Lagrangian dual.

At a latency T every device k picks one column o: 'none' (o = 0: cost 0, gain 0) or option
n = o with cost c_k,o = b-hat_k,n(T) / B (+inf when out of reach or above B) and gain
g_k,o = p_k rho_n (minus N's coefficient / G^2 with ``include_noise_in_budget``). A choice
x fits when

    sum_k c_k,x_k <= capacity,   sum_k g_k,x_k >= required,   sum_k [x_k > 0] >= least,

with capacity 1 (a choice fits at T iff its equalised latency is at most T) and the
coverage margin of :func:`bisection_mckp.choose`. For multipliers
lam (coverage) and mu (count) >= 0 the dual function

    d(lam, mu) = lam required + mu least + sum_k min_o (c_k,o - lam g_k,o - mu [o > 0])

is at most sum_k c_k,x_k for every x meeting the coverage and count rows (weak duality);
its maximum is the LP relaxation of the knapsack, which is also the exponential-cone
relaxation of spec §5.4 at T (the perspective of the rate is exact for fixed y).

:func:`decide` answers "does some choice fit?" exactly, cheapest step first:

1. *Dual proof.* If d(lam, mu) > capacity + :data:`PROOF_MARGIN`, nothing fits. Cost:
   O(K L) per dual evaluation, about 60 evaluations per maximisation.
2. *Dual point.* The per-device minimisers at the multipliers that meet the coverage row
   are a choice; if it fits, it is the answer.
3. *Reduced-cost fixing.* A column whose reduced cost exceeds its device's least by more
   than capacity - d (+ :data:`FIX_MARGIN`) belongs to no fitting choice; it is dropped.
   Devices left with one column are fixed; HiGHS decides the knapsack over the others
   (usually a handful) with the fixed devices' totals moved to the row bounds.

The margins only ever weaken a proof or a fixing, so "nothing fits" is proven for
capacity 1 exactly (up to float rounding of sums), except when the last step falls back to
HiGHS, whose row is tightened by twice its feasibility tolerance (1e-9) so that its points
fit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgeopt.models.tinyfel import TinyFELModel
from edgeopt.solvers.highs_choice import INFINITY, chosen_columns, solve_choice

PROOF_MARGIN = 1e-9
"""Least excess of the dual value over the capacity [fraction of B] that proves infeasibility."""

FIX_MARGIN = 1e-9
"""Slack [fraction of B] added to the reduced-cost threshold before a column is dropped."""

BISECTIONS = 200
"""Cap on the bisection and doubling steps of one multiplier (float precision comes first)."""

ALTERNATIONS = 4
"""Rounds of alternating lam and mu maximisation when the count row binds."""


@dataclass(frozen=True)
class Knapsack:
    """The knapsack at one latency: ``cost`` and ``gain`` are (K, L + 1) with column 0 =
    'none'; ``cost`` is +inf for unusable columns; the rows are sum cost <= ``capacity``,
    sum gain >= ``required`` (``-inf``: no coverage row), selected count >= ``least``."""

    cost: np.ndarray
    gain: np.ndarray
    capacity: float
    required: float
    least: int

    @property
    def usable(self) -> np.ndarray:
        return np.isfinite(self.cost)

    def reduced(self, lam: float, mu: float) -> np.ndarray:
        """c - lam g - mu [o > 0], +inf on unusable columns."""
        value = self.cost - lam * self.gain
        value[:, 1:] -= mu
        return value

    def fits(self, columns: np.ndarray) -> bool:
        """Whether one column per device meets all three rows."""
        rows = np.arange(len(columns))
        cost = self.cost[rows, columns]
        if not np.isfinite(cost).all():
            return False
        return (
            math.fsum(cost) <= self.capacity
            and math.fsum(self.gain[rows, columns]) >= self.required
            and int((columns > 0).sum()) >= self.least
        )


def knapsack(model: TinyFELModel, bandwidth_hz: np.ndarray, capacity: float,
             coverage_margin: float) -> Knapsack:
    """The knapsack for option bandwidths ``bandwidth_hz`` [Hz], (K, L) (+inf: unusable),
    with the instance's budget row tightened by ``coverage_margin`` [unit of G^2 / G^2]."""
    table, inst = model.options, model.instance
    budget = inst.bandwidth_hz
    K = bandwidth_hz.shape[0]
    usable = np.isfinite(bandwidth_hz) & (bandwidth_hz <= budget)
    cost = np.hstack([np.zeros((K, 1)), np.where(usable, bandwidth_hz / budget, np.inf)])
    grad_total = table.grad_sq.sum()
    gain = np.broadcast_to(table.weights[:, None] * table.ratio[None, :], usable.shape)
    required = 1.0 - inst.bias_budget / grad_total
    if inst.include_noise_in_budget:
        gain = gain - (table.noise_coeff / grad_total)[:, None]
        required += table.noise_const / grad_total
    gain = np.hstack([np.zeros((K, 1)), gain])
    required = required + coverage_margin if math.isfinite(inst.bias_budget) else -math.inf
    return Knapsack(cost, gain, capacity, required, inst.min_selected)


@dataclass(frozen=True)
class Dual:
    """A dual point: ``value`` = d(lam, mu) [fraction of B] (+inf: no choice meets the
    coverage and count rows at all), and the minimising column per device at these
    multipliers, chosen to meet the coverage row when any choice can (``columns``)."""

    value: float
    lam: float
    mu: float
    columns: np.ndarray


def dual_value(ks: Knapsack, lam: float, mu: float) -> tuple[float, np.ndarray]:
    """d(lam, mu) [fraction of B] and the minimising column per device (first on ties)."""
    values = ks.reduced(lam, mu)
    columns = np.argmin(values, axis=1)
    least = values[np.arange(len(columns)), columns]
    coverage = lam * ks.required if lam > 0 else 0.0
    return float(least.sum()) + coverage + mu * ks.least, columns


def _least_meeting(meets: Callable[[float], bool]) -> tuple[float, float] | None:
    """(t_low, t_high) bracketing the least multiplier t >= 0 at which ``meets(t)`` holds
    (it holds at t_high), by doubling and bisection; ``None`` if no t does."""
    if meets(0.0):
        return 0.0, 0.0
    low, high = 0.0, 1.0
    for _ in range(BISECTIONS):
        if meets(high):
            break
        low, high = high, 2.0 * high
    else:
        return None
    for _ in range(BISECTIONS):
        middle = 0.5 * (low + high)
        if not low < middle < high:
            break
        low, high = (low, middle) if meets(middle) else (middle, high)
    return low, high


def maximise(ks: Knapsack) -> Dual:
    """Maximise d over lam, then over mu when the minimisers select fewer than ``least``
    devices, alternating (d is concave and piecewise linear in each multiplier, and the
    coverage and count of the minimisers grow with it: bisection on that supergradient).
    ``value`` is d at the best end of the last brackets; ``columns`` are the minimisers at
    the upper ends, which meet the coverage row."""
    K = ks.cost.shape[0]
    hopeless = Dual(math.inf, 0.0, 0.0, np.zeros(K, dtype=int))
    if int(ks.usable[:, 1:].any(axis=1).sum()) < ks.least:
        return hopeless
    rows = np.arange(K)
    lam = lam_up = mu = mu_up = 0.0
    for _ in range(ALTERNATIONS):
        if math.isfinite(ks.required):
            found = _least_meeting(
                lambda t, mu=mu_up: ks.gain[rows, dual_value(ks, t, mu)[1]].sum() >= ks.required)
            if found is None:
                return hopeless
            lam, lam_up = _better(ks, found, lambda t, mu=mu_up: (t, mu)), found[1]
        if int((dual_value(ks, lam_up, mu_up)[1] > 0).sum()) >= ks.least:
            break
        found = _least_meeting(
            lambda t, lam=lam_up: int((dual_value(ks, lam, t)[1] > 0).sum()) >= ks.least)
        if found is None:
            return hopeless
        mu, mu_up = _better(ks, found, lambda t, lam=lam_up: (lam, t)), found[1]
    low = dual_value(ks, lam, mu)[0]
    high, columns = dual_value(ks, lam_up, mu_up)
    if low > high:
        return Dual(low, lam, mu, columns)
    return Dual(high, lam_up, mu_up, columns)


def _better(ks: Knapsack, bracket: tuple[float, float],
            pair: Callable[[float], tuple[float, float]]) -> float:
    """The end of ``bracket`` with the larger dual value."""
    low, high = bracket
    return low if dual_value(ks, *pair(low))[0] > dual_value(ks, *pair(high))[0] else high


def proves_infeasible(ks: Knapsack, dual: Dual) -> bool:
    """Whether the dual value shows that no choice fits."""
    return dual.value > ks.capacity + PROOF_MARGIN


def kept_columns(ks: Knapsack, dual: Dual) -> np.ndarray:
    """Reduced-cost fixing: the usable columns that can belong to a fitting choice."""
    values = ks.reduced(dual.lam, dual.mu)
    least = values.min(axis=1, keepdims=True)
    room = ks.capacity - dual.value + FIX_MARGIN
    return ks.usable & (values - least <= room)


def decide(ks: Knapsack, highs_options: dict[str, float], exact: bool = True
           ) -> np.ndarray | None:
    """A column per device that fits, or ``None`` when none does (module docstring).
    ``exact=False`` stops after the beam pass of :func:`frontier_search`: ``None`` then
    proves nothing (a heuristic's check)."""
    dual = maximise(ks)
    if proves_infeasible(ks, dual):
        return None
    if ks.fits(dual.columns):
        return dual.columns
    keep = kept_columns(ks, dual)
    per_device = keep.sum(axis=1)
    if (per_device == 0).any():
        return None
    fixed = per_device == 1
    columns = np.where(fixed, np.argmax(keep, axis=1), 0)
    free = np.flatnonzero(~fixed)
    if free.size == 0:
        return columns if ks.fits(columns) else None
    if int((columns[fixed] > 0).sum()) >= ks.least:  # the count row holds whatever the rest
        found = frontier_search(ks, dual, keep, columns, free,
                                beam=BEAM if exact else HEURISTIC_BEAM)
        if found is not None or not exact:
            return found
        try:
            return frontier_search(ks, dual, keep, columns, free)
        except FrontierTooLarge:
            pass
    if not exact:
        return None
    return _highs_over_free(ks, keep, columns, free, highs_options)


MAX_STATES = 2_000_000
"""States of :func:`frontier_search` beyond which it hands the knapsack to HiGHS."""

BEAM = 2048
"""States kept per device by the first, inexact pass of :func:`frontier_search` (the
smallest reduced-cost excesses): when a fitting choice exists it usually finds one at
once, where the exact frontier can grow large; when it finds none the exact pass decides."""

HEURISTIC_BEAM = 16
"""The beam of :func:`decide` with ``exact=False`` (a heuristic's check)."""


def frontier_search(
    ks: Knapsack, dual: Dual, keep: np.ndarray, columns: np.ndarray, free: np.ndarray,
    beam: int | None = None,
) -> np.ndarray | None:
    """Exact search over the free devices (the fixed ones already in ``columns``): dynamic
    programming over partial choices, device by device, keeping only the Pareto frontier of
    (cost, coverage) sums (a partial choice with no less cost and no more coverage than
    another cannot complete better) and dropping a partial choice when

    * its reduced-cost excess sum_k (r_k,x_k - min_o r_k,o) exceeds capacity - d (+
      :data:`FIX_MARGIN`): every completion then costs more than the capacity (weak duality);
    * its cost plus the least cost of the remaining devices exceeds the capacity, or its
      coverage plus their largest coverage misses the row.

    Returns a fitting choice or ``None`` (none exists); the count row must already hold.
    With ``beam``, only that many partial choices with the least excess are kept per
    device: a returned choice fits, but ``None`` proves nothing."""
    values = ks.reduced(dual.lam, dual.mu)
    excess_all = values - values.min(axis=1, keepdims=True)
    room = ks.capacity - dual.value + FIX_MARGIN
    fixed = np.setdiff1d(np.arange(len(columns)), free)
    cost = np.array([math.fsum(ks.cost[fixed, columns[fixed]])])
    gain = np.array([math.fsum(ks.gain[fixed, columns[fixed]])])
    excess = np.zeros(1)
    order = free[np.argsort(-np.where(keep[free], excess_all[free], 0.0).max(axis=1),
                            kind="stable")]
    kept_cost = np.where(keep, ks.cost, np.inf)
    kept_gain = np.where(keep, ks.gain, -np.inf)
    cheapest_after = np.append(np.cumsum(kept_cost[order].min(axis=1)[::-1])[::-1], 0.0)[1:]
    richest_after = np.append(np.cumsum(kept_gain[order].max(axis=1)[::-1])[::-1], 0.0)[1:]
    parents, picks = [], []
    for depth, k in enumerate(order):
        options = np.flatnonzero(keep[k])
        new_cost = (cost[:, None] + ks.cost[k, options][None, :]).ravel()
        new_gain = (gain[:, None] + ks.gain[k, options][None, :]).ravel()
        new_excess = (excess[:, None] + excess_all[k, options][None, :]).ravel()
        parent = np.repeat(np.arange(cost.size), options.size)
        pick = np.tile(options, cost.size)
        alive = (
            (new_excess <= room)
            & (new_cost + cheapest_after[depth] <= ks.capacity)
            & (new_gain + richest_after[depth] >= ks.required)
        )
        index = np.flatnonzero(alive)
        if index.size == 0:
            return None
        ranked = index[np.lexsort((-new_gain[index], new_cost[index]))]
        best_before = np.maximum.accumulate(np.concatenate([[-np.inf], new_gain[ranked][:-1]]))
        ranked = ranked[new_gain[ranked] > best_before]
        if beam is not None and ranked.size > beam:
            ranked = ranked[np.argpartition(new_excess[ranked], beam)[:beam]]
        if ranked.size > MAX_STATES:
            raise FrontierTooLarge(ranked.size)
        cost, gain, excess = new_cost[ranked], new_gain[ranked], new_excess[ranked]
        parents.append(parent[ranked])
        picks.append(pick[ranked])
    final = np.flatnonzero((cost <= ks.capacity) & (gain >= ks.required))
    if final.size == 0:
        return None
    for state in final[np.argsort(cost[final], kind="stable")]:
        chosen = columns.copy()
        for depth in range(len(order) - 1, -1, -1):
            chosen[order[depth]] = picks[depth][state]
            state = parents[depth][state]
        if ks.fits(chosen):  # the exact sums agree with the running ones but for rounding
            return chosen
    return None


class FrontierTooLarge(RuntimeError):
    """The frontier of :func:`frontier_search` outgrew :data:`MAX_STATES`."""


def _highs_over_free(
    ks: Knapsack, keep: np.ndarray, columns: np.ndarray, free: np.ndarray,
    highs_options: dict[str, float],
) -> np.ndarray | None:
    """HiGHS over the free devices' kept columns, the fixed devices' totals moved to the row
    bounds."""
    fixed = np.setdiff1d(np.arange(len(columns)), free)
    cost_fixed = math.fsum(ks.cost[fixed, columns[fixed]])
    gain_fixed = math.fsum(ks.gain[fixed, columns[fixed]])
    count_fixed = int((columns[fixed] > 0).sum())
    device, option = np.nonzero(keep[free])
    cost = ks.cost[free[device], option]
    gain = ks.gain[free[device], option]
    on = (option > 0).astype(float)
    rows, lower = [cost, on], [-INFINITY, float(ks.least - count_fixed)]
    upper = [ks.capacity - 2.0 * highs_options["mip_feasibility_tolerance"] - cost_fixed,
             INFINITY]  # a point HiGHS accepts within its tolerance still fits
    settings = dict(highs_options)
    if math.isfinite(ks.required):
        rows.append(gain)
        lower.append(ks.required - gain_fixed)
        upper.append(INFINITY)
        weights = -gain
        settings["objective_bound"] = (-(ks.required - gain_fixed)
                                       + highs_options["mip_feasibility_tolerance"])
    else:
        weights = cost
    x = solve_choice(device, free.size, weights, rows, lower, upper, options=settings,
                     first_found=True)
    if x is None:
        return None
    chosen = columns.copy()
    chosen[free] = option[chosen_columns(device, free.size, x)]
    return chosen
