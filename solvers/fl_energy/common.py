"""Shared pieces of the ``fl_energy`` solvers: Result assembly and the model's solution format (``frequency_hz``, ``bandwidth_hz``, ``per_device_energy_j``,
``per_device_time_s``)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgeopt.models.fl_energy import FLEnergyModel, derived
from edgeopt.solvers.common.termination import Termination
from edgeopt.solvers.result import Result, Status, Timings


def empty_solution(model: FLEnergyModel) -> dict[str, Any]:
    """The solution arrays of a Result without a point: every list empty."""
    return {"frequency_hz": [], "bandwidth_hz": [], "per_device_energy_j": [], "per_device_time_s": []}


def make_result(
    model: FLEnergyModel,
    method: str,
    status: Status,
    frequency_hz: np.ndarray,
    bandwidth_hz: np.ndarray,
    *,
    bound: float | None = None,
    solve_s: float = 0.0,
    build_s: float = 0.0,
    solver: str | None = None,
    solver_version: str | None = None,
    solver_reported_s: float | None = None,
    termination: Termination | str | None = None,
    trace: Any = None,
    message: str | None = None,
    extras: dict[str, Any] | None = None,
) -> Result:
    """A Result for the point (f, b): per-device times and energies, objective = total [J]."""
    fleet = model.fleet
    frequency = np.asarray(frequency_hz, dtype=float)
    bandwidth = np.asarray(bandwidth_hz, dtype=float)
    compute_s = fleet.cycles / frequency
    upload_s = derived.upload_time(bandwidth, fleet)
    compute_j, upload_j = derived.energy(frequency, bandwidth, fleet)
    energy = compute_j + upload_j
    solution = {
        "frequency_hz": [float(f) for f in frequency],
        "bandwidth_hz": [float(b) for b in bandwidth],
        "per_device_energy_j": [float(e) for e in energy],
        "per_device_time_s": [float(t) for t in compute_s + upload_s],
    }
    parts = {"compute_s": compute_s, "upload_s": upload_s, "compute_energy_j": compute_j,
             "upload_energy_j": upload_j}
    return Result(
        model=model.model_id,
        method=method,
        status=status,
        objective=math.fsum(solution["per_device_energy_j"]),
        bound=None if bound is None else float(bound),
        solution=solution,
        device_names=model.device_names,
        breakdown={key: [float(x) for x in value] for key, value in parts.items()},
        timings=Timings(build_s=build_s, solve_s=solve_s, solver_reported_s=solver_reported_s),
        solver=solver,
        solver_version=solver_version,
        termination=termination,
        trace=trace,
        message=message,
        extras=extras or {},
    )


def equal_share(model: FLEnergyModel) -> np.ndarray:
    """b_k = max(b_k^min, L) with the level L that spends B exactly [Hz]: B/K each when every
    device meets the deadline on B/K, otherwise the short devices get their b^min and the
    others share the rest equally."""
    needed = model.min_bandwidth_hz
    total, count = model.fleet.bandwidth_hz, len(needed)
    order = np.argsort(-needed)
    pinned = 0.0
    level = total / count
    for rank, k in enumerate(order):
        level = (total - pinned) / (count - rank)
        if needed[k] <= level:
            break
        pinned += needed[k]
    return np.maximum(needed, level)
