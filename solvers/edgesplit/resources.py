"""Exact resource allocation for fixed cuts (spec §5.2 step 2 and §5.3(d)).

All functions work in seconds: ``fixed_s`` is the part of T_i that resources do not change,
``need_d`` = D'/B and ``need_e`` = S/F are the seconds device i would need with the whole
band (whole server); the allocations returned are fractions p_i = b_i/B and q_i = s_i/F.
"""

from __future__ import annotations

import math

import numpy as np

RELATIVE_TOLERANCE = 1e-15
MAX_BISECTIONS = 200


def bisect_min_feasible(feasible, lower: float, upper: float, tolerance: float = RELATIVE_TOLERANCE) -> tuple[float, float, int]:
    """Smallest T in (lower, upper] with ``feasible(T)`` for a monotone predicate.

    ``upper`` must be feasible. Returns (lower, upper, iterations) with
    upper - lower <= tolerance * upper (or 200 halvings, or no float strictly between).
    """
    iterations = 0
    while upper - lower > tolerance * upper and iterations < MAX_BISECTIONS:
        middle = 0.5 * (lower + upper)
        if middle <= lower or middle >= upper:
            break
        if feasible(middle):
            upper = middle
        else:
            lower = middle
        iterations += 1
    return lower, upper, iterations


def dedicated_allocation(fixed_s: np.ndarray, need_d: np.ndarray) -> tuple[float, np.ndarray]:
    """Minimum makespan and bandwidth fractions for fixed cuts, dedicated server.

    Solves sum_{d_i>0} d_i/(T - a_i) = 1 on T > max a_i (strictly decreasing left side, so
    bisection finds the root); T = max(root, largest a_i of a zero-traffic device);
    p_i = d_i/(T - a_i), 0 for zero-traffic devices. Every traffic device ends at T_i = T.
    """
    fixed_s = np.asarray(fixed_s, dtype=float)
    need_d = np.asarray(need_d, dtype=float)
    traffic = need_d > 0
    floor = float(fixed_s[~traffic].max()) if (~traffic).any() else 0.0
    if not traffic.any():
        return float(fixed_s.max()), np.zeros_like(fixed_s)
    a, d = fixed_s[traffic], need_d[traffic]
    lower = float(a.max())
    upper = lower + math.fsum(d)

    def fits(T: float) -> bool:
        return math.fsum(d / (T - a)) <= 1.0

    if fits(floor) and floor > lower:
        makespan = floor
    else:
        _, makespan, _ = bisect_min_feasible(fits, lower, upper)
        makespan = max(makespan, floor)
    fractions = np.zeros_like(fixed_s)
    fractions[traffic] = d / (makespan - a)
    return makespan, fractions


def _slack_sums(T: float, fixed_s: np.ndarray, need_d: np.ndarray, need_e: np.ndarray):
    slack = T - fixed_s
    active = (need_d > 0) | (need_e > 0)
    if (slack[active] <= 0).any() or (slack < 0).any():
        return None
    t = slack[active]
    d, e = need_d[active], need_e[active]
    return math.fsum(d / t), math.fsum(e / t), math.fsum(np.sqrt(d * e) / t)


def shared_feasible(T: float, fixed_s: np.ndarray, need_d: np.ndarray, need_e: np.ndarray) -> bool:
    """The exact two-resource check: is there p, q >= 0 with sum p <= 1, sum q <= 1 and
    a_i + d_i/p_i + e_i/q_i <= T for all i?

    With t_i = T - a_i, a = sum d/t, c = sum e/t, g = sum sqrt(d e)/t, the cheapest points
    p_i(lam), q_i(lam) of spec §5.3(d) give: feasible iff a <= 1, c <= 1 and
    (1 - a)(1 - c) >= g^2.
    """
    sums = _slack_sums(T, fixed_s, need_d, need_e)
    if sums is None:
        return False
    a, c, g = sums
    return a <= 1.0 and c <= 1.0 and (1.0 - a) * (1.0 - c) >= g * g


def shared_point(T: float, fixed_s: np.ndarray, need_d: np.ndarray, need_e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fractions (p, q) meeting every T_i <= T at a feasible T, using all of the band.

    Uses the price ratio lam = (1 - a)/g (sum p = 1) when some device needs both resources.
    """
    slack = np.maximum(T - fixed_s, 0.0)
    active = (need_d > 0) | (need_e > 0)
    p = np.zeros_like(fixed_s)
    q = np.zeros_like(fixed_s)
    a, c, g = _slack_sums(T, fixed_s, need_d, need_e)
    t = slack[active]
    rd, re = np.sqrt(need_d[active]), np.sqrt(need_e[active])
    if g > 0:
        lam = (1.0 - a) / g
        p[active] = rd * (rd + lam * re) / t
        q[active] = re * (re + rd / lam) / t
    else:
        p[active] = need_d[active] / t
        q[active] = need_e[active] / t
    return p, q


def shared_allocation(fixed_s: np.ndarray, need_d: np.ndarray, need_e: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Minimum makespan for fixed cuts with a shared server: (lower, T, p, q).

    Bisection on T with :func:`shared_feasible` between max a_i and the equal-split makespan
    max_i (a_i + N d_i + N e_i), which is feasible.
    """
    fixed_s = np.asarray(fixed_s, dtype=float)
    need_d = np.asarray(need_d, dtype=float)
    need_e = np.asarray(need_e, dtype=float)
    n = len(fixed_s)
    lower = float(fixed_s.max())
    upper = float((fixed_s + n * need_d + n * need_e).max())

    def fits(T: float) -> bool:
        return shared_feasible(T, fixed_s, need_d, need_e)

    if fits(lower):
        upper = lower
    else:
        lower, upper, _ = bisect_min_feasible(fits, lower, upper)
    p, q = shared_point(upper, fixed_s, need_d, need_e)
    return lower, upper, p, q


def allocate_for_cuts(model, cuts: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray | None]:
    """Optimal resources for fixed cuts: (lower bound, makespan T [s], b [Hz], s [FLOP/s] or None)."""
    table = model.options
    rows = np.arange(model.n_devices)
    col = table.index_of(cuts)
    inst = model.instance
    need_d = table.bandwidth_seconds[rows, col] / inst.bandwidth_hz
    if model.shared:
        need_e = table.server_s[rows, col]
        lower, makespan, p, q = shared_allocation(table.device_s[rows, col], need_d, need_e)
        return lower, makespan, p * inst.bandwidth_hz, q * inst.server_flops_per_s
    makespan, p = dedicated_allocation(table.dedicated_s[rows, col], need_d)
    return makespan, makespan, p * inst.bandwidth_hz, None
