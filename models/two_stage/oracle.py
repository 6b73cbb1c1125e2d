"""Minimum-energy oracle of spec §5.5: for fixed (M, N, D, B), the least energy E* within the
delay budget and its unique minimiser (the canonical resources of a solution, §3.4).

Why this is exact. In time variables (t_s, t_k, tau_k, u) every energy term is strictly
convex and strictly decreasing (A/t^2 and the upload energy phi_k, identities I7-I8) and the
delay row M t_s + N u <= T is linear, so the delay row is tight and every device finishes
each round exactly at u. The problem is therefore two nested one-dimensional convex ones:

    eps_k(u) = min over t in [C_k B_k/f_k^max, u - tau_k^min] of A_k/t^2 + phi_k(u - t)
    E*       = min over u in [u^min, (T - M t_s^min)/N] of M A_s/t_s(u)^2 + N sum_k eps_k(u),
               t_s(u) = (T - N u)/M

Both are solved on their derivatives, which are monotone: inner g(t) = -2A_k/t^3 -
phi_k'(u - t) increases in t (safeguarded Newton inside the bracket, all devices at once);
outer h(u) = 2A_s/t_s^3 + sum_k eps_k'(u) increases in u (Brent's method), with the
envelope derivative eps_k'(u) = min(-2A_k/t^3, phi_k'(u - t)) at the inner minimiser (the
two are equal inside the bracket; at a bound the free time is the one that grows with u).
A sign test at the bracket ends handles the clipped cases. M = 0 gives u = T/N; N = 0
gives t_s = T/M. Accuracy: roots to ~1e-15 relative in time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from edgeopt.models.two_stage.derived import (
    Derived,
    upload_energy,
    upload_energy_curvature,
    upload_energy_slope,
)

DELAY_RTOL = 1e-12
"""A cell is delay-feasible when its least delay is <= T_max (1 + 1e-12)."""

SNAP_RTOL = 1e-13
"""A time within this relative distance of its floor reports the cap itself (f^max, P^max),
not the round-off of C B / t or of the power inverse."""


@dataclass(frozen=True)
class MinEnergy:
    """Result of :func:`min_energy` for one (M, N, D, B).

    ``delay_feasible``: the least delay ``min_delay_s`` = M t_s^min + N u^min fits T_max;
    ``feasible``: also ``energy_j`` (E*) <= E_max. Times [s]: ``server_time_s`` t_s,
    ``round_time_s`` u, ``compute_s`` t_k and ``upload_s`` tau_k (per device); resources:
    ``server_clock_hz``, ``device_clock_hz`` [Hz], ``power_w`` [W] (0 for an unused stage,
    NaN when not delay-feasible); ``energy_j`` = inf when not delay-feasible.
    """

    delay_feasible: bool
    feasible: bool
    energy_j: float
    delay_s: float
    min_delay_s: float
    server_time_s: float
    round_time_s: float
    compute_s: np.ndarray
    upload_s: np.ndarray
    server_clock_hz: float
    device_clock_hz: np.ndarray
    power_w: np.ndarray


def min_energy(
    derived: Derived,
    M: int,
    N: int,
    D: float,
    B,
    *,
    delay_budget_s: float | None = None,
    energy_budget_j: float | None = None,
    gains=None,
) -> MinEnergy:
    """E* and the minimum-energy resources of (M, N, D, B) under the delay budget.

    ``B`` has one (possibly real) batch per device; D and B are ignored for a stage with 0
    rounds. Budgets default to the instance's (override them for split budgets).
    ``gains`` = h_k of the fine-tuning rounds (default static ``channel_gain``); with a
    ``channel_gain_schedule`` this oracle is the exact one for N <= 1 (pass the round-0
    gains), per-round channels for N > 1 are the ``per_round`` solvers' business.
    """
    if M < 0 or N < 0 or M + N < 1:
        raise ValueError(f"(M, N) = ({M}, {N}): need M, N >= 0 and M + N >= 1")
    T = derived.delay_budget_s if delay_budget_s is None else float(delay_budget_s)
    E_max = derived.energy_budget_j if energy_budget_j is None else float(energy_budget_j)
    K = derived.n_devices
    B = np.broadcast_to(np.asarray(B, float), (K,)) if N > 0 else np.ones(K)
    h = derived.channel_gain if gains is None else np.asarray(gains, float)
    scale = derived.noise_w_per_hz * derived.bandwidth_hz / h
    tau_min = derived.bits / derived.rate(derived.max_power_w, h)
    t_min = derived.device_cycles * B / derived.device_clock_hz
    A = derived.device_capacitance * (derived.device_cycles * B) ** 3
    A_s = derived.server_capacitance * (derived.server_cycles * D) ** 3 if M > 0 else 0.0
    ts_min = derived.server_cycles * D / derived.server_clock_hz if M > 0 else 0.0
    u_min = float(np.max(t_min + tau_min)) if N > 0 else 0.0
    least = M * ts_min + N * u_min
    if least > T * (1 + DELAY_RTOL):
        nan = np.full(K, np.nan)
        return MinEnergy(False, False, np.inf, least, least, np.nan, np.nan, nan, nan,
                         np.nan, nan, nan)

    last_split: list[np.ndarray] = []  # the previous u's split: Newton's start for the next

    def inner(u: float) -> tuple[np.ndarray, np.ndarray]:
        """(t_k, eps_k'(u)) at the inner minimisers for round time u."""
        t = _device_split(u, A, t_min, tau_min, scale, derived,
                          start=last_split[0] if last_split else None)
        last_split[:] = [t]
        slope = np.minimum(-2 * A / t**3, upload_energy_slope(u - t, scale, derived.bits,
                                                              derived.bandwidth_hz))
        return t, slope

    if N == 0:
        t_s, u = T / M, 0.0
    elif M == 0:
        t_s, u = 0.0, T / N
    else:
        u_max = max((T - M * ts_min) / N, u_min)

        def h_of(u: float) -> float:
            # t_s >= ts_min on [u_min, u_max]; the max() keeps rounding from reaching 0 when
            # M ts_min is below T's last digit (a server clock ~1e21 Hz)
            t_s = max((T - N * u) / M, ts_min)
            return 2 * A_s / t_s**3 + float(np.sum(inner(u)[1]))

        if u_max <= u_min or h_of(u_min) >= 0:
            u = u_min
        elif h_of(u_max) <= 0:
            u = u_max
        else:
            u = brentq(h_of, u_min, u_max, xtol=1e-15 * u_max, rtol=4 * np.finfo(float).eps)
        t_s = max((T - N * u) / M, ts_min)
    if N > 0:
        t = _device_split(u, A, t_min, tau_min, scale, derived,
                          start=last_split[0] if last_split else None)
        tau = np.maximum(u - t, tau_min)
        at_cap = t <= t_min * (1 + SNAP_RTOL)
        f = np.where(at_cap, derived.device_clock_hz, derived.device_cycles * B / t)
        p = np.where(tau <= tau_min * (1 + SNAP_RTOL), derived.max_power_w,
                     derived.power_for_time(tau, h))
        e_dev = float(np.sum(A / t**2 + upload_energy(tau, scale, derived.bits,
                                                       derived.bandwidth_hz)))
    else:
        t, tau, f, p, e_dev = np.zeros(K), np.zeros(K), np.zeros(K), np.zeros(K), 0.0
    f_s = 0.0
    if M > 0:
        f_s = derived.server_clock_hz
        if t_s > ts_min * (1 + SNAP_RTOL):
            f_s = min(derived.server_cycles * D / t_s, f_s)
    energy = (M * A_s / t_s**2 if M > 0 else 0.0) + N * e_dev
    return MinEnergy(
        delay_feasible=True,
        feasible=bool(energy <= E_max),
        energy_j=float(energy),
        delay_s=float(M * t_s + N * u),
        min_delay_s=float(least),
        server_time_s=float(t_s),
        round_time_s=float(u),
        compute_s=t,
        upload_s=tau,
        server_clock_hz=float(f_s),
        device_clock_hz=f,
        power_w=p,
    )


def _device_split(u, A, t_min, tau_min, scale, derived: Derived, iterations: int = 100,
                  start: np.ndarray | None = None):
    """Compute time t_k minimising A_k/t^2 + phi_k(u - t) on [t_min, u - tau_min]
    (vectorised over devices). The stationarity condition 2A/t^3 = -phi'(u - t) is solved in
    logs, G(t) = ln(2A/t^3) - ln(-phi'(u - t)) (decreasing in t, nearly linear in ln t), by
    Newton steps kept inside the shrinking bracket (bisection when a step leaves it), from
    ``start`` (e.g. the split at a nearby u; clipped into the bracket) or the bracket's
    geometric middle."""
    bits, band = derived.bits, derived.bandwidth_hz
    lo = t_min.copy()
    hi = np.maximum(u - tau_min, lo)
    log_2a = np.log(2 * A)

    def G(t):
        return log_2a - 3 * np.log(t) - np.log(-upload_energy_slope(u - t, scale, bits, band))

    done_lo, done_hi = G(lo) <= 0, G(hi) >= 0
    inner = np.sqrt(lo * hi) if start is None else np.clip(start, lo, hi)
    t = np.where(done_lo, lo, np.where(done_hi, hi, inner))
    active = ~(done_lo | done_hi) & (hi > lo)
    for _ in range(iterations):
        if not active.any():
            break
        value = G(t)
        lo = np.where(active & (value > 0), t, lo)
        hi = np.where(active & (value < 0), t, hi)
        tau = u - t
        slope = -3 / t - upload_energy_curvature(tau, scale, bits, band) / -upload_energy_slope(
            tau, scale, bits, band
        )
        step = t - value / slope
        inside = (step > lo) & (step < hi)
        new = np.where(inside, step, 0.5 * (lo + hi))
        converged = (np.abs(new - t) <= 1e-15 * t) | (value == 0) | (hi - lo <= 1e-15 * t)
        t = np.where(active, new, t)
        active &= ~converged
    return t
