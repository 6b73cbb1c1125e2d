"""Shared pieces of the TinyFEL solvers: the bandwidth of fixed options, equal finishing
times (spec §4.1), Result assembly in the §3.3 solution format, and infeasible results.

A *decision* is a boolean selection a_k and the updated layers n_k (0 when unselected); the
bandwidth follows from it by :func:`equalise` unless a method fixes it (baselines).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgeopt.models.tinyfel import TinyFELModel, radio
from edgeopt.solvers.result import Result, Status, Timings
from edgeopt.solvers.result import infeasible_result as generic_infeasible

MAX_STEPS = 2000
"""Cap on bisection steps and bracket doublings of :func:`equalise` (float precision is
reached long before)."""

SPREAD_MARGIN = 1e-15
"""Relative shortfall of sum b below B after spreading (absorbs the rounding of the sum)."""

ENERGY_MARGIN = 1e-9
"""Relative bandwidth added to an energy minimum bmin^E, so that a device on its energy row
meets it strictly (the evaluator checks energy with no tolerance, and the Lambert-W minimum
bandwidth is accurate to 1e-12 relative in rate)."""


def option_bandwidth(
    model: TinyFELModel, devices: np.ndarray, layers: np.ndarray, latency_s: float
) -> np.ndarray:
    """b-hat_k,n_k(T) [Hz] of the given devices and options at T [s] (excluding T_dl):
    the least bandwidth finishing by T, energy minimum (raised by ENERGY_MARGIN) included;
    +inf if out of reach."""
    table = model.options
    columns = layers - 1
    slack = latency_s - table.compute_s[devices, columns]
    bits = table.upload_bits[columns]
    with np.errstate(divide="ignore", invalid="ignore"):
        needed = np.where(slack > 0, bits / np.where(slack > 0, slack, 1.0), np.inf)
    needed = np.where((bits == 0) & (slack >= 0), 0.0, needed)
    band = np.full(len(devices), np.inf)
    finite = np.isfinite(needed)
    band[finite] = radio.min_bandwidth(needed[finite], table.snr_hz[devices][finite])
    return np.maximum(band, table.energy_bandwidth_hz[devices, columns] * (1.0 + ENERGY_MARGIN))


def equalise(
    model: TinyFELModel, selected: np.ndarray, layers: np.ndarray, start_s: float | None = None
) -> np.ndarray | None:
    """The bandwidths [Hz] minimising the round latency of fixed (a, n) (spec §4.1).

    T is the least root of sum_k b-hat_k(T) = B, bracketed from below by the rate caps and
    from above by ``start_s`` [s] (any guess; doubled until feasible), bisected to float
    precision; any bandwidth left at that T is spread in proportion to b. Returns ``None``
    if no T works (the energy minima use the whole band B, so T would be infinite) and
    zeros when nothing is selected.
    """
    bandwidth = np.zeros(model.n_devices)
    devices = np.flatnonzero(selected)
    if devices.size == 0:
        return bandwidth
    n = np.asarray(layers)[devices]
    table, budget = model.options, model.instance.bandwidth_hz
    lower = float(table.latency_floor_s[devices, n - 1].max())
    energy = table.energy_bandwidth_hz[devices, n - 1] * (1.0 + ENERGY_MARGIN)
    if math.fsum(energy) >= budget:
        return None

    def fits(T: float) -> bool:
        return math.fsum(option_bandwidth(model, devices, n, T)) <= budget

    upper = lower
    if not fits(lower):
        step = max((start_s or lower) - lower, lower, 1e-9)
        upper = lower + step
        for _ in range(MAX_STEPS):
            if not math.isfinite(upper):
                return None
            if fits(upper):
                break
            step *= 2.0
            upper = lower + step
        else:
            return None
        for _ in range(MAX_STEPS):
            middle = 0.5 * (lower + upper)
            if not lower < middle < upper:
                break
            lower, upper = (lower, middle) if fits(middle) else (middle, upper)
    band = option_bandwidth(model, devices, n, upper)
    total = math.fsum(band)
    if total > 0:
        band = band * (budget / total * (1.0 - SPREAD_MARGIN))
    bandwidth[devices] = band
    return bandwidth


def finish_times(
    model: TinyFELModel, selected: np.ndarray, layers: np.ndarray, bandwidth: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-device compute, upload and finishing seconds and uploaded bits (0 if unselected)."""
    table = model.options
    on = np.asarray(selected, dtype=bool)
    columns = np.where(on, layers, 1) - 1
    rows = np.arange(model.n_devices)
    compute = np.where(on, table.compute_s[rows, columns], 0.0)
    bits = np.where(on, table.upload_bits[columns], 0.0)
    speed = radio.rate(bandwidth, table.snr_hz)
    with np.errstate(divide="ignore", invalid="ignore"):
        upload = np.where(bits > 0, bits / speed, 0.0)
    return {
        "compute_s": compute,
        "upload_s": upload,
        "finish_s": compute + upload,
        "upload_bits": bits,
        "rate_bps": np.where(on, speed, 0.0),
    }


def make_result(
    model: TinyFELModel,
    method: str,
    status: Status,
    selected: np.ndarray,
    layers: np.ndarray,
    bandwidth: np.ndarray,
    *,
    bound_round_s: float | None = None,
    solver: str | None = None,
    solver_version: str | None = None,
    build_s: float = 0.0,
    solve_s: float = 0.0,
    solver_reported_s: float | None = None,
    trace: Any = None,
    termination: str | None = None,
    message: str | None = None,
) -> Result:
    """A Result for a decision (a, n, b) in the §3.3 format.

    The objective is T_round = max finish + T_dl [s] (P1) or R * T_round [s] (P2);
    ``bound_round_s`` is a proven lower bound on T_round (P1 only; ``None`` for none).
    Extras: ``bias``, ``noise`` (unit of G^2) and ``coverage`` (per layer).
    """
    table = model.options
    on = np.asarray(selected, dtype=bool)
    n = np.where(on, np.asarray(layers, dtype=int), 0)
    bandwidth = np.where(on, np.asarray(bandwidth, dtype=float), 0.0)
    parts = finish_times(model, on, n, bandwidth)
    round_s = float(parts["finish_s"].max(initial=0.0)) + table.downlink_s
    terms = model.learning_terms(on, n)
    objective: float | None = round_s
    bound = bound_round_s
    if model.total_latency:
        objective = None if terms.rounds is None else terms.rounds * round_s
        bound = None
    memory = np.where(on, table.memory_bytes[np.maximum(n, 1) - 1], 0.0)
    solution = {
        "selected": [bool(a) for a in on],
        "updated_layers": [int(k) for k in n],
        "bandwidth_hz": [float(b) for b in bandwidth],
        "round_latency_s": round_s,
        "rounds": terms.rounds,
        "peak_memory_bytes": [int(round(m)) for m in memory],
    }
    breakdown = {key: [float(x) for x in value] for key, value in parts.items()}
    breakdown["memory_bytes"] = [float(m) for m in memory]
    return Result(
        model=model.model_id,
        method=method,
        status=status,
        objective=objective,
        bound=bound,
        solution=solution,
        device_names=model.device_names,
        breakdown=breakdown,
        timings=Timings(build_s=build_s, solve_s=solve_s, solver_reported_s=solver_reported_s),
        solver=solver,
        solver_version=solver_version,
        trace=trace,
        termination=termination,
        message=message,
        extras={
            "bias": terms.bias,
            "noise": terms.noise,
            "coverage": [float(u) for u in terms.coverage],
        },
    )


def empty_solution(model: TinyFELModel) -> dict[str, Any]:
    """The canonical solution arrays of an infeasible result (spec §3.3: arrays ``[]``,
    scalars ``null``)."""
    return {
        "selected": [],
        "updated_layers": [],
        "bandwidth_hz": [],
        "round_latency_s": None,
        "rounds": None,
        "peak_memory_bytes": [],
    }


def infeasible_result(
    model: TinyFELModel, method: str, reason: str, message: str, **extra: Any
) -> Result:
    """A Result with status ``infeasible``, its reason code and a message naming the cause."""
    return generic_infeasible(model, method, empty_solution(model), reason, message, **extra)


def structural_infeasibility(model: TinyFELModel, method: str) -> Result | None:
    """The infeasible Result of a P1 instance that the model's diagnosis rejects or, for the
    linear budget row, whose multiple-choice knapsack (``bisection_mckp``) has no selection
    fitting B even at T = inf; ``None`` otherwise."""
    from edgeopt.solvers.tinyfel import bisection_mckp

    diagnosis = model.infeasibility()
    if diagnosis is not None:
        return infeasible_result(model, method, diagnosis.reason, diagnosis.message,
                                 infeasible_details=diagnosis.details)
    linear = bisection_mckp.unsupported(model) is None
    if linear and bisection_mckp.choose(model, bisection_mckp.energy_only(model)) is None:
        return bisection_mckp.unreachable(model, method)
    return None
