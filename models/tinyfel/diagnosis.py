"""Structural infeasibility of a TinyFEL instance, in the order of spec §5.

1. ``min_selected`` (cause: memory): fewer than K_min devices fit any option n >= n_min.
2. ``energy``: fewer than K_min devices keep an option once the energy rows are applied.
   (A device left without an option is simply never selected; the instance is infeasible
   only when this leaves fewer than K_min devices, as for memory.)
3. ``bandwidth`` (cause: rate cap), only with a deadline on T_round: fewer than K_min
   devices keep an option whose rate cap Tcmp + Q ln2/S_k + T_dl lies below the deadline.
4. ``bias_budget`` (P1): the least achievable value of the budget row exceeds epsilon0.
5. ``bandwidth``: even the K_min cheapest devices need more than B (energy minimum
   bandwidths, or the minimum bandwidths at the deadline). This is a necessary condition
   only; the full check is the multiple-choice knapsack of the solvers (spec §5.1).
6. ``target_unreachable`` (P2): the least achievable Phi + N is >= epsilon.

The least bias is exact for the linear form (with or without the noise term: choosing a
device changes the row by the separable amount -p_k rho G^2 + noise coefficient) and for
the quadratic form without noise (coverage is then maximal on every layer at once); for
the quadratic form with noise and for the normalised aggregation it is a lower bound, so a
reported infeasibility is always proven, but some infeasible instances pass this check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgeopt.models.base import Infeasibility
from edgeopt.models.tinyfel.options import OptionTable

if TYPE_CHECKING:
    from edgeopt.models.tinyfel.model import TinyFELModel


def diagnose(model: TinyFELModel, deadline_s: float | None = None) -> Infeasibility | None:
    """The first failing check of the module docstring, or ``None``."""
    table, inst = model.options, model.instance
    names = model.device_names
    need = inst.min_selected
    n_min = inst.min_updated_layers
    fits = (table.fits_memory & (table.layers_updated >= n_min)[None, :]).any(axis=1)
    if fits.sum() < need:
        short = [
            f"device {names[k]!r} needs >= {table.memory_bytes[n_min - 1]:.0f} bytes "
            f"(n = {n_min}), "
            f"has {inst.devices[k].memory_bytes:.0f}"
            for k in np.flatnonzero(~fits)
        ]
        return Infeasibility(
            "min_selected",
            f"min_selected = {need} but only {int(fits.sum())} device(s) fit in memory: "
            + "; ".join(short),
            {
                "constraint": "memory",
                "eligible": int(fits.sum()),
                "min_selected": need,
                "ineligible": [names[k] for k in np.flatnonzero(~fits)],
            },
        )
    usable = table.available.copy()
    kept = usable.any(axis=1)
    if kept.sum() < need:
        short = [_energy_note(model, k) for k in np.flatnonzero(fits & ~kept)]
        return Infeasibility(
            "energy",
            f"min_selected = {need} but only {int(kept.sum())} device(s) meet their energy budget: "
            + "; ".join(short),
            {"constraint": "energy", "eligible": int(kept.sum()), "min_selected": need},
        )
    band = np.where(usable, table.energy_bandwidth_hz, np.inf)
    if deadline_s is not None:
        band = table.min_bandwidth(deadline_s - table.downlink_s)
        capped = kept & ~np.isfinite(band).any(axis=1)
        usable &= np.isfinite(band)
        kept = usable.any(axis=1)
        if kept.sum() < need:
            short = [_rate_cap_note(model, k) for k in np.flatnonzero(capped)]
            return Infeasibility(
                "bandwidth",
                f"rate cap: at T_round = {deadline_s:.6g} s only {int(kept.sum())} device(s) "
                "keep an "
                f"option (min_selected = {need}): " + "; ".join(short),
                {
                    "constraint": "rate_cap",
                    "deadline_s": deadline_s,
                    "eligible": int(kept.sum()),
                    "rate_capped": [names[k] for k in np.flatnonzero(capped)],
                },
            )
    if not model.total_latency:
        least, exact = least_bias(model, usable, inst.include_noise_in_budget)
        if least > inst.bias_budget:
            label = "(Φ + N)_min" if inst.include_noise_in_budget else "Φ_min"
            bound = "" if exact else " (a lower bound)"
            return Infeasibility(
                "bias_budget",
                f"bias budget unreachable: {label} = {least:.6g}{bound} > "
                f"ε0 = {inst.bias_budget:.6g} "
                "even with all eligible devices at n_k^max" + _excluded(names, kept),
                {
                    "constraint": "bias_budget",
                    "least": least,
                    "bias_budget": inst.bias_budget,
                    "excess": least - inst.bias_budget,
                    "exact": exact,
                },
            )
    cheapest = np.sort(band.min(axis=1))[:need]
    if need and cheapest.sum() > table.bandwidth_hz:
        return Infeasibility(
            "bandwidth",
            f"bandwidth: the {need} device(s) needing least bandwidth need {cheapest.sum():.6g} Hz "
            f"> B = {table.bandwidth_hz:.6g} Hz",
            {
                "constraint": "bandwidth_budget",
                "needed_hz": float(cheapest.sum()),
                "bandwidth_hz": table.bandwidth_hz,
            },
        )
    if model.total_latency:
        least, exact = least_bias(model, usable, include_noise=True)
        target = inst.learning.target_stationarity
        if least >= target:
            bound = "" if exact else " (a lower bound)"
            return Infeasibility(
                "target_unreachable",
                f"target unreachable: (Φ + N)_min = {least:.6g}{bound} >= ε = {target:.6g}: "
                "no selection reaches the learning target" + _excluded(names, kept),
                {
                    "constraint": "target",
                    "least": least,
                    "target": target,
                    "excess": least - target,
                    "exact": exact,
                },
            )
    return None


def least_bias(model: TinyFELModel, usable: np.ndarray, include_noise: bool) -> tuple[float, bool]:
    """(least bias [+ N] over selections of usable options with >= K_min devices, exact?)."""
    table: OptionTable = model.options
    inst = model.instance
    kept = usable.any(axis=1)
    best_n = np.where(kept, usable.shape[1] - np.argmax(usable[:, ::-1], axis=1), 0)
    noise = table.noise_coeff if include_noise else np.zeros_like(table.noise_coeff)
    const = table.noise_const if include_noise else 0.0
    linear = inst.aggregation == "unnormalised" and inst.bias_form == "linear"
    if linear:
        gain = table.weights * table.ratio[np.maximum(best_n, 1) - 1] * table.grad_sq.sum() - noise
        gain = np.where(kept, gain, -np.inf)
        order = np.argsort(-gain)
        chosen = [k for k in order if gain[k] > 0]
        chosen += [k for k in order if gain[k] <= 0 and np.isfinite(gain[k])][
            : max(0, inst.min_selected - len(chosen))
        ]
        return float(table.grad_sq.sum() + const - gain[chosen].sum()), True
    terms = model.learning_terms(kept, best_n)
    cover = terms.coverage
    if inst.aggregation == "normalised":
        bias = float(np.sum(table.grad_sq * np.minimum(1.0, 4.0 * (1.0 - cover) ** 2)))
        exact = False
    else:
        bias, exact = terms.bias, not include_noise or not noise.any()
    floor = np.sort(noise[kept])[: inst.min_selected].sum() + const
    return bias + float(floor), exact


def _energy_note(model: TinyFELModel, k: int) -> str:
    table, device = model.options, model.instance.devices[k]
    fits = table.fits_memory[k] & (table.layers_updated >= model.instance.min_updated_layers)
    least = float(table.compute_energy_j[k][fits].min())
    return (
        f"device {device.name!r}: no option meets E_max = {device.energy_budget_j:.6g} J "
        f"(least compute energy {least:.6g} J)"
    )


def _rate_cap_note(model: TinyFELModel, k: int) -> str:
    table = model.options
    floors = np.where(table.available[k], table.latency_floor_s[k], np.inf) + table.downlink_s
    n = int(np.argmin(floors)) + 1
    return (
        f"device {model.device_names[k]!r}: no option finishes in time at any bandwidth; with the "
        f"upload at its rate cap r̄ = {table.rate_cap_bps[k]:.6g} bit/s the fastest (n = {n}) "
        f"needs T_round > {floors[n - 1]:.6g} s"
    )


def _excluded(names: tuple[str, ...], kept: np.ndarray) -> str:
    missing = [names[k] for k in np.flatnonzero(~kept)]
    return f" (devices without an option: {', '.join(missing)})" if missing else ""
