"""The Lagrangian knapsack check of the TinyFEL exact method against brute force and HiGHS."""

from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from edgeopt.models.tinyfel import TinyFELModel
from edgeopt.solvers import solve
from edgeopt.solvers.tinyfel import lagrangian
from edgeopt.solvers.tinyfel.bisection_mckp import COVERAGE_MARGIN, HIGHS_SETTINGS, choose


def random_knapsack(rng: np.random.Generator, devices: int, options: int) -> lagrangian.Knapsack:
    """Costs that rise with the option and gains that rise with it (as in TinyFEL: more
    layers, more bits and more coverage), some options unusable, a capacity and a coverage
    row near the boundary of what fits."""
    cost = np.cumsum(rng.uniform(0.0, 0.6 / devices, (devices, options)), axis=1)
    gain = np.cumsum(rng.uniform(0.0, 1.0 / devices, (devices, options)), axis=1)
    cost[rng.random((devices, options)) < 0.15] = np.inf
    cost = np.hstack([np.zeros((devices, 1)), cost])
    gain = np.hstack([np.zeros((devices, 1)), gain])
    required = float(rng.uniform(0.2, 0.8)) * np.where(np.isfinite(cost), gain, 0).max(axis=1).sum()
    least = int(rng.integers(0, 3))
    ks = lagrangian.Knapsack(cost, gain, 1.0, required, least)
    least_cost, _ = brute_force(ks)
    if not math.isfinite(least_cost):
        return ks
    # capacity within a few percent of the least cost: the LP bound rarely decides there
    return dataclasses.replace(ks, capacity=least_cost * float(rng.uniform(0.97, 1.03)))


def brute_force(ks: lagrangian.Knapsack) -> tuple[float, np.ndarray | None]:
    """The least cost meeting the coverage and count rows, and a choice that fits (or None)."""
    devices, columns = ks.cost.shape
    best, fitting = math.inf, None
    for choice in itertools.product(range(columns), repeat=devices):
        x = np.array(choice)
        cost = ks.cost[np.arange(devices), x].sum()
        if not np.isfinite(cost):
            continue
        if ks.gain[np.arange(devices), x].sum() < ks.required or (x > 0).sum() < ks.least:
            continue
        best = min(best, cost)
        if fitting is None and ks.fits(x):
            fitting = x
    return best, fitting


@pytest.mark.parametrize("seed", range(60))
def test_decide_agrees_with_brute_force(seed):
    rng = np.random.default_rng(seed)
    ks = random_knapsack(rng, devices=int(rng.integers(2, 6)), options=int(rng.integers(1, 4)))
    least_cost, fitting = brute_force(ks)
    dual = lagrangian.maximise(ks)
    assert dual.value <= least_cost + 1e-12  # weak duality: a lower bound on every choice
    found = lagrangian.decide(ks, HIGHS_SETTINGS)
    assert (found is None) == (fitting is None)
    if found is not None:
        assert ks.fits(found)


@pytest.mark.parametrize("seed", range(30))
def test_frontier_search_exact_and_beam(seed):
    """The exact frontier decides like brute force; a beam-limited one only returns fits."""
    rng = np.random.default_rng(100 + seed)
    ks = random_knapsack(rng, devices=5, options=3)
    _, fitting = brute_force(ks)
    dual = lagrangian.maximise(ks)
    if lagrangian.proves_infeasible(ks, dual):
        assert fitting is None
        return
    keep = lagrangian.kept_columns(ks, dual)
    assert keep.any(axis=1).all() or fitting is None
    if not keep.any(axis=1).all():
        return
    fixed = keep.sum(axis=1) == 1
    columns = np.where(fixed, np.argmax(keep, axis=1), 0)
    free = np.flatnonzero(~fixed)
    if free.size == 0 or (columns[fixed] > 0).sum() < ks.least:
        return
    exact = lagrangian.frontier_search(ks, dual, keep, columns, free)
    assert (exact is None) == (fitting is None)
    narrow = lagrangian.frontier_search(ks, dual, keep, columns, free, beam=1)
    if narrow is not None:
        assert ks.fits(narrow)


@pytest.mark.parametrize("devices, seed", [(30, 0), (60, 1), (120, 2)])
def test_bisection_mckp_bound_and_point_checked_by_highs(devices, seed):
    """HiGHS on the whole knapsack (no Lagrangian) accepts just above the reported latency
    and finds nothing just below the reported bound."""
    model = TinyFELModel.preset("resnet18-cifar10-cell", devices=devices, seed=seed)
    result = solve(model, "bisection_mckp")
    assert result.status.value == "optimal" and result.verified
    downlink = model.options.downlink_s
    above = (result.objective - downlink) * (1 + 1e-7)
    below = (result.bound - downlink) * (1 - 1e-7)
    assert choose(model, model.options.min_bandwidth(above), objective="feasible") is not None
    assert choose(model, model.options.min_bandwidth(below), objective="feasible") is None
    assert result.objective - result.bound <= 1e-9 * result.objective


def test_knapsack_rows_match_choose():
    """The Lagrangian knapsack and the HiGHS one answer alike across latencies."""
    model = TinyFELModel.preset("resnet18-cifar10-cell", devices=15, seed=4)
    optimum = solve(model, "bisection_mckp").objective - model.options.downlink_s
    for factor in (0.5, 0.99, 0.999999, 1.000001, 1.01, 2.0):
        band = model.options.min_bandwidth(optimum * factor)
        ks = lagrangian.knapsack(model, band, 1.0, COVERAGE_MARGIN)
        ours = lagrangian.decide(ks, HIGHS_SETTINGS)
        theirs = choose(model, band, objective="feasible")
        assert (ours is None) == (theirs is None), factor


DATA = Path(__file__).parent / "data"

SMALL = [
    ("a", lambda: TinyFELModel.from_file(DATA / "tinyfel_a.json")),
    ("a_prime", lambda: TinyFELModel.from_file(DATA / "tinyfel_a_prime.json")),
    ("b", lambda: TinyFELModel.from_file(DATA / "tinyfel_b.json")),
    ("cell8", lambda: TinyFELModel.preset("resnet18-cifar10-cell", devices=8, seed=2)),
    ("vgg12", lambda: TinyFELModel.preset("vgg16-cifar10-cell", devices=12, seed=5)),
]


@pytest.mark.parametrize("name, build", SMALL, ids=[name for name, _ in SMALL])
def test_relaxation_lagrangian_is_the_expcone_bound(name, build):
    """The dual bisection bounds T* at least as tightly as the exponential-cone program of
    spec §5.4 (the same relaxation once options needing more than B are dropped, which no
    integer choice can use) and below the exact optimum; its rounded point is feasible and
    not better than the optimum."""
    model = build()
    exact = solve(model, "bisection_mckp")
    ours = solve(model, "relaxation_lagrangian")
    conic = solve(model, "relaxation_expcone")
    assert ours.verified and ours.status.value == "feasible"
    assert ours.bound <= exact.objective * (1 + 1e-12)
    assert ours.objective >= exact.objective * (1 - 1e-9)
    assert ours.bound >= conic.bound * (1 - 1e-6)


@pytest.mark.parametrize("name, build", SMALL, ids=[name for name, _ in SMALL])
def test_lagrangian_rounding_between_bound_and_optimum(name, build):
    model = build()
    exact = solve(model, "bisection_mckp")
    heuristic = solve(model, "lagrangian_rounding")
    assert heuristic.verified and heuristic.status.value == "feasible"
    assert heuristic.bound <= exact.objective * (1 + 1e-12)
    assert heuristic.objective >= exact.objective * (1 - 1e-9)


def test_infeasible_instance_reported_by_the_dual_methods():
    model = TinyFELModel.from_file(DATA / "tinyfel_c.json")
    for method in ("relaxation_lagrangian", "lagrangian_rounding"):
        result = solve(model, method)
        assert result.status.value == "infeasible"
        assert result.infeasible_reason == "bias_budget"
