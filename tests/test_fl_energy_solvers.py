"""The fl_energy methods: exact routes agree with each other and with a 1-D reference,
bound <= exact <= heuristic <= baseline, every point passes the evaluator, infeasible
instances name their cause, time limits return an incumbent and a bound."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from edgeopt.models import load_instance
from edgeopt.models.fl_energy import FLEnergyModel
from edgeopt.solvers import Status, select, solve
from edgeopt.solvers.fl_energy.pricing import at_price, device_slope

FLEETS = [(2, 0), (5, 1), (12, 2), (25, 3)]
"""(devices, seed) of the random fleets."""


def random_fleet(devices: int, seed: int) -> FLEnergyModel:
    """A preset fleet with a tighter band and deadline drawn from the seed (so the budget
    and the frequency caps bind differently from fleet to fleet)."""
    rng = np.random.default_rng(100 + seed)
    base = FLEnergyModel.preset("default", devices=devices, seed=seed)
    floor = float(base.with_changes(bandwidth_hz=1e12).min_bandwidth_hz.sum())
    return base.with_changes(deadline_s=float(rng.uniform(0.4, 0.6)),
                             bandwidth_hz=float(floor * rng.uniform(1.3, 3.0)))


@pytest.fixture(params=FLEETS, ids=[f"K{k}-s{s}" for k, s in FLEETS])
def model(request) -> FLEnergyModel:
    return random_fleet(*request.param)


def test_exact_routes_agree(model):
    assert model.infeasibility() is None
    priced = solve(model, "dual_decomposition")
    answers = [priced] + [solve(model, "convex_program", backend) for backend in ("clarabel", "ecos")]
    for result in answers:
        assert result.status is Status.OPTIMAL and result.verified, result
        assert result.gap <= 1e-6
    optimum = priced.objective
    for result in answers[1:]:
        assert result.objective == pytest.approx(optimum, rel=1e-6)
        assert result.bound <= optimum * (1 + 1e-9)


def test_bound_exact_heuristic_baseline_order(model):
    exact = solve(model, "exact")
    relaxed = solve(model, "relaxation")
    heuristic = solve(model, "heuristic")
    baseline = solve(model, "max_frequency")
    for result in (exact, relaxed, heuristic, baseline):
        assert result.verified and result.evaluation.feasible, result
    tolerance = 1 + 1e-9
    assert relaxed.bound <= exact.objective * tolerance
    assert exact.objective <= relaxed.objective * tolerance
    assert exact.objective <= heuristic.objective * tolerance <= baseline.objective * tolerance ** 2


def test_two_devices_match_a_one_dimensional_reference():
    """With two devices the budget is spent (energy falls with bandwidth), so the optimum is
    min over b_1 of E_1(b_1) + E_2(B - b_1), each device at its cheapest frequency: a scalar
    convex problem solved here with the evaluator and plain formulas only."""
    model = random_fleet(2, 7)
    inst = model.instance

    def cheapest(device, bandwidth):
        iterations = inst.local_iterations if device.local_iterations is None else device.local_iterations
        cycles = iterations * device.cycles_per_sample * device.samples
        rate = bandwidth * math.log2(1 + device.channel_gain * device.power_w / (inst.noise_psd_w_per_hz * bandwidth))
        return cycles / (inst.deadline_s - device.upload_bits / rate)

    def total(b1):
        bandwidth = [b1, inst.bandwidth_hz - b1]
        frequency = [min(cheapest(d, b), d.max_frequency_hz) for d, b in zip(inst.devices, bandwidth)]
        evaluation = model.evaluate({"frequency_hz": frequency, "bandwidth_hz": bandwidth})
        return evaluation.objective if evaluation.feasible else 1e9

    low, high = model.min_bandwidth_hz[0], inst.bandwidth_hz - model.min_bandwidth_hz[1]
    reference = minimize_scalar(total, bounds=(low, high), method="bounded", options={"xatol": 1e-6})
    result = solve(model, "exact")
    assert result.objective == pytest.approx(reference.fun, rel=1e-9)
    assert result.bound <= reference.fun * (1 + 1e-12)
    assert result.solution["bandwidth_hz"][0] == pytest.approx(reference.x, rel=1e-4)


def test_optimum_equalises_the_marginal_energy_of_bandwidth(model):
    """KKT: every device above its minimum bandwidth has -dE_k/db equal to the price."""
    result = solve(model, "dual_decomposition")
    bandwidth = np.array(result.solution["bandwidth_hz"])
    free = bandwidth > model.min_bandwidth_hz * (1 + 1e-6)
    marginal = -device_slope(model.fleet, bandwidth)[free]
    assert free.any() and marginal == pytest.approx(np.full(free.sum(), marginal.mean()), rel=1e-4)
    assert sum(bandwidth) == pytest.approx(model.instance.bandwidth_hz, rel=1e-12)


def test_the_dual_function_is_a_lower_bound_at_every_price():
    model = random_fleet(8, 4)
    optimum = solve(model, "exact").objective
    for price in np.geomspace(1e-12, 1e-4, 25):
        assert at_price(model, float(price)).dual <= optimum * (1 + 1e-12)


def test_one_device_takes_the_whole_band():
    model = FLEnergyModel.preset("default", devices=1, seed=3)
    for method in ("dual_decomposition", "convex_program", "equal_bandwidth"):
        result = solve(model, method)
        assert result.verified and result.solution["bandwidth_hz"][0] == pytest.approx(1e6, rel=1e-9)
    assert solve(model, "exact").status is Status.OPTIMAL


def test_gap_option_and_trace():
    model = random_fleet(12, 2)
    loose = solve(model, "dual_decomposition", gap=1e-3)
    tight = solve(model, "dual_decomposition")
    assert loose.gap <= 1e-3 and tight.gap <= 1e-9
    assert len(loose.trace) < len(tight.trace) and loose.options == {"gap": 1e-3}
    assert tight.trace["best_bound_j"].is_monotonic_increasing
    assert tight.trace["best_energy_j"].is_monotonic_decreasing
    with pytest.raises(ValueError, match="unknown option"):
        solve(model, "dual_decomposition", tolerance=1e-3)
    with pytest.raises(ValueError, match="gap = 2"):
        solve(model, "dual_decomposition", gap=2)


def test_defaults_and_backends():
    model = random_fleet(5, 1)
    assert select(model, "exact")[0].method == "dual_decomposition"
    assert select(model, "exact", "ecos") == (select(model, "convex_program")[0], "ecos")
    assert select(model, "convex_program")[1] == "clarabel"
    assert select(model, "relaxation")[0].method == "lagrangian_bound"
    assert select(model, "heuristic")[0].method == "equal_bandwidth"
    with pytest.raises(ValueError, match="pure Python"):
        select(model, "dual_decomposition", "clarabel")
    with pytest.raises(ValueError, match="name a method: max_frequency"):
        select(model, "baseline")


@pytest.mark.parametrize("method", ["dual_decomposition", "convex_program", "lagrangian_bound"])
def test_a_time_limit_returns_an_incumbent_and_a_bound(method):
    model = random_fleet(25, 3)
    optimum = solve(model, "dual_decomposition").objective
    result = solve(model, method, time_limit=1e-9)
    assert result.status is Status.TIME_LIMIT and result.termination == "limit/time"
    assert result.verified and result.evaluation.feasible
    assert result.bound <= optimum * (1 + 1e-9) <= result.objective * (1 + 1e-9)
    assert result.options == {"time_limit": 1e-9}


def test_infeasible_instances_report_the_device_or_the_budget():
    model = random_fleet(5, 1)
    late = model.with_changes({"devices[3].samples": 100_000})
    result = solve(late, "exact")
    assert result.status is Status.INFEASIBLE and result.infeasible_reason == "deadline"
    details = result.extras["infeasible_details"]
    assert details["device"] == "ue-3" and details["missing_s"] > 0
    assert f"device 'ue-3' misses the deadline T = {model.instance.deadline_s:.6g} s by" in result.message
    assert result.solution == {"frequency_hz": [], "bandwidth_hz": [], "per_device_energy_j": [],
                               "per_device_time_s": []}
    short = model.with_changes(bandwidth_hz=float(model.min_bandwidth_hz.sum()) * 0.99)
    for method in ("dual_decomposition", "convex_program", "equal_bandwidth"):
        result = solve(short, method)
        assert result.status is Status.INFEASIBLE and result.infeasible_reason == "bandwidth"
        assert "bandwidth budget" in result.message


def _cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeopt.analysis.cli", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


def test_command_line_preset_and_solve(tmp_path):
    written = _cli("preset", "fl_energy", "default", "--devices", "4", "--seed", "2", cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    path = tmp_path / "fl.json"
    path.write_text(written.stdout)
    assert load_instance(path).to_dict() == FLEnergyModel.preset("default", devices=4, seed=2).to_dict()
    solved = _cli("solve", str(path), "--json", cwd=tmp_path)
    assert solved.returncode == 0, solved.stderr
    document = json.loads(solved.stdout)
    assert document["model"] == "fl_energy" and document["status"] == "optimal" and document["verified"]
    assert list(document)[4:8] == ["frequency_hz", "bandwidth_hz", "per_device_energy_j", "per_device_time_s"]
    assert document["objective"] == pytest.approx(solve(load_instance(path), "exact").objective, rel=1e-12)
    table = _cli("solve", str(path), "--method", "heuristic", cwd=tmp_path)
    assert table.returncode == 0 and "equal_bandwidth" in table.stdout and "ue-3" in table.stdout
