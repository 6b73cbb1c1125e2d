"""``relaxation``: a valid lower bound on (P1-S) and the floor-rounded best relaxed cell (§6.3).

The grid is searched as in :mod:`.exact` (blocks closed by the §6.2 caps with *real* caps and by
Lagrangian cuts of the continuous dual function), but a cell is closed by its relaxed value:
the certified bound of its §5.3 program (batches in [1, cap], real). The reported ``bound`` is
the minimum over cells of what closed them, i.e. the relaxed optimum over all cells (every
other cell was closed by a bound at least that large); it bounds the stage-constant integer
problem and, with static channels, the per-round one too. The point is the floor of the best
relaxed cell's batches (always feasible: down-set) with canonical minimum-energy resources;
status ``feasible``, or ``optimal`` when its Psi is within 1e-6 of the bound.
"""

from __future__ import annotations

import time

import numpy as np

from edgeopt.models.two_stage import TwoStageModel
from edgeopt.solvers.common.deadline import Deadline
from edgeopt.solvers.common.tolerances import OPTIMALITY_GAP
from edgeopt.solvers.result import Result, Status
from edgeopt.solvers.two_stage.exact import (
    GridSearch,
    Incumbent,
    _infeasible,
    convex_backend,
    make_result,
)
from edgeopt.solvers.two_stage.exact import unsupported as _unsupported
from edgeopt.solvers.two_stage.integer import CellVector, floor_point

METHOD = "relaxation"


def unsupported(model: TwoStageModel) -> str | None:
    """As ``exact``: static channels (the relaxation of the per-round problem needs them)."""
    return _unsupported(model)


def solve_relaxation(
    model: TwoStageModel,
    *,
    backend: str | None = None,
    time_limit: float | None = None,
    seed: int | None = None,
) -> Result:
    """Relaxation bound over all cells and the floor-rounded best relaxed cell.

    ``backend``: ``clarabel`` (default), ``ecos`` or ``scipy`` (SLSQP) for the cell programs.
    ``time_limit`` [s]: status ``time_limit`` with the bound over what is still open. ``seed``
    is unused (the method is deterministic).
    """
    started = time.perf_counter()
    reason = unsupported(model)
    if reason:
        raise ValueError(f"method 'relaxation' does not apply: {reason}")
    convex = convex_backend(backend, ("clarabel", "ecos", "scipy"))
    infeasible = model.infeasibility()
    if infeasible is not None:
        return _infeasible(model, METHOD, infeasible)
    deadline = Deadline(time_limit)
    search = GridSearch(model, "relaxation", convex, deadline=deadline)
    search.run()
    if search.relaxed_best is None:
        if search.complete:
            return _infeasible(model, METHOD, None, search)
        return make_result(model, METHOD, search, Status.TIME_LIMIT, convex, started)
    psi_relaxed, cell = search.relaxed_best
    vector = CellVector(model, cell.M, cell.N)
    relaxed = ([cell.D] if cell.M > 0 else []) + (list(cell.B) if cell.N > 0 else [])
    x = floor_point(vector, relaxed)
    if x is None:  # cannot happen for a cell that passed the pre-check; keep the search's
        x = np.ones(vector.size, int)
    D, B = vector.split(x)
    psi = float(model.bound(cell.M, cell.N, D, np.array(B, float)))
    search.incumbent = Incumbent(psi, cell.M, cell.N, D, B)
    if not search.complete:
        status = Status.TIME_LIMIT
    else:
        gap = psi - search.bound()
        status = Status.OPTIMAL if gap <= OPTIMALITY_GAP * psi else Status.FEASIBLE
    result = make_result(model, METHOD, search, status, convex, started)
    extras = dict(result.extras, relaxed_cell={"M": cell.M, "N": cell.N,
                                               "pretrain_batch": cell.D,
                                               "finetune_batch": [float(b) for b in cell.B],
                                               "psi_bound": psi_relaxed})
    return result.replace(extras=extras, bound=min(result.bound, psi)
                          if result.bound is not None else None)

