"""Shared pieces of the EdgeSplit solvers: per-device times from the option table and Result
assembly."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeopt.models.edgesplit import EdgeSplitModel
from edgeopt.solvers.common.termination import Termination
from edgeopt.solvers.result import Result, Status, Timings
from edgeopt.solvers.result import infeasible_result as generic_infeasible


def safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Elementwise numerator/denominator with 0/0 = 0 and x/0 = +inf."""
    numerator = np.asarray(numerator, dtype=float)
    denominator = np.asarray(denominator, dtype=float)
    out = np.zeros(np.broadcast(numerator, denominator).shape)
    positive = numerator > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.inf)
    out[positive] = np.broadcast_to(ratio, out.shape)[positive]
    return out


def breakdown(
    model: EdgeSplitModel,
    cuts: np.ndarray,
    bandwidth_hz: np.ndarray,
    shares: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per-round device, server and communication seconds of each device for a decision."""
    table = model.options
    rows = np.arange(model.n_devices)
    col = table.index_of(cuts)
    device_s = table.device_s[rows, col]
    if model.shared:
        if shares is None:
            raise ValueError("shared server mode needs the server shares")
        server_s = safe_divide(table.server_flops[rows, col], shares)
    else:
        server_s = table.server_s[rows, col]
    comm_s = safe_divide(table.bandwidth_seconds[rows, col], bandwidth_hz)
    return {"device_s": device_s, "server_s": server_s, "comm_s": comm_s}


def make_result(
    model: EdgeSplitModel,
    method: str,
    status: Status,
    cuts: np.ndarray,
    bandwidth_hz: np.ndarray,
    shares: np.ndarray | None = None,
    *,
    bound_per_round: float | None = None,
    solver: str | None = None,
    solver_version: str | None = None,
    build_s: float = 0.0,
    solve_s: float = 0.0,
    solver_reported_s: float | None = None,
    trace: Any = None,
    termination: Termination | str | None = None,
    message: str | None = None,
    schedule: str = "parallel",
    full_local: bool = False,
) -> Result:
    """A Result for a point (cuts, b, s): per-device times, J = R * max T_i, bound = R * bound.

    ``schedule='sequential'`` is vanilla split learning: devices take turns, each with the
    whole budget, and a round lasts the sum of the device times. ``full_local=True`` marks
    a point that uses c = L even where the instance does not allow it (FedAvg baseline).
    Both are written into the solution so the evaluator checks the point under the same
    protocol.
    """
    cuts = np.asarray(cuts, dtype=int)
    bandwidth_hz = np.maximum(np.asarray(bandwidth_hz, dtype=float), 0.0)
    if shares is not None:
        shares = np.maximum(np.asarray(shares, dtype=float), 0.0)
    parts = breakdown(model, cuts, bandwidth_hz, shares)
    times = parts["device_s"] + parts["server_s"] + parts["comm_s"]
    rounds = model.rounds_used
    if rounds is None:  # infeasibility() reports an unreachable target before any solve
        raise ValueError("the convergence target is unreachable: no round count")
    per_round = float(times.sum() if schedule == "sequential" else times.max())
    solution = {
        "cuts": [int(c) for c in cuts],
        "bandwidth_hz": [float(b) for b in bandwidth_hz],
        "server_share_flops_per_s": None if shares is None else [float(s) for s in shares],
        "per_device_time_s": [float(t) for t in times],
    }
    if schedule != "parallel":
        solution["schedule"] = schedule
    if full_local:
        solution["full_local"] = True
    bound = None if bound_per_round is None else rounds * bound_per_round
    return Result(
        model=model.model_id,
        method=method,
        status=status,
        objective=rounds * per_round,
        bound=bound,
        solution=solution,
        device_names=model.device_names,
        breakdown={k: [float(x) for x in v] for k, v in parts.items()},
        timings=Timings(build_s=build_s, solve_s=solve_s, solver_reported_s=solver_reported_s),
        solver=solver,
        solver_version=solver_version,
        trace=trace,
        termination=termination,
        message=message,
        extras={"rounds_used": rounds},
    )


def empty_solution(model: EdgeSplitModel) -> dict[str, Any]:
    """The canonical solution arrays of an infeasible result (spec §3.3: arrays ``[]``)."""
    return {
        "cuts": [],
        "bandwidth_hz": [],
        "server_share_flops_per_s": [] if model.shared else None,
        "per_device_time_s": [],
    }


def infeasible_result(model: EdgeSplitModel, method: str, reason: str, message: str, **extra: Any) -> Result:
    """A Result with status ``infeasible``, its reason code and a message naming the cause."""
    return generic_infeasible(model, method, empty_solution(model), reason, message, **extra)
