"""Per-device quantities of ``fl_energy`` as NumPy arrays, for the solvers and the diagnosis.

Device k runs A_k = I_k c_k D_k CPU cycles per round and sends s_k bits on b_k Hz at the
Shannon rate r_k(b) = b log2(1 + a_k/b) with a_k = g_k p_k / N0 [Hz]. r_k is increasing
and concave, with supremum (rate cap) a_k/ln 2. For a bandwidth b the cheapest frequency
meeting the deadline is f_k(b) = A_k / (T - s_k/r_k(b)); it is at most f_k^max exactly when
b >= b_k^min, the bandwidth that leaves the upload T - A_k/f_k^max seconds. On that range
the device's energy E_k(b) = kappa_k A_k f_k(b)^2 + p_k s_k/r_k(b) is convex and decreasing.

The model's evaluator does not use this module (it recomputes everything in plain loops).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgeopt.models.fl_energy.schema import FLEnergyInstance

LN2 = math.log(2.0)

BISECTION_STEPS = 200
"""Halvings of log(b) in :func:`min_bandwidth` (far more than float precision needs)."""


@dataclass(frozen=True)
class Fleet:
    """The instance as arrays of shape (K,). Units: cycles for ``cycles``, Hz for
    ``max_frequency_hz`` and ``snr_hz`` (a_k = g_k p_k / N0), J/(cycle*Hz^2) for
    ``capacitance``, W for ``power_w``, bit for ``upload_bits``; scalars T [s], B [Hz]."""

    cycles: np.ndarray
    max_frequency_hz: np.ndarray
    capacitance: np.ndarray
    power_w: np.ndarray
    upload_bits: np.ndarray
    snr_hz: np.ndarray
    deadline_s: float
    bandwidth_hz: float

    @property
    def size(self) -> int:
        return len(self.cycles)

    @property
    def fastest_compute_s(self) -> np.ndarray:
        """A_k / f_k^max: compute seconds at the highest frequency."""
        return self.cycles / self.max_frequency_hz

    @property
    def upload_budget_s(self) -> np.ndarray:
        """tau_k = T - A_k / f_k^max: the longest upload that still meets the deadline [s]."""
        return self.deadline_s - self.fastest_compute_s

    @property
    def rate_cap_bps(self) -> np.ndarray:
        """a_k / ln 2: the rate no bandwidth reaches [bit/s]."""
        return self.snr_hz / LN2


def fleet(instance: FLEnergyInstance) -> Fleet:
    """The arrays of ``instance`` (per-device ``local_iterations`` override the global one)."""
    devices = instance.devices
    iterations = np.array(
        [instance.local_iterations if d.local_iterations is None else d.local_iterations for d in devices],
        dtype=float,
    )
    cycles = iterations * np.array([d.cycles_per_sample * d.samples for d in devices], dtype=float)
    power = np.array([d.power_w for d in devices], dtype=float)
    gain = np.array([d.channel_gain for d in devices], dtype=float)
    return Fleet(
        cycles=cycles,
        max_frequency_hz=np.array([d.max_frequency_hz for d in devices], dtype=float),
        capacitance=np.array([d.capacitance for d in devices], dtype=float),
        power_w=power,
        upload_bits=np.array([d.upload_bits for d in devices], dtype=float),
        snr_hz=gain * power / instance.noise_psd_w_per_hz,
        deadline_s=float(instance.deadline_s),
        bandwidth_hz=float(instance.bandwidth_hz),
    )


def rate(bandwidth_hz: np.ndarray, snr_hz: np.ndarray) -> np.ndarray:
    """r(b) = b log2(1 + a/b) [bit/s], 0 at b = 0."""
    b = np.asarray(bandwidth_hz, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = b * np.log1p(snr_hz / b) / LN2
    return np.where(b > 0, value, 0.0)


def rate_slope(bandwidth_hz: np.ndarray, snr_hz: np.ndarray) -> np.ndarray:
    """r'(b) = (ln(1 + x) - x/(1 + x)) / ln 2 with x = a/b [bit/s/Hz], > 0 for b > 0.

    For x < 1e-3 the difference cancels; the series sum_{n>=2} (-1)^n (n-1)/n x^n is used.
    """
    x = np.asarray(snr_hz / np.asarray(bandwidth_hz, dtype=float), dtype=float)
    direct = np.log1p(x) - x / (1.0 + x)
    series = x * x * (0.5 - x * (2.0 / 3.0 - x * (0.75 - 0.8 * x)))
    return np.where(x < 1e-3, series, direct) / LN2


def min_bandwidth(fleet: Fleet) -> np.ndarray:
    """b_k^min [Hz]: the least bandwidth with s_k / r_k(b) <= T - A_k/f_k^max, i.e. the
    least bandwidth on which device k meets the deadline (at f_k^max). ``inf`` when the
    compute alone misses the deadline or the upload needs more than the rate cap.

    Found by bisection on log(b) between bounds where the condition fails and holds; the
    returned value is the upper end, where it holds in floating point.
    """
    needed_rate = np.full(fleet.size, np.inf)
    budget = fleet.upload_budget_s
    positive = budget > 0
    needed_rate[positive] = fleet.upload_bits[positive] / budget[positive]
    reachable = needed_rate < fleet.rate_cap_bps
    result = np.full(fleet.size, np.inf)
    if not reachable.any():
        return result
    q, a = needed_rate[reachable], fleet.snr_hz[reachable]
    # a bracket [lo, hi] with r(lo) < q <= r(hi), widened geometrically (r -> 0 as b -> 0,
    # r -> a/ln 2 > q as b -> inf)
    lo = np.minimum(q, a) * 1e-3
    hi = np.maximum(q, a)
    for _ in range(400):
        short = rate(lo, a) >= q
        if not short.any():
            break
        lo = np.where(short, lo * 1e-3, lo)
    for _ in range(400):
        under = rate(hi, a) < q
        if not under.any():
            break
        hi = np.where(under, hi * 2.0, hi)
    for _ in range(BISECTION_STEPS):
        mid = np.sqrt(lo * hi)
        ok = rate(mid, a) >= q
        hi = np.where(ok, mid, hi)
        lo = np.where(ok, lo, mid)
        if np.all(hi <= lo * (1 + 4e-16)):
            break
    result[reachable] = hi
    return result


def upload_time(bandwidth_hz: np.ndarray, fleet: Fleet) -> np.ndarray:
    """s_k / r_k(b_k) [s] (inf at b = 0)."""
    r = rate(bandwidth_hz, fleet.snr_hz)
    with np.errstate(divide="ignore"):
        return np.where(r > 0, fleet.upload_bits / np.where(r > 0, r, 1.0), np.inf)


def cheapest_frequency(bandwidth_hz: np.ndarray, fleet: Fleet) -> np.ndarray:
    """f_k(b) = A_k / (T - s_k/r_k(b)) [Hz], capped at f_k^max (use it for b >= b_k^min)."""
    left = fleet.deadline_s - upload_time(bandwidth_hz, fleet)
    with np.errstate(divide="ignore"):
        frequency = np.where(left > 0, fleet.cycles / np.where(left > 0, left, 1.0), np.inf)
    return np.minimum(frequency, fleet.max_frequency_hz)


def energy(frequency_hz: np.ndarray, bandwidth_hz: np.ndarray, fleet: Fleet) -> tuple[np.ndarray, np.ndarray]:
    """(compute energy kappa_k A_k f_k^2, upload energy p_k s_k / r_k(b_k)) per device [J]."""
    compute = fleet.capacitance * fleet.cycles * np.asarray(frequency_hz, dtype=float) ** 2
    return compute, fleet.power_w * upload_time(bandwidth_hz, fleet)
