"""``bisection_lagrangian``, the exact shared-server method: its Lagrangian bound, its search,
and agreement with brute force, enumeration and SCIP's perspective MISOCP."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import known_answer_path, random_edgesplit_document

from edgeopt.models import load_instance
from edgeopt.models.edgesplit import EdgeSplitModel
from edgeopt.solvers import Status, select, solve
from edgeopt.solvers.edgesplit.pricing import PricedOptions, fits, lagrangian_makespan, price
from edgeopt.solvers.edgesplit.pricing_search import search_fit
from edgeopt.solvers.edgesplit.resources import allocate_for_cuts

AGREE = 1e-6
METHOD = "bisection_lagrangian"


def random_shared(seed: int, devices: int, layers: int, **changes) -> EdgeSplitModel:
    """A random shared-server fleet; sync off with full local on gives zero-traffic options,
    full local gives zero-server options."""
    rng = np.random.default_rng(seed)
    document = random_edgesplit_document(rng, devices, layers, "shared")
    document.update(changes)
    return EdgeSplitModel.from_dict(document)


def identical_t3(count: int, budget_scale: float = 1.0) -> EdgeSplitModel:
    """``count`` copies of T3's device, budgets scaled with the fleet (mixed optima)."""
    document = json.loads(known_answer_path("t3").read_text())
    document["devices"] = [dict(document["devices"][0], name=f"d{i}") for i in range(count)]
    document["server_flops_per_s"] *= count / 2 * budget_scale
    document["bandwidth_hz"] *= count / 2
    return EdgeSplitModel.from_dict(document)


def check_optimal(result, reference: float) -> None:
    assert result.verified is True, result.message
    assert result.status is Status.OPTIMAL, result.message
    assert result.objective == pytest.approx(reference, rel=AGREE)
    assert result.bound <= result.objective
    assert result.bound <= reference * (1 + 1e-9)
    assert result.gap <= AGREE


def test_exact_selects_it_in_shared_mode_only():
    assert select(load_instance(known_answer_path("t3")), "exact")[0].method == METHOD
    assert select(load_instance(known_answer_path("t1")), "exact")[0].method == "bisection"
    assert select(load_instance(known_answer_path("t3")), "exact", "scip")[0].method == "misocp_perspective"


@pytest.mark.parametrize("name, value, cuts", [("t1", 3.2, [[2, 1]]), ("t2", 9.5, [[3, 1]]),
                                               ("t3", 1.1, [[1, 2], [2, 1]])])
def test_known_answers(name, value, cuts):
    result = solve(load_instance(known_answer_path(name)), METHOD)
    check_optimal(result, value)
    assert result.solution["cuts"] in cuts
    assert list(result.trace["stage"])[-1] in ("relaxation + rounding", "proof")


def test_t3_needs_the_search_and_its_trace_shows_the_proof():
    """T3's relaxation (both devices half on each cut) is 1.4 % below the optimum: only the
    search proves 1.1."""
    result = solve(load_instance(known_answer_path("t3")), METHOD)
    trace = result.trace.set_index("stage")
    assert trace.loc["relaxation + rounding", "T_lower_s"] < 1.1 * (1 - 1e-2)
    assert trace.loc["proof", "T_lower_s"] == pytest.approx(1.1, rel=1e-8)


SMALL = [(seed, int(1 + seed % 5), int(2 + seed % 4), sync, full)
         for seed, (sync, full) in enumerate([(True, False), (False, True), (True, True), (False, False)] * 8)]


@pytest.mark.parametrize("seed, devices, layers, sync, full", SMALL)
def test_equals_brute_force_on_small_random_fleets(seed, devices, layers, sync, full):
    model = random_shared(300 + seed, devices, layers, include_sync=sync, allow_full_local=full)
    check_optimal(solve(model, METHOD), solve(model, "brute_force").objective)


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8])
def test_identical_devices_match_multiset_enumeration(count):
    """Identical devices split over two cuts at the optimum: the grouped search and
    ``enum_two_resource`` (multisets) must agree."""
    model = identical_t3(count, budget_scale=1.3)
    check_optimal(solve(model, METHOD), solve(model, "enum_two_resource").objective)


def test_devices_with_a_single_feasible_cut():
    document = random_edgesplit_document(np.random.default_rng(7), 5, 5, "shared")
    smallest = float(np.min(EdgeSplitModel.from_dict(document).options.memory_bytes))
    for device in document["devices"][::2]:
        device["memory_bytes"] = smallest
    model = EdgeSplitModel.from_dict(document)
    assert (model.options.feasible.sum(axis=1) == 1).sum() >= 3
    check_optimal(solve(model, METHOD), solve(model, "brute_force").objective)


def test_tied_options_from_zero_work_layers():
    """Zero-FLOP, zero-output layers make several cuts identical (ties between options)."""
    document = random_edgesplit_document(np.random.default_rng(11), 4, 4, "shared")
    document["layers"].insert(2, dict(document["layers"][1], name="copy", fwd_flops=0.0, bwd_flops=0.0,
                                      param_bytes=0.0, saved_act_bytes=0.0))
    model = EdgeSplitModel.from_dict(document)
    check_optimal(solve(model, METHOD), solve(model, "brute_force").objective)


@pytest.mark.parametrize("seed", range(4))
def test_equals_bisection_in_dedicated_mode(seed):
    rng = np.random.default_rng(900 + seed)
    model = EdgeSplitModel.from_dict(random_edgesplit_document(rng, 6, 5, "dedicated"))
    check_optimal(solve(model, METHOD), solve(model, "bisection").objective)


SCIP_FLEETS = [
    ("random-zero-traffic", lambda: random_shared(41, 7, 5, include_sync=False, allow_full_local=True)),
    ("random-sync", lambda: random_shared(42, 8, 4, include_sync=True, allow_full_local=False)),
    ("preset-server-bound", lambda: EdgeSplitModel.preset(
        "vgg16-cifar10-hetero8", devices=8, seed=3, server_mode="shared", server_flops_per_s=2e11)),
    ("resnet-preset", lambda: EdgeSplitModel.preset(
        "resnet18-cifar10-hetero8", devices=6, seed=5, server_mode="shared", server_flops_per_s=1e12)),
    ("identical", lambda: identical_t3(5, budget_scale=0.8)),
]


@pytest.mark.parametrize("name, build", SCIP_FLEETS, ids=[name for name, _ in SCIP_FLEETS])
def test_equals_scip_perspective_misocp(name, build):
    model = build()
    scip = solve(model, "misocp_perspective")
    assert scip.status is Status.OPTIMAL
    result = solve(model, METHOD)
    check_optimal(result, scip.objective)
    assert scip.bound <= result.objective * (1 + 1e-9)


def test_lagrangian_tau_is_a_lower_bound_for_every_price():
    """tau(theta) <= J*/R for any theta, and its maximum is the convex-hull relaxation."""
    model = random_shared(5, 4, 4)
    optimum = solve(model, "brute_force").objective / model.rounds_used
    options = PricedOptions.from_model(model)
    upper = optimum * 10
    lower, _ = lagrangian_makespan(options, np.linspace(0, 1, 41), options.floor(), upper)
    assert (lower <= optimum * (1 + 1e-12)).all()
    relaxation = solve(model, "relaxation_perspective")
    bound = solve(model, METHOD).trace.set_index("stage").loc["relaxation + rounding", "T_lower_s"]
    assert bound * model.rounds_used == pytest.approx(relaxation.bound, rel=1e-5)


def test_price_check_is_the_closed_form_two_resource_check():
    """sum_i h_i(theta) <= 1 for all theta  <=>  X <= 1, Y <= 1, (1 - X)(1 - Y) >= Z^2."""
    rng = np.random.default_rng(3)
    grid = np.linspace(0, 1, 20001)
    for _ in range(200):
        X, Y = rng.uniform(0, 1.2, 2)
        Z = rng.uniform(0, 0.6)
        assert fits(X, Y, Z) == bool(price(grid, np.array(X), np.array(Y), np.array(Z)).max() <= 1 + 1e-9)


def test_search_proves_nothing_fits_below_the_optimum_and_finds_cuts_above():
    model = identical_t3(6, budget_scale=1.3)
    options = PricedOptions.from_model(model)
    optimum = solve(model, "enum_two_resource").objective / model.rounds_used
    below = search_fit(options, optimum * (1 - 1e-7), 0.5)
    assert below.index is None and below.complete
    above = search_fit(options, optimum * (1 + 1e-7), 0.5)
    assert above.index is not None
    _, makespan, _, _ = allocate_for_cuts(model, options.cuts(model, above.index))
    assert makespan <= optimum * (1 + 1e-7)


def test_an_expired_deadline_stops_the_search_without_a_claim():
    model = identical_t3(8, budget_scale=1.3)
    options = PricedOptions.from_model(model)
    optimum = solve(model, "enum_two_resource").objective / model.rounds_used
    outcome = search_fit(options, optimum * (1 - 1e-7), 0.5, SimpleNamespace(expired=True))
    assert outcome.free_devices > 0
    assert outcome.index is None and not outcome.complete


def test_a_tiny_time_limit_returns_the_incumbent_and_a_valid_bound():
    model = identical_t3(8, budget_scale=1.3)
    optimum = solve(model, METHOD).objective
    result = solve(model, METHOD, time_limit=1e-9)
    assert result.status in (Status.TIME_LIMIT, Status.OPTIMAL)
    assert result.verified is True
    assert result.bound <= optimum * (1 + 1e-12) <= result.objective * (1 + 1e-12)
    if result.status is Status.TIME_LIMIT:
        assert result.termination == "limit/time"


def test_memory_infeasible_fleet_names_the_device():
    model = EdgeSplitModel.preset("vgg16-imagenet-hetero8", server_mode="shared").with_changes(
        devices=[dict(d, memory_bytes=3e8) if d["name"] == "pi-0" else d
                 for d in EdgeSplitModel.preset("vgg16-imagenet-hetero8").to_dict()["devices"]])
    result = solve(model, METHOD)
    assert result.status is Status.INFEASIBLE and result.infeasible_reason == "memory"
    assert "device 'pi-0'" in result.message and "308745984" in result.message


def test_bad_gap_option_is_rejected():
    with pytest.raises(ValueError, match="gap"):
        solve(load_instance(known_answer_path("t3")), METHOD, gap=0.5)
