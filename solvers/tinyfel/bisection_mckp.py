"""``bisection_mckp``: exact P1 by bisection on the latency T with a multiple-choice
knapsack check per step (spec §5.1).

At a fixed T every device picks one column: "none" (b = 0, no coverage) or an option n
whose minimum bandwidth b-hat_k,n(T) (Lambert W, rate cap, energy minimum) is finite and at
most B. A choice fits when

    sum_o y_k,o = 1 for all k;   sum c y <= 1 (c = b-hat/B);   sum g y >= 1 - eps0/G^2;
    sum_{k, o != none} y_k,o >= K_min,

with g = p_k rho_n (minus N's coefficient / G^2 with ``include_noise_in_budget``, whose
constant then moves to the right-hand side). Each check is decided by
:mod:`~edgeopt.solvers.tinyfel.lagrangian`: the Lagrangian dual proves most latencies
infeasible outright, its minimisers answer most feasible ones, and reduced-cost fixing
leaves a handful of free devices for an exact frontier search (HiGHS when that frontier
grows too large). :func:`choose` is the same knapsack as one HiGHS MILP (used by the P2
sweep, the baselines and the starts of other methods).

Feasibility is monotone in T (b-hat does not increase). T_lo is the last latency the dual
proves infeasible (the LP relaxation's latency, bisected to :data:`TOLERANCE`); T_hi is the
first latency above it, in growing steps, with a fitting choice; then halving steps
alternate with probes just below T_hi (T_hi drops to the equalised latency of every choice
found) until T_hi - T_lo <= 1e-10 T_hi. The options accepted at T_hi are polished by
:func:`equalise`; ``objective`` = T_pol + T_dl, ``bound`` = T_lo + T_dl.

Decision the spec leaves open: the evaluator checks the bias budget with no tolerance, so
the coverage row is tightened by :data:`COVERAGE_MARGIN` (unit of G^2); configurations
within that margin of the budget count as infeasible. Before bisecting, the check is run at
T = inf (energy minima only): if nothing fits the instance is reported infeasible
(``bandwidth``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from edgeopt.models.tinyfel import TinyFELModel
from edgeopt.solvers.common.deadline import Deadline
from edgeopt.solvers.highs_choice import INFINITY, chosen_columns, highs_version, solve_choice
from edgeopt.solvers.result import Result, Status
from edgeopt.solvers.tinyfel import lagrangian
from edgeopt.solvers.tinyfel.common import equalise, finish_times, infeasible_result, make_result

TOLERANCE = 1e-10
"""Stop when T_hi - T_lo <= TOLERANCE * T_hi (spec §5.1)."""

COVERAGE_MARGIN = 1e-8
"""Tightening of the coverage row [unit of G^2] so that HiGHS's points meet the budget exactly."""

HIGHS_TOLERANCE = 1e-9
"""HiGHS primal and MIP feasibility tolerance."""

BANDWIDTH_MARGIN = 2 * HIGHS_TOLERANCE
"""Tightening of the bandwidth row [fraction of B]: a choice HiGHS accepts within its
tolerance still fits B when equalised."""

HIGHS_SETTINGS = {"primal_feasibility_tolerance": HIGHS_TOLERANCE,
                  "mip_feasibility_tolerance": HIGHS_TOLERANCE}
"""HiGHS options of every knapsack solve."""

STEP_ABOVE_RELAXATION = 1e-7
"""First relative step above the relaxation's latency when looking for an accepted T
(the steps grow fourfold)."""

MAX_WIDENINGS = 200
"""Doublings of T_hi before giving up (the instance is feasible at T = inf)."""

MIN_UPPER_S = 1e-9
"""Least first T_hi [s] (only reached when every compute time is 0)."""

TRACE_COLUMNS = ["iteration", "T_lower_s", "T_upper_s", "accepted"]

Choice = tuple[np.ndarray, np.ndarray]
"""(selected a_k as booleans, updated layers n_k with 0 when unselected)."""


def unsupported(model: TinyFELModel) -> str | None:
    """Why the linear MCKP does not model this instance (``None`` when it does)."""
    inst = model.instance
    if model.total_latency:
        return "solves P1 (objective 'round_latency'); P2 needs pareto_sweep"
    if inst.aggregation != "unnormalised":
        return "the normalised aggregation has a non-linear bias bound (spec §9)"
    if inst.bias_form != "linear":
        return "the quadratic bias form is not linear (spec §5.1: use minlp_perspective)"
    return None


def choose(
    model: TinyFELModel,
    bandwidth_hz: np.ndarray,
    count: tuple[int, int] | None = None,
    *,
    bias_limit: float | None = None,
    include_noise: bool | None = None,
    margin: float = COVERAGE_MARGIN,
    objective: str = "bandwidth",
) -> Choice | None:
    """Solve the MCKP for option bandwidths ``bandwidth_hz`` [Hz], (K, L), +inf for options
    that cannot be used; ``count`` = (least, most) selected devices (default (K_min, K)).

    The coverage row is Phi [+ N] <= ``bias_limit`` [unit of G^2] (default: the instance's
    epsilon0; ``math.inf``: no coverage row), tightened by ``margin`` [unit of G^2];
    ``include_noise`` (default: the instance's ``include_noise_in_budget``) adds N(a).
    ``objective`` is 'bandwidth' (least sum b-hat / B: the answer with most slack), 'bias'
    (least Phi + N, the noise always counted: the pareto sweep's step) or 'feasible' (any
    point: HiGHS maximises coverage, prunes every node whose coverage bound misses the
    budget and stops at the first point; proving "none" is the bisection's costly step).

    Returns the cheapest (a, n) meeting the bandwidth, coverage and count rows, or ``None``.
    """
    table, inst = model.options, model.instance
    budget = inst.bandwidth_hz
    K, L = bandwidth_hz.shape
    least, most = count if count is not None else (inst.min_selected, K)
    limit = inst.bias_budget if bias_limit is None else bias_limit
    noisy = inst.include_noise_in_budget if include_noise is None else include_noise
    device, option = np.nonzero(np.isfinite(bandwidth_hz) & (bandwidth_hz <= budget))
    device = np.concatenate([np.arange(K), device])  # the "none" columns come first
    option = np.concatenate([np.zeros(K, dtype=int), option + 1])
    on = option > 0
    grad_total = table.grad_sq.sum()
    cost = np.where(on, bandwidth_hz[device, np.maximum(option, 1) - 1] / budget, 0.0)
    gain = np.where(on, table.weights[device] * table.ratio[np.maximum(option, 1) - 1], 0.0)
    required = 1.0 - limit / grad_total
    if noisy:
        gain = gain - np.where(on, table.noise_coeff[device] / grad_total, 0.0)
        required += table.noise_const / grad_total
    rows, lower = [cost, on.astype(float)], [-INFINITY, float(least)]
    upper = [1.0 - BANDWIDTH_MARGIN, float(most)]
    if math.isfinite(limit):
        rows.append(gain)
        lower.append(required + margin)
        upper.append(INFINITY)
    if objective == "bias":
        if not noisy:
            gain = gain - np.where(on, table.noise_coeff[device] / grad_total, 0.0)
        weights = -gain
    elif objective == "bandwidth" or (objective == "feasible" and not math.isfinite(limit)):
        weights = cost
    elif objective == "feasible":
        weights = -gain
    else:
        raise ValueError(f"objective = {objective!r}: must be 'bandwidth', 'bias' or 'feasible'")
    settings = dict(HIGHS_SETTINGS)
    first_found = objective == "feasible"
    if first_found and math.isfinite(limit):
        settings["objective_bound"] = -(required + margin) + HIGHS_TOLERANCE
    x = solve_choice(device, K, weights, rows, lower, upper, options=settings,
                     first_found=first_found)
    if x is None:
        return None
    pick = chosen_columns(device, K, x)
    return on[pick], option[pick]


def energy_only(model: TinyFELModel) -> np.ndarray:
    """b-hat at T = inf [Hz], (K, L): the energy minimum bandwidths of available options."""
    table = model.options
    return np.where(table.available, table.energy_bandwidth_hz, np.inf)


@dataclass
class Bisection:
    """Where a bisection on T stopped: infeasible at ``lower`` [s] (or ``lower`` = 0),
    ``accepted`` = the options found at ``upper`` [s], one trace row per step."""

    lower: float
    upper: float
    accepted: Choice
    rows: list[dict] = field(default_factory=list)
    timed_out: bool = False
    from_heuristic: bool = False


def bracket(model: TinyFELModel, check: Callable[[float], Choice | None]) -> Bisection:
    """T_lo = 0 (accepted there: done), else T_hi doubled from max_k Tcmp_k,n_min until
    ``check`` accepts; raises if it never does (call only when T = inf is feasible)."""
    accepted = check(0.0)
    if accepted is not None:
        return Bisection(0.0, 0.0, accepted)
    table, n_min = model.options, model.instance.min_updated_layers
    lower, upper = 0.0, max(float(table.compute_s[:, n_min - 1].max()), MIN_UPPER_S)
    for _ in range(MAX_WIDENINGS):
        accepted = check(upper)
        if accepted is not None:
            return Bisection(lower, upper, accepted)
        lower, upper = upper, 2.0 * upper
    raise RuntimeError(f"no accepted latency found up to {upper!r} s")


def bisect(
    start: Bisection,
    check: Callable[[float], Choice | None],
    deadline: Deadline | None = None,
    achieved: Callable[[Choice], float | None] | None = None,
) -> Bisection:
    """Bisect from ``start`` (infeasible at ``lower``, ``accepted`` at ``upper``) until
    T_hi - T_lo <= TOLERANCE T_hi or ``deadline`` expires (``timed_out``).

    ``achieved(choice)`` [s]: the latency an accepted choice reaches once its bandwidths are
    equalised (<= the T it was accepted at, >= T*). With it, T_hi drops to that latency and
    halving steps alternate with probes just below T_hi (T_hi (1 - TOLERANCE/2)): an
    infeasible probe ends the search at once, a feasible one is a strictly better choice.
    Proving infeasibility close to T* is what costs HiGHS time; the probes need one such
    proof where halving needs about log2(gap / TOLERANCE).
    """
    lower, upper, accepted, rows = start.lower, start.upper, start.accepted, list(start.rows)
    probe = achieved is not None and start.from_heuristic
    while upper - lower > TOLERANCE * upper:
        if deadline is not None and deadline.expired:
            return Bisection(lower, upper, accepted, rows, timed_out=True)
        middle = upper * (1.0 - 0.5 * TOLERANCE) if probe else 0.5 * (lower + upper)
        found = check(middle)
        if found is not None:
            reached = achieved(found) if achieved is not None else None
            upper, accepted = middle, found
            if reached is not None and lower < reached < middle:
                upper = reached
        else:
            lower = middle
        probe = achieved is not None and not probe
        rows.append(
            {"iteration": len(rows) + 1, "T_lower_s": lower, "T_upper_s": upper,
             "accepted": found is not None}
        )
    return Bisection(lower, upper, accepted, rows)


def checker(model: TinyFELModel, exact: bool = True) -> Callable[[float], Choice | None]:
    """The feasibility check at a latency T [s]: the knapsack decided through its
    Lagrangian dual (:func:`lagrangian.decide`: dual proof, dual point, reduced-cost fixing,
    then an exact search over the devices left free), with the rows and coverage margin of
    :func:`choose`. ``exact=False``: only the cheap steps (a rejection proves nothing)."""
    table = model.options

    def check(T: float) -> Choice | None:
        ks = lagrangian.knapsack(model, table.min_bandwidth(T), 1.0, COVERAGE_MARGIN)
        columns = lagrangian.decide(ks, HIGHS_SETTINGS, exact=exact)
        if columns is None:
            return None
        return columns > 0, columns

    return check


def relaxed_bracket(model: TinyFELModel, tolerance: float = TOLERANCE) -> tuple[float, float]:
    """(T_lo, T_hi) [s] with T_hi - T_lo <= ``tolerance`` T_hi: the Lagrangian dual proves
    at T_lo that nothing fits (or T_lo = 0) and does not at T_hi. T_lo is the latency of the
    LP relaxation of the knapsack (= the exponential-cone relaxation of spec §5.4) within
    the tolerance, a proven lower bound on T*. Costs O(log(1 / tolerance)) dual
    maximisations of O(K L) each."""
    table = model.options

    def proven(T: float) -> bool:
        ks = lagrangian.knapsack(model, table.min_bandwidth(T), 1.0, COVERAGE_MARGIN)
        return lagrangian.proves_infeasible(ks, lagrangian.maximise(ks))

    n_min = model.instance.min_updated_layers
    lower, upper = 0.0, max(float(table.compute_s[:, n_min - 1].max()), MIN_UPPER_S)
    if not proven(lower):
        return 0.0, 0.0
    for _ in range(MAX_WIDENINGS):
        if not proven(upper):
            break
        lower, upper = upper, 2.0 * upper
    while upper - lower > tolerance * upper:
        middle = 0.5 * (lower + upper)
        lower, upper = (middle, upper) if proven(middle) else (lower, middle)
    return lower, upper


def first_fit(
    check: Callable[[float], Choice | None],
    lower: float,
    upper: float,
    *,
    proves: bool = True,
    first_step: float = STEP_ABOVE_RELAXATION,
) -> Bisection:
    """From ``upper`` [s] up in growing relative steps (``first_step``, then fourfold) to the
    first latency that ``check`` accepts. ``proves``: a rejection proves that nothing fits
    there, so ``lower`` [s] follows; otherwise it stays."""
    step = first_step
    for _ in range(MAX_WIDENINGS):
        accepted = check(upper)
        if accepted is not None:
            return Bisection(lower, upper, accepted, from_heuristic=True)
        if proves:
            lower = upper
        upper = max(upper, MIN_UPPER_S) * (1.0 + step)
        step *= 4.0
    raise RuntimeError(f"no accepted latency found up to {upper!r} s")


def equalised_latency(model: TinyFELModel, choice: Choice) -> float | None:
    """The round latency [s] (without T_dl) of ``choice`` with equalised bandwidths, or
    ``None`` if they do not fit."""
    selected, layers = choice
    bandwidth = equalise(model, selected, layers)
    if bandwidth is None:
        return None
    return float(finish_times(model, selected, layers, bandwidth)["finish_s"].max(initial=0.0))


def unreachable(model: TinyFELModel, method: str) -> Result:
    """The infeasible Result when no selection works even at T = inf: the model's diagnosis,
    else ``bandwidth`` (the knapsack rows together)."""
    diagnosis = model.infeasibility()
    if diagnosis is not None:
        return infeasible_result(model, method, diagnosis.reason, diagnosis.message,
                                 infeasible_details=diagnosis.details)
    return infeasible_result(
        model, method, "bandwidth",
        "no selection meets the bandwidth, bias budget and min_selected rows together "
        "even at unlimited latency (energy minimum bandwidths only)",
    )


def solve_bisection_mckp(
    model: TinyFELModel,
    *,
    backend: str | None = None,
    time_limit: float | None = None,
    seed: int | None = None,
) -> Result:
    """Exact P1 with a proven bound (spec §5.1). ``time_limit`` [s] stops the bisection with
    status ``time_limit`` (the bound stays valid); ``seed`` is unused (HiGHS is deterministic
    here).

    Cost: each check is O(K L) per dual evaluation (about 60 per check) plus, only when the
    dual neither proves nor finds, one HiGHS knapsack over the devices that reduced-cost
    fixing leaves free (typically a handful: the LP relaxation has at most two fractional
    devices); the dual bisection and the probes take O(log(1 / TOLERANCE)) checks, so the
    whole method grows as O(K L log(1 / TOLERANCE)) numpy work plus a few small MILPs."""
    started = time.perf_counter()
    deadline = Deadline(time_limit)
    table = model.options
    check = checker(model)
    if check(math.inf) is None:
        return unreachable(model, "bisection_mckp")
    start = first_fit(check, *relaxed_bracket(model))
    found = bisect(start, check, deadline, lambda c: equalised_latency(model, c))
    selected, layers = found.accepted
    bandwidth = equalise(model, selected, layers, start_s=found.upper)
    if bandwidth is None:
        raise RuntimeError("the options accepted at T_hi do not fit the bandwidth budget")
    return make_result(
        model,
        "bisection_mckp",
        Status.TIME_LIMIT if found.timed_out else Status.OPTIMAL,
        selected,
        layers,
        bandwidth,
        bound_round_s=found.lower + table.downlink_s,
        solver="highs",
        solver_version=highs_version(),
        solve_s=time.perf_counter() - started,
        trace=pd.DataFrame(found.rows, columns=TRACE_COLUMNS),
        termination="time_limit" if found.timed_out else "converged",
    )
