"""Two-stage relaxed cells (§5.3), valid bounds (§6.2) and the ``relaxation`` method (§6.3):
the T2 closed form, T3 and T4 references, Clarabel == ECOS == SLSQP per cell, certified bounds
by weak duality, LB <= relaxed value on random cells, block bounds and Lagrangian cuts below
every cell of their block, relaxation bound <= exact <= floor, infeasible reports."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from test_two_stage_exact import checked, load, random_two_stage

from edgeopt.models.two_stage import TwoStageModel, convergence
from edgeopt.solvers import Status, solve
from edgeopt.solvers.two_stage.bounds import CellBounds
from edgeopt.solvers.two_stage.cell import CellData, CellPrograms, SlsqpCell
from edgeopt.solvers.two_stage.exact import Cuts, solve_exact
from edgeopt.solvers.two_stage.integer import CellVector
from edgeopt.solvers.two_stage.relaxation import solve_relaxation


def psi(model: TwoStageModel, M: int, N: int, q: float) -> float:
    return float(convergence.psi_from_q(M, N, q, model.coefficients))


# ---- the relaxed cell program ---------------------------------------------------------------


@pytest.mark.parametrize("backend", ["clarabel", "ecos", "scipy"])
def test_t2_relaxed_cell_is_the_closed_form(backend):
    model = load("t2")
    cell = (SlsqpCell(model) if backend == "scipy" else CellPrograms(model, backend)).solve(4, 6)
    a, b, c = 4 * 1e7 / 4e9, 6 * 1e7 / 1e9, 3.905 - 6 * 0.1
    root = math.sqrt(a * 4) + math.sqrt(b * 6)
    assert cell.D == pytest.approx(c * math.sqrt(4 / a) / root, rel=1e-6)  # 82.625
    assert cell.B[0] == pytest.approx(c * math.sqrt(6 / b) / root, rel=1e-6)  # 41.3125
    q_star = root**2 / c
    assert cell.value == pytest.approx(q_star, rel=1e-6)
    assert cell.bound <= q_star * (1 + 1e-12)
    assert cell.bound == pytest.approx(q_star, rel=1e-6)
    assert psi(model, 4, 6, q_star) == pytest.approx(0.2353645991, rel=1e-9)


def test_t3_and_t4_relaxed_references():
    t3 = load("t3")
    cell = CellPrograms(t3).solve(30, 0)
    assert cell.D == pytest.approx(464.1588834 / 30, rel=1e-6)
    assert psi(t3, 30, 0, cell.bound) == pytest.approx(0.1712997074, rel=1e-8)
    t4 = load("t4")
    cells = [CellPrograms(t4).solve(20, 10), CellPrograms(t4, "ecos").solve(20, 10),
             SlsqpCell(t4).solve(20, 10)]
    for cell in cells:
        assert cell.bound == pytest.approx(0.13402856, rel=1e-7)
        assert cell.D == pytest.approx(226.82, rel=1e-4)
        assert cell.B == pytest.approx([128, 94.98], rel=1e-4)


def test_clarabel_ecos_and_slsqp_agree_on_random_cells():
    rng = np.random.default_rng(2)
    compared = 0
    for _ in range(10):
        model = random_two_stage(rng, int(rng.integers(1, 4)), (6, 6), cap=40)
        M, N = int(rng.integers(0, 7)), int(rng.integers(0, 7))
        vector = CellVector(model, M, N) if M + N else None
        if vector is None or not vector.feasible(np.ones(vector.size, int)):
            continue
        a = CellPrograms(model).solve(M, N)
        b = CellPrograms(model, "ecos").solve(M, N)
        c = SlsqpCell(model).solve(M, N)
        for other in (b, c):
            assert other.bound == pytest.approx(a.bound, rel=1e-6)
            assert other.value == pytest.approx(a.value, rel=1e-6)
        for cell in (a, b, c):  # the point is feasible up to the solver's tolerance
            assert cell.bound <= cell.value * (1 + 1e-7)
        compared += 1
    assert compared >= 5



def test_direct_clarabel_matches_cvxpy_and_bounds_integer_boxes_by_brute_force():
    """The direct Clarabel program (no cvxpy) used by branch and bound: on random cells and
    random integer boxes its certified bound matches the cvxpy program's (1e-6) and never
    exceeds the box's integer optimum found by enumeration (the oracle decides feasibility)."""
    rng = np.random.default_rng(12)
    checked_boxes = 0
    for _ in range(12):
        model = random_two_stage(rng, 2, (6, 6), cap=12)
        M, N = int(rng.integers(0, 7)), int(rng.integers(0, 7))
        vector = CellVector(model, M, N) if M + N else None
        if vector is None or not vector.feasible(np.ones(vector.size, int)):
            continue
        programs = CellPrograms(model)
        lo = np.array([int(rng.integers(1, c + 1)) for c in vector.cap])
        lo = np.where(rng.random(lo.size) < 0.5, 1, lo)
        hi = np.array([int(rng.integers(a, c + 1)) for a, c in zip(lo, vector.cap)])
        if not vector.feasible(lo):
            continue
        box = (lo.astype(float), hi.astype(float))
        direct = programs._solve_direct(M, N, None, box, True)
        via_cvxpy = programs.solve(M, N, box=box, integer=True)
        assert direct.solved and direct.backend == "clarabel"
        assert direct.bound == pytest.approx(via_cvxpy.bound, rel=1e-6)
        assert direct.value == pytest.approx(via_cvxpy.value, rel=1e-5)
        assert programs.solve(M, N, box=box, integer=True, direct=True).solved
        best = min(vector.q(x) for x in itertools.product(*(range(a, b + 1) for a, b in
                                                              zip(lo, hi)))
                   if vector.feasible(x))
        assert direct.bound <= best * (1 + 1e-12)
        assert via_cvxpy.bound <= best * (1 + 1e-12)
        checked_boxes += 1
    assert checked_boxes >= 4

def test_the_dual_function_is_below_the_relaxed_value_for_any_multipliers():
    rng = np.random.default_rng(4)
    model = random_two_stage(rng, 3, (6, 6), cap=40)
    data = CellData(model)
    programs = CellPrograms(model)
    for M, N in [(6, 6), (3, 5), (0, 4), (5, 0)]:
        cell = programs.solve(M, N)
        if not cell.solved:
            continue
        for _ in range(20):
            lam = float(rng.exponential(1.0)) * 10.0 ** rng.uniform(-3, 3)
            mu = float(rng.exponential(1.0)) * 10.0 ** rng.uniform(-3, 3)
            nu = rng.exponential(1.0, data.K) * 10.0 ** rng.uniform(-3, 3)
            real = data.dual_function(M, N, lam, mu, nu)
            whole = data.dual_function(M, N, lam, mu, nu, integer=True)
            assert real <= cell.value + 1e-7 * abs(cell.value)
            assert real <= whole + 1e-12 * abs(whole)  # integer minimisation never weakens it


# ---- §6.2 bounds and cuts --------------------------------------------------------------------


def test_lower_bound_never_exceeds_the_relaxed_value_on_random_cells():
    rng = np.random.default_rng(55)
    ratios = []
    for _ in range(55):  # 55 random K = 3 cells, as in the spec's reference run
        model = random_two_stage(rng, 3, (8, 8), cap=60)
        M, N = int(rng.integers(0, 9)), int(rng.integers(0, 9))
        if M + N == 0:
            continue
        vector = CellVector(model, M, N)
        if not vector.feasible(np.ones(vector.size, int)):
            continue  # infeasible cell: the caps are necessary conditions only
        cell = CellPrograms(model).solve(M, N)
        lb = CellBounds(model, integer=False).cell(M, N)
        relaxed = psi(model, M, N, cell.bound)
        assert lb <= relaxed * (1 + 1e-9)
        ratios.append(lb / relaxed)
    assert len(ratios) >= 15 and max(ratios) <= 1 + 1e-9


def test_block_bounds_and_cuts_are_below_every_cell_of_their_block():
    rng = np.random.default_rng(8)
    model = random_two_stage(rng, 2, (6, 6), cap=30)
    programs = CellPrograms(model)
    bounds = CellBounds(model, integer=False)
    cuts = Cuts(programs.data, model.coefficients, integer=False)
    relaxed = {}
    for M, N in itertools.product(range(7), range(7)):
        if M + N == 0:
            continue
        cell = programs.solve(M, N)
        relaxed[(M, N)] = psi(model, M, N, cell.bound) if cell.solved else math.inf
        if cell.solved and rng.random() < 0.3:
            cuts.add(cell)
    assert len(cuts) >= 3
    for M0, N0 in itertools.product(range(7), range(7)):
        for M1, N1 in ((M0 + 2, N0 + 3), (6, 6), (M0, N0)):
            M1, N1 = min(M1, 6), min(N1, 6)
            cells = [relaxed[c] for c in itertools.product(range(M0, M1 + 1), range(N0, N1 + 1))
                     if c != (0, 0)]
            if not cells:
                continue
            best = min(cells)
            assert bounds.block(M0, M1, N0, N1) <= best * (1 + 1e-9)
            if (M0, N0) != (0, 0):
                M = np.array([M0, M1, M0, M1], float)
                N = np.array([N0, N0, N1, N1], float)
                assert cuts.psi(M, N) <= best * (1 + 1e-9)


def test_integer_caps_bound_every_feasible_integer_point():
    model = load("t2")
    bounds = CellBounds(model)
    for M, N in [(4, 6), (2, 6), (4, 3)]:
        caps = bounds.caps(M, N)
        vector = CellVector(model, M, N)
        # the largest feasible D at B = 1 (and B at D = 1) stay within the caps
        D = max(d for d in range(1, 129) if vector.feasible([d, 1]))
        B = max(b for b in range(1, 65) if vector.feasible([1, b]))
        assert D <= caps.D and B <= caps.B[0]


# ---- the relaxation method -------------------------------------------------------------------


def test_t2_relaxation_bound_floor_point_and_exact_in_between():
    model = load("t2")
    result = solve(model, "relaxation")
    doc = result.to_dict()
    assert result.verified and result.status is Status.FEASIBLE
    assert result.bound == pytest.approx(0.2353645991, rel=1e-8)
    assert (doc["pretrain_rounds"], doc["finetune_rounds"]) == (4, 6)
    assert doc["pretrain_batch"] == 82 and doc["finetune_batch"] == [41]
    assert result.objective == pytest.approx(0.2355121951, rel=1e-9)
    exact = solve(model, "exact")
    assert result.bound <= exact.objective <= result.objective


def test_relaxation_bound_is_the_minimum_relaxed_value_over_all_cells():
    rng = np.random.default_rng(12)
    for _ in range(3):
        model = random_two_stage(rng, 2, (5, 5), cap=30)
        programs = CellPrograms(model)
        values = []
        for M, N in itertools.product(range(6), range(6)):
            if M + N:
                cell = programs.solve(M, N)
                if cell.solved:
                    values.append(psi(model, M, N, cell.bound))
        result = checked(model, solve_relaxation(model))
        assert result.bound == pytest.approx(min(values), rel=1e-7)
        exact = checked(model, solve_exact(model))
        assert result.bound <= exact.objective * (1 + 1e-9)
        assert exact.objective <= result.objective * (1 + 1e-9)


@pytest.mark.parametrize("backend", ["ecos", "scipy"])
def test_relaxation_backends_give_the_same_bound(backend):
    model = load("t4")
    reference = solve_relaxation(model)
    other = solve_relaxation(model, backend=backend)
    assert other.bound == pytest.approx(reference.bound, rel=1e-6)
    assert other.solver == backend and reference.solver == "clarabel"


def test_relaxation_infeasible_reports():
    model = load("t3").with_changes(energy_budget_j=1e-12)
    result = solve_relaxation(model)
    assert result.status is Status.INFEASIBLE and result.infeasible_reason == "energy"
    assert result.extras["min_energy_j"] == pytest.approx(1e-28 * 1e18 / 1.0, rel=1e-9)
    assert result.to_dict()["objective"] is None
