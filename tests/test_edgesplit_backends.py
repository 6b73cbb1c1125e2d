"""The SCIP and HiGHS methods (spec §5.3): ``misocp_perspective``, ``misocp_bigm``,
``bisection_mckp`` and ``bisection_mckp_grid``.

Known answers T1-T3 (spec §6), agreement with the pure-Python exact methods on small random
instances of both server modes (``bisection`` dedicated, ``enum_two_resource`` and
``brute_force`` shared), and honest time limits.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import known_answer_path, random_edgesplit_document

from edgeopt.models import load_instance
from edgeopt.models.edgesplit import EdgeSplitModel
from edgeopt.solvers import Status, solve, solvers_for

AGREE = 1e-6
BACKEND_EXACT = ("misocp_perspective", "misocp_bigm", "bisection_mckp")
BACKEND = {"misocp_perspective": "scip", "misocp_bigm": "scip", "bisection_mckp": "highs",
           "bisection_mckp_grid": "highs"}
KNOWN = {"t1": (3.2, [2, 1]), "t2": (9.5, [3, 1]), "t3": (1.1, None)}
"""J [s] and the unique optimal cuts (T3 has two mirror optima, [1, 2] and [2, 1])."""


def applicable(model, methods):
    """The methods that apply to ``model`` and whose backend is installed."""
    registry = solvers_for("edgesplit")
    return [m for m in methods if registry.spec(m).unsupported_reason(model) is None
            and registry.spec(m).availability()]


def check_point(result):
    assert result.verified is True, result.message
    assert result.solver == BACKEND[result.method]
    assert result.solver_version


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_known_answers(name):
    model = load_instance(known_answer_path(name))
    value, cuts = KNOWN[name]
    methods = applicable(model, BACKEND_EXACT)
    assert "misocp_perspective" in methods
    for method in methods:
        result = solve(model, method)
        check_point(result)
        assert result.status is Status.OPTIMAL, method
        assert result.objective == pytest.approx(value, rel=1e-9), method
        assert result.bound <= result.objective and result.gap <= AGREE, method
        if cuts:
            assert result.solution["cuts"] == cuts, method
        else:
            assert sorted(result.solution["cuts"]) == [1, 2], method


def test_grid_restriction_on_t3_is_an_upper_bound():
    model = load_instance(known_answer_path("t3"))
    result = solve(model, "bisection_mckp_grid")
    check_point(result)
    assert result.status is Status.FEASIBLE and result.bound is None
    assert 1.1 * (1 - 1e-9) <= result.objective <= 1.1 * 1.03


def random_models(mode: str, count: int = 10):
    """Seeded small instances: 3-4 devices, 3-5 layers, every sync / full-local setting
    (sync off with full local on gives zero-traffic options)."""
    rng = np.random.default_rng(2024 if mode == "dedicated" else 2025)
    settings = [(True, False), (False, True), (True, True), (False, False)]
    models = []
    for index in range(count):
        sync, full_local = settings[index % len(settings)]
        doc = random_edgesplit_document(
            rng, devices=int(rng.integers(3, 5)), layers=int(rng.integers(3, 6)), server_mode=mode,
            include_sync=sync, allow_full_local=full_local,
        )
        models.append(EdgeSplitModel.from_dict(doc))
    return models


@pytest.mark.parametrize("model", random_models("dedicated"), ids=lambda _: "dedicated")
def test_dedicated_backends_agree_with_bisection(model):
    reference = solve(model, "bisection")
    methods = applicable(model, BACKEND_EXACT)
    assert "misocp_perspective" in methods and "bisection_mckp" in methods
    for method in methods:
        result = solve(model, method)
        check_point(result)
        assert result.status is Status.OPTIMAL, method
        assert result.objective == pytest.approx(reference.objective, rel=AGREE), method
        assert result.bound <= reference.objective * (1 + AGREE), method


@pytest.mark.parametrize("model", random_models("shared"), ids=lambda _: "shared")
def test_shared_backends_agree_with_enumeration(model):
    enumerated = solve(model, "enum_two_resource")
    brute = solve(model, "brute_force")
    assert enumerated.objective == pytest.approx(brute.objective, rel=AGREE)
    methods = applicable(model, BACKEND_EXACT)
    assert "misocp_perspective" in methods
    for method in methods:
        result = solve(model, method)
        check_point(result)
        assert result.status is Status.OPTIMAL, method
        assert result.objective == pytest.approx(enumerated.objective, rel=AGREE), method
        assert result.bound <= enumerated.objective * (1 + AGREE), method
    grid = solve(model, "bisection_mckp_grid")
    check_point(grid)
    assert grid.status is Status.FEASIBLE and grid.bound is None
    assert grid.objective >= enumerated.objective * (1 - AGREE)


@pytest.mark.parametrize("limit", [1e-3, 0.2])
@pytest.mark.parametrize("mode", ["dedicated", "shared"])
def test_time_limits_are_reported_honestly(mode, limit):
    """A tiny limit stops before any proof; 0.2 s usually stops SCIP with an incumbent."""
    model = EdgeSplitModel.preset("vgg16-cifar10-hetero8", devices=12, server_mode=mode)
    reference = solve(model, "bisection" if mode == "dedicated" else "misocp_bigm").objective
    methods = applicable(model, tuple(BACKEND))
    for method in methods:
        result = solve(model, method, time_limit=limit)
        check_point(result)
        proven = Status.FEASIBLE if method == "bisection_mckp_grid" else Status.OPTIMAL
        assert result.status in (Status.TIME_LIMIT, proven), method
        assert result.objective >= reference * (1 - AGREE), method
        if result.bound is not None:
            assert result.bound <= min(result.objective, reference * (1 + AGREE)), method
        if result.status is Status.OPTIMAL:
            assert result.gap <= AGREE, method
