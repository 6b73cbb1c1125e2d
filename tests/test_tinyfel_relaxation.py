"""TinyFEL exponential-cone relaxation (spec §5.4): bound <= exact <= rounded point on the known
answers and on random instances, for every backend; the certified bound against an independent
LP relaxation (scipy, bandwidths by Brent's method), and the dual function against weak
duality."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import random_tinyfel_layers
from scipy.optimize import brentq, linprog

from edgeopt.models.tinyfel import TinyFELModel
from edgeopt.solvers import Status, solve
from edgeopt.solvers.tinyfel.relaxation import (
    Options,
    dual_bound,
    solve_relaxation_expcone,
    tangent_row,
)

DATA = Path(__file__).parent / "data"
BACKENDS = ("clarabel", "ecos", "scs")
TIGHT = {"clarabel": 1e-6, "ecos": 1e-3, "scs": 1e-3}
"""How close to the LP threshold each backend's certified bound must get (relative): ECOS
ends 'optimal_inaccurate' on these cones and SCS is first-order, so their multipliers
certify less (a weaker, still valid bound)."""


def load(name: str, **changes) -> TinyFELModel:
    model = TinyFELModel.from_file(DATA / f"tinyfel_{name}.json")
    return model.with_changes(**changes) if changes else model


def random_model(rng: np.random.Generator, energy: bool = False) -> TinyFELModel:
    """3-5 devices, 2-3 layers at the scale of instance A; the last device far away (its
    options rate-capped), optional energy budgets, sometimes noise in the budget."""
    K, L = int(rng.integers(3, 6)), int(rng.integers(2, 4))
    layers = random_tinyfel_layers(rng, L)
    devices = []
    for k in range(K):
        device = {"name": f"d{k + 1}", "flops_per_s": float(rng.uniform(5e9, 3e10)),
                  "memory_bytes": float(rng.uniform(3e6, 1e7)),
                  "samples": int(rng.integers(10, 100)), "power_w": 0.1,
                  "channel_gain": 10**-14.5 if k == K - 1 else float(10 ** rng.uniform(-13, -11.5))}
        if energy and k < K - 1:
            device.update(energy_budget_j=float(rng.uniform(0.5, 4.0)), capacitance=2e-31,
                          cycles_per_flop=1.0)
        devices.append(device)
    grad_total = sum(layer["grad_sq_bound"] for layer in layers)
    return TinyFELModel.from_dict({
        "model": "tinyfel", "version": 1, "layers": layers, "devices": devices,
        "bandwidth_hz": float(rng.uniform(2e6, 2e7)), "noise_psd_w_per_hz": 1e-20,
        "batch_size": 1, "local_steps": 1, "optimizer_state_factor": 1,
        "bias_budget": float(rng.uniform(0.3, 0.8)) * grad_total,
        "min_selected": int(rng.integers(0, 3)), "objective": "round_latency",
        "include_noise_in_budget": bool(rng.random() < 0.3),
        "learning": {"learning_rate": 0.1, "smoothness": 1.0, "grad_variance": 1.0,
                     "initial_gap": 10.0, "target_stationarity": 1.0},
    })


def assert_sandwich(result, exact: float) -> None:
    """A verified relaxation result with bound <= exact <= its rounded point."""
    assert result.status is Status.FEASIBLE, result.message
    assert result.verified is True
    assert result.bound <= exact * (1 + 1e-12)
    assert exact <= result.objective * (1 + 1e-9)


# ---- an independent LP relaxation ---------------------------------------------------------


def least_bandwidth(rate_bps: float, snr_hz: float) -> float:
    """The least b [Hz] with b log2(1 + S/b) >= rate, by Brent's method (+inf at the cap)."""
    if rate_bps <= 0:
        return 0.0
    if rate_bps * math.log(2) >= snr_hz:
        return math.inf
    def rate(b: float) -> float:
        return b * math.log2(1 + snr_hz / b) - rate_bps
    high = rate_bps
    while rate(high) < 0:
        high *= 2
    return brentq(rate, high * 1e-12, high, xtol=1e-300, rtol=1e-15)


def option_costs(model: TinyFELModel, latency_s: float) -> np.ndarray:
    """b-hat / B of every (device, n) at T, from the raw instance (inf where unusable)."""
    inst, table = model.instance, model.options
    cost = np.full((model.n_devices, model.n_layers), np.inf)
    for k, device in enumerate(inst.devices):
        snr = device.power_w * device.channel_gain / inst.noise_psd_w_per_hz
        for n in range(1, model.n_layers + 1):
            if not table.available[k, n - 1]:
                continue
            slack = latency_s - table.compute_s[k, n - 1]
            if slack <= 0:
                continue
            bits = table.upload_bits[n - 1]
            band = least_bandwidth(bits / slack, snr)
            if device.energy_budget_j is not None:
                left = device.energy_budget_j - table.compute_energy_j[k, n - 1]
                band = max(band, least_bandwidth(device.power_w * bits / left, snr))
            cost[k, n - 1] = band / inst.bandwidth_hz
    return cost


def lp_value(model: TinyFELModel, latency_s: float) -> float:
    """min sum_i cost_i y_i over the LP relaxation of the knapsack at T (linear budget row)."""
    inst, table = model.instance, model.options
    cost = option_costs(model, latency_s)
    device, column = np.nonzero(np.isfinite(cost))
    grad_total = table.grad_sq.sum()
    gain = table.weights[device] * table.ratio[column]
    required = 1 - inst.bias_budget / grad_total
    if inst.include_noise_in_budget:
        gain = gain - table.noise_coeff[device] / grad_total
        required += table.noise_const / grad_total
    rows = [-gain, -np.ones(device.size)]
    limits = [-required, -inst.min_selected]
    rows += [(device == k).astype(float) for k in range(model.n_devices)]
    limits += [1.0] * model.n_devices
    if device.size == 0:
        return 0.0 if required <= 0 and inst.min_selected == 0 else math.inf
    result = linprog(cost[device, column], A_ub=np.array(rows), b_ub=limits, bounds=(0, 1),
                     method="highs")
    return result.fun if result.status == 0 else math.inf


def lp_threshold(model: TinyFELModel, upper: float) -> float:
    """The least T [s] at which the LP relaxation fits in B, bisected to 1e-9 relative."""
    lower = 0.0
    while lp_value(model, upper) > 1:
        lower, upper = upper, 2 * upper
    while upper - lower > 1e-9 * upper:
        middle = 0.5 * (lower + upper)
        lower, upper = (lower, middle) if lp_value(model, middle) <= 1 else (middle, upper)
    return upper


# ---- known answers (spec §6) ---------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("name", "exact", "layers"),
    [("a", 1.47641658378, [2, 2]), ("a_prime", 1.37062894379, [1, 3]), ("b", 1.8, [3, 0])],
)
def test_known_answers(name, exact, layers, backend):
    result = solve(load(name), "relaxation_expcone", solver=backend)
    assert_sandwich(result, exact)
    assert result.solver == backend
    assert result.solution["updated_layers"] == layers  # rounding finds the optimum here
    threshold = lp_threshold(load(name), exact)
    assert result.bound <= threshold * (1 + 1e-9)
    assert result.bound >= threshold * (1 - TIGHT[backend])


def test_instance_c_is_infeasible():
    result = solve_relaxation_expcone(load("c"))
    assert result.status is Status.INFEASIBLE and result.infeasible_reason == "bias_budget"


# ---- random instances ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_bound_exact_rounded_on_random_instances(seed):
    model = random_model(np.random.default_rng(500 + seed), energy=seed % 2 == 1)
    exact = solve(model, "bisection_mckp")
    result = solve(model, "relaxation_expcone")
    if exact.status is Status.INFEASIBLE:
        assert result.status is Status.INFEASIBLE
        return
    assert_sandwich(result, exact.objective)
    t_dl = model.options.downlink_s
    threshold = lp_threshold(model, exact.objective - t_dl) + t_dl
    assert threshold * (1 - 1e-6) <= result.bound <= threshold * (1 + 1e-9)


@pytest.mark.parametrize(("backend", "seed"), [("ecos", 0), ("ecos", 1), ("scs", 0)])
def test_other_backends_give_valid_bounds(backend, seed):
    model = random_model(np.random.default_rng(600 + seed))
    exact = solve(model, "bisection_mckp")
    result = solve(model, "relaxation_expcone", solver=backend)
    if exact.status is Status.INFEASIBLE:
        assert result.status is Status.INFEASIBLE
        return
    assert_sandwich(result, exact.objective)
    clarabel = solve(model, "relaxation_expcone")
    assert result.bound == pytest.approx(clarabel.bound, rel=TIGHT[backend])


@pytest.mark.parametrize("seed", range(4))
def test_quadratic_bias_form(seed):
    model = random_model(np.random.default_rng(700 + seed)).with_changes(bias_form="quadratic")
    exact = solve(model, "brute_force")
    result = solve(model, "relaxation_expcone")
    if exact.status is Status.INFEASIBLE:
        assert result.status is Status.INFEASIBLE
        return
    assert_sandwich(result, exact.objective)


# ---- validity of the certificate -----------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_dual_function_is_below_the_lp_value(seed):
    """Weak duality: g(lam, mu) <= the LP relaxation's least bandwidth, for any lam, mu >= 0."""
    rng = np.random.default_rng(800 + seed)
    model = random_model(rng)
    options = Options.of(model)
    exact = solve(model, "bisection_mckp")
    if exact.status is Status.INFEASIBLE:
        pytest.skip("infeasible instance")
    for factor in (0.7, 1.0, 1.5):
        T = factor * (exact.objective - model.options.downlink_s)
        value = lp_value(model, T)
        gain, required = tangent_row(model, options, np.zeros(options.device.size))
        for lam, mu in rng.uniform(0, 5, size=(5, 2)):
            bound = dual_bound(options, options.cost(model, T), gain, required, lam, mu,
                               model.instance.min_selected)
            assert bound <= value * (1 + 1e-9) + 1e-12


def test_time_limit_keeps_a_valid_bound_and_a_point():
    model = load("a")
    result = solve(model, "relaxation_expcone", time_limit=1e-9)
    assert result.status is Status.TIME_LIMIT and result.verified is True
    assert result.bound <= 1.47641658378 <= result.objective * (1 + 1e-9)
    assert result.termination == "limit/time"


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [({"objective": "total_latency"}, "P1"), ({"aggregation": "normalised"}, "normalised")],
)
def test_refusals_name_the_reason(changes, pattern):
    with pytest.raises(ValueError, match=pattern):
        solve(load("a", **changes), "relaxation_expcone")
