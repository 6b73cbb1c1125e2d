"""``alternating``: the paper's alternating algorithm (spec §5.2), both server modes.

Start from equal resources; alternately give each device its best cut for its current
resources (partition step) and re-allocate resources optimally for the cuts (resource
step), until no cut changes. The makespan never increases, so it terminates. In
dedicated mode with traffic on every option the stopping point is globally optimal
(theorem of §5.2), and the result says so.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from edgeopt.models.edgesplit import EdgeSplitModel
from edgeopt.solvers.common.deadline import Deadline
from edgeopt.solvers.edgesplit.common import make_result, safe_divide
from edgeopt.solvers.edgesplit.resources import allocate_for_cuts
from edgeopt.solvers.result import Result, Status

TIE_TOLERANCE = 1e-12


def best_cuts(
    model: EdgeSplitModel, current: np.ndarray | None, bandwidth_hz: np.ndarray, shares: np.ndarray | None
) -> np.ndarray:
    """Partition step: each device's fastest memory-feasible cut for its resources.

    Ties: keep the current cut if within relative 1e-12 of the best, else the smallest cut.
    """
    table = model.options
    comm = safe_divide(table.bandwidth_seconds, bandwidth_hz[:, None])
    if model.shared:
        if shares is None:
            raise ValueError("shared server mode needs the server shares")
        server = safe_divide(table.server_flops, shares[:, None])
    else:
        server = table.server_s
    times = np.where(table.feasible, table.device_s + server + comm, np.inf)
    best = np.argmin(times, axis=1)
    rows = np.arange(model.n_devices)
    if current is not None:
        keep = table.index_of(current)
        best_time = times[rows, best]
        keep_time = times[rows, keep]
        stay = np.isfinite(keep_time) & (keep_time <= best_time * (1 + TIE_TOLERANCE))
        best = np.where(stay, keep, best)
    return table.cuts[best]


def solve_alternating(
    model: EdgeSplitModel,
    *,
    backend: str | None = None,
    time_limit: float | None = None,
    seed: int | None = None,
    max_iterations: int = 100,
) -> Result:
    """Run the alternating algorithm; ``max_iterations`` caps the partition/resource rounds."""
    deadline = Deadline(time_limit)
    started = time.perf_counter()
    inst = model.instance
    n = model.n_devices
    bandwidth = np.full(n, inst.bandwidth_hz / n)
    shares = np.full(n, inst.server_flops_per_s / n) if model.shared else None
    cuts = None
    rows = []
    status, termination = Status.FEASIBLE, "converged"
    for iteration in range(1, max_iterations + 2):
        new_cuts = best_cuts(model, cuts, bandwidth, shares)
        changed = n if cuts is None else int(np.sum(new_cuts != cuts))
        if cuts is not None and changed == 0:
            break
        if iteration > max_iterations:
            status, termination = Status.ITERATION_LIMIT, "iteration_limit"
            break
        if cuts is not None and deadline.expired:
            status, termination = Status.TIME_LIMIT, "time_limit"
            break
        cuts = new_cuts
        _, makespan, bandwidth, shares = allocate_for_cuts(model, cuts)
        rows.append({"iteration": iteration, "makespan_s": makespan, "cuts_changed": changed})

    if cuts is None:
        raise ValueError("the alternation stopped before its first partition step")
    table = model.options
    columns = table.index_of(cuts)
    traffic_everywhere = bool(np.all(table.bandwidth_seconds[table.feasible] > 0))
    proven = status is Status.FEASIBLE and not model.shared and traffic_everywhere
    result = make_result(
        model,
        "alternating",
        Status.OPTIMAL if proven else status,
        table.cuts[columns],
        bandwidth,
        shares,
        solve_s=time.perf_counter() - started,
        trace=pd.DataFrame(rows, columns=["iteration", "makespan_s", "cuts_changed"]),
        termination=termination,
        message="optimal by the theorem of spec §5.2 (dedicated mode, traffic on every option)" if proven else None,
    )
    if proven:
        result = result.replace(bound=result.objective)
    return result
