"""The perspective relaxation (spec §5.4): a valid bound, a feasible rounded point, agreeing
backends, duals that are derivatives, and the closed form for identical devices."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from conftest import known_answer_path, random_edgesplit_document

from edgeopt.models import load_instance
from edgeopt.models.edgesplit import EdgeSplitModel
from edgeopt.solvers import Status, solve

METHOD = "relaxation_perspective"
KNOWN = {"t1": 3.2, "t2": 9.5, "t3": 1.1}


def exact(model: EdgeSplitModel) -> float:
    return solve(model, "brute_force" if model.shared else "bisection").objective


def random_model(mode: str, seed: int) -> EdgeSplitModel:
    rng = np.random.default_rng(seed)
    devices, layers = int(rng.integers(3, 6)), int(rng.integers(3, 6))
    return EdgeSplitModel.from_dict(
        random_edgesplit_document(rng, devices, layers, server_mode=mode)
    )


CASES = [(name, load_instance(known_answer_path(name))) for name in KNOWN] + [
    (f"{mode}-{seed}", random_model(mode, 500 + seed))
    for mode in ("dedicated", "shared")
    for seed in range(10)
]
IDS = [name for name, _ in CASES]


def check_relaxation(result, optimum: float) -> None:
    assert result.verified, result.message
    assert result.bound <= optimum * (1 + 1e-6)
    assert result.objective >= optimum * (1 - 1e-9)
    assert result.status in (Status.OPTIMAL, Status.FEASIBLE)
    assert (result.status is Status.OPTIMAL) == (result.gap <= 1e-6)


@pytest.mark.parametrize("name, model", CASES, ids=IDS)
def test_bound_below_and_rounded_point_above_the_optimum(name, model):
    optimum = exact(model)
    if name in KNOWN:
        assert optimum == pytest.approx(KNOWN[name], rel=1e-9)
    result = solve(model, METHOD)
    check_relaxation(result, optimum)


def test_known_answers_t1_t2_are_tight_and_t3_is_not():
    for name in ("t1", "t2"):
        result = solve(load_instance(known_answer_path(name)), METHOD)
        assert result.status is Status.OPTIMAL
        assert result.objective == pytest.approx(KNOWN[name], rel=1e-9)
    # Identical devices, shared server: the symmetric relaxed point rounds both devices to cut 2.
    result = solve(load_instance(known_answer_path("t3")), METHOD)
    assert result.bound < 1.1 * (1 - 1e-3)
    assert result.solution["cuts"] == [2, 2]
    assert result.objective == pytest.approx(1.217584, rel=1e-6)


@pytest.mark.parametrize("name, model", CASES, ids=IDS)
def test_backends_agree_on_the_bound(name, model):
    bounds = {
        backend: solve(model, METHOD, backend).bound for backend in ("clarabel", "ecos", "scs")
    }
    assert bounds["ecos"] == pytest.approx(bounds["clarabel"], rel=1e-6)
    assert bounds["scs"] == pytest.approx(bounds["clarabel"], rel=1e-4)


def relaxed_value(model: EdgeSplitModel, **changes) -> float:
    return solve(model.with_changes(**changes), METHOD).extras["relaxation_value_s"]


@pytest.mark.parametrize("name", ["t1", "t3", "dedicated-3", "shared-4"])
def test_duals_are_derivatives_of_the_relaxed_optimum(name):
    model = dict(CASES)[name]
    result = solve(model, METHOD)
    relaxed = result.extras["relaxation_value_s"]
    inst = model.instance
    budgets = [("bandwidth_budget", "bandwidth_hz", inst.bandwidth_hz)]
    if model.shared:
        budgets.append(("server_budget", "server_flops_per_s", inst.server_flops_per_s))
    for dual, field, value in budgets:
        step = 1e-4 * value
        slope = (
            relaxed_value(model, **{field: value + step})
            - relaxed_value(model, **{field: value - step})
        ) / (2 * step)
        reported = result.extras["duals"][dual]
        assert reported <= 0
        # Compare elasticities (dJ/J)/(dB/B), so that a budget that barely binds compares as 0.
        assert reported * value / relaxed == pytest.approx(
            slope * value / relaxed, rel=0.03, abs=1e-6
        )


def hull_value(fixed: np.ndarray, need: np.ndarray, n: int) -> float:
    """min over the simplex of a.x + n (sqrt(d).x)^2: the relaxation of n identical devices.

    By symmetry every device gets B/n, and min sum d x^2/p over sum p = 1/n is n (sqrt(d).x)^2.
    For fixed sqrt(d).x the linear part is minimised at a point with at most two non-zeros, so
    the minimum lies on an edge of the simplex: a convex quadratic in one variable.
    """
    root = np.sqrt(need)
    best = float(np.min(fixed + n * need))
    for j, k in itertools.combinations(range(len(fixed)), 2):
        slope, spread = fixed[j] - fixed[k], root[j] - root[k]
        if spread == 0:
            continue
        theta = min(1.0, max(0.0, (-slope / (2 * n * spread) - root[k]) / spread))
        best = min(best, fixed[k] + theta * slope + n * (root[k] + theta * spread) ** 2)
    return best


def identical(document: dict, copies: int) -> EdgeSplitModel:
    device = document["devices"][0]
    devices = [dict(device, name=f"copy{i}") for i in range(copies)]
    return EdgeSplitModel.from_dict({**document, "devices": devices, "server_mode": "dedicated"})


def per_round_hull(model: EdgeSplitModel) -> float:
    table = model.options
    columns = table.feasible[0]
    need = table.bandwidth_seconds[0, columns] / model.instance.bandwidth_hz
    return model.rounds_used * hull_value(table.dedicated_s[0, columns], need, model.n_devices)


@pytest.mark.parametrize("seed", range(5))
def test_identical_devices_give_the_closed_form_hull_value(seed):
    rng = np.random.default_rng(900 + seed)
    model = identical(
        random_edgesplit_document(rng, 1, int(rng.integers(3, 7))), int(rng.integers(2, 6))
    )
    result = solve(model, METHOD)
    assert result.bound == pytest.approx(per_round_hull(model), rel=1e-6)
    check_relaxation(result, exact(model))


def test_identical_devices_bound_is_exact_only_at_a_vertex():
    """Identical devices, all D' > 0: exact = best common cut = min of the hull function over
    the vertices; the relaxation minimises it over the whole simplex, so it is exact iff the
    minimum lies at a vertex (T1's 'fast' device: yes; T3's data: no, 0.3 % below)."""
    t1 = load_instance(known_answer_path("t1")).to_dict()
    at_vertex = identical(t1, 2)  # two 'fast' devices: the hull minimum is cut 1
    assert solve(at_vertex, METHOD).bound == pytest.approx(exact(at_vertex), rel=1e-6)

    t3 = identical(load_instance(known_answer_path("t3")).to_dict(), 2)  # spec §6: J = 0.825468
    hull = per_round_hull(t3)
    assert hull == pytest.approx(0.822517, rel=1e-5)
    assert solve(t3, METHOD).bound == pytest.approx(hull, rel=1e-6)
    assert exact(t3) == pytest.approx(14553 / 17630, rel=1e-9)


def test_time_limit_returns_a_feasible_point_and_a_valid_bound():
    model = dict(CASES)["shared-2"]
    result = solve(model, METHOD, time_limit=1e-9)
    assert result.status is Status.TIME_LIMIT
    assert result.verified
    assert result.bound <= exact(model) <= result.objective


def test_large_fleet_bound_and_point_bracket_the_optimum():
    rng = np.random.default_rng(11)
    document = random_edgesplit_document(rng, 6, 10, include_sync=True)
    devices = document["devices"]
    document["devices"] = [
        dict(
            devices[i % 6],
            name=f"d{i}",
            flops_per_s=devices[i % 6]["flops_per_s"] * rng.uniform(0.8, 1.25),
        )
        for i in range(300)
    ]
    document["bandwidth_hz"] *= 50
    model = EdgeSplitModel.from_dict(document)
    optimum = exact(model)
    result = solve(model, METHOD)
    check_relaxation(result, optimum)
    assert math.isfinite(result.extras["duals"]["bandwidth_budget"])


def test_fix_and_relax_gives_the_exact_value_and_dual_of_the_fixed_cuts():
    """With the T1 optimum's cuts fixed the program is the convex resource problem:
    value 3.2 and dT/dB = -1 / sum_i D'_i/(T - A'_i)^2 (analytic, from the spec's numbers)."""
    model = load_instance(known_answer_path("t1"))
    result = solve(model, "relaxation_perspective", fix={"cuts": [2, 1]})
    assert result.bound == pytest.approx(3.2, rel=1e-7)
    assert result.solution["cuts"] == [2, 1]
    analytic = -1.0 / (2.2e6 / (3.2 - 2.1) ** 2 + 1.6e7 / (3.2 - 2.2) ** 2)
    assert result.extras["duals_by_field"]["bandwidth_hz"] == pytest.approx(analytic, rel=1e-5)
    with pytest.raises(ValueError, match=r"fix\['cuts'\]\[0\] = 3: not a memory-feasible cut"):
        solve(model, "relaxation_perspective", fix={"cuts": [3, 1]})
