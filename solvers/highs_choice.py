"""Multiple-choice binary programs solved with HiGHS (``highspy`` directly, no modelling layer).

Both knapsack-based bisections (EdgeSplit §5.3(c), TinyFEL §5.1) ask the same question at
each step: pick exactly one column per device so that a few extra rows stay within bounds,
at least cost. This module builds and solves that program.
"""

from __future__ import annotations

import highspy
import numpy as np
from scipy import sparse

INFINITY = highspy.kHighsInf

FEASIBLE_POINT = 2
"""HiGHS's ``primal_solution_status`` of a feasible point (kSolutionStatusFeasible)."""


class HighsStopped(RuntimeError):
    """HiGHS stopped (time limit or numerical trouble) before deciding feasibility."""


def highs_version() -> str:
    """The HiGHS version, e.g. '1.15.1'."""
    return highspy.Highs().version()


def solve_choice(
    device: np.ndarray,
    n_devices: int,
    cost: np.ndarray,
    rows: list[np.ndarray],
    lower: list[float],
    upper: list[float],
    *,
    time_limit: float | None = None,
    seed: int | None = None,
    options: dict[str, float] | None = None,
    first_found: bool = False,
) -> np.ndarray | None:
    """min cost.x s.t. sum of x over each device's columns = 1, lower[r] <= rows[r].x <= upper[r],
    x binary. ``device[j]`` owns column j. Returns the column values, ``None`` when HiGHS proves
    infeasibility, raises :class:`HighsStopped` otherwise. ``time_limit`` is in seconds;
    ``options`` are further HiGHS options (tolerances). ``first_found``: a feasibility question,
    stop at the first integer point (any point is an answer; the cost only guides the search)."""
    n = len(device)
    n_rows = n_devices + len(rows)
    row_index = np.concatenate([device] + [np.full(n, n_devices + r) for r in range(len(rows))])
    values = np.concatenate([np.ones(n)] + [np.asarray(row, dtype=float) for row in rows])
    column_index = np.tile(np.arange(n), 1 + len(rows))
    matrix = sparse.csc_matrix((values, (row_index, column_index)), shape=(n_rows, n))
    matrix.eliminate_zeros()

    lp = highspy.HighsLp()
    lp.num_col_ = n
    lp.num_row_ = n_rows
    lp.col_cost_ = np.asarray(cost, dtype=float)
    lp.col_lower_ = np.zeros(n)
    lp.col_upper_ = np.ones(n)
    lp.row_lower_ = np.concatenate([np.ones(n_devices), np.asarray(lower, dtype=float)])
    lp.row_upper_ = np.concatenate([np.ones(n_devices), np.asarray(upper, dtype=float)])
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = matrix.indptr
    lp.a_matrix_.index_ = matrix.indices
    lp.a_matrix_.value_ = matrix.data
    lp.integrality_ = [highspy.HighsVarType.kInteger] * n

    highs = highspy.Highs()
    settings = {"output_flag": False, "mip_rel_gap": 0.0, "mip_abs_gap": 0.0, **(options or {})}
    if time_limit is not None:
        settings["time_limit"] = float(time_limit)
    if seed is not None:
        settings["random_seed"] = int(seed)
    if first_found:
        settings.setdefault("mip_max_improving_sols", 1)
    for name, value in settings.items():
        highs.setOptionValue(name, value)
    highs.passModel(lp)
    highs.run()
    status = highs.getModelStatus()
    if status == highspy.HighsModelStatus.kInfeasible:
        return None
    model_status = highspy.HighsModelStatus
    answered = {model_status.kOptimal}
    if first_found:
        answered |= {model_status.kSolutionLimit, model_status.kObjectiveBound}
    if status not in answered:
        raise HighsStopped(f"HiGHS stopped with {highs.modelStatusToString(status)}")
    if highs.getInfo().primal_solution_status != FEASIBLE_POINT:
        return None  # stopped by the objective bound before any point: none exists
    return np.asarray(highs.getSolution().col_value)


def chosen_columns(device: np.ndarray, n_devices: int, values: np.ndarray) -> np.ndarray:
    """Index of the column with the largest value of each device."""
    chosen = np.empty(n_devices, dtype=int)
    for i in range(n_devices):
        own = np.flatnonzero(device == i)
        chosen[i] = own[np.argmax(values[own])]
    return chosen
