"""Two-stage ``exact`` (spec §6.1) and the integer cell solvers (§5.4): known answers of §7,
SCIP == staircase == branch and bound, pruning == no pruning, monotonicity in the budgets,
time-limit honesty and infeasible reports, checked with the model's evaluator."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import random_two_stage

from edgeopt.models.two_stage import TwoStageModel
from edgeopt.solvers import Status, solve, verify
from edgeopt.solvers.two_stage import exact as exact_module
from edgeopt.solvers.two_stage.bounds import CellBounds
from edgeopt.solvers.two_stage.cell import CellPrograms
from edgeopt.solvers.two_stage.exact import solve_exact
from edgeopt.solvers.two_stage.integer import (
    CellVector,
    branch_and_bound,
    lagrangian_prefix_bound,
    round_relaxed,
    scip_cell,
    staircase,
)

DATA = Path(__file__).parent / "data"


def load(name: str) -> TwoStageModel:
    return TwoStageModel.from_file(DATA / f"two_stage_{name}.json")


def with_learning(model: TwoStageModel, **changes) -> TwoStageModel:
    return model.with_changes(learning={**model.to_dict()["learning"], **changes})


def brute_force_integer(model: TwoStageModel, M: int, N: int) -> float:
    """min Q over every integer batch vector of the cell (oracle per point): tiny caps only."""
    vector = CellVector(model, M, N)
    best = math.inf
    for x in itertools.product(*(range(1, int(c) + 1) for c in vector.cap)):
        q = vector.q(x)
        if q < best and model.min_energy(M, N, *vector.split(x)).feasible:
            best = q
    return best


def checked(model: TwoStageModel, result):
    """The result re-verified by the model's evaluator (as ``solve`` does)."""
    out = verify(model, result)
    assert out.verified, out.message
    return out


# ---- known answers of §7 ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "variant", "cell", "value"),
    [
        (0.0, "squared_shift", (10, 10), 0.11875),
        (0.3, "squared_shift", (10, 10), 0.16375),
        (0.5, "squared_shift", (0, 10), 0.225),
        (0.1, "linear_shift", (10, 10), 0.20925),
        (0.3, "linear_shift", (0, 10), 0.225),
    ],
)
def test_t1_optimum_at_the_caps_for_each_shift(delta, variant, cell, value):
    model = with_learning(load("t1"), shift=delta, bound=variant, grad_bound=1.0)
    result = checked(model, solve_exact(model))
    doc = result.to_dict()
    assert result.status is Status.OPTIMAL
    assert (doc["pretrain_rounds"], doc["finetune_rounds"]) == cell
    assert result.objective == pytest.approx(value, rel=1e-9)
    assert doc["pretrain_batch"] == (8 if cell[0] else 0) and doc["finetune_batch"] == [4]
    assert value * (1 - 1e-6) <= result.bound <= result.objective


def test_t2_exact_optimum_and_canonical_resources_match_section_3_4():
    model = load("t2")
    result = solve(model, "exact")  # registry path: evaluator-verified
    doc = result.to_dict()
    assert result.status is Status.OPTIMAL and result.verified
    assert result.objective == pytest.approx(0.2353960511, rel=1e-9)
    assert result.bound <= result.objective
    assert (result.objective - result.bound) <= 1e-6 * result.objective
    assert (doc["pretrain_rounds"], doc["finetune_rounds"]) == (4, 6)
    assert doc["pretrain_batch"] == 84 and doc["finetune_batch"] == [41]
    assert doc["server_clock_hz"] == pytest.approx(3.97633136e9, rel=1e-8)
    assert doc["device_clock_hz"] == [1e9] and doc["power_w"] == [0.1]
    assert doc["energy_j"] == pytest.approx(5.61856692693, rel=1e-9)
    assert doc["delay_s"] == pytest.approx(3.905, rel=1e-12)
    assert doc["model"] == "two_stage" and doc["method"] == "exact"
    # every §3.4 field is there with its JSON type
    for key in ("status", "objective", "bound", "pretrain_rounds", "finetune_rounds",
                "pretrain_batch", "finetune_batch", "server_clock_hz", "device_clock_hz",
                "power_w", "energy_j", "delay_s", "method", "solver", "wall_time_s"):
        assert key in doc
    assert isinstance(doc["pretrain_rounds"], int) and isinstance(doc["finetune_batch"][0], int)


def test_t3_pure_pretraining_cube_root_optimum():
    model = load("t3")
    result = checked(model, solve_exact(model, integer="bnb"))
    doc = result.to_dict()
    assert result.status is Status.OPTIMAL
    assert (doc["pretrain_rounds"], doc["finetune_rounds"], doc["pretrain_batch"]) == (29, 0, 16)
    assert result.objective == pytest.approx(0.1714655172, rel=1e-9)
    assert doc["energy_j"] == pytest.approx(0.0099897344, rel=1e-8)
    assert doc["server_clock_hz"] == pytest.approx(4.64e8, rel=1e-9)
    assert doc["finetune_batch"] == [0] and doc["device_clock_hz"] == [0.0]


@pytest.mark.parametrize("method", ["bnb", "scip", "staircase"])
def test_t4_cell_20_10_integer_optimum(method):
    model = load("t4")
    caps = CellBounds(model).caps(20, 10)
    if method == "bnb":
        search = branch_and_bound(model, 20, 10, CellPrograms(model), caps=caps)
        point, complete = search.point, search.complete
        assert search.bound <= point.q and search.bound >= point.q * (1 - 1e-9)
    elif method == "scip":
        search = scip_cell(model, 20, 10, caps=caps)
        point, complete = search.point, search.complete
    else:
        programs = CellPrograms(model)
        relaxed = programs.solve(20, 10)
        start = round_relaxed(model, 20, 10, relaxed.D, relaxed.B, "floor_fill")
        lower = lagrangian_prefix_bound(programs.data, 20, 10, relaxed, caps)
        point, complete = staircase(model, 20, 10, cutoff=start.q * (1 + 1e-12), caps=caps,
                                    lower=lower)
    assert complete
    assert (point.D, point.B) == (226, (128, 96))
    assert point.q == pytest.approx(0.13406849, rel=1e-7)
    psi = float(model.bound(20, 10, point.D, list(point.B)))
    assert psi == pytest.approx((93.8 + 2 * point.q) / 30, rel=1e-12)
    assert psi == pytest.approx(3.1356046, rel=1e-7)


def test_t4_rounding_rules_and_canonical_resources():
    model = load("t4")
    relaxed = CellPrograms(model).solve(20, 10)
    floor = round_relaxed(model, 20, 10, relaxed.D, relaxed.B, "floor")
    assert (floor.D, floor.B) == (226, (128, 94))
    assert floor.q == pytest.approx(0.13462257, rel=1e-7)
    solution = model.solution(20, 10, 226, [128, 96])
    assert solution["server_clock_hz"] == pytest.approx(2.2109e9, rel=1e-4)
    assert solution["device_clock_hz"][1] == 1e9 and solution["power_w"][1] == 0.1
    assert solution["power_w"][0] == pytest.approx(0.017313, rel=1e-4)
    assert solution["energy_j"] == pytest.approx(2.99733, rel=1e-5)


def test_t2_floor_fill_reaches_84():
    model = load("t2")
    relaxed = CellPrograms(model).solve(4, 6)
    assert (round_relaxed(model, 4, 6, relaxed.D, relaxed.B, "floor").D,
            round_relaxed(model, 4, 6, relaxed.D, relaxed.B, "floor_fill").D) == (82, 84)


# ---- cross-checks between the integer methods and a brute force ------------------------------


def test_scip_staircase_bnb_and_brute_force_agree_on_random_small_cells():
    rng = np.random.default_rng(11)
    checked_cells = 0
    for _ in range(24):
        model = random_two_stage(rng, int(rng.integers(1, 3)), (4, 4), cap=8)
        M, N = int(rng.integers(0, 5)), int(rng.integers(0, 5))
        if M + N == 0 or not CellVector(model, M, N).feasible(
                np.ones(CellVector(model, M, N).size, int)):
            continue
        caps = CellBounds(model).caps(M, N)
        truth = brute_force_integer(model, M, N)
        a = branch_and_bound(model, M, N, CellPrograms(model), caps=caps)
        b = scip_cell(model, M, N, caps=caps)
        c, done = staircase(model, M, N, caps=caps)
        assert a.complete and b.complete and done
        for q in (a.point.q, b.point.q, c.q):
            assert q == pytest.approx(truth, rel=1e-12)
        assert a.bound <= truth * (1 + 1e-12)
        checked_cells += 1
    assert checked_cells >= 8


def points_near_the_boundary(model: TwoStageModel, rng: np.random.Generator, cells: int,
                             draws: int, steps: tuple[int, int]):
    """(vector, M, N, x, oracle's answer) for integer points around the floored relaxed
    optimum of random cells (each batch moved by a step in ``steps``)."""
    programs = CellPrograms(model)
    d = model.derived
    for _ in range(cells):
        M = int(rng.integers(0, d.max_pretrain_rounds))
        N = int(rng.integers(1, d.max_finetune_rounds))
        relaxed = programs.solve(M, N)
        if not relaxed.solved:
            continue
        vector = CellVector(model, M, N)
        base = np.floor(np.array(([relaxed.D] if M else []) + list(relaxed.B)))
        for _ in range(draws):
            x = np.clip(base + rng.integers(*steps, base.size), 1, vector.cap).astype(int)
            D, B = vector.split(x)
            yield vector, M, N, x, bool(model.min_energy(M, N, D, np.array(B, float)).feasible)


def test_quick_feasibility_decisions_match_the_oracle_near_the_boundary():
    model = TwoStageModel.preset("default", devices=4, seed=3, max_pretrain_rounds=300,
                                 max_finetune_rounds=60)
    decided = 0
    for vector, _, _, x, truth in points_near_the_boundary(model, np.random.default_rng(5),
                                                           6, 8, (-1, 3)):
        D, B = vector.split(x)
        answer = vector.decide(D, np.array(B, float))
        if answer is not None:
            decided += 1
            assert answer == truth
    assert decided >= 30


def test_feasibility_with_the_last_split_matches_the_oracle():
    """CellVector.feasible (which first tries the last decided point's compute times) answers
    exactly as the oracle does, on a walk of points around the budget boundary."""
    model = TwoStageModel.preset("default", devices=5, seed=4, max_pretrain_rounds=400,
                                 max_finetune_rounds=80, energy_budget_j=3.0,
                                 delay_budget_s=20.0)
    answers = {True: 0, False: 0}
    for vector, M, N, x, truth in points_near_the_boundary(model, np.random.default_rng(9),
                                                           6, 25, (-3, 3)):
        assert vector.feasible(x) == truth, (M, N, x)
        answers[truth] += 1
    assert min(answers.values()) >= 10


def _two_box_bounds(_: int) -> list[float]:
    model = TwoStageModel.preset("default", devices=6, seed=2, max_pretrain_rounds=500,
                                 max_finetune_rounds=40)
    caps = CellBounds(model).caps(500, 30)
    hi = np.array([caps.D, *caps.B], float)
    boxes = [(np.ones_like(hi), hi), (np.ones_like(hi), np.maximum(1.0, np.floor(hi / 2)))]
    return [cell.bound for cell in CellPrograms(model).solve_boxes(500, 30, boxes,
                                                                    integer=True)]


def test_parallel_box_solves_work_in_forked_processes():
    """A child forked after the thread pool exists gets its own pool (no hang)."""
    import multiprocessing

    here = _two_box_bounds(0)
    with multiprocessing.get_context("fork").Pool(2) as pool:
        children = pool.map_async(_two_box_bounds, range(2)).get(timeout=120)
    for bounds in children:
        assert bounds == pytest.approx(here, rel=1e-12)


def test_interleaved_trees_match_cells_solved_one_by_one():
    """exact (the cells' branch-and-bound trees interleaved) == the best of branch_and_bound
    run to the end, without cutoff, on every cell whose relaxation is below the optimum."""
    for seed in range(3):
        model = TwoStageModel.preset("default", devices=4, seed=seed, max_pretrain_rounds=12,
                                     max_finetune_rounds=6, energy_budget_j=0.5,
                                     delay_budget_s=3.0)
        result = checked(model, solve_exact(model))
        assert result.status is Status.OPTIMAL
        assert result.extras["pruning"]["integer_solves"] >= 1
        programs, bounds = CellPrograms(model), CellBounds(model)
        best, searched = math.inf, 0
        for M, N in itertools.product(range(13), range(7)):
            if M + N == 0 or not (caps := bounds.caps(M, N)).feasible:
                continue
            vector = CellVector(model, M, N, caps)
            if not vector.feasible(np.ones(vector.size, int)):
                continue
            root = programs.solve(M, N, box=(np.ones(vector.size), vector.cap.astype(float)),
                                  integer=True, direct=True)
            a = model.coefficients
            if (a.a0 + a.a1 * M + a.a2 * root.bound) / (M + N) > result.objective:
                continue
            search = branch_and_bound(model, M, N, programs, caps=caps, root=root)
            searched += 1
            if search.point is not None:
                best = min(best, float(model.bound(M, N, search.point.D,
                                                   np.array(search.point.B, float))))
        assert searched >= 1
        assert result.objective == pytest.approx(best, rel=1e-9)


# ---- the search ------------------------------------------------------------------------------


def test_pruning_changes_nothing_on_random_small_grids():
    rng = np.random.default_rng(7)
    for _ in range(5):
        model = random_two_stage(rng, int(rng.integers(1, 3)), (4, 4), cap=10)
        pruned = checked(model, solve_exact(model))
        full = checked(model, solve_exact(model, prune=False))
        assert pruned.status is Status.OPTIMAL and full.status is Status.OPTIMAL
        assert pruned.objective == pytest.approx(full.objective, rel=1e-9)
        stats, every = pruned.extras["pruning"], full.extras["pruning"]
        assert stats["integer_solves"] <= every["integer_solves"]
        assert every["closed_by_block_bound"] == every["closed_by_cell_bound"] == 0


def test_exact_is_never_above_a_brute_force_over_all_cells():
    rng = np.random.default_rng(21)
    model = random_two_stage(rng, 1, (3, 3), cap=6)
    values = []
    for M, N in itertools.product(range(4), range(4)):
        if M + N and CellVector(model, M, N).feasible(np.ones(CellVector(model, M, N).size, int)):
            values.append(float(model.coefficients.a0 + model.coefficients.a1 * M
                                + model.coefficients.a2 * brute_force_integer(model, M, N))
                          / (M + N))
    result = checked(model, solve_exact(model))
    assert result.objective == pytest.approx(min(values), rel=1e-12)


@pytest.mark.parametrize("budget", ["energy_budget_j", "delay_budget_s"])
def test_exact_optimum_does_not_rise_with_a_budget(budget):
    rng = np.random.default_rng(3 if budget == "energy_budget_j" else 4)
    for _ in range(2):
        model = random_two_stage(rng, 2, (4, 4), cap=10)
        base = model.to_dict()[budget]
        values = [solve_exact(model.with_changes(**{budget: base * f})).objective
                  for f in (0.8, 1.0, 1.3)]
        finite = [v for v in values if v is not None]
        assert all(b <= a * (1 + 1e-9) for a, b in zip(finite, finite[1:]))


def _scaled(document: dict, path: tuple, factor: float) -> dict:
    """A copy of the document with the field at ``path`` multiplied by ``factor`` (integers
    stay integers; a ``devices`` path scales every device)."""
    out = json.loads(json.dumps(document))
    targets = out["devices"] if path[0] == "devices" else [out]
    for target in targets:
        keys = path[1:] if path[0] == "devices" else path
        for key in keys[:-1]:
            target = target[key]
        value = target[keys[-1]] * factor
        target[keys[-1]] = int(round(value)) if isinstance(target[keys[-1]], int) else value
    return out


FALLS_WITH = [("energy_budget_j",), ("delay_budget_s",), ("max_pretrain_rounds",),
              ("max_finetune_rounds",), ("server", "max_batch"), ("server", "max_clock_hz"),
              ("devices", "max_batch"), ("devices", "max_clock_hz"), ("devices", "max_power_w"),
              ("devices", "channel_gain"), ("devices", "bandwidth_hz")]
RISES_WITH = [("model_bits",), ("noise_psd_w_per_hz",), ("server", "cycles_per_sample"),
              ("server", "capacitance"), ("devices", "cycles_per_sample"),
              ("devices", "capacitance"), ("learning", "shift")]


def test_exact_optimum_moves_the_right_way_with_every_parameter():
    """Spec §6.6: Psi* is non-increasing in budgets, round and batch caps, f^max, P^max, h, b
    and non-decreasing in S, N_0, C, kappa, delta (each raised by 50 %)."""
    rng = np.random.default_rng(12)
    for _ in range(2):
        document = random_two_stage(rng, 2, (4, 4), cap=10).to_dict()
        base = solve_exact(TwoStageModel.from_dict(document)).objective
        assert base is not None
        for path in FALLS_WITH + RISES_WITH:
            value = solve_exact(TwoStageModel.from_dict(_scaled(document, path, 1.5))).objective
            if path in FALLS_WITH:
                assert value is not None and value <= base * (1 + 1e-9), path
            else:
                assert value is None or value >= base * (1 - 1e-9), path


def test_pretraining_share_does_not_rise_with_the_shift():
    """Spec §6.6: optimal cells at delta < delta' have (a1' - a1)(r' - r) <= 0, r = M/(M + N)."""
    rng = np.random.default_rng(13)
    document = random_two_stage(rng, 2, (6, 6), cap=10).to_dict()
    shares, a1 = [], []
    for shift in (0.0, 0.2, 0.5, 1.0, 2.0):
        model = TwoStageModel.from_dict({**document,
                                         "learning": {**document["learning"], "shift": shift}})
        solution = solve_exact(model).solution
        M, N = solution["pretrain_rounds"], solution["finetune_rounds"]
        shares.append(M / (M + N))
        a1.append(model.coefficients.a1)
    assert all((a1[j] - a1[i]) * (shares[j] - shares[i]) <= 1e-9
               for i in range(5) for j in range(i + 1, 5))
    assert shares[0] > shares[-1]  # this fleet does move: the shift pushes pre-training out


def test_time_limit_reports_incumbent_and_a_valid_bound():
    model = TwoStageModel.preset("default", devices=20, seed=1, max_pretrain_rounds=499,
                                 max_finetune_rounds=499)  # 250,000 cells: the size limit
    stopped = solve_exact(model, time_limit=0.5)
    assert stopped.status is Status.TIME_LIMIT
    assert stopped.bound is not None
    if stopped.objective is not None:
        checked(model, stopped)
        assert stopped.bound <= stopped.objective
    relaxed = solve(model, "relaxation")
    # any valid bound is below every feasible point, e.g. the relaxation's rounded point
    assert stopped.bound <= relaxed.objective * (1 + 1e-9)


def test_infeasible_delay_and_energy_are_reported_with_the_missing_amounts():
    t2 = load("t2")
    slow = t2.with_changes(delay_budget_s=0.001)
    result = solve(slow, "exact")
    doc = result.to_dict()
    assert result.status is Status.INFEASIBLE and result.infeasible_reason == "delay"
    assert doc["objective"] is None and doc["bound"] is None and doc["finetune_batch"] == []
    assert doc["pretrain_rounds"] is None and doc["server_clock_hz"] is None
    direct = solve_exact(slow)
    assert direct.status is Status.INFEASIBLE and direct.infeasible_reason == "delay"
    assert direct.extras["min_delay_s"] == pytest.approx(min(1e7 / 4e9, 1e7 / 1e9 + 0.1),
                                                         rel=1e-9)
    assert "delay budget" in direct.message
    poor = t2.with_changes(energy_budget_j=1e-9)
    direct = solve_exact(poor)
    assert direct.status is Status.INFEASIBLE and direct.infeasible_reason == "energy"
    assert direct.extras["min_energy_j"] > 1e-9 and "energy budget" in direct.message


def test_bad_options_name_the_allowed_values():
    model = load("t2")
    with pytest.raises(ValueError, match="integer = 'fast'.*auto, bnb, scip, staircase"):
        solve_exact(model, integer="fast")
    with pytest.raises(ValueError, match="K <= 2"):
        solve_exact(TwoStageModel.preset("default", devices=3, max_pretrain_rounds=2,
                                         max_finetune_rounds=2), integer="staircase")
    with pytest.raises(ValueError, match="backend = 'scs'"):
        solve_exact(model, backend="scs")


def test_per_round_channels_are_not_supported():
    doc = load("t2").to_dict()
    doc["devices"][0]["channel_gain_schedule"] = [1.023e-11, 2e-11, 1e-11, 1e-11, 1e-11, 1e-11]
    model = TwoStageModel.from_dict(doc)
    assert "per_round" in exact_module.unsupported(model)
    with pytest.raises(ValueError, match="does not apply"):
        solve_exact(model)
