"""The cross-check matrix, generated from each method's declared capabilities (spec §5.6).

For every instance (the spec's T1-T3 and random fleets of both modes) every registered,
available and applicable method is run; then: exact methods agree; relaxation bound <=
exact <= every heuristic and baseline; every reported point passes the evaluator.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import known_answer_path, random_edgesplit_document

from edgeopt.models import load_instance
from edgeopt.models.edgesplit import EdgeSplitModel
from edgeopt.solvers import Capability, Status, solve, solvers_for

AGREE = 1e-6


def instances():
    cases = [(name, load_instance(known_answer_path(name))) for name in ("t1", "t2", "t3")]
    for seed in range(4):
        rng = np.random.default_rng(100 + seed)
        mode = "shared" if seed % 2 else "dedicated"
        doc = random_edgesplit_document(rng, devices=3, layers=4, server_mode=mode)
        cases.append((f"random-{mode}-{seed}", EdgeSplitModel.from_dict(doc)))
    return cases


CASES = instances()


def applicable(model):
    for spec in solvers_for("edgesplit").specs:
        if spec.availability() and spec.unsupported_reason(model) is None:
            yield spec


@pytest.fixture(scope="module", params=CASES, ids=[name for name, _ in CASES])
def solved(request):
    name, model = request.param
    results = {spec.method: (spec, solve(model, spec.method)) for spec in applicable(model)}
    return model, results


def test_every_point_passes_the_evaluator(solved):
    model, results = solved
    for method, (_, result) in results.items():
        if result.status.has_point:
            assert result.verified, f"{method}: {result.message}"
            assert model.evaluate(result.solution).feasible
        else:
            assert result.status is Status.INFEASIBLE, f"{method}: {result.status} {result.message}"


def _exact(results):
    return {m: r for m, (spec, r) in results.items() if spec.has(Capability.PROVES_OPTIMALITY)}


def test_exact_methods_prove_and_agree(solved):
    _, results = solved
    exact = _exact(results)
    assert len(exact) >= 2, "every instance needs at least two exact methods to compare"
    values = {m: r.objective for m, r in exact.items()}
    for method, result in exact.items():
        assert result.status is Status.OPTIMAL, method
        assert result.gap <= 1e-6
    reference = min(values.values())
    for method, value in values.items():
        assert value == pytest.approx(reference, rel=AGREE), method


def test_bounds_below_and_heuristics_above_the_optimum(solved):
    model, results = solved
    optimum = min(r.objective for r in _exact(results).values())
    for method, (_, result) in results.items():
        if result.bound is not None:
            assert result.bound <= optimum * (1 + AGREE), method
        if result.objective is None:
            continue
        if method == "baseline_fedavg" and not model.instance.allow_full_local:
            continue  # FedAvg may legitimately win when c = L is outside the model's cut set
        assert result.objective >= optimum * (1 - 1e-9), method


def test_alternating_is_exact_in_dedicated_mode_with_traffic_everywhere(solved):
    model, results = solved
    table = model.options
    if model.shared or not (table.bandwidth_seconds[table.feasible] > 0).all():
        pytest.skip("the theorem of §5.2 needs dedicated mode and traffic on every option")
    optimum = min(r.objective for r in _exact(results).values())
    assert results["alternating"][1].objective == pytest.approx(optimum, rel=1e-9)
    assert results["alternating"][1].status is Status.OPTIMAL


KNOWN = {
    "t1": {"objective": 3.2, "cuts": [[2, 1]],
           "baseline_equal_resources": 179 / 45, "baseline_common_cut": 3.324094,
           "baseline_sequential_sl": 71 / 15, "baseline_fedavg": 6.0},
    "t2": {"objective": 9.5, "cuts": [[3, 1]],
           "baseline_equal_resources": 12.657895, "baseline_common_cut": 11.121409,
           "baseline_sequential_sl": 17.894737, "baseline_fedavg": None},
    "t3": {"objective": 1.1, "cuts": [[1, 2], [2, 1]], "alternating": 1.217584,
           "baseline_equal_resources": 1.217584, "baseline_common_cut": 1.217584,
           "baseline_sequential_sl": 1.417584, "baseline_fedavg": None},
}


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_known_answers_for_every_method(name):
    model = load_instance(known_answer_path(name))
    expected = KNOWN[name]
    for spec in applicable(model):
        result = solve(model, spec.method)
        if spec.method in expected:
            value = expected[spec.method]
            if value is None:
                assert result.status is Status.INFEASIBLE, spec.method
            else:
                assert result.objective == pytest.approx(value, rel=1e-6), spec.method
        elif spec.kind == "exact":
            assert result.objective == pytest.approx(expected["objective"], rel=1e-6), spec.method
            assert result.solution["cuts"] in expected["cuts"], spec.method


def test_t3_optimum_satisfies_the_kkt_ratio():
    result = solve(load_instance(known_answer_path("t3")), "exact")
    table_d = np.array([1.6e5, 1.44e6])
    table_s = np.array([3.24e9, 3.6e8])
    cuts = np.array(result.solution["cuts"]) - 1
    b = np.array(result.solution["bandwidth_hz"])
    s = np.array(result.solution["server_share_flops_per_s"])
    ratio = (table_d[cuts] / b**2) / (table_s[cuts] / s**2)
    assert ratio == pytest.approx([1000, 1000], rel=1e-6)
    assert sorted(b) == pytest.approx([8.8e5, 2.4e6], rel=1e-6)
