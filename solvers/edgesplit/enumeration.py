"""Exact enumeration over cut vectors (spec §5.3(d) and the brute-force reference).

``brute_force`` tries every vector of memory-feasible cuts and allocates resources exactly
for each (the test reference, both modes). ``enum_two_resource`` (shared mode, small fleets)
first drops options dominated in (A, D', S), enumerates each group of identical devices as
a multiset (their order does not matter), and skips a vector at once when the closed-form
two-resource check says it cannot beat the incumbent.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterator

import numpy as np

from edgeopt.models.edgesplit import EdgeSplitModel
from edgeopt.solvers.common.deadline import Deadline
from edgeopt.solvers.edgesplit.common import make_result
from edgeopt.solvers.edgesplit.resources import allocate_for_cuts, shared_feasible
from edgeopt.solvers.result import Result, Status

MAX_VECTORS = 2_000_000
"""Refuse to enumerate more cut vectors than this (raise with the count instead)."""


def _beats(model: EdgeSplitModel, cuts: np.ndarray, incumbent: float) -> bool:
    """Can the cut vector reach a makespan strictly below ``incumbent``? (one O(N) check)"""
    if not math.isfinite(incumbent):
        return True
    table = model.options
    rows = np.arange(model.n_devices)
    col = table.index_of(cuts)
    target = incumbent * (1 - 1e-12)
    need_d = table.bandwidth_seconds[rows, col] / model.instance.bandwidth_hz
    if model.shared:
        return shared_feasible(target, table.device_s[rows, col], need_d, table.server_s[rows, col])
    fixed = table.dedicated_s[rows, col]
    if (fixed > target).any():
        return False
    traffic = need_d > 0
    slack = target - fixed[traffic]
    return bool((slack > 0).all()) and math.fsum(need_d[traffic] / slack) <= 1.0


def _search(model: EdgeSplitModel, vectors: Iterator[np.ndarray], method: str, deadline: Deadline, counted: int) -> Result:
    started = time.perf_counter()
    best_T, best_cuts, best_lower = math.inf, None, math.inf
    examined = pruned = 0
    status, termination = Status.OPTIMAL, "enumerated"
    for cuts in vectors:
        if best_cuts is not None and deadline.expired:
            status, termination = Status.TIME_LIMIT, "time_limit"
            break
        examined += 1
        if not _beats(model, cuts, best_T):
            pruned += 1
            continue
        lower, makespan, _, _ = allocate_for_cuts(model, cuts)
        if makespan < best_T:
            best_T, best_cuts, best_lower = makespan, cuts, lower
    # Pruned vectors cannot go below best_T*(1 - 1e-12); evaluated ones are >= best_T.
    if best_cuts is None:
        raise ValueError("no cut vector has a finite round time")
    lower_bound = min(best_lower, best_T * (1 - 1e-12)) if status is Status.OPTIMAL else None
    _, _, bandwidth, shares = allocate_for_cuts(model, best_cuts)
    return make_result(
        model,
        method,
        status,
        best_cuts,
        bandwidth,
        shares,
        bound_per_round=lower_bound,
        solve_s=time.perf_counter() - started,
        termination=termination,
        message=f"{examined} of {counted} cut vectors examined, {pruned} pruned by the incumbent check",
    )


def _check_count(count: int, method: str) -> None:
    if count > MAX_VECTORS:
        raise ValueError(
            f"{method}: {count} cut vectors exceed the limit {MAX_VECTORS}; use 'bisection' (dedicated) "
            "or 'misocp_perspective' for fleets this large"
        )


def solve_brute_force(
    model: EdgeSplitModel, *, backend: str | None = None, time_limit: float | None = None, seed: int | None = None
) -> Result:
    """Every vector of memory-feasible cuts, resources exact for each: the reference optimum."""
    table = model.options
    choices = [table.cuts[row] for row in table.feasible]
    count = math.prod(len(c) for c in choices)
    _check_count(count, "brute_force")
    vectors = (np.array(v) for v in itertools.product(*choices))
    return _search(model, vectors, "brute_force", Deadline(time_limit), count)


def undominated_cuts(model: EdgeSplitModel) -> list[np.ndarray]:
    """Per device, the feasible cuts not dominated in (A, D', S) by another feasible cut."""
    table = model.options
    kept = []
    for i in range(model.n_devices):
        columns = np.flatnonzero(table.feasible[i])
        keys = np.stack([table.device_s[i, columns], table.bandwidth_seconds[i, columns], table.server_flops[i, columns]], axis=1)
        survivors = []
        for j, key in enumerate(keys):
            dominated = any(
                np.all(other <= key) and np.any(other < key) or (np.all(other == key) and k < j)
                for k, other in enumerate(keys)
                if k != j
            )
            if not dominated:
                survivors.append(table.cuts[columns[j]])
        kept.append(np.array(survivors))
    return kept


def _identical_groups(model: EdgeSplitModel) -> list[list[int]]:
    table = model.options
    groups: dict[bytes, list[int]] = {}
    for i in range(model.n_devices):
        key = np.concatenate(
            [table.device_s[i], table.bandwidth_seconds[i], table.server_flops[i], table.feasible[i].astype(float)]
        ).tobytes()
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def solve_enum_two_resource(
    model: EdgeSplitModel, *, backend: str | None = None, time_limit: float | None = None, seed: int | None = None
) -> Result:
    """Exact for shared (and dedicated) mode on small fleets, by pruned enumeration."""
    options = undominated_cuts(model)
    groups = _identical_groups(model)
    per_group = [list(itertools.combinations_with_replacement(options[g[0]], len(g))) for g in groups]
    count = math.prod(len(p) for p in per_group)
    _check_count(count, "enum_two_resource")

    def vectors() -> Iterator[np.ndarray]:
        for combo in itertools.product(*per_group):
            cuts = np.empty(model.n_devices, dtype=int)
            for members, assignment in zip(groups, combo):
                cuts[members] = assignment
            yield cuts

    return _search(model, vectors(), "enum_two_resource", Deadline(time_limit), count)
