"""``bcd_admm``: the paper-style P1 heuristic, block-coordinate descent with an ADMM
selection block (spec §5.5) [recon: only the names ADMM and BCD are confirmed].

Start: every eligible device at n_k^max with equal bandwidth (``init='relaxation'``: the
rounded point of ``relaxation_expcone``). Outer iteration t = 1, 2, ...:

* block ``b`` (a, n fixed): equal finishing times (spec §4.1), exact; gives T_t. Run in
  the first iteration only: every later block ends with it.
* block ``n`` (a, b fixed): exact discrete water-filling. With T_k(n) = Tcmp_k,n +
  Q_n / r_k(b_k) and n_k(T) = the largest available n with T_k(n) <= T, a binary search
  over the sorted candidates {T_k(n)} finds the least T at which every selected device
  keeps an option and the bias budget holds; n_k = n_k(T), then block b again.
* block ``a`` (n, b fixed): min c'a s.t. the budget row, sum a >= K_min, a binary, with
  c_k = b-hat_k,n_k(T_t) / B (unselected devices at n_k^max; c_k = inf or > 1 fixes
  a_k = 0), by lp-box ADMM (:func:`admm_lp_box`, or :func:`admm_nonconvex` with
  ``admm='nonconvex'``); round, repair greedily by the smallest c_k / gain_k (then by c_k
  for K_min), block b again; **accepted only if T decreases**.
* stop when an outer iteration lowers T by less than a relative 1e-4
  (``termination='converged'``), at ``max_iterations`` (``'iteration_limit'``) or at the
  time limit (``'time_limit'``).

T never increases: blocks b and n are exact for their variables (a row that would raise T
by rounding is rejected), block a is accepted only on a decrease. The ``trace`` has one
row per block, ``{iter, block, round_latency_s, bias, n_selected, admm_iters,
admm_residual, accepted, elapsed_s}`` (``round_latency_s`` = T + T_dl [s]; a rejected row
shows the candidate), and a last row whose ``block`` is the termination.

Our additions on top of the spec (option ``polish``, default ``True``; ``False`` runs the
spec's algorithm alone): when an outer iteration stalls (decrease < 1e-4), two more blocks
are tried before stopping, each accepted only if re-equalising lowers T, after which the
BCD loop resumes. Both work on the knapsack of spec §5.1 at a fixed latency
(:class:`FixedLatency`), which chooses (a, n) jointly: a point needing less than B there
has a lower equalised T. ``lagrange`` (:func:`lagrange_block`): the Lagrangian solution
of that knapsack, improved by :func:`descend`, at T and at a few slightly lower latencies
(:data:`PROBES`); ``swap`` (:func:`swap_block`): :func:`descend` from the current options,
i.e. repeated best single or pair changes of device options by the bandwidth they free at
T. Both are recorded in the trace (a failed attempt as a rejected row without a point).
The spec's blocks alone stall as soon as every device finishes at T and the budget row is
tight (no single block can move then); ``benchmarks/tinyfel_heuristic_gap.py`` measures
both variants against the exact optimum.

Decisions the spec leaves open: the budget row is tightened by
:data:`~edgeopt.solvers.tinyfel.bisection_mckp.COVERAGE_MARGIN` like the exact method; with
``include_noise_in_budget`` the row uses the net gain p_k rho_n - N_k / G^2 and the start
keeps only devices that lower the budget value (then tops up K_min); when the all-device
start cannot fit the bandwidth budget (energy minimum bandwidths) the start is the HiGHS
knapsack of spec §5.1 at T = inf; the iteration cap stops with status ``iteration_limit``
(written as ``feasible``); the ADMM rounds y1 at 1/2; a device whose energy row binds gets
a relative 1e-10 of headroom (:func:`equalise_checked`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from edgeopt.models.tinyfel import TinyFELModel, radio
from edgeopt.solvers.result import Result, Status
from edgeopt.solvers.tinyfel.bisection_mckp import COVERAGE_MARGIN, choose
from edgeopt.solvers.tinyfel.bisection_mckp import unsupported as linear_p1_reason
from edgeopt.solvers.tinyfel.common import (
    equalise,
    finish_times,
    infeasible_result,
    make_result,
    option_bandwidth,
)

METHOD = "bcd_admm"
RELATIVE_DECREASE = 1e-4
"""Stop when an outer iteration lowers T by less than this fraction (spec §5.5)."""

ADMM_TOLERANCE = 1e-4
"""Stop the ADMM when max_i ||a - y_i||_inf <= this (spec §5.5)."""

ADMM_MAX_ITERATIONS = 1000
MU_START, MU_GROWTH, MU_MAX = 1.0, 1.05, 1e3
"""Penalty schedule of the ADMM: mu <- min(1.05 mu, 1e3) from 1 (spec §5.5)."""

INITS = ("all", "relaxation")
ADMM_VARIANTS = ("lp_box", "nonconvex")

TRACE_COLUMNS = [
    "iter", "block", "round_latency_s", "bias", "n_selected", "admm_iters", "admm_residual",
    "accepted", "elapsed_s",
]


def unsupported(model: TinyFELModel) -> str | None:
    """Why the heuristic does not model this instance: it needs the linear P1 budget row."""
    return linear_p1_reason(model)


# ---- the selection rows ------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetRows:
    """The bias budget as a covering row: sum over selected k of ``gain[k, n_k - 1]`` >=
    ``required`` (unit of G^2 / G^2, margin included), and at least ``least`` devices."""

    gain: np.ndarray
    required: float
    least: int

    def holds(self, selected: np.ndarray, layers: np.ndarray) -> bool:
        chosen = np.flatnonzero(selected)
        if len(chosen) < self.least:
            return False
        return math.fsum(self.gain[chosen, layers[chosen] - 1]) >= self.required


def budget_rows(model: TinyFELModel) -> BudgetRows:
    """The linear budget row of ``model`` (spec §5.1), noise term included when asked."""
    table, inst = model.options, model.instance
    grad_total = table.grad_sq.sum()
    gain = table.weights[:, None] * table.ratio[None, :]
    required = 1.0 - inst.bias_budget / grad_total + COVERAGE_MARGIN
    if inst.include_noise_in_budget:
        gain = gain - table.noise_coeff[:, None] / grad_total
        required += table.noise_const / grad_total
    return BudgetRows(gain, required, inst.min_selected)


# ---- projections of the ADMM -------------------------------------------------------------


def project_rows(v: np.ndarray, gain: np.ndarray, required: float, least: float) -> np.ndarray:
    """Euclidean projection of ``v`` onto {x : gain.x >= required, sum x >= least} (no box).

    Exact: the KKT point x = v + A'lambda, lambda >= 0, of one of the four active sets
    (none, either row, both; both by least squares on the 2x2 Gram system, which also
    covers parallel rows). Raises ``ValueError`` if the two rows have no common point.
    """
    rows = np.vstack([gain, np.ones_like(v)])
    rhs = np.array([required, least], dtype=float)
    candidates = [v]
    for i in (0, 1):
        norm = rows[i] @ rows[i]
        if norm > 0:
            candidates.append(v + max(0.0, (rhs[i] - rows[i] @ v) / norm) * rows[i])
    gram = rows @ rows.T
    multipliers = np.linalg.lstsq(gram, rhs - rows @ v, rcond=None)[0]
    if (multipliers >= 0).all():
        candidates.append(v + rows.T @ multipliers)
    for x in candidates:
        if _meets(rows, rhs, x):
            return x
    raise ValueError("the coverage and count rows have no common point")


def project_rows_box(
    v: np.ndarray, gain: np.ndarray, required: float, least: float
) -> np.ndarray:
    """Euclidean projection of ``v`` onto [0,1]^K intersected with the two rows.

    The solution is x = clip(v + l1 gain + l2, 0, 1) with multipliers l1, l2 >= 0. Each
    single-row case is solved exactly (the row value is piecewise linear in its multiplier:
    :func:`least_multiplier`); when both rows are active, l2 is bisected (the count row at
    the best l1 for l2 is non-decreasing in l2, by concavity of the dual). Raises
    ``ValueError`` if the set is empty.
    """
    if least > len(v):
        raise ValueError(f"the count row needs {least!r} of {len(v)} variables")
    ones = np.ones_like(v)
    rows = np.vstack([gain, ones])
    rhs = np.array([required, least], dtype=float)
    x = np.clip(v, 0.0, 1.0)
    if _meets(rows, rhs, x):
        return x
    x = np.clip(v + least_multiplier(v, gain, required) * gain, 0.0, 1.0)
    if _meets(rows, rhs, x):
        return x
    x = np.clip(v + least_multiplier(v, ones, least), 0.0, 1.0)
    if _meets(rows, rhs, x):
        return x

    def at(l2: float) -> np.ndarray:
        shifted = v + l2
        return np.clip(shifted + least_multiplier(shifted, gain, required) * gain, 0.0, 1.0)

    low, high = 0.0, 1.0
    while at(high).sum() < least:
        low, high = high, 2.0 * high
    for _ in range(_BISECTIONS):
        middle = 0.5 * (low + high)
        if not low < middle < high:
            break
        low, high = (low, middle) if at(middle).sum() >= least else (middle, high)
    return at(high)


_BISECTIONS = 200


def least_multiplier(w: np.ndarray, d: np.ndarray, target: float) -> float:
    """The least t >= 0 with f(t) = d . clip(w + t d, 0, 1) >= target (f is non-decreasing
    and piecewise linear; exact between breakpoints). Raises ``ValueError`` if f never
    reaches ``target``."""

    def f(t: np.ndarray) -> np.ndarray:
        return np.clip(w[None, :] + t[:, None] * d[None, :], 0.0, 1.0) @ d

    if f(np.zeros(1))[0] >= target:
        return 0.0
    moving = d != 0
    with np.errstate(divide="ignore"):
        breaks = np.concatenate([-w[moving] / d[moving], (1.0 - w[moving]) / d[moving]])
    breaks = np.unique(breaks[breaks > 0])
    values = f(breaks)
    reached = np.flatnonzero(values >= target)
    if reached.size == 0:
        raise ValueError(f"the row cannot reach {target!r} inside the box")
    j = reached[0]
    t0, f0 = (0.0, f(np.zeros(1))[0]) if j == 0 else (breaks[j - 1], values[j - 1])
    t1, f1 = breaks[j], values[j]
    return float(t1 if f1 == f0 else min(t1, t0 + (target - f0) / (f1 - f0) * (t1 - t0)))


def _meets(rows: np.ndarray, rhs: np.ndarray, x: np.ndarray) -> bool:
    """Rows hold up to rounding (relative 1e-12 of the terms)."""
    slack = rows @ x - rhs
    scale = np.abs(rows) @ np.abs(x) + np.abs(rhs)
    return bool((slack >= -1e-12 * np.maximum(scale, 1.0)).all())


# ---- the ADMM selection solvers ----------------------------------------------------------


@dataclass(frozen=True)
class AdmmOutcome:
    """A rounded selection (booleans) over the free devices, the inner iterations run, the
    last residual max_i ||a - y_i||_inf and the residual of every inner iteration."""

    selection: np.ndarray
    iterations: int
    residual: float
    residuals: np.ndarray


def admm_lp_box(
    cost: np.ndarray, gain: np.ndarray, required: float, least: float, start: np.ndarray
) -> AdmmOutcome:
    """lp-box ADMM for min c'a s.t. gain.a >= required, sum a >= least, a binary (spec §5.5).

    {0,1}^K = [0,1]^K intersected with the sphere ||y - 1/2||^2 = K/4; a carries the two
    rows, y1 the box, y2 the sphere. From a = y1 = y2 = ``start``, lambda = 0, mu = 1:
    a <- projection of (mu (y1 + y2) - l1 - l2 - c) / (2 mu) onto the rows; y1 <- clip(a +
    l1/mu); y2 <- the sphere point of a + l2/mu; l_i += mu (a - y_i); mu <- min(1.05 mu,
    1e3); stop at residual <= 1e-4 or 1000 iterations. Returns round(y1).
    """
    size = len(cost)
    a = start.astype(float)
    y1, y2 = a.copy(), a.copy()
    l1, l2 = np.zeros(size), np.zeros(size)
    mu, radius = MU_START, math.sqrt(size) / 2.0
    residuals = []
    for _ in range(ADMM_MAX_ITERATIONS):
        a = project_rows((mu * (y1 + y2) - l1 - l2 - cost) / (2.0 * mu), gain, required, least)
        y1 = np.clip(a + l1 / mu, 0.0, 1.0)
        offset = a + l2 / mu - 0.5
        norm = float(np.linalg.norm(offset))
        if norm > 0:
            y2 = 0.5 + radius * offset / norm
        l1 += mu * (a - y1)
        l2 += mu * (a - y2)
        mu = min(MU_GROWTH * mu, MU_MAX)
        residuals.append(max(np.abs(a - y1).max(), np.abs(a - y2).max()))
        if residuals[-1] <= ADMM_TOLERANCE:
            break
    return AdmmOutcome(y1 > 0.5, len(residuals), residuals[-1], np.array(residuals))


def admm_nonconvex(
    cost: np.ndarray, gain: np.ndarray, required: float, least: float, start: np.ndarray
) -> AdmmOutcome:
    """Non-convex ADMM variant of spec §5.5 for the same selection problem.

    x <- argmin over the relaxed set (box and rows) of c'x + (mu/2)||x - z + w||^2, i.e.
    the projection of z - w - c/mu (:func:`project_rows_box`); z <- round(x + w);
    w <- w + x - z; mu as in :func:`admm_lp_box`; stop at ||x - z||_inf <= 1e-4 or 1000
    iterations. Returns z.
    """
    z = start.astype(float)
    w = np.zeros(len(cost))
    mu = MU_START
    residuals = []
    for _ in range(ADMM_MAX_ITERATIONS):
        x = project_rows_box(z - w - cost / mu, gain, required, least)
        z = (x + w > 0.5).astype(float)
        w = w + x - z
        mu = min(MU_GROWTH * mu, MU_MAX)
        residuals.append(float(np.abs(x - z).max()))
        if residuals[-1] <= ADMM_TOLERANCE:
            break
    return AdmmOutcome(z > 0.5, len(residuals), residuals[-1], np.array(residuals))


# ---- points and blocks -------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """A decision with its equalised bandwidth [Hz] and latency T [s] (excluding T_dl)."""

    selected: np.ndarray
    layers: np.ndarray
    bandwidth: np.ndarray
    latency_s: float


def equalised(
    model: TinyFELModel, selected: np.ndarray, layers: np.ndarray, start_s: float | None = None
) -> Point | None:
    """Block b: the point of (a, n) with equal finishing times, or ``None`` if none fits B."""
    selected = np.asarray(selected, dtype=bool)
    layers = np.where(selected, layers, 0)
    bandwidth = equalise_checked(model, selected, layers, start_s)
    if bandwidth is None:
        return None
    latency = float(finish_times(model, selected, layers, bandwidth)["finish_s"].max(initial=0.0))
    return Point(selected, layers, bandwidth, latency)


def equalise_checked(
    model: TinyFELModel, selected: np.ndarray, layers: np.ndarray, start_s: float | None = None
) -> np.ndarray | None:
    """:func:`equalise`, or ``None`` at once when the energy minimum bandwidths of the chosen
    options already exceed B (no latency can fit them).

    :func:`equalise` shrinks every bandwidth by a rounding margin, which can leave a device
    whose energy row binds a hair below its energy minimum (the evaluator allows no
    slack); such devices are raised to their minimum times 1 + :data:`ENERGY_MARGIN`,
    paid for by the other devices in proportion to their bandwidth.
    """
    table = model.options
    chosen = np.flatnonzero(selected)
    floor = table.energy_bandwidth_hz[chosen, layers[chosen] - 1]
    if math.fsum(floor) > model.instance.bandwidth_hz:
        return None
    bandwidth = equalise(model, selected, layers, start_s=start_s)
    if bandwidth is None or not floor.any():
        return bandwidth
    band = bandwidth[chosen]
    target = floor * (1.0 + ENERGY_MARGIN)
    short = (floor > 0) & (band < target)
    donors = ~short & (band > target)
    extra = math.fsum(target[short] - band[short])
    if short.any() and donors.any() and extra < math.fsum(band[donors] - target[donors]):
        band[donors] -= extra * band[donors] / band[donors].sum()
        band[short] = target[short]
        bandwidth[chosen] = np.maximum(band, 0.0)
    return bandwidth


ENERGY_MARGIN = 1e-10
"""Relative headroom above an energy minimum bandwidth (covers the Lambert-W accuracy)."""


def layer_block(model: TinyFELModel, rows: BudgetRows, point: Point) -> Point | None:
    """Block n: exact discrete water-filling at fixed (a, b), then block b."""
    table = model.options
    chosen = np.flatnonzero(point.selected)
    if chosen.size == 0:
        return None
    speed = radio.rate(point.bandwidth[chosen], table.snr_hz[chosen])
    bits = table.upload_bits[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        upload = np.where(bits > 0, bits / speed[:, None], 0.0)
    times = np.where(table.available[chosen], table.compute_s[chosen] + upload, np.inf)
    candidates = np.unique(times[np.isfinite(times)])
    L = model.n_layers

    def layers_at(T: float) -> np.ndarray:
        fits = times <= T
        return np.where(fits.any(axis=1), L - np.argmax(fits[:, ::-1], axis=1), 0)

    def feasible(T: float) -> bool:
        n = layers_at(T)
        return bool((n > 0).all()) and math.fsum(rows.gain[chosen, n - 1]) >= rows.required

    low, high = -1, len(candidates) - 1  # feasible(candidates[high]) holds (all at n_max)
    if not feasible(candidates[high]):
        return None
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if feasible(candidates[middle]) else (middle, high)
    layers = np.zeros(model.n_devices, dtype=int)
    layers[chosen] = layers_at(candidates[high])
    return equalised(model, point.selected, layers, start_s=point.latency_s)


@dataclass(frozen=True)
class SelectionMove:
    """Outcome of block a: the candidate point (``None`` if it does not fit B) and the ADMM
    figures."""

    point: Point | None
    admm: AdmmOutcome | None


def selection_block(
    model: TinyFELModel, rows: BudgetRows, point: Point, variant: str
) -> SelectionMove:
    """Block a at T = the point's latency: ADMM over the devices that fit, round, repair,
    then block b (and block n for the non-convex variant, spec §5.5)."""
    table, budget = model.options, model.instance.bandwidth_hz
    devices = np.arange(model.n_devices)
    layers = np.where(point.selected, point.layers, table.n_max)
    cost = np.full(model.n_devices, np.inf)
    eligible = layers > 0
    cost[eligible] = option_bandwidth(
        model, devices[eligible], layers[eligible], point.latency_s
    ) / budget
    cost[point.selected] = np.minimum(cost[point.selected], 1.0)  # rounding at T itself
    free = np.flatnonzero(np.isfinite(cost) & (cost <= 1.0))
    if free.size == 0:  # nothing selected and nothing fits at T = 0
        return SelectionMove(None, None)
    gain = np.zeros(model.n_devices)
    gain[eligible] = rows.gain[eligible, layers[eligible] - 1]
    solver = admm_lp_box if variant == "lp_box" else admm_nonconvex
    outcome = solver(
        cost[free], gain[free], rows.required, float(rows.least), point.selected[free]
    )
    selected = np.zeros(model.n_devices, dtype=bool)
    selected[free[outcome.selection]] = True
    selected = repair(selected, free, cost, gain, rows)
    if selected is None:
        return SelectionMove(None, outcome)
    candidate = equalised(model, selected, layers, start_s=point.latency_s)
    if candidate is not None and variant == "nonconvex":
        polished = layer_block(model, rows, candidate)
        if polished is not None and polished.latency_s < candidate.latency_s:
            candidate = polished
    return SelectionMove(candidate, outcome)


def repair(
    selected: np.ndarray, free: np.ndarray, cost: np.ndarray, gain: np.ndarray, rows: BudgetRows
) -> np.ndarray | None:
    """Add free devices by the smallest cost / gain until the budget row holds, then by the
    smallest cost until K_min holds; ``None`` if the free devices cannot meet both."""
    selected = selected.copy()
    spare = [k for k in free if not selected[k] and gain[k] > 0]
    spare.sort(key=lambda k: cost[k] / gain[k])
    while math.fsum(gain[selected]) < rows.required:
        if not spare:
            return None
        selected[spare.pop(0)] = True
    rest = sorted((k for k in free if not selected[k]), key=lambda k: cost[k])
    while selected.sum() < rows.least:
        if not rest:
            return None
        selected[rest.pop(0)] = True
    return selected


# ---- the start -----------------------------------------------------------------------------


def start_selection(model: TinyFELModel, rows: BudgetRows) -> tuple[np.ndarray, np.ndarray]:
    """Every eligible device at n_k^max; with the noise term in the budget only those
    lowering the budget value, topped up to K_min by the largest net gain."""
    table = model.options
    eligible = np.flatnonzero(table.n_max > 0)
    net = rows.gain[eligible, table.n_max[eligible] - 1]
    order = eligible[np.argsort(-net, kind="stable")]
    keep = max(int((net > 0).sum()), rows.least)
    selected = np.zeros(model.n_devices, dtype=bool)
    selected[order[:keep]] = True
    return selected, np.where(selected, table.n_max, 0)


def equal_bandwidth_point(model: TinyFELModel, selected: np.ndarray, layers: np.ndarray) -> Point:
    """(a, n) with B / |a| each (the spec's starting bandwidth)."""
    count = int(selected.sum())
    bandwidth = np.where(selected, model.instance.bandwidth_hz / max(count, 1), 0.0)
    latency = float(finish_times(model, selected, layers, bandwidth)["finish_s"].max(initial=0.0))
    return Point(selected, layers, bandwidth, latency)


# ---- our additions: the knapsack at the current latency ------------------------------------


SWAP_SAVING = 1e-9
"""Least bandwidth saving at T, relative to B, for a move to count."""


@dataclass(frozen=True)
class FixedLatency:
    """The knapsack of spec §5.1 at a latency T, (K, L + 1): column 0 is 'none', column n
    option n; ``cost`` = b-hat_k,n(T) / B (inf if out of reach or above B), ``gain`` the
    budget-row gain (0 for 'none')."""

    cost: np.ndarray
    gain: np.ndarray

    def total(self, layers: np.ndarray) -> float:
        return math.fsum(self.cost[np.arange(len(layers)), layers])

    def covered(self, layers: np.ndarray) -> float:
        return math.fsum(self.gain[np.arange(len(layers)), layers])


def fixed_latency(model: TinyFELModel, rows: BudgetRows, latency_s: float) -> FixedLatency:
    """The knapsack at T = ``latency_s`` [s] (excluding T_dl)."""
    K = model.n_devices
    band = model.options.min_bandwidth(latency_s) / model.instance.bandwidth_hz
    cost = np.hstack([np.zeros((K, 1)), np.where(band <= 1.0, band, np.inf)])
    return FixedLatency(cost, np.hstack([np.zeros((K, 1)), rows.gain]))


def best_move(problem: FixedLatency, rows: BudgetRows, layers: np.ndarray) -> np.ndarray | None:
    """The single or pair change of options that frees the most bandwidth at T while the
    budget row and K_min keep holding (``layers`` must meet both); ``None`` if no move
    frees more than :data:`SWAP_SAVING`."""
    cost, gain = problem.cost, problem.gain
    mover, option = np.nonzero(np.isfinite(cost) & (np.arange(cost.shape[1]) != layers[:, None]))
    mover = np.append(mover, -1)  # the null move, so that single moves are pairs too
    option = np.append(option, 0)
    stay = mover < 0
    safe = np.where(stay, 0, mover)
    saved = np.where(stay, 0.0, cost[safe, layers[safe]] - cost[safe, option])
    added = np.where(stay, 0.0, gain[safe, option] - gain[safe, layers[safe]])
    counted = np.where(stay, 0, (option > 0).astype(int) - (layers[safe] > 0).astype(int))
    slack = problem.covered(layers) - rows.required
    spare = int((layers > 0).sum()) - rows.least
    valid = (
        ((mover[:, None] != mover[None, :]) | (stay[:, None] & stay[None, :]))
        & (added[:, None] + added[None, :] >= -slack)
        & (counted[:, None] + counted[None, :] >= -spare)
    )
    total = np.where(valid, saved[:, None] + saved[None, :], -np.inf)
    best = np.unravel_index(np.argmax(total), total.shape)
    if not total[best] > SWAP_SAVING:
        return None
    moved = layers.copy()
    for i in best:
        if not stay[i]:
            moved[mover[i]] = option[i]
    return moved if rows.holds(moved > 0, moved) else None


def descend(problem: FixedLatency, rows: BudgetRows, layers: np.ndarray) -> np.ndarray:
    """Apply :func:`best_move` until none frees bandwidth (at most 2K moves)."""
    for _ in range(2 * len(layers)):
        moved = best_move(problem, rows, layers)
        if moved is None:
            break
        layers = moved
    return layers


def lagrange_start(problem: FixedLatency, rows: BudgetRows) -> np.ndarray | None:
    """Each device's option minimising cost - lam gain, lam bisected to the least value
    meeting the budget row; K_min topped up by the cheapest devices (``None`` if it
    cannot be)."""
    cost, gain = problem.cost, problem.gain
    finite = np.isfinite(cost)

    def pick(lam: float) -> np.ndarray:
        return np.argmin(np.where(finite, cost - lam * gain, np.inf), axis=1)

    def covered(lam: float) -> bool:
        return problem.covered(pick(lam)) >= rows.required

    low, high = 0.0, 1.0
    for _ in range(_BISECTIONS):
        if covered(high):
            break
        low, high = high, 2.0 * high
    else:
        return None
    for _ in range(_BISECTIONS):
        middle = 0.5 * (low + high)
        if not low < middle < high:
            break
        low, high = (low, middle) if covered(middle) else (middle, high)
    layers = pick(high)
    cheapest = np.min(cost[:, 1:], axis=1)
    for k in np.argsort(np.where(layers == 0, cheapest, np.inf), kind="stable"):
        if (layers > 0).sum() >= rows.least:
            break
        if layers[k] > 0 or not np.isfinite(cheapest[k]):
            return None
        layers[k] = int(np.argmin(cost[k, 1:])) + 1
    return layers if rows.holds(layers > 0, layers) else None


def lagrange_block(model: TinyFELModel, rows: BudgetRows, point: Point) -> Point | None:
    """Our addition: at the point's latency T, the Lagrangian knapsack solution
    (:func:`lagrange_start`) improved by :func:`descend`; if it needs less than B at T,
    block b. Returns the new point if T decreases, else ``None``."""
    for cut in PROBES:
        problem = fixed_latency(model, rows, point.latency_s * (1.0 - cut))
        layers = lagrange_start(problem, rows)
        if layers is None:
            continue
        found = _improvement(model, point, problem, descend(problem, rows, layers))
        if found is not None:
            return found
    return None


PROBES = (0.0, 0.001, 0.003, 0.01, 0.03)
"""Relative cuts of T at which :func:`lagrange_block` looks for a point."""


def swap_block(model: TinyFELModel, rows: BudgetRows, point: Point) -> Point | None:
    """Our addition: :func:`descend` from the point's own options at its latency T, then
    block b. Returns the new point if T decreases, else ``None``."""
    problem = fixed_latency(model, rows, point.latency_s)
    return _improvement(model, point, problem, descend(problem, rows, point.layers))


def _improvement(
    model: TinyFELModel, point: Point, problem: FixedLatency, layers: np.ndarray
) -> Point | None:
    """Block b on ``layers`` if they need less than B at T and the result lowers T."""
    if problem.total(layers) > 1.0 - SWAP_SAVING or np.array_equal(layers, point.layers):
        return None
    candidate = equalised(model, layers > 0, layers, start_s=point.latency_s)
    if candidate is None or candidate.latency_s >= point.latency_s:
        return None
    return candidate


# ---- the solver ----------------------------------------------------------------------------


class _Trace:
    """Trace rows of one run (spec §5.5), timed from ``started``."""

    def __init__(self, model: TinyFELModel, started: float):
        self.model, self.started, self.rows = model, started, []

    def add(
        self,
        iteration: int,
        block: str,
        point: Point | None,
        accepted: bool,
        admm: AdmmOutcome | None = None,
    ) -> None:
        latency = bias = math.nan
        count = 0
        if point is not None:
            latency = point.latency_s + self.model.options.downlink_s
            bias = self.model.learning_terms(point.selected, point.layers).bias
            count = int(point.selected.sum())
        self.rows.append(
            {
                "iter": iteration,
                "block": block,
                "round_latency_s": latency,
                "bias": bias,
                "n_selected": count,
                "admm_iters": 0 if admm is None else admm.iterations,
                "admm_residual": math.nan if admm is None else admm.residual,
                "accepted": accepted,
                "elapsed_s": time.perf_counter() - self.started,
            }
        )

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=TRACE_COLUMNS)


def check_options(max_iterations: object, init: object, admm: object, polish: object) -> None:
    """Raise ``ValueError`` naming the option and its allowed values."""
    if isinstance(max_iterations, bool) or not isinstance(max_iterations, int) or max_iterations < 1:
        raise ValueError(f"max_iterations = {max_iterations!r}: must be an integer >= 1")
    for name, value, allowed in (("init", init, INITS), ("admm", admm, ADMM_VARIANTS)):
        if value not in allowed:
            raise ValueError(f"{name} = {value!r}: must be one of {', '.join(map(repr, allowed))}")
    if not isinstance(polish, bool):
        raise ValueError(f"polish = {polish!r}: must be true or false")


def solve_bcd_admm(
    model: TinyFELModel,
    *,
    backend: str | None = None,
    time_limit: float | None = None,
    seed: int | None = None,
    max_iterations: int = 50,
    init: str = "all",
    admm: str = "lp_box",
    polish: bool = True,
) -> Result:
    """Run the BCD/ADMM heuristic (module docstring); status ``feasible``, or
    ``iteration_limit`` / ``time_limit`` with the incumbent. ``max_iterations`` caps the
    outer iterations; ``init`` is 'all' or 'relaxation'; ``admm`` is 'lp_box' or
    'nonconvex'; ``polish`` switches our additions on (default) or off (the spec alone);
    ``time_limit`` [s] is checked between blocks; ``seed`` is passed to the relaxation."""
    check_options(max_iterations, init, admm, polish)
    reason = unsupported(model)
    if reason is not None:
        raise ValueError(f"method {METHOD!r} does not apply: {reason}")
    started = time.perf_counter()
    rows = budget_rows(model)
    trace = _Trace(model, started)
    first, note = _start(model, rows, init, time_limit, seed, trace)
    if isinstance(first, Result):
        return first

    def expired() -> bool:
        return time_limit is not None and time.perf_counter() - started >= time_limit

    point = first
    termination = "iteration_limit"
    for iteration in range(1, max_iterations + 1):
        if expired():
            termination = "time_limit"
            break
        before = point.latency_s
        if iteration == 1:
            point = _step(trace, iteration, "b", point, equalised(model, point.selected,
                                                                  point.layers, point.latency_s))
        point = _step(trace, iteration, "n", point, layer_block(model, rows, point))
        move = selection_block(model, rows, point, admm)
        point = _step(trace, iteration, "a", point, move.point, move.admm)
        if before - point.latency_s > RELATIVE_DECREASE * before:
            continue
        if polish:
            moved = lagrange_block(model, rows, point)
            point = _step(trace, iteration, "lagrange", point, moved)
            if moved is not None:
                continue
            moved = swap_block(model, rows, point)
            point = _step(trace, iteration, "swap", point, moved)
            if moved is not None:
                continue
        termination = "converged"
        break
    trace.add(iteration, termination, point, True)
    status = {"converged": Status.FEASIBLE, "iteration_limit": Status.ITERATION_LIMIT,
              "time_limit": Status.TIME_LIMIT}[termination]
    return make_result(
        model, METHOD, status, point.selected, point.layers, point.bandwidth,
        solve_s=time.perf_counter() - started, trace=trace.frame(), termination=termination,
        message=note,
    )


def _step(
    trace: _Trace,
    iteration: int,
    block: str,
    point: Point,
    candidate: Point | None,
    admm: AdmmOutcome | None = None,
) -> Point:
    """Record a block's candidate; keep it only if it does not raise T."""
    accepted = candidate is not None and candidate.latency_s <= point.latency_s
    if block in ("a", "lagrange", "swap"):
        accepted = accepted and candidate.latency_s < point.latency_s
    trace.add(iteration, block, candidate, accepted, admm)
    return candidate if accepted else point


def _start(
    model: TinyFELModel,
    rows: BudgetRows,
    init: str,
    time_limit: float | None,
    seed: int | None,
    trace: _Trace,
) -> tuple[Point | Result, str | None]:
    """The starting point (recorded as trace row ``init``) or an infeasible Result, and a
    note when ``init='relaxation'`` fell back to the all-device start."""
    note = None
    if init == "relaxation":
        from edgeopt.solvers.tinyfel.relaxation import solve_relaxation_expcone

        relaxed = solve_relaxation_expcone(model, backend=None, time_limit=time_limit, seed=seed)
        if relaxed.status is Status.INFEASIBLE:
            return infeasible_result(model, METHOD, relaxed.infeasible_reason,
                                     relaxed.message), None
        solution = relaxed.solution
        if relaxed.status.has_point and solution.get("selected"):
            selected = np.asarray(solution["selected"], dtype=bool)
            layers = np.asarray(solution["updated_layers"], dtype=int)
            point = equalised(model, selected, layers) if rows.holds(selected, layers) else None
            if point is not None:
                trace.add(0, "init", point, True)
                return point, None
        note = (f"the relaxation's point was not usable (status {relaxed.status.value}); "
                "started from every eligible device")
    selected, layers = start_selection(model, rows)
    if not rows.holds(selected, layers):
        return _infeasible(model, "bias_budget", "the budget row fails with every eligible "
                           "device at n_k^max"), None
    point = equal_bandwidth_point(model, selected, layers)
    if equalised(model, selected, layers, point.latency_s) is None:  # energy minima above B
        table = model.options
        found = choose(model, np.where(table.available, table.energy_bandwidth_hz, np.inf))
        point = None if found is None else equalised(model, *found)
        if point is None:
            return _infeasible(model, "bandwidth", "no selection meets the bandwidth, bias "
                               "budget and min_selected rows together"), None
    energy = model.options.energy_bandwidth_hz[point.selected, point.layers[point.selected] - 1]
    if (point.bandwidth[point.selected] < energy).any():  # B / |a| misses an energy minimum
        point = equalised(model, point.selected, point.layers, point.latency_s)
    trace.add(0, "init", point, True)
    return point, note


def _infeasible(model: TinyFELModel, reason: str, message: str) -> Result:
    """An infeasible Result with the model's diagnosis when it has one."""
    diagnosis = model.infeasibility()
    if diagnosis is not None:
        return infeasible_result(
            model, METHOD, diagnosis.reason, diagnosis.message,
            infeasible_details=diagnosis.details,
        )
    return infeasible_result(model, METHOD, reason, message)
