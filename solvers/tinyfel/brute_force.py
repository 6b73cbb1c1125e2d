"""``brute_force``: every selection and option combination, each equalised exactly (P1 and
P2, every bias form and aggregation rule; small instances only).

Each device takes "none" or one of its available options, so there are prod_k (1 + #options
of k) combinations. A combination is kept when it meets K_min and, for P1, the budget row
(the model's own bias measure, with N(a) when ``include_noise_in_budget``) with no
tolerance, or for P2 a reachable target (finite R). Its latency is the equal-finishing
T of spec §4.1 (:func:`~edgeopt.solvers.tinyfel.common.equalise`, float precision).

Combinations are visited in increasing order of a lower bound on their latency, the largest
solo latency Tcmp + Q / r_k(B) of their options (no device can have more than B), so the
P1 loop stops at the first one that cannot beat the incumbent; P2 skips those with
R (bound + T_dl) >= the incumbent. The result is exact: ``bound`` = ``objective``.

The work is capped: :func:`unsupported` refuses instances with more than
:data:`MAX_COMBINATIONS` combinations, and ``max_combinations`` lowers or (called directly)
raises the cap. ``time_limit`` [s] is checked every :data:`CHECK_EVERY` combinations; the
incumbent is then returned with status ``time_limit`` and no bound.
"""

from __future__ import annotations

import itertools
import math
import time

import numpy as np

from edgeopt.models.tinyfel import LearningTerms, TinyFELModel, radio
from edgeopt.solvers.common.deadline import Deadline
from edgeopt.solvers.result import Result, Status
from edgeopt.solvers.tinyfel.common import (
    empty_solution,
    equalise,
    finish_times,
    infeasible_result,
    make_result,
)

METHOD = "brute_force"

MAX_COMBINATIONS = 100_000
"""Default cap on the number of (selection, option) combinations."""

CHECK_EVERY = 256
"""Combinations between two looks at the clock."""


def combination_count(model: TinyFELModel) -> int:
    """prod_k (1 + number of available options of device k)."""
    return math.prod(1 + int(row.sum()) for row in model.options.available)


def unsupported(model: TinyFELModel) -> str | None:
    """Why the enumeration is refused (``None`` when it runs): too many combinations."""
    count = combination_count(model)
    if count > MAX_COMBINATIONS:
        return (f"{count} combinations exceed max_combinations = {MAX_COMBINATIONS} (use "
                "bisection_mckp, pareto_sweep or minlp_perspective)")
    return None


def solo_latency(model: TinyFELModel) -> np.ndarray:
    """Tcmp + Q / r_k(B) [s], (K, L): the latency of each option given the whole band, a
    lower bound on its latency in any combination (+inf if unavailable or if its energy
    minimum bandwidth exceeds B)."""
    table = model.options
    budget = table.bandwidth_hz
    full_rate = radio.rate(np.full(model.n_devices, budget), table.snr_hz)
    upload = table.upload_bits[None, :] / full_rate[:, None]
    solo = table.compute_s + np.where(table.upload_bits[None, :] > 0, upload, 0.0)
    usable = table.available & (table.energy_bandwidth_hz <= budget)
    return np.where(usable, solo, np.inf)


def solve_brute_force(
    model: TinyFELModel,
    *,
    backend: str | None = None,
    time_limit: float | None = None,
    seed: int | None = None,
    max_combinations: int = MAX_COMBINATIONS,
) -> Result:
    """The exact optimum of P1 or P2 by enumeration (module docstring); raises
    ``ValueError`` when the instance has more than ``max_combinations`` combinations.
    ``backend`` and ``seed`` are unused (pure Python, deterministic)."""
    if isinstance(max_combinations, bool) or not isinstance(max_combinations, int) or \
            max_combinations < 1:
        raise ValueError(f"max_combinations = {max_combinations!r}: must be an integer >= 1")
    count = combination_count(model)
    if count > max_combinations:
        raise ValueError(f"max_combinations = {max_combinations}: the instance has {count} "
                         "combinations; raise the cap or use an exact method that scales")
    started = time.perf_counter()
    deadline = Deadline(time_limit)
    table, inst = model.options, model.instance
    K, L = model.n_devices, model.n_layers
    choices = [[0] + [n for n in range(1, L + 1) if table.available[k, n - 1]] for k in range(K)]
    combos = np.array(list(itertools.product(*choices)), dtype=int).reshape(-1, K)
    combos = combos[(combos > 0).sum(axis=1) >= inst.min_selected]
    solo = np.column_stack([np.zeros(K), solo_latency(model)])  # column 0: "none"
    lower = np.max(solo[np.arange(K)[None, :], combos], axis=1, initial=0.0)
    order = np.argsort(lower, kind="stable")
    t_dl, p2 = table.downlink_s, model.total_latency

    best: tuple[float, np.ndarray, np.ndarray] | None = None
    timed_out = False
    for visited, index in enumerate(order):
        if visited % CHECK_EVERY == 0 and deadline.expired:
            timed_out = True
            break
        bound = lower[index]
        if not np.isfinite(bound) or (not p2 and best is not None and bound + t_dl >= best[0]):
            break  # sorted: no later combination is usable or can be better
        layers = combos[index]
        selected = layers > 0
        terms = model.learning_terms(selected, layers)
        if not _learning_rows_hold(model, layers, terms):
            continue
        scale = terms.rounds if p2 else 1
        if best is not None and scale * (bound + t_dl) >= best[0]:
            continue
        bandwidth = equalise(model, selected, layers)
        if bandwidth is None:  # energy minima above B
            continue
        finish = finish_times(model, selected, layers, bandwidth)["finish_s"]
        value = scale * (float(finish.max(initial=0.0)) + t_dl)
        if best is None or value < best[0]:
            best = (value, layers, bandwidth)

    if best is None:
        if timed_out:
            return Result(model=model.model_id, method=METHOD, status=Status.TIME_LIMIT,
                          solution=empty_solution(model), device_names=model.device_names,
                          termination="time_limit",
                          message="time limit reached before any feasible combination")
        return _infeasible(model, any(_learning_rows_hold(model, layers) for layers in combos))
    value, layers, bandwidth = best
    status = Status.TIME_LIMIT if timed_out else Status.OPTIMAL
    result = make_result(
        model, METHOD, status, layers > 0, layers, bandwidth,
        solve_s=time.perf_counter() - started,
        termination="time_limit" if timed_out else "enumerated",
    )
    return result.replace(bound=None if timed_out else min(value, result.objective),
                          extras={**result.extras, "combinations": count})


def _learning_rows_hold(
    model: TinyFELModel, layers: np.ndarray, terms: LearningTerms | None = None
) -> bool:
    """P1: the budget row (no tolerance); P2: a reachable target (finite R)."""
    if terms is None:
        terms = model.learning_terms(layers > 0, layers)
    if model.total_latency:
        return terms.rounds is not None
    return terms.budget_value <= model.instance.bias_budget


def _infeasible(model: TinyFELModel, learned: bool) -> Result:
    """No combination works: the model's diagnosis, else the row that failed."""
    diagnosis = model.infeasibility()
    if diagnosis is not None:
        return infeasible_result(model, METHOD, diagnosis.reason, diagnosis.message,
                                 infeasible_details=diagnosis.details)
    if learned:
        return infeasible_result(model, METHOD, "bandwidth",
                                 "every combination meeting the learning rows needs more than "
                                 "B for its energy minimum bandwidths")
    if model.total_latency:
        return infeasible_result(model, METHOD, "target_unreachable",
                                 "no combination with >= min_selected devices reaches the "
                                 "learning target (Φ + N >= ε for all)")
    return infeasible_result(model, METHOD, "bias_budget",
                             "no combination with >= min_selected devices meets the bias "
                             "budget")
