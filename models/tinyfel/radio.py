"""Shannon-rate uplink, its rate cap and the closed-form minimum bandwidth (spec §3.2, §9).

Device k with SNR-bandwidth product S_k = P_k g_k / N0 [Hz] reaches
r_k(b) = b log2(1 + S_k/b) [bit/s] on b Hz: increasing, concave and below the rate cap
S_k/ln 2, which is never attained. The least bandwidth carrying q bit/s is

    psi_k(q) = -c / (W_{-1}(-a e^{-a}) + a),  c = q ln 2,  a = c / S_k,  if 0 < a < 1,

0 for q <= 0 and +inf for a >= 1. The principal branch W_0 returns the trivial root (b = inf);
the case a >= 1 is tested first because W_{-1}(-a e^{-a}) = -a there and the formula divides
by zero. Where the closed form loses accuracy (a near 1, a < 1e-12) the result is checked
against r(b) = q and replaced by a bracketed root when it misses by more than
:data:`RATE_RTOL`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq
from scipy.special import lambertw

LN2 = math.log(2.0)

RATE_RTOL = 1e-12
"""Relative accuracy of r(psi(q)) = q required of the closed form before the fallback."""


def rate(bandwidth_hz: np.ndarray | float, snr_hz: np.ndarray | float) -> np.ndarray:
    """r(b) = b log2(1 + S/b) [bit/s], with r(0) = 0 (element-wise)."""
    b = np.asarray(bandwidth_hz, dtype=float)
    s = np.asarray(snr_hz, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = b * np.log1p(s / b) / LN2
    return np.where(b > 0, value, 0.0)


def rate_cap(snr_hz: np.ndarray | float) -> np.ndarray:
    """r-bar = S / ln 2 [bit/s]: the supremum of r(b) over b, never attained."""
    return np.asarray(snr_hz, dtype=float) / LN2


def min_bandwidth(rate_bps: np.ndarray | float, snr_hz: np.ndarray | float) -> np.ndarray:
    """psi(q): the least b [Hz] with r(b) >= q (element-wise; +inf at or above the rate cap)."""
    q, s = np.broadcast_arrays(np.asarray(rate_bps, dtype=float), np.asarray(snr_hz, dtype=float))
    shape = q.shape
    q, s = q.ravel(), s.ravel()
    a = q * LN2 / s
    result = np.where(q <= 0, 0.0, np.inf)
    inside = np.flatnonzero((q > 0) & (a < 1))
    if inside.size:
        ai = a[inside]
        w = lambertw(-ai * np.exp(-ai), k=-1).real
        with np.errstate(divide="ignore", invalid="ignore"):
            result[inside] = -q[inside] * LN2 / (w + ai)
        b = result[inside]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            miss = np.abs(b * np.log1p(s[inside] / b) / LN2 - q[inside])
        clear = np.isfinite(b) & (b > 0) & (miss <= 0.5 * RATE_RTOL * q[inside])
        for i in inside[~clear]:  # the scalar check decides; the vector one only screens
            b = result[i]
            if not (math.isfinite(b) and b > 0) or abs(_rate(b, s[i]) - q[i]) > RATE_RTOL * q[i]:
                result[i] = _bracketed(float(q[i]), float(s[i]), b)
    return result.reshape(shape)


def _rate(b: float, s: float) -> float:
    return b * math.log1p(s / b) / LN2


def _bracketed(q: float, s: float, guess: float) -> float:
    """The root of r(b) = q by Brent's method, bracketed by doubling/halving around ``guess``.

    Returns +inf when no float bandwidth reaches q (q within rounding of the rate cap).
    """
    start = guess if math.isfinite(guess) and guess > 0 else q * LN2
    low, high = start, start
    for _ in range(_MAX_DOUBLINGS):
        if _rate(high, s) >= q:
            break
        high *= 2.0
    else:
        return math.inf
    while _rate(low, s) >= q:
        low /= 2.0
    return brentq(lambda b: _rate(b, s) - q, low, high, xtol=1e-300, rtol=4 * np.finfo(float).eps)


_MAX_DOUBLINGS = 2000
"""Doublings of the upper bracket before q is taken to be at the rate cap."""
