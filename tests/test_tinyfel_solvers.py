"""TinyFEL solvers: the known answers of spec §6 and a brute-force cross-check (spec §5.7)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import random_tinyfel_layers
from scipy.optimize import brentq

from edgeopt.models.tinyfel import TinyFELModel, radio
from edgeopt.solvers import solve
from edgeopt.solvers.tinyfel.bisection_mckp import solve_bisection_mckp

DATA = Path(__file__).parent / "data"


def load(name: str) -> TinyFELModel:
    """tests/data/tinyfel_<name>.json: a, a_prime, b, c (spec §6)."""
    return TinyFELModel.from_file(DATA / f"tinyfel_{name}.json")


# ---- known answers (spec §6) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "latency", "layers", "bandwidth"),
    [
        ("a", 1.47641658378, [2, 2], [7_128_884.2755, 2_871_115.7245]),
        ("a_prime", 1.37062894379, [1, 3], [2_447_480.2330, 7_552_519.7670]),
        ("b", 1.8, [3, 0], [1e7, 0.0]),
    ],
)
def test_bisection_mckp_known_answers(name, latency, layers, bandwidth):
    result = solve(load(name), "bisection_mckp")
    assert result.status.value == "optimal"
    assert result.verified is True
    assert result.objective == pytest.approx(latency, rel=1e-10)
    assert result.bound <= result.objective
    assert result.gap <= 1e-9
    assert result.solution["updated_layers"] == layers
    assert result.solution["selected"] == [n > 0 for n in layers]
    np.testing.assert_allclose(result.solution["bandwidth_hz"], bandwidth, rtol=1e-10, atol=1e-6)
    assert sum(result.solution["bandwidth_hz"]) <= 1e7
    assert result.solver == "highs"


def test_instance_a_solution_document():
    document = solve(load("a"), "exact").to_dict()
    assert document["method"] == "bisection_mckp"
    assert document["rounds"] == 447
    assert document["peak_memory_bytes"] == [3_125_000, 3_125_000]
    assert document["round_latency_s"] == pytest.approx(1.47641658378, rel=1e-10)
    assert document["bias"] == pytest.approx(0.5)


def test_rate_capped_options_are_dropped():
    """Instance B: at T* = 1.8 s d2's options n = 1, 2 exceed its rate cap (b-hat = inf)."""
    model = load("b")
    band = model.options.min_bandwidth(1.8)
    assert np.isinf(band[1]).all()
    result = solve(model, "bisection_mckp")
    assert result.solution["selected"] == [True, False]
    assert result.breakdown["finish_s"][0] == pytest.approx(1.8, rel=1e-12)


@pytest.mark.parametrize("call", [solve, solve_bisection_mckp])
def test_instance_c_is_infeasible_by_bias_budget(call):
    result = call(load("c"), "bisection_mckp") if call is solve else call(load("c"))
    assert result.status.value == "infeasible"
    assert result.infeasible_reason == "bias_budget"
    assert "0.2 > ε0 = 0.15" in result.message
    assert result.objective is None and result.bound is None
    document = result.to_dict()
    assert document["selected"] == [] and document["round_latency_s"] is None


def test_p2_and_normalised_instances_are_refused():
    with pytest.raises(ValueError, match="P1"):
        solve(load("a").with_changes(objective="total_latency"), "bisection_mckp")
    with pytest.raises(ValueError, match="normalised"):
        solve(load("a").with_changes(aggregation="normalised"), "bisection_mckp")


def test_noise_in_budget_and_downlink_enter_the_optimum():
    model = load("a").with_changes(include_noise_in_budget=True, downlink_rate_bps=1e7)
    result = solve(model, "bisection_mckp")
    assert result.status.value == "optimal" and result.verified
    assert result.objective == pytest.approx(brute_force(model), rel=1e-8)


# ---- brute force (independent of the solver code) ---------------------------------------


def equalised_latency(model: TinyFELModel, chosen: list[tuple[int, int]]) -> float:
    """T_round of fixed (device, n) pairs with equal finishing times, by Brent's method."""
    table, budget = model.options, model.instance.bandwidth_hz
    if not chosen:
        return table.downlink_s
    compute = np.array([table.compute_s[k, n - 1] for k, n in chosen])
    bits = np.array([table.upload_bits[n - 1] for _, n in chosen])
    snr = np.array([table.snr_hz[k] for k, _ in chosen])

    def excess(T: float) -> float:
        need = radio.min_bandwidth(bits / (T - compute), snr)
        return float(np.sum(need)) - budget if np.isfinite(need).all() else math.inf

    low = float(np.max(compute + bits * math.log(2) / snr))
    high = 2 * low + 1.0
    while excess(high) > 0:
        high *= 2
    return brentq(excess, low * (1 + 1e-15), high, xtol=1e-15, rtol=1e-14) + table.downlink_s


def brute_force(model: TinyFELModel) -> float | None:
    """Least T_round over every (a, n) meeting memory, K_min and the bias budget."""
    table, inst = model.options, model.instance
    choices = [
        [0] + [n for n in range(1, model.n_layers + 1) if table.available[k, n - 1]]
        for k in range(model.n_devices)
    ]
    best = None
    for layers in itertools.product(*choices):
        selected = [n > 0 for n in layers]
        if sum(selected) < inst.min_selected:
            continue
        if model.learning_terms(selected, layers).budget_value > inst.bias_budget:
            continue
        latency = equalised_latency(model, [(k, n) for k, n in enumerate(layers) if n])
        best = latency if best is None else min(best, latency)
    return best


def random_model(rng: np.random.Generator) -> TinyFELModel:
    """A tiny random instance (K L <= 9) at the scale of instance A, some options rate-capped."""
    K, L = int(rng.integers(2, 4)), int(rng.integers(2, 4))
    layers = random_tinyfel_layers(rng, L)
    devices = [
        {
            "name": f"d{k + 1}",
            "flops_per_s": float(rng.uniform(5e9, 3e10)),
            "memory_bytes": float(rng.uniform(2.5e6, 6e6)),
            "samples": int(rng.integers(10, 100)),
            "power_w": 0.1,
            "channel_gain": float(10 ** rng.uniform(-13.5, -11.5)),
        }
        for k in range(K)
    ]
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
            "bias_budget": float(rng.uniform(0.2, 0.9)),
            "min_selected": int(rng.integers(0, 3)),
            "objective": "round_latency",
        }
    )


@pytest.mark.parametrize("seed", range(12))
def test_bisection_mckp_matches_brute_force(seed):
    model = random_model(np.random.default_rng(seed))
    best = brute_force(model)
    result = solve(model, "bisection_mckp")
    if best is None:
        assert result.status.value == "infeasible"
        return
    assert result.status.value == "optimal" and result.verified
    assert result.objective == pytest.approx(best, rel=1e-8, abs=1e-12)
    assert result.bound <= best * (1 + 1e-12)
