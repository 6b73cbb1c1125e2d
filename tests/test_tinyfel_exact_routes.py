"""TinyFEL exact routes (spec §5.2, §5.3, §5.7): the staircase walk for P2, brute force and the
perspective MINLP (SCIP) against the known answers of spec §6 and against each other on
random instances (rate-capped options, energy rows, both bias forms, normalised aggregation),
plus honest time limits and refusals."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import random_tinyfel_layers
from scipy.optimize import brentq

from edgeopt.models.tinyfel import TinyFELModel
from edgeopt.solvers import Status, solve
from edgeopt.solvers.tinyfel.brute_force import MAX_COMBINATIONS, solve_brute_force
from edgeopt.solvers.tinyfel.minlp import solve_minlp_perspective
from edgeopt.solvers.tinyfel.pareto import solve_pareto_sweep

DATA = Path(__file__).parent / "data"
AGREE = 1e-6
"""Relative agreement of two exact methods (spec §5.7)."""


def load(name: str, **changes) -> TinyFELModel:
    """tests/data/tinyfel_<name>.json: a, a_prime, b, c (spec §6), with field changes."""
    model = TinyFELModel.from_file(DATA / f"tinyfel_{name}.json")
    return model.with_changes(**changes) if changes else model


def p2(name: str) -> TinyFELModel:
    return load(name, objective="total_latency")


def assert_exact(result, objective: float, rel: float = 1e-9) -> None:
    """An optimal, verified result with that objective and a bound within 1e-6 below it."""
    assert result.status is Status.OPTIMAL, result.message
    assert result.verified is True
    assert result.objective == pytest.approx(objective, rel=rel)
    assert result.bound <= result.objective
    assert result.gap <= 1e-6


def assert_agrees(result, reference, rel: float, bound_rtol: float = 1e-9) -> bool:
    """``result`` is infeasible exactly when ``reference`` is; otherwise it is optimal with
    the reference's objective (``rel``) and a bound not above it. True when there was an
    optimum to compare."""
    if reference.status is Status.INFEASIBLE:
        assert result.status is Status.INFEASIBLE
        return False
    assert_exact(result, reference.objective, rel=rel)
    assert result.bound <= reference.objective * (1 + bound_rtol)
    return True


def random_model(
    rng: np.random.Generator,
    *,
    energy: bool = False,
    total_latency: bool = False,
    devices: tuple[int, int] = (2, 5),
    layers: tuple[int, int] = (2, 4),
) -> TinyFELModel:
    """A random instance at the scale of instance A: K, L drawn from the given ranges, the
    last device far from the access point with room for every option (so its options are
    rate-capped unless the optimum is slower than ~20 s), optional
    energy budgets, P1 or P2 (reachable target), sometimes noise in the budget, a downlink
    term and drift."""
    K, L = int(rng.integers(*devices, endpoint=True)), int(rng.integers(*layers, endpoint=True))
    layer_list = random_tinyfel_layers(rng, L)
    grad_total = sum(layer["grad_sq_bound"] for layer in layer_list)
    device_list = []
    for k in range(K):
        gain = -14.5 if k == K - 1 else rng.uniform(-13.0, -11.5)
        device = {
            "name": f"d{k + 1}",
            "flops_per_s": float(rng.uniform(5e9, 3e10)),
            "memory_bytes": 1e7 if k == K - 1 else float(rng.uniform(3e6, 1e7)),
            "samples": int(rng.integers(10, 100)),
            "power_w": 0.1,
            "channel_gain": float(10**gain),
        }
        if energy and k < K - 1:  # the far device could not afford any upload
            device.update(energy_budget_j=float(rng.uniform(0.5, 4.0)), capacitance=2e-31,
                          cycles_per_flop=1.0)
        device_list.append(device)
    document = {
        "model": "tinyfel",
        "version": 1,
        "layers": layer_list,
        "devices": device_list,
        "bandwidth_hz": float(rng.uniform(2e6, 2e7)),
        "noise_psd_w_per_hz": 1e-20,
        "batch_size": 1,
        "local_steps": 1,
        "optimizer_state_factor": 1,
        "bias_budget": float(rng.uniform(0.3, 0.8)) * grad_total,
        "min_selected": int(rng.integers(0, 2, endpoint=True)),
        "objective": "total_latency" if total_latency else "round_latency",
        "include_noise_in_budget": bool(rng.random() < 0.3),
        "learning": {"learning_rate": 0.1, "smoothness": 1.0, "grad_variance": 1.0,
                     "initial_gap": 10.0,
                     "target_stationarity": float(rng.uniform(0.6, 1.2)) * grad_total,
                     "drift_coeff": float(rng.choice([0.0, 0.5]))},
    }
    if rng.random() < 0.4:
        document["downlink_rate_bps"] = float(rng.uniform(1e7, 1e8))
    return TinyFELModel.from_dict(document)


# ---- P2: staircase walk (spec §5.2, §6) ----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "total", "rounds", "layers"),
    [
        ("a", 494.212792114, 268, [3, 2]),
        ("a_prime", 395.261879501, 211, [3, 3]),
        ("b", 639.0, 355, [3, 0]),
        ("c", 494.212792114, 268, [3, 2]),  # P2 ignores the bias budget
    ],
)
@pytest.mark.parametrize("method", ["pareto_sweep", "brute_force"])
def test_p2_known_answers(name, total, rounds, layers, method):
    result = solve(p2(name), method)
    assert_exact(result, total, rel=1e-10)
    assert result.solution["rounds"] == rounds
    assert result.solution["updated_layers"] == layers
    assert result.objective == pytest.approx(rounds * result.solution["round_latency_s"],
                                             rel=1e-14)


def test_instance_a_staircase_has_the_nine_pareto_points():
    result = solve(p2("a"), "pareto_sweep", full_staircase=True)
    totals = [494.21, 580.98, 639.0, 659.96, 873.12, 882.64, 1141.35, 2381.0, 2343.75]
    assert result.trace["total_latency_s"].tolist() == pytest.approx(totals, abs=0.005)
    assert result.trace["bias_noise"].is_monotonic_increasing
    assert result.trace["round_latency_s"].is_monotonic_decreasing
    last = result.trace.iloc[-1]  # configuration (0, 1): exactly 3125 rounds (ceiling test)
    assert last["rounds"] == 3125 and last["round_latency_s"] == pytest.approx(0.75, rel=1e-12)
    model = p2("a")
    assert model.learning_terms([False, True], [0, 1]).rounds == 3125
    assert result.objective == pytest.approx(494.212792114, rel=1e-10)


def test_pruned_walk_stops_early_with_the_same_optimum():
    full = solve(p2("a"), "pareto_sweep", full_staircase=True)
    pruned = solve(p2("a"), "pareto_sweep")
    assert len(pruned.trace) < len(full.trace)
    assert pruned.objective == pytest.approx(full.objective, rel=1e-12)
    assert pruned.bound == pytest.approx(full.bound, rel=1e-9)


@pytest.mark.parametrize("seed", range(8))
def test_pareto_sweep_equals_brute_force(seed):
    model = random_model(np.random.default_rng(100 + seed), total_latency=True,
                         energy=seed % 4 == 3)
    exact = solve(model, "brute_force")
    result = solve(model, "pareto_sweep")
    assert_agrees(result, exact, rel=AGREE, bound_rtol=1e-12)


# ---- brute force -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "latency", "layers"),
    [("a", 1.47641658378, [2, 2]), ("a_prime", 1.37062894379, [1, 3]), ("b", 1.8, [3, 0])],
)
def test_brute_force_p1_known_answers(name, latency, layers):
    result = solve(load(name), "brute_force")
    assert_exact(result, latency, rel=1e-10)
    assert result.bound == result.objective
    assert result.solution["updated_layers"] == layers
    assert result.extras["combinations"] == math.prod(
        1 + int(row.sum()) for row in load(name).options.available)


@pytest.mark.parametrize("seed", range(6))
def test_brute_force_equals_bisection_mckp(seed):
    model = random_model(np.random.default_rng(200 + seed), energy=seed % 2 == 1)
    exact = solve(model, "bisection_mckp")
    result = solve(model, "brute_force")
    assert_agrees(result, exact, rel=1e-8)


def test_brute_force_cap_is_named():
    big = TinyFELModel.preset("resnet18-cifar10-cell", devices=8, seed=1)
    with pytest.raises(ValueError, match="max_combinations"):
        solve(big, "brute_force")
    with pytest.raises(ValueError, match="max_combinations = 10"):
        solve_brute_force(load("a"), max_combinations=10)
    assert MAX_COMBINATIONS >= 10_000


# ---- P1: perspective MINLP with SCIP (spec §5.3) ----------------------------------------------


@pytest.mark.parametrize(
    ("name", "latency", "layers"),
    [("a", 1.47641658378, [2, 2]), ("a_prime", 1.37062894379, [1, 3]), ("b", 1.8, [3, 0])],
)
def test_minlp_known_answers(name, latency, layers):
    result = solve(load(name), "minlp_perspective")
    assert_exact(result, latency, rel=1e-10)  # the point is polished exactly
    assert result.solution["updated_layers"] == layers
    assert result.solver == "scip"


@pytest.mark.parametrize("method", ["minlp_perspective", "brute_force"])
def test_instance_c_is_infeasible(method):
    result = solve(load("c"), method)
    assert result.status is Status.INFEASIBLE
    assert result.infeasible_reason == "bias_budget"
    result = solve_minlp_perspective(load("c"))
    assert result.status is Status.INFEASIBLE and result.objective is None


@pytest.mark.parametrize("seed", range(6))
def test_minlp_equals_bisection_mckp(seed):
    """Random instances with a rate-capped option at the optimum; energy rows on odd seeds."""
    model = random_model(np.random.default_rng(300 + seed), energy=seed % 2 == 1,
                         devices=(3, 5), layers=(2, 3))
    exact = solve(model, "bisection_mckp")
    result = solve(model, "minlp_perspective")
    if not assert_agrees(result, exact, rel=AGREE):
        return
    table = model.options
    optimum = exact.objective - table.downlink_s
    assert (table.available & (table.latency_floor_s >= optimum)).any()  # rate-capped


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("changes", [{"bias_form": "quadratic"}, {"aggregation": "normalised"}])
def test_minlp_non_linear_bias_equals_brute_force(seed, changes):
    model = random_model(np.random.default_rng(400 + seed), devices=(2, 4), layers=(2, 3))
    model = model.with_changes(**changes)
    exact = solve(model, "brute_force")
    result = solve(model, "minlp_perspective")
    assert_agrees(result, exact, rel=AGREE)


@pytest.mark.parametrize("changes", [{"bias_form": "quadratic", "bias_budget": 0.55},
                                     {"aggregation": "normalised", "bias_budget": 0.9}])
def test_non_linear_bias_on_instance_a(changes):
    model = load("a", **changes)
    exact = solve(model, "brute_force")
    assert_exact(solve(model, "minlp_perspective"), exact.objective, rel=AGREE)
    with pytest.raises(ValueError, match="does not apply"):
        solve(model, "bisection_mckp")


def test_optimum_on_an_energy_row():
    """Instance A with d1's energy budget 0.215 J: d1 gets exactly its energy minimum and
    finishes early, d2 takes the rest of the band. T* follows in closed form from the energy
    equation (Brent's method here), and every exact point passes the evaluator's energy row,
    which has no tolerance."""
    document = load("a").to_dict()
    document["devices"][0].update(energy_budget_j=0.215, capacitance=2e-31, cycles_per_flop=1.0)
    model = TinyFELModel.from_dict(document)
    compute_energy = 2e-31 * 7e9 * 1e10**2  # kappa_e c FLOP_2 (c f)^2 [J]
    rate = 0.1 * 7e6 / (0.215 - compute_energy)  # P Q / r = E_max - E_cmp [bit/s]
    band = brentq(lambda b: b * math.log2(1 + 1e7 / b) - rate, 1e3, 1e7)
    rest = 1e7 - band
    optimum = 0.35 + 7e6 / (rest * math.log2(1 + 1e7 / rest))  # d2 at n = 2 on the rest
    for method in ("bisection_mckp", "brute_force", "minlp_perspective"):
        result = solve(model, method)
        assert_exact(result, optimum, rel=1e-8)
        assert result.solution["updated_layers"] == [2, 2]
        assert result.solution["bandwidth_hz"][0] == pytest.approx(band, rel=1e-8)
        assert result.evaluation.violations["energy"] == 0.0
        assert result.breakdown["finish_s"][0] < result.objective * (1 - 1e-3)


# ---- time limits and refusals ----------------------------------------------------------------


def test_minlp_time_limit_keeps_a_feasible_point_and_a_valid_bound():
    model = random_model(np.random.default_rng(7), devices=(4, 4), layers=(3, 3))
    exact = solve(model, "bisection_mckp")
    result = solve(model, "minlp_perspective", time_limit=1e-6)
    assert result.status in (Status.TIME_LIMIT, Status.OPTIMAL)
    assert result.verified is True
    assert result.bound <= exact.objective * (1 + 1e-9) <= result.objective * (1 + 1e-9)
    if result.status is Status.TIME_LIMIT:
        assert result.termination == "limit/time"


def test_pareto_time_limit_keeps_a_feasible_point_and_a_valid_bound():
    result = solve(p2("a"), "pareto_sweep", time_limit=1e-9)
    assert result.status is Status.TIME_LIMIT and result.verified is True
    assert result.bound <= 494.212792114 <= result.objective * (1 + 1e-12)


def test_brute_force_time_limit_has_no_bound():
    result = solve_brute_force(load("a"), time_limit=1e-12)
    assert result.status is Status.TIME_LIMIT and result.bound is None


@pytest.mark.parametrize(
    ("method", "model", "pattern"),
    [
        ("pareto_sweep", load("a"), "P2"),
        ("pareto_sweep", p2("a").with_changes(bias_form="quadratic"), "quadratic"),
        ("pareto_sweep", p2("a").with_changes(aggregation="normalised"), "normalised"),
        ("minlp_perspective", p2("a"), "P1"),
    ],
)
def test_refusals_name_the_reason(method, model, pattern):
    with pytest.raises(ValueError, match=pattern):
        solve(model, method)


def test_direct_calls_report_infeasibility():
    model = p2("a").with_changes(learning={"learning_rate": 0.1, "smoothness": 1.0,
                                           "grad_variance": 1.0, "initial_gap": 10.0,
                                           "target_stationarity": 0.2})
    result = solve_pareto_sweep(model)
    assert result.status is Status.INFEASIBLE
    assert result.infeasible_reason == "target_unreachable"
    assert solve_brute_force(model).infeasible_reason == "target_unreachable"


@pytest.mark.parametrize(
    ("method", "model", "options", "pattern"),
    [
        ("pareto_sweep", p2("a"), {"full_staircase": 1}, "full_staircase = 1: must be True"),
        ("brute_force", load("a"), {"max_combinations": 0}, "max_combinations = 0: must be an"),
        ("brute_force", load("a"), {"max_combinations": 2.5}, "must be an integer >= 1"),
        ("minlp_perspective", load("a"), {"mip_gap": 1.5}, r"mip_gap = 1.5: must be .* \[0, 1\)"),
    ],
)
def test_bad_options_are_named(method, model, options, pattern):
    with pytest.raises(ValueError, match=pattern):
        solve(model, method, **options)
