"""The per-round policy (spec §3.3): when the stage-constant policy is optimal and when it is
not, the per-round cell programs, and the ``relaxation_per_round`` method (checked against
``relaxation`` on static channels and by the model's evaluator round by round)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import random_two_stage

from edgeopt.models.two_stage import TwoStageModel, convergence, read_solution
from edgeopt.models.two_stage.schema import METHODS
from edgeopt.solvers import Status, solve, solvers_for, verify
from edgeopt.solvers.two_stage import per_round
from edgeopt.solvers.two_stage.cell import CellPrograms
from edgeopt.solvers.two_stage.relaxation_per_round import (
    RoundCuts,
    optimistic_static,
    search_per_round,
)

DATA = Path(__file__).parent / "data"


def binding_fleet(devices: int = 3, seed: int = 1) -> TwoStageModel:
    """A small §8 fleet whose energy and delay budgets bind in the large cells."""
    return TwoStageModel.preset("default", devices=devices, seed=seed, max_pretrain_rounds=40,
                                max_finetune_rounds=12, energy_budget_j=0.3,
                                delay_budget_s=8.0)


def with_schedule(model: TwoStageModel, spread: float, seed: int = 0) -> TwoStageModel:
    """The fleet with per-round gains h_k(n) = h_k exp(spread z), z standard normal."""
    rng = np.random.default_rng(seed)
    document = model.to_dict()
    n_max = model.derived.max_finetune_rounds
    for device in document["devices"]:
        device["channel_gain_schedule"] = list(
            device["channel_gain"] * np.exp(spread * rng.standard_normal(n_max)))
    return TwoStageModel.from_dict(document)


def checked(model: TwoStageModel, result):
    out = verify(model, result)
    assert out.verified, out.message
    return out


# ---- when the stage-constant policy is optimal ------------------------------------------


def test_static_channels_per_round_relaxed_optimum_equals_the_stage_constant_one():
    model = binding_fleet()
    programs = CellPrograms(model)
    rng = np.random.default_rng(2)
    binding = 0
    for _ in range(8):
        M, N = int(rng.integers(0, 41)), int(rng.integers(1, 13))
        constant = programs.solve(M, N)
        free = per_round.relaxed_cell(model, M, N)
        assert free.solved and constant.solved
        assert free.value == pytest.approx(constant.value, rel=1e-6)
        binding += constant.value > programs.data.q_caps(M, N) * (1 + 1e-6)
    assert binding >= 3  # the budgets bind in several of the cells compared


def test_time_varying_channels_per_round_batches_beat_one_batch_per_device():
    model = with_schedule(binding_fleet(), spread=1.5)
    gains, spreads = [], []
    for M, N in ((20, 12), (0, 12), (35, 8)):
        free = per_round.relaxed_cell(model, M, N)
        tied = per_round.relaxed_cell(model, M, N, tie_batches=True)
        assert free.solved and tied.solved
        assert free.value <= tied.value * (1 + 1e-9)
        gains.append(1 - free.value / tied.value)
        spreads.append(np.ptp(free.B, axis=0).max())  # batches that follow the channel
    assert max(gains) > 1e-3 and max(spreads) > 1.0
    flat = with_schedule(binding_fleet(), spread=0.0)  # a schedule that never changes
    assert not flat.derived.time_varying
    for M, N in ((20, 12), (0, 12)):
        free = per_round.relaxed_cell(flat, M, N).value
        assert per_round.relaxed_cell(flat, M, N, tie_batches=True).value == pytest.approx(
            free, rel=1e-6)
        assert CellPrograms(flat).solve(M, N).value == pytest.approx(free, rel=1e-6)


def test_integer_per_round_batches_can_beat_every_constant_integer_batch():
    """Spec §3.3: alternating 5 and 6 beats the best constant integer batch (here 5)."""
    document = TwoStageModel.from_file(DATA / "two_stage_t2.json").to_dict()
    document.update(max_pretrain_rounds=0, max_finetune_rounds=2, delay_budget_s=0.3105)
    model = TwoStageModel.from_dict(document)  # a round takes 0.01 s per sample + 0.1 s upload
    exact = checked(model, solve(model, "exact"))
    assert exact.status is Status.OPTIMAL
    assert exact.solution["finetune_rounds"] == 2 and exact.solution["finetune_batch"] == [5]
    mixed = per_round.solution(model, 0, 2, 0, [[5], [6]])
    evaluation = model.evaluate(mixed)
    assert evaluation.feasible
    psi_mixed = convergence.psi_per_round([], [[5], [6]], model.derived.weights,
                                          model.coefficients)
    assert evaluation.objective == pytest.approx(psi_mixed, rel=1e-12)
    assert psi_mixed < exact.objective * (1 - 1e-3)
    assert per_round.solution(model, 0, 2, 0, [[6], [6]]) is None  # 0.32 s > T_max
    bound = solve(model, "relaxation").bound
    assert bound <= psi_mixed <= exact.objective


def test_minimum_energy_of_constant_batches_matches_the_oracle():
    model = binding_fleet()
    rng = np.random.default_rng(4)
    for _ in range(5):
        M, N = int(rng.integers(1, 41)), int(rng.integers(1, 13))
        D = int(rng.integers(1, 40))
        B = rng.integers(1, 20, model.n_devices)
        oracle = model.min_energy(M, N, D, B)
        mine = per_round.minimum_energy(model, M, N, D, np.tile(B, (N, 1)))
        if not oracle.delay_feasible:
            assert not mine.solved
            continue
        assert mine.value == pytest.approx(oracle.energy_j, rel=1e-5)
        assert mine.value >= oracle.energy_j * (1 - 1e-9)  # it plans within less time


def test_cell_programs_reject_bad_cells():
    model = binding_fleet()
    with pytest.raises(ValueError, match="M \\+ N >= 1"):
        per_round.relaxed_cell(model, 0, 0)
    with pytest.raises(ValueError, match="max_finetune_rounds = 12"):
        per_round.relaxed_cell(model, 1, 13)


# ---- the method ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["t1", "t2", "t3", "t4"])
def test_per_round_search_equals_relaxation_with_static_channels(name):
    """The per-round search itself (which solve_relaxation_per_round leaves to relaxation
    when channels are static) reproduces relaxation's bound and point."""
    model = TwoStageModel.from_file(DATA / f"two_stage_{name}.json")
    stage = checked(model, solve(model, "relaxation"))
    free = checked(model, search_per_round(model))
    assert free.bound == pytest.approx(stage.bound, rel=1e-6)
    assert free.bound <= free.objective * (1 + 1e-12)
    assert free.objective == pytest.approx(stage.objective, rel=1e-9)  # both floor the cell
    shortcut = solve(model, "relaxation_per_round")
    assert shortcut.extras["static_channels"] and shortcut.bound == stage.bound


def test_relaxation_per_round_on_time_varying_channels():
    model = with_schedule(binding_fleet(), spread=1.5)
    assert solve(model, "relaxation").method == "relaxation_per_round"  # the kind's default
    with pytest.raises(ValueError, match="relaxation_per_round"):
        solve(model, "exact")
    result = checked(model, solve(model, "relaxation_per_round"))
    assert result.status in (Status.FEASIBLE, Status.OPTIMAL)
    assert result.bound <= result.objective
    assert "per_round" in result.solution
    M, N = result.solution["pretrain_rounds"], result.solution["finetune_rounds"]
    assert np.asarray(result.solution["per_round"]["finetune_batch"]).shape == (N, 3)
    document = json.loads(result.to_json())  # the canonical solution document reads back
    read = read_solution(document, devices=3)
    assert read.method == "relaxation_per_round"
    assert np.asarray(read.per_round.power_w).shape == (N, 3)
    assert model.evaluate(document).feasible
    assert f"per_round   {N} rounds" in result.summary()
    rng = np.random.default_rng(8)
    for _ in range(4):  # the bound holds against floored per-round points of other cells
        M, N = int(rng.integers(0, 41)), int(rng.integers(1, 13))
        relaxed = per_round.relaxed_cell(model, M, N)
        if not relaxed.solved:
            continue
        B = np.maximum(np.floor(relaxed.B) - 1, 1).astype(int)
        D = max(int(relaxed.D) - 1, 1) if M else 0
        point = per_round.solution(model, M, N, D, B)
        if point is None or not model.evaluate(point).feasible:
            continue
        assert result.bound <= model.evaluate(point).objective * (1 + 1e-9)


def test_optimistic_static_instance_takes_each_device_best_gain():
    model = with_schedule(binding_fleet(), spread=1.0)
    optimistic = optimistic_static(model)
    assert not optimistic.derived.time_varying
    assert np.allclose(optimistic.derived.channel_gain, model.derived.gains.max(axis=0))


def test_relaxation_per_round_time_limit_is_honest():
    """Stopped early: status time_limit, and what it reports as a bound is below the bound of
    the complete search (so below the per-round relaxed optimum)."""
    model = with_schedule(TwoStageModel.preset("default", devices=4, seed=2), spread=1.0)
    complete = checked(model, solve(model, "relaxation_per_round"))
    assert complete.status in (Status.FEASIBLE, Status.OPTIMAL)
    assert complete.bound <= complete.objective
    stopped = solve(model, "relaxation_per_round", time_limit=0.02)
    assert stopped.status is Status.TIME_LIMIT and stopped.verified is not False
    assert stopped.bound is None or stopped.bound <= complete.bound * (1 + 1e-9)
    assert stopped.objective is None or stopped.objective >= complete.bound


def test_every_registered_method_may_appear_in_a_solution_document():
    registered = {spec.method for spec in solvers_for("two_stage").specs}
    assert registered <= set(METHODS), registered - set(METHODS)


def test_relaxed_times_stay_feasible_for_floored_batches():
    """The fallback resources of relaxation_per_round: a relaxed cell's own times with its
    batches floored meet both budgets, and use no less energy than the minimum-energy ones."""
    model = with_schedule(binding_fleet(), spread=1.5)
    rng = np.random.default_rng(6)
    for _ in range(4):
        M, N = int(rng.integers(0, 41)), int(rng.integers(1, 13))
        relaxed = per_round.relaxed_cell(model, M, N)
        D = int(np.floor(relaxed.D)) if M else 0
        B = np.floor(relaxed.B).astype(int)
        at_relaxed_times = per_round.solution(model, M, N, D, B, times=relaxed)
        assert model.evaluate(at_relaxed_times).feasible
        least = per_round.solution(model, M, N, D, B)
        assert least["energy_j"] <= at_relaxed_times["energy_j"] * (1 + 1e-7)


def test_relaxation_per_round_reports_infeasible_budgets():
    model = with_schedule(binding_fleet(), spread=1.0).with_changes(max_pretrain_rounds=0,
                                                                   delay_budget_s=0.1)
    result = solve(model, "relaxation_per_round")
    assert result.status is Status.INFEASIBLE
    assert result.objective is None and result.infeasible_reason == "delay"
    assert "0.1" in result.message


def test_relaxation_per_round_on_random_fleets():
    """Random small fleets: the per-round bound equals relaxation's with static channels;
    with a schedule every point is verified and above its bound; infeasibility agrees."""
    rng = np.random.default_rng(42)
    for i in range(6):
        model = random_two_stage(rng, int(rng.integers(1, 4)),
                                 (int(rng.integers(0, 6)), int(rng.integers(1, 6))), cap=12)
        stage = solve(model, "relaxation")
        free = solve(model, "relaxation_per_round")
        assert (stage.status is Status.INFEASIBLE) == (free.status is Status.INFEASIBLE)
        if stage.status is Status.INFEASIBLE:
            continue
        assert free.verified and free.bound == pytest.approx(stage.bound, rel=1e-6)
        searched = checked(model, search_per_round(model))
        assert searched.bound == pytest.approx(stage.bound, rel=1e-6)
        varying = solve(with_schedule(model, spread=1.0, seed=i), "relaxation_per_round")
        assert varying.verified and varying.bound <= varying.objective * (1 + 1e-9)


def test_round_cuts_bound_every_cell_and_are_tight_where_they_were_made():
    """Weak duality: a cut from one per-round solve's prices bounds the per-round relaxed
    Psi of every cell (and of blocks), and is tight at its own cell."""
    model = with_schedule(binding_fleet(), spread=1.5)
    cuts = RoundCuts(model)
    a = model.coefficients
    rng = np.random.default_rng(10)
    cells = [(int(rng.integers(0, 41)), int(rng.integers(1, 13))) for _ in range(8)]
    values = {}
    for M, N in cells:
        relaxed = per_round.relaxed_cell(model, M, N)
        if relaxed.status != "optimal":  # its value is not accurate enough to compare
            continue
        values[(M, N)] = (a.a0 + a.a1 * M + a.a2 * relaxed.value) / (M + N)
        single = RoundCuts(model)
        single.add(relaxed)
        assert single.psi(M, M, N, N) == pytest.approx(values[(M, N)], rel=1e-6)
        cuts.add(relaxed)
    assert len(values) >= 5
    for (M, N), value in values.items():
        assert cuts.psi(M, M, N, N) <= value * (1 + 1e-9)
    assert cuts.psi(0, 40, 1, 12) <= min(values.values()) * (1 + 1e-9)


def test_per_round_bound_is_the_least_per_round_relaxed_cell():
    """On small scheduled fleets the method's bound is the minimum over every cell of the
    per-round relaxed Psi (all cells solved one by one), to the solver's accuracy."""
    rng = np.random.default_rng(21)
    compared = 0
    for i in range(4):
        model = with_schedule(random_two_stage(rng, 2, (5, 4), cap=12), spread=1.0, seed=i)
        result = solve(model, "relaxation_per_round")
        if result.status is Status.INFEASIBLE:
            continue
        a, values = model.coefficients, []
        for M in range(6):
            for N in range(5):
                if M + N == 0:
                    continue
                cell = per_round.relaxed_cell(model, M, N)
                if cell.solved:
                    values.append((a.a0 + a.a1 * M + a.a2 * cell.value) / (M + N))
        assert result.bound <= min(values) * (1 + 1e-9)
        assert result.bound == pytest.approx(min(values), rel=1e-6)
        compared += 1
    assert compared >= 2
