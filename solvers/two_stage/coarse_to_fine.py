"""``coarse_to_fine`` (spec §6.4): a coarse grid of cells, then every cell near the best three.

Stride s = max(1, floor(max(M_max, N_max)/20)) (option ``stride``). Coarse phase: the cells
with M in {0, s, 2s, ..} and N in {0, s, 2s, ..}, plus M_max and N_max themselves (corners
matter: for fixed batches Psi is linear-fractional in (M, N), so its minimum over a box sits
at a corner). Fine phase: every cell within +-s (in both M and N) of the best three coarse
cells. Each cell's value is the SCA of :mod:`.sca` (relaxed batches, global relaxed optimum
of the cell) followed by ``floor_fill`` rounding (option ``rounding``), so every value is that
of a feasible integer point.

Cells are visited by increasing valid lower bound (§6.2 caps, floored) in both phases; a cell
whose bound cannot beat the third-best coarse value (coarse phase) or the incumbent (fine
phase) is skipped, which changes no result. There is no optimality guarantee: Psi over the
cells can have several local minima (spec §6.4).
"""

from __future__ import annotations

import time
from numbers import Integral
from typing import Any

from edgeopt.models.two_stage import TwoStageModel
from edgeopt.solvers.common.deadline import Deadline
from edgeopt.solvers.result import Result
from edgeopt.solvers.two_stage.cell import CellPrograms
from edgeopt.solvers.two_stage.sca import (
    ROUNDINGS,
    CellSCA,
    check_choice,
    check_seed,
    instance_infeasible,
    lower_bounds,
    no_cell,
    sca_evaluator,
    search_result,
    trace_frame,
    visit_cells,
)
from edgeopt.solvers.two_stage.sca import unsupported as sca_unsupported

METHOD = "coarse_to_fine"

COARSE_KEEP = 3
"""Number of coarse cells whose neighbourhoods the fine phase searches (spec §6.4)."""


def unsupported(model: TwoStageModel) -> str | None:
    """As ``sca_grid``: static channels only."""
    return sca_unsupported(model)


def default_stride(model: TwoStageModel) -> int:
    """s = max(1, floor(max(M_max, N_max) / 20))."""
    d = model.derived
    return max(1, max(d.max_pretrain_rounds, d.max_finetune_rounds) // 20)


def coarse_cells(model: TwoStageModel, stride: int) -> list[tuple[int, int]]:
    """Cells on the stride lattice plus the round caps, without (0, 0)."""
    d = model.derived
    Ms = sorted(set(range(0, d.max_pretrain_rounds + 1, stride)) | {d.max_pretrain_rounds})
    Ns = sorted(set(range(0, d.max_finetune_rounds + 1, stride)) | {d.max_finetune_rounds})
    return [(M, N) for M in Ms for N in Ns if M + N]


def fine_cells(model: TwoStageModel, centres: list[tuple[int, int]], stride: int,
               done: set[tuple[int, int]]) -> list[tuple[int, int]]:
    """Every cell within +-stride of a centre (inside the caps), except those in ``done``."""
    d = model.derived
    cells: set[tuple[int, int]] = set()
    for m0, n0 in centres:
        for M in range(max(0, m0 - stride), min(d.max_pretrain_rounds, m0 + stride) + 1):
            for N in range(max(0, n0 - stride), min(d.max_finetune_rounds, n0 + stride) + 1):
                if M + N and (M, N) not in done:
                    cells.add((M, N))
    return sorted(cells)


def check_stride(stride: Any) -> None:
    """``stride`` is None (the spec's rule) or an integer >= 1."""
    if stride is not None and (isinstance(stride, bool) or not isinstance(stride, Integral)
                               or stride < 1):
        raise ValueError(f"stride = {stride!r}: must be an integer >= 1 or None (the spec's rule)")


def solve_coarse_to_fine(
    model: TwoStageModel,
    *,
    backend: str | None = None,
    time_limit: float | None = None,
    seed: int | None = None,
    rounding: str = "floor_fill",
    stride: int | None = None,
    max_iterations: int = 200,
    tolerance: float = 1e-9,
) -> Result:
    """Coarse grid with ``stride`` (default: the spec's rule), then the +-stride neighbourhoods
    of the best three coarse cells; per cell SCA (``backend`` clarabel | ecos,
    ``max_iterations``, ``tolerance``) and ``rounding`` (``floor_fill`` | ``floor``).
    ``seed`` is unused (deterministic)."""
    rounding = check_choice("rounding", rounding, ROUNDINGS)
    check_stride(stride)
    check_seed(seed)
    sca = CellSCA(model, backend, tolerance, max_iterations)
    started = time.perf_counter()
    infeasible = instance_infeasible(model, METHOD)
    if infeasible is not None:
        return infeasible.replace(solver=sca.backend)
    step = stride or default_stride(model)
    deadline = Deadline(time_limit)
    rows: list[dict[str, Any]] = []
    evaluate = sca_evaluator(model, sca, rounding, rows, deadline,
                             relaxations=CellPrograms(model, sca.backend))
    coarse = coarse_cells(model, step)
    top, termination = visit_cells(coarse, lower_bounds(model, coarse), evaluate,
                                   keep=COARSE_KEEP, deadline=deadline)
    coarse_evaluated = len({(r["M"], r["N"]) for r in rows})
    best = top[:1]
    if termination == "completed" and top:
        fine = fine_cells(model, [c.cell for c in top], step, set(coarse))
        best, termination = visit_cells(fine, lower_bounds(model, fine), evaluate,
                                        deadline=deadline, incumbents=top[:1])
    evaluated = len({(r["M"], r["N"]) for r in rows})
    result = search_result(
        model, METHOD, best, termination, started, trace=trace_frame(rows), solver=sca.backend,
        solver_version=sca.solver_version,
        extras={"stride": step, "coarse_best": [list(c.cell) for c in top],
                "cells_evaluated": evaluated, "coarse_cells_evaluated": coarse_evaluated,
                "subproblems": sca.subproblems},
    )
    return result or no_cell(model, METHOD)
