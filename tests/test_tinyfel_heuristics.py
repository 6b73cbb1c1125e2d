"""TinyFEL heuristic and baselines (spec §5.5, §5.6): known answers of spec §6, exact <= every
heuristic point on random instances (spec §5.7), the trace, seeds, the ADMM projections
against scipy, the equal-bandwidth knapsack against HiGHS, and option errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import random_tinyfel_layers
from scipy.optimize import minimize

from edgeopt.models.tinyfel import TinyFELModel
from edgeopt.solvers import Status, solve
from edgeopt.solvers.common.termination import Reason, Termination
from edgeopt.solvers.tinyfel import baselines
from edgeopt.solvers.tinyfel.bcd_admm import (
    SWAP_SAVING,
    TRACE_COLUMNS,
    best_move,
    budget_rows,
    fixed_latency,
    project_rows,
    project_rows_box,
    solve_bcd_admm,
)
from edgeopt.solvers.tinyfel.bisection_mckp import choose

DATA = Path(__file__).parent / "data"
EXACT_TOLERANCE = 1e-6
"""Relative slack of 'exact <= heuristic' (spec §5.7)."""

BASELINES = (
    "baseline_full_model",
    "baseline_uniform_ratio",
    "baseline_random_selection",
    "baseline_channel_greedy",
    "baseline_equal_bandwidth",
)
BCD_VARIANTS = ({}, {"polish": False}, {"admm": "nonconvex"}, {"admm": "nonconvex", "polish": False})


def load(name: str) -> TinyFELModel:
    """tests/data/tinyfel_<name>.json: a, a_prime, b, c (spec §6)."""
    return TinyFELModel.from_file(DATA / f"tinyfel_{name}.json")


# ---- known answers (spec §6) ------------------------------------------------------------


def test_equal_bandwidth_on_instance_a():
    result = solve(load("a"), "baseline_equal_bandwidth")
    assert result.status is Status.FEASIBLE and result.verified
    assert result.objective == pytest.approx(1.58330165500, rel=1e-10)
    assert result.objective == pytest.approx(0.7 + 1.4 / math.log2(3), rel=1e-12)
    assert result.solution["updated_layers"] == [2, 2]
    assert result.solution["bandwidth_hz"] == pytest.approx([5e6, 5e6], rel=1e-12)


def test_full_model_is_memory_infeasible_on_instance_a():
    result = solve(load("a"), "baseline_full_model")
    assert result.status is Status.INFEASIBLE and result.infeasible_reason == "memory"
    assert "'d2'" in result.message and "4250000" in result.message and "3500000" in result.message
    assert result.objective is None and result.to_dict()["selected"] == []
    assert result.extras["attempt"]["updated_layers"] == [3, 3]
    assert result.extras["attempt"]["bias"] == pytest.approx(0.0, abs=1e-12)


def test_full_model_dropping_memory_infeasible_devices():
    result = solve(load("a"), "baseline_full_model", drop_memory_infeasible=True)
    assert result.status is Status.FEASIBLE and result.verified
    assert result.objective == pytest.approx(1.8, rel=1e-12)
    assert result.solution["selected"] == [True, False]
    assert result.solution["updated_layers"] == [3, 0]
    assert result.solution["bandwidth_hz"] == pytest.approx([1e7, 0.0])
    assert result.extras["bias"] == pytest.approx(0.4)  # Phi = G^2 (1 - p_1), p_1 = 0.6


def test_baselines_report_phi_and_rounds():
    """Instance A: uniform n-bar = 2 is the P1 optimum (2, 2) of spec §6: Phi 0.5, R 447."""
    document = solve(load("a"), "baseline_uniform_ratio").to_dict()
    assert document["updated_layers"] == [2, 2]
    assert document["objective"] == pytest.approx(1.47641658378, rel=1e-10)
    assert document["bias"] == pytest.approx(0.5) and document["rounds"] == 447


@pytest.mark.parametrize(
    ("name", "optimum"), [("a", 1.47641658378), ("a_prime", 1.37062894379), ("b", 1.8)]
)
@pytest.mark.parametrize("options", BCD_VARIANTS)
def test_bcd_admm_on_the_tiny_instances(name, optimum, options):
    result = solve(load(name), "bcd_admm", **options)
    assert result.status is Status.FEASIBLE and result.verified
    assert result.objective >= optimum * (1 - 1e-10)
    if options.get("polish", True):  # with our additions it reaches the optimum here
        assert result.objective == pytest.approx(optimum, rel=1e-10)


@pytest.mark.parametrize("method", ("bcd_admm",) + BASELINES)
def test_instance_c_is_infeasible_by_bias_budget(method):
    """Called directly (``solve`` diagnoses first): the method's own check says why."""
    model = load("c")
    run = solve_bcd_admm if method == "bcd_admm" else getattr(baselines, "solve_" + method[9:])
    result = run(model)
    assert result.status is Status.INFEASIBLE
    if method != "baseline_full_model":  # full model fails on memory first
        assert result.infeasible_reason == "bias_budget"
        assert "0.2 > ε0 = 0.15" in result.message


# ---- exact <= heuristics on random instances (spec §5.7) ---------------------------------


def random_model(rng: np.random.Generator, energy: bool = False) -> TinyFELModel:
    """A random instance with 3-7 devices and 2-5 layers at the scale of instance A; some
    options are rate-capped or memory-infeasible; optional energy budgets."""
    K, L = int(rng.integers(3, 8)), int(rng.integers(2, 6))
    layers = random_tinyfel_layers(rng, L)
    devices = []
    for k in range(K):
        device = {
            "name": f"d{k + 1}",
            "flops_per_s": float(rng.uniform(5e9, 3e10)),
            "memory_bytes": float(rng.uniform(3e6, 1e7)),
            "samples": int(rng.integers(10, 100)),
            "power_w": 0.1,
            "channel_gain": float(10 ** rng.uniform(-13.5, -11.5)),
        }
        if energy:
            device.update(energy_budget_j=float(rng.uniform(0.5, 4.0)), capacitance=2e-31,
                          cycles_per_flop=1.0)
        devices.append(device)
    return TinyFELModel.from_dict(
        {
            "model": "tinyfel",
            "version": 1,
            "layers": layers,
            "devices": devices,
            "bandwidth_hz": float(rng.uniform(2e6, 2e7)),
            "noise_psd_w_per_hz": 1e-20,
            "batch_size": 1,
            "local_steps": 1,
            "optimizer_state_factor": 1,
            "bias_budget": float(rng.uniform(0.25, 0.8)) * sum(x["grad_sq_bound"] for x in layers),
            "min_selected": int(rng.integers(0, 3)),
            "objective": "round_latency",
            "include_noise_in_budget": bool(rng.random() < 0.3),
            "learning": {"learning_rate": 0.1, "smoothness": 1.0, "grad_variance": 1.0,
                         "initial_gap": 10.0, "target_stationarity": 1.0},
        }
    )


@pytest.mark.parametrize("seed", range(10))
def test_exact_is_below_every_heuristic_point(seed):
    rng = np.random.default_rng(seed)
    model = random_model(rng, energy=seed % 3 == 2)
    exact = solve(model, "bisection_mckp")
    methods = [("bcd_admm", options) for options in BCD_VARIANTS]
    methods += [(name, {}) for name in BASELINES]
    methods += [("baseline_full_model", {"drop_memory_infeasible": True})]
    for method, options in methods:
        result = solve(model, method, seed=seed, **options)
        if exact.status is Status.INFEASIBLE:
            assert result.status is Status.INFEASIBLE, method
            continue
        if method == "bcd_admm":
            assert result.status is Status.FEASIBLE, (method, options)
        if result.status is Status.INFEASIBLE:
            assert result.infeasible_reason and result.message
            continue
        assert result.verified, (method, options, result.message)
        assert exact.objective <= result.objective * (1 + EXACT_TOLERANCE), (method, options)
        assert result.bound is None


def test_bcd_admm_with_noise_in_budget_and_downlink():
    model = load("a").with_changes(include_noise_in_budget=True, downlink_rate_bps=1e7)
    exact = solve(model, "bisection_mckp")
    result = solve(model, "bcd_admm")
    assert result.verified and result.objective >= exact.objective * (1 - 1e-10)
    assert result.trace["round_latency_s"].iloc[-1] == pytest.approx(result.objective)


def test_start_falls_back_when_every_device_misses_its_energy_minimum():
    """A' with an upload energy cap: both devices at n = 3 need about 5.1 MHz each for
    their energy budgets (> B together), d1 alone does not."""
    devices = [
        dict(d, energy_budget_j=0.1, capacitance=1e-40, cycles_per_flop=1.0)
        for d in load("a_prime").to_dict()["devices"]
    ]
    model = load("a_prime").with_changes(devices=devices)
    table = model.options
    assert table.energy_bandwidth_hz[:, 2].sum() > model.instance.bandwidth_hz
    exact = solve(model, "bisection_mckp")
    for options in BCD_VARIANTS:
        result = solve(model, "bcd_admm", **options)
        assert result.status is Status.FEASIBLE and result.verified
        assert result.objective >= exact.objective * (1 - 1e-10)
        assert result.trace["accepted"].iloc[0]


def test_a_loose_budget_selects_nobody():
    """eps0 > G^2 and K_min = 0: selecting nobody is optimal, T_round = T_dl = 8e6/1e7 s."""
    model = load("a").with_changes(bias_budget=1.5, min_selected=0, downlink_rate_bps=1e7)
    for method in ("bcd_admm", "baseline_random_selection", "baseline_channel_greedy"):
        result = solve(model, method)
        assert result.verified and result.objective == pytest.approx(0.8, rel=1e-12), method
        assert result.solution["selected"] == [False, False]
    assert solve(model, "bcd_admm").termination == Termination(Reason.FEASIBLE, detail="converged")


# ---- the trace, limits and seeds -----------------------------------------------------------


def accepted_latencies(result) -> np.ndarray:
    trace = result.trace
    return trace.loc[trace["accepted"], "round_latency_s"].to_numpy()


@pytest.mark.parametrize("options", BCD_VARIANTS)
def test_trace_latency_never_increases(options):
    model = TinyFELModel.preset("resnet18-cifar10-cell", devices=12, seed=4)
    result = solve(model, "bcd_admm", **options)
    assert result.verified
    trace = result.trace
    assert list(trace.columns) == TRACE_COLUMNS
    latency = accepted_latencies(result)
    assert (np.diff(latency) <= 0).all()
    assert latency[-1] == pytest.approx(result.objective, rel=1e-12)
    assert trace["block"].iloc[0] == "init" and trace["block"].iloc[-1] == result.termination.detail
    assert result.termination == Termination(Reason.FEASIBLE, detail="converged")
    selection = trace[trace["block"] == "a"]
    assert (selection["admm_iters"] >= 1).all() and (selection["admm_iters"] <= 1000).all()
    assert not ((selection["admm_residual"] > 1e-4) & (selection["admm_iters"] < 1000)).any()
    assert trace["elapsed_s"].is_monotonic_increasing
    ours = trace["block"].isin(["lagrange", "swap"])
    assert ours.any() == options.get("polish", True)


def test_iteration_cap_is_reported():
    model = TinyFELModel.preset("resnet18-cifar10-cell", devices=8, seed=2)
    result = solve(model, "bcd_admm", max_iterations=1)
    assert result.status is Status.ITERATION_LIMIT and result.verified
    assert result.termination == "limit/iterations"
    assert result.trace["block"].iloc[-1] == "iteration_limit"
    assert json.loads(result.to_json())["status"] == "feasible"


def test_time_limit_returns_the_start_point():
    model = TinyFELModel.preset("resnet18-cifar10-cell", devices=8, seed=2)
    result = solve(model, "bcd_admm", time_limit=1e-9)
    assert result.status is Status.TIME_LIMIT and result.verified
    assert list(result.trace["block"]) == ["init", "time_limit"]


def test_seeds_are_reproducible():
    model = TinyFELModel.preset("resnet18-cifar10-cell", devices=15, seed=1)
    picks = []
    for seed in (0, 0, 1, 2, 3):
        result = solve(model, "baseline_random_selection", seed=seed)
        picks.append(tuple(result.solution["selected"]))
    assert picks[0] == picks[1]
    assert len(set(picks[1:])) > 1
    first, again = solve(model, "bcd_admm"), solve(model, "bcd_admm")
    assert first.solution == again.solution


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("edgeopt.solvers.tinyfel.relaxation") is None,
    reason="relaxation_expcone not available",
)
def test_relaxation_start():
    model = load("a_prime")
    result = solve(model, "bcd_admm", init="relaxation")
    assert result.verified and result.trace["block"].iloc[0] == "init"
    assert result.objective >= solve(model, "bisection_mckp").objective * (1 - 1e-10)


# ---- the ADMM projections against scipy ----------------------------------------------------


def scipy_projection(v, gain, required, least, box):
    constraints = [
        {"type": "ineq", "fun": lambda x: gain @ x - required, "jac": lambda x: gain},
        {"type": "ineq", "fun": lambda x: x.sum() - least, "jac": lambda x: np.ones_like(x)},
    ]
    found = minimize(
        lambda x: 0.5 * np.sum((x - v) ** 2), np.clip(v, 0, 1), jac=lambda x: x - v,
        method="SLSQP", constraints=constraints, bounds=[(0, 1)] * len(v) if box else None,
        options={"ftol": 1e-14, "maxiter": 500},
    )
    assert found.success
    return found.x


@pytest.mark.parametrize("box", [False, True])
def test_projections_match_scipy(box):
    rng = np.random.default_rng(7)
    project = project_rows_box if box else project_rows
    for case in range(40):
        size = int(rng.integers(2, 9))
        v = rng.normal(0.3, 0.6, size)
        gain = rng.uniform(0.0, 0.3, size) if case % 4 else np.full(size, 0.1)  # parallel rows
        if case % 5 == 0:
            gain[0] = -0.05  # a device whose noise outweighs its coverage
        top = gain.clip(0).sum()
        required = float(rng.uniform(0.2, 0.9) * top)
        least = float(rng.integers(0, size + 1))
        x = project(v, gain, required, least)
        expected = scipy_projection(v, gain, required, least, box)
        np.testing.assert_allclose(x, expected, atol=2e-6)
        assert gain @ x >= required - 1e-9 and x.sum() >= least - 1e-9
        if box:
            assert (x >= 0).all() and (x <= 1).all()


@pytest.mark.parametrize("seed", range(3))
def test_best_move_is_the_best_single_or_pair_change(seed):
    """Against a loop over every pair of (device, option) changes at the optimum's latency."""
    model = TinyFELModel.preset("resnet18-cifar10-cell", devices=6, seed=seed)
    rows = budget_rows(model)
    result = solve(model, "baseline_uniform_ratio")
    layers = np.array(result.solution["updated_layers"])
    problem = fixed_latency(model, rows, result.objective)
    assert np.isfinite(problem.total(layers))
    K, columns = problem.cost.shape
    best, best_saving = None, SWAP_SAVING
    changes = [(k, o) for k in range(K) for o in range(columns) if o != layers[k]]
    for first in [None, *changes]:
        for second in [None, *changes]:
            if first and second and first[0] == second[0]:
                continue
            moved = layers.copy()
            for change in (first, second):
                if change:
                    moved[change[0]] = change[1]
            if not rows.holds(moved > 0, moved):
                continue
            saving = problem.total(layers) - problem.total(moved)
            if saving > best_saving:
                best, best_saving = moved, saving
    found = best_move(problem, rows, layers)
    assert best is not None  # uniform ratio is far from optimal: some move frees bandwidth
    assert problem.total(found) == pytest.approx(problem.total(best), rel=1e-12)


# ---- the equal-bandwidth knapsack against HiGHS -----------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_equal_bandwidth_check_matches_the_highs_knapsack(seed):
    """With the bandwidth row replaced by sum a = m, the sorting check and the HiGHS MCKP
    (options allowed iff they finish by T on B/m) agree on feasibility."""
    model = random_model(np.random.default_rng(100 + seed))
    rows = budget_rows(model)
    for count in range(1, model.n_devices + 1):
        finish = baselines.equal_share_finish(model, count)
        for latency in np.unique(finish[np.isfinite(finish)])[::2]:
            ours = baselines.best_choice_at(rows, finish, count, latency)
            allowed = np.where(finish <= latency, 0.0, np.inf)
            theirs = choose(model, allowed, count=(count, count))
            assert (ours is None) == (theirs is None), (count, latency)
            if ours is not None:
                assert (ours > 0).sum() == count and rows.holds(ours > 0, ours)


# ---- bad options ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "pattern"),
    [
        ({"max_iterations": 0}, "max_iterations = 0: must be an integer >= 1"),
        ({"max_iterations": 2.5}, "max_iterations = 2.5"),
        ({"max_iterations": True}, "max_iterations = True"),
        ({"init": "warm"}, "init = 'warm': must be one of 'all', 'relaxation'"),
        ({"admm": "exact"}, "admm = 'exact': must be one of 'lp_box', 'nonconvex'"),
        ({"polish": "yes"}, "polish = 'yes': must be True or False"),
    ],
)
def test_bad_bcd_options_are_named(options, pattern):
    with pytest.raises(ValueError, match=pattern):
        solve(load("a"), "bcd_admm", **options)


def test_bad_or_unknown_options_and_unsupported_instances():
    with pytest.raises(ValueError, match="drop_memory_infeasible = 'yes'"):
        solve(load("a"), "baseline_full_model", drop_memory_infeasible="yes")
    with pytest.raises(ValueError, match="unknown option.*allowed: admm, init, max_iterations"):
        solve(load("a"), "bcd_admm", iterations=3)
    with pytest.raises(ValueError, match="unknown option.*allowed: none"):
        solve(load("a"), "baseline_channel_greedy", drop_memory_infeasible=True)
    for method in ("bcd_admm",) + BASELINES:
        with pytest.raises(ValueError, match="P1"):
            solve(load("a").with_changes(objective="total_latency"), method)
        with pytest.raises(ValueError, match="normalised"):
            solve(load("a").with_changes(aggregation="normalised"), method)
