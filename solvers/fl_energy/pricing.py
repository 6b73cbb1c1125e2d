"""The bandwidth price: per-device 1-D problems and the certified dual function.

With the cheapest frequency for each bandwidth, device k's energy is the convex decreasing
function E_k(b) = kappa_k A_k^3 / (T - u_k(b))^2 + p_k u_k(b), u_k(b) = s_k / r_k(b), on
[b_k^min, B]. Pricing the budget sum_k b_k <= B at lambda [J/Hz] gives the dual function

    g(lambda) = sum_k min_{b in [b_k^min, B]} (E_k(b) + lambda b) - lambda B,

a lower bound on the optimum for every lambda >= 0 (weak duality; b_k <= B is implied by the
budget). Each minimum is found by bisection on the sign of the derivative, and its value is
bounded from below by the two tangents at the ends of the final bracket, so ``g`` is a
certified bound, not an estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeopt.models.fl_energy import FLEnergyModel, derived
from edgeopt.models.fl_energy.derived import Fleet

BRACKET_STEPS = 80
"""Most halvings of log(b) per device and price (the loop stops at float resolution)."""


def device_energy(fleet: Fleet, bandwidth_hz: np.ndarray) -> np.ndarray:
    """E_k(b_k) at the cheapest frequency [J] (b_k >= b_k^min)."""
    frequency = derived.cheapest_frequency(bandwidth_hz, fleet)
    compute, upload = derived.energy(frequency, bandwidth_hz, fleet)
    return compute + upload


def device_slope(fleet: Fleet, bandwidth_hz: np.ndarray) -> np.ndarray:
    """dE_k/db at b_k [J/Hz] (< 0): (2 kappa A^3/(T-u)^3 + p) u'(b), u' = -s r'/r^2."""
    b = np.asarray(bandwidth_hz, dtype=float)
    r = derived.rate(b, fleet.snr_hz)
    left = np.maximum(fleet.deadline_s - fleet.upload_bits / r, fleet.fastest_compute_s)
    du = -fleet.upload_bits * derived.rate_slope(b, fleet.snr_hz) / r**2
    return (2.0 * fleet.capacitance * fleet.cycles**3 / left**3 + fleet.power_w) * du


@dataclass(frozen=True)
class Priced:
    """The per-device answers at one price: ``bandwidth_hz`` the minimisers (within float
    resolution), ``lower`` certified lower bounds on each device's min E_k(b) + lambda b [J],
    ``dual`` = sum(lower) - lambda B [J]."""

    price: float
    bandwidth_hz: np.ndarray
    lower: np.ndarray
    dual: float


def price_bracket(model: FLEnergyModel) -> tuple[float, float]:
    """(lambda_lo, lambda_hi) [J/Hz]: at lambda_lo every device takes B, at lambda_hi every
    device stays at b^min, so the optimal price lies between them."""
    low_end = model.min_bandwidth_hz
    high_end = np.full(len(low_end), model.fleet.bandwidth_hz)
    return float(np.min(-device_slope(model.fleet, high_end))), float(np.max(-device_slope(model.fleet, low_end)))


def at_price(model: FLEnergyModel, price: float) -> Priced:
    """Minimise E_k(b) + price * b over [b_k^min, B] for every device at once."""
    lo = model.min_bandwidth_hz.copy()
    hi = np.full(len(lo), model.fleet.bandwidth_hz)
    slope_lo = device_slope(model.fleet, lo) + price
    slope_hi = device_slope(model.fleet, hi) + price
    at_lo, at_hi = slope_lo >= 0, slope_hi <= 0
    inside = ~(at_lo | at_hi)
    for _ in range(BRACKET_STEPS):
        if not np.any(inside & (hi > lo * (1 + 1e-15))):
            break
        mid = np.where(inside, np.sqrt(lo * hi), lo)
        slope = device_slope(model.fleet, mid) + price
        rising = inside & (slope >= 0)
        falling = inside & (slope < 0)
        hi, slope_hi = np.where(rising, mid, hi), np.where(rising, slope, slope_hi)
        lo, slope_lo = np.where(falling, mid, lo), np.where(falling, slope, slope_lo)
    value_lo = device_energy(model.fleet, lo) + price * lo
    value_hi = device_energy(model.fleet, hi) + price * hi
    # tangents at lo (slope <= 0) and hi (slope >= 0) meet below the convex function
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = (value_hi - value_lo + slope_lo * lo - slope_hi * hi) / (slope_lo - slope_hi)
        tangent = value_lo + slope_lo * (cross - lo)
    tangent = np.where(np.isfinite(tangent), np.minimum(tangent, np.minimum(value_lo, value_hi)),
                       np.minimum(value_lo, value_hi))
    lower = np.where(at_lo, value_lo, np.where(at_hi, value_hi, tangent))
    bandwidth = np.where(at_lo, lo, np.where(at_hi, hi, np.sqrt(lo * hi)))
    return Priced(price, bandwidth, lower, float(lower.sum() - price * model.fleet.bandwidth_hz))


def spend_budget(model: FLEnergyModel, bandwidth_hz: np.ndarray) -> np.ndarray:
    """A budget-feasible point near ``bandwidth_hz`` [Hz]: the parts above b^min scaled so the
    total is exactly B (up when under budget, down when over); B - sum b^min split equally
    when no part is above b^min. Energy only falls when a device gets more bandwidth."""
    floor = model.min_bandwidth_hz
    spare = model.fleet.bandwidth_hz - floor.sum()
    excess = np.maximum(np.asarray(bandwidth_hz, dtype=float) - floor, 0.0)
    if excess.sum() <= 0:
        return floor + spare / len(floor)
    return floor + excess * (spare / excess.sum())
