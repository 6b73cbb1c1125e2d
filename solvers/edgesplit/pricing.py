"""Two-resource pricing of EdgeSplit's options: the Lagrangian of the makespan check over the
bandwidth and server budgets (the engine of ``bisection_lagrangian``).

In seconds, option (i, c) needs a = A_{i,c} of device time, d = D'_{i,c}/B and e = S_{i,c}/F
(the seconds its traffic would take with the whole band and its server work with the whole
server; dedicated mode: a = A' = A + S/F and e = 0). For a makespan T and slack t = T - a the
option fits every pair of fractions p = b/B, q = s/F with d/p + e/q <= t. Priced at
(mu, nu) >= 0 per unit of the two budgets its cheapest fitting point costs
(sqrt(mu d) + sqrt(nu e))^2 / t (Cauchy-Schwarz). Prices are homogeneous, so take
mu = theta, nu = 1 - theta with theta in [0, 1]:

    h(theta; T) = theta x + (1 - theta) y + 2 sqrt(theta (1 - theta)) z,
    x = d/t,  y = e/t,  z = sqrt(d e)/t          (the option's *price vector* (x, y, z)).

One option per device fits both budgets at T iff the summed price vector (X, Y, Z) has
X <= 1, Y <= 1 and (1 - X)(1 - Y) >= Z^2 (spec §5.3(d)), i.e. iff sum_i h_i(theta) <= 1 for
every theta (the largest eigenvalue of [[X, Z], [Z, Y]] is at most 1). If instead
Psi(theta; T) = sum_i min_c h_{i,c}(theta; T) > 1 for a single theta, no choice fits: T is a
certified lower bound on the optimal makespan. tau(theta) = min{T : Psi(theta; T) <= 1} is
therefore a lower bound for every theta, and max_theta tau(theta) is the convex-hull
relaxation's makespan (Psi is concave in theta, so tau is quasi-concave).

Options dominated in (a, d, e) by another option of the same device are dropped first; the
arrays below hold each device's K surviving options, padded with ``a = +inf``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgeopt.models.edgesplit import EdgeSplitModel

ROOT_TOLERANCE = 1e-13
"""Relative width at which the makespan roots of this module stop [-]."""

MAX_STEPS = 200
"""Cap on the steps of every root search and golden-section search here."""

GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


@dataclass(frozen=True)
class PricedOptions:
    """Each device's undominated memory-feasible options as arrays of shape (N, K).

    ``device_s`` is a [s] (+inf for padding), ``comm_s`` d = D'/B [s], ``server_s``
    e = S/F [s]; ``column`` is the option's column in the model's OptionTable (-1 padding).
    """

    device_s: np.ndarray
    comm_s: np.ndarray
    server_s: np.ndarray
    column: np.ndarray

    @classmethod
    def from_model(cls, model: EdgeSplitModel) -> PricedOptions:
        """The priced options of ``model`` (shared mode: a = A, e = S/F; dedicated: a = A', e = 0)."""
        table = model.options
        comm = table.bandwidth_seconds / model.instance.bandwidth_hz
        if model.shared:
            fixed, server = table.device_s, table.server_s
        else:
            fixed, server = table.dedicated_s, np.zeros_like(table.server_s)
        keep = table.feasible & ~_dominated(fixed, comm, server, table.feasible)
        width = int(keep.sum(axis=1).max())
        # Stable sort puts each device's kept columns first, in cut order.
        order = np.argsort(~keep, axis=1, kind="stable")[:, :width]
        rows = np.arange(model.n_devices)[:, None]
        kept = keep[rows, order]
        return cls(
            device_s=np.where(kept, fixed[rows, order], np.inf),
            comm_s=np.where(kept, comm[rows, order], 0.0),
            server_s=np.where(kept, server[rows, order], 0.0),
            column=np.where(kept, order, -1),
        )

    @property
    def n_devices(self) -> int:
        return self.device_s.shape[0]

    def floor(self) -> float:
        """max_i min_c a_{i,c}: no makespan below it fits every device [s]."""
        return float(self.device_s.min(axis=1).max())

    def usable(self, T: float | np.ndarray) -> np.ndarray:
        """Options that can finish by T: slack > 0, or slack >= 0 when they need nothing."""
        slack = _slack(self.device_s, T)
        idle = _expand(self.comm_s == 0, slack) & _expand(self.server_s == 0, slack)
        return (slack > 0) | ((slack >= 0) & idle)

    def vectors(self, T: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(x, y, z, usable) at makespan T [s]: the price vectors, zero where not usable."""
        usable = self.usable(T)
        slack = np.where(usable & (self.device_s < T), T - self.device_s, 1.0)
        x = np.where(usable, self.comm_s / slack, 0.0)
        y = np.where(usable, self.server_s / slack, 0.0)
        z = np.where(usable, np.sqrt(self.comm_s * self.server_s) / slack, 0.0)
        return x, y, z, usable

    def numerators(self, theta: np.ndarray) -> np.ndarray:
        """w = (sqrt(theta d) + sqrt((1 - theta) e))^2, shape (N, K, len(theta)) [s]."""
        theta = np.asarray(theta, dtype=float)
        root_d, root_e = np.sqrt(self.comm_s)[..., None], np.sqrt(self.server_s)[..., None]
        root = np.sqrt(theta) * root_d + np.sqrt(1.0 - theta) * root_e
        return root * root

    def cheapest(self, theta: float, T: float) -> np.ndarray:
        """Each device's cheapest option index k at prices theta and makespan T (ties: smaller cut)."""
        x, y, z, usable = self.vectors(T)
        return np.argmin(np.where(usable, price(theta, x, y, z), np.inf), axis=1)

    def cuts(self, model: EdgeSplitModel, index: np.ndarray) -> np.ndarray:
        """The 1-based cuts of option index k per device."""
        return model.options.cuts[self.column[np.arange(self.n_devices), index]]


def price(theta: float | np.ndarray, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """h(theta) = theta x + (1 - theta) y + 2 sqrt(theta (1 - theta)) z; a vector of theta
    values adds a trailing axis."""
    theta = np.asarray(theta, dtype=float)
    if theta.ndim:
        x, y, z = x[..., None], y[..., None], z[..., None]
    return theta * x + (1.0 - theta) * y + 2.0 * np.sqrt(theta * (1.0 - theta)) * z


def fits(X: float, Y: float, Z: float) -> bool:
    """Whether a summed price vector fits both budgets: X <= 1, Y <= 1, (1-X)(1-Y) >= Z^2."""
    return X <= 1.0 and Y <= 1.0 and (1.0 - X) * (1.0 - Y) >= Z * Z


def fits_many(X: np.ndarray, Y: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """:func:`fits` for arrays of summed price vectors."""
    return (X <= 1.0) & (Y <= 1.0) & ((1.0 - X) * (1.0 - Y) >= Z * Z)


def fixed_makespan(options: PricedOptions, index: np.ndarray) -> float:
    """The least makespan [s] of option index k per device."""
    return swap_path(options, index, index, np.array([], dtype=int))[1]


def equal_split_makespan(options: PricedOptions, index: np.ndarray) -> float:
    """max_i a_i + N (d_i + e_i) for option index k per device: with p = q = 1/N each, a
    makespan that fits [s]."""
    rows = np.arange(options.n_devices)
    need = options.comm_s[rows, index] + options.server_s[rows, index]
    return float((options.device_s[rows, index] + options.n_devices * need).max())


def swap_path(options: PricedOptions, left: np.ndarray, right: np.ndarray, order: np.ndarray) -> tuple[int, float]:
    """The best of the choices met moving from option indices ``left`` to ``right`` one device
    at a time, in ``order`` (the devices where they differ): (devices switched k, least
    makespan [s]).

    Bisection on T with the closed-form check of every prefix at once: at each T the
    summed price vector of prefix k is a cumulative sum, so one step costs O(N). The
    upper end, where every prefix fits, is the larger equal-split makespan of the two ends.
    """
    rows = np.arange(options.n_devices)
    steps_needed = len(order)
    moving = np.zeros(options.n_devices, dtype=bool)
    moving[order] = True

    def fitting_prefixes(T: float) -> np.ndarray:
        *vectors, usable = options.vectors(T)
        v_left = np.stack([v[rows, left] for v in vectors])
        v_right = np.stack([v[rows, right] for v in vectors])
        ok_left, ok_right = usable[rows, left], usable[rows, right]
        if not ok_left[~moving].all():
            return np.zeros(steps_needed + 1, dtype=bool)
        # Prefix k switches order[:k]: each switched device needs its right option usable,
        # each kept one its left option.
        k = np.arange(steps_needed + 1)
        valid = np.ones(steps_needed + 1, dtype=bool)
        bad_right, bad_left = np.flatnonzero(~ok_right[order]), np.flatnonzero(~ok_left[order])
        if len(bad_right):
            valid &= k <= bad_right[0]
        if len(bad_left):
            valid &= k > bad_left[-1]
        change = np.cumsum(v_right[:, order] - v_left[:, order], axis=1)
        X, Y, Z = v_left.sum(axis=1)[:, None] + np.concatenate([np.zeros((3, 1)), change], axis=1)
        return valid & fits_many(X, Y, Z)

    a_left, a_right = options.device_s[rows, left], options.device_s[rows, right]
    upper = max(equal_split_makespan(options, left), equal_split_makespan(options, right))
    lower = min(float(np.minimum(a_left, a_right).max()), upper)
    found = fitting_prefixes(lower)
    if found.any():  # devices that need no resources set the makespan
        return int(np.argmax(found)), lower
    found = fitting_prefixes(upper)
    steps = 0
    while upper - lower > ROOT_TOLERANCE * upper and steps < MAX_STEPS:
        middle = 0.5 * (lower + upper)
        if middle <= lower or middle >= upper:
            break
        fitting = fitting_prefixes(middle)
        if fitting.any():
            upper, found = middle, fitting
        else:
            lower = middle
        steps += 1
    return int(np.argmax(found)), upper


def lagrangian_makespan(
    options: PricedOptions, theta: np.ndarray, lower: float, upper: float, start: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """tau(theta) for a vector of prices: (certified lower ends, upper ends) [s].

    Solves Psi(theta; T) = sum_i min_c w/(T - a) = 1 for each theta by Newton steps kept
    inside a bracket (bisection when a step leaves it), from ``start`` (default ``upper``).
    ``lower`` must not exceed the floor of the options and ``upper`` must fit (Psi <= 1 for
    every theta there, such as the equal-split makespan). Each returned lower end has
    Psi > 1 (or equals ``lower``); each upper end has Psi <= 1.
    """
    theta = np.atleast_1d(np.asarray(theta, dtype=float))
    count = len(theta)
    lo = np.full(count, float(lower))
    hi = np.full(count, float(upper))
    T = hi.copy() if start is None else np.clip(np.asarray(start, dtype=float), lower, upper)
    active = np.arange(count)
    w = options.numerators(theta)
    for _ in range(MAX_STEPS):
        need, slope = _need_and_slope(options, w[:, :, active], T[active])
        above = need > 1.0
        lo[active] = np.where(above, T[active], lo[active])
        hi[active] = np.where(above, hi[active], T[active])
        with np.errstate(divide="ignore", invalid="ignore"):
            step = T[active] + (need - 1.0) / -slope
        # Newton converges from one side; once its steps are tiny, step across the root so
        # that the bracket closes.
        nudge = 0.5 * ROOT_TOLERANCE * hi[active]
        step = np.where(np.abs(step - T[active]) < nudge, T[active] + np.where(step > T[active], nudge, -nudge), step)
        inside = np.isfinite(step) & (step > lo[active]) & (step < hi[active])
        T[active] = np.where(inside, step, 0.5 * (lo[active] + hi[active]))
        open_ = hi[active] - lo[active] > ROOT_TOLERANCE * hi[active]
        active = active[open_]
        if not len(active):
            break
    return lo, hi


def _need_and_slope(options: PricedOptions, w: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Psi(theta; T) and dPsi/dT per theta (columns of w), with T one value per theta."""
    a = options.device_s[..., None]
    usable = options.usable(T)
    slack = np.where(usable & (a < T), T - a, 1.0)
    cost = np.where(usable, w / slack, np.inf)
    best = np.argmin(cost, axis=1)[:, None, :]
    least = np.take_along_axis(cost, best, axis=1)[:, 0, :]
    gap = np.take_along_axis(slack, best, axis=1)[:, 0, :]
    return least.sum(axis=0), -(least / gap).sum(axis=0)


@dataclass(frozen=True)
class RelaxedBound:
    """The Lagrangian (convex-hull) bound: certified ``lower`` [s], a makespan ``upper`` [s]
    within the root tolerance where the relaxation fits, and the best price ``theta``."""

    lower: float
    upper: float
    theta: float
    evaluations: int


SCAN_POINTS = 9
"""Prices scanned on a uniform grid before the golden-section search on tau."""


def relaxation_bound(options: PricedOptions, upper: float, deadline=None, precision: float = 1e-10) -> RelaxedBound:
    """max_theta tau(theta): a uniform scan, then golden-section search to ``precision`` in
    theta around the best scanned price (tau is quasi-concave). Each tau starts from the
    last root, and one price is priced at a time (memory O(N K)). Stops early, with a valid
    bound, when ``deadline`` expires."""
    floor = options.floor()
    top = [-math.inf, upper, 0.0]
    evaluations = 0

    def tau(theta: float) -> float:
        nonlocal evaluations
        evaluations += 1
        start = np.array([min(top[1], upper)])
        lo, hi = lagrangian_makespan(options, np.array([theta]), floor, upper, start=start)
        if lo[0] > top[0]:
            top[:] = [float(lo[0]), float(hi[0]), theta]
        return float(lo[0])

    grid = np.linspace(0.0, 1.0, SCAN_POINTS)
    scanned = [tau(theta) for theta in grid]
    best = int(np.argmax(scanned))
    left, right = grid[max(best - 1, 0)], grid[min(best + 1, SCAN_POINTS - 1)]
    inner_left = right - GOLDEN * (right - left)
    inner_right = left + GOLDEN * (right - left)
    value_left, value_right = tau(inner_left), tau(inner_right)
    while right - left > precision and evaluations < MAX_STEPS:
        if deadline is not None and deadline.expired:
            break
        if value_left >= value_right:
            right, inner_right, value_right = inner_right, inner_left, value_left
            inner_left = right - GOLDEN * (right - left)
            value_left = tau(inner_left)
        else:
            left, inner_left, value_left = inner_left, inner_right, value_right
            inner_right = left + GOLDEN * (right - left)
            value_right = tau(inner_right)
    return RelaxedBound(lower=top[0], upper=top[1], theta=top[2], evaluations=evaluations)


def _slack(device_s: np.ndarray, T: float | np.ndarray) -> np.ndarray:
    T = np.asarray(T, dtype=float)
    return T - (device_s[..., None] if T.ndim else device_s)


def _expand(mask: np.ndarray, like: np.ndarray) -> np.ndarray:
    return mask[..., None] if like.ndim > mask.ndim else mask


def _dominated(fixed: np.ndarray, comm: np.ndarray, server: np.ndarray, feasible: np.ndarray) -> np.ndarray:
    """Options another feasible option of the same device beats or equals in (a, d, e)
    (equal ones: the larger cut is dropped). Shape (N, C)."""
    C = fixed.shape[1]
    keys = [np.where(feasible, v, np.inf) for v in (fixed, comm, server)]
    # other[:, j, k]: option k (the challenger) against option j.
    no_worse = np.ones((fixed.shape[0], C, C), dtype=bool)
    better = np.zeros((fixed.shape[0], C, C), dtype=bool)
    for v in keys:
        no_worse &= v[:, None, :] <= v[:, :, None]
        better |= v[:, None, :] < v[:, :, None]
    earlier = np.arange(C)[None, :] < np.arange(C)[:, None]  # [j, k]: k < j
    beats = no_worse & (better | earlier[None]) & feasible[:, None, :]
    np.einsum("njj->nj", beats)[...] = False
    return beats.any(axis=2)
