"""The solver contract: selection, options, verification, Result output formats."""

from __future__ import annotations

import json

import pytest
from conftest import known_answer_path

from edgeopt.models import load_instance
from edgeopt.solvers import Availability, Result, Status, select, solve, solver_table, verify
from edgeopt.solvers.registry import BACKEND_MODULES, SolverSpec, solvers_for
from edgeopt.solvers.result import CANONICAL_STATUSES


@pytest.fixture
def t1():
    return load_instance(known_answer_path("t1"))


@pytest.fixture
def t3():
    return load_instance(known_answer_path("t3"))


def test_defaults_per_kind_depend_on_the_mode(t1, t3):
    assert select(t1, "exact")[0].method == "bisection"
    assert select(t3, "exact")[0].method == "bisection_lagrangian"
    assert select(t1, "heuristic")[0].method == "alternating"
    assert select(t1, "relaxation") == (solvers_for("edgesplit").spec("relaxation_perspective"), "clarabel")
    assert select(t1, "exact", "scip")[0].method == "misocp_perspective"
    assert select(t1, "exact", "highs")[0].method == "bisection_mckp"
    assert select(t3, "approximate", "highs")[0].method == "bisection_mckp_grid"
    with pytest.raises(ValueError, match="no exact method for server_mode 'shared'"):
        select(t3, "exact", "highs")


def test_unknown_method_lists_the_choices(t1):
    with pytest.raises(ValueError, match="unknown method 'fastest'.*bisection"):
        solve(t1, "fastest")


def test_wrong_backend_names_the_allowed_ones(t1):
    with pytest.raises(ValueError, match="cannot use solver 'scip'; allowed: clarabel, ecos, scs"):
        solve(t1, "relaxation_perspective", "scip")
    with pytest.raises(ValueError, match="pure Python"):
        solve(t1, "bisection", "highs")


def test_inapplicable_method_says_why(t3):
    with pytest.raises(ValueError, match="dedicated"):
        solve(t3, "bisection")


def test_unknown_option_and_bad_time_limit_are_rejected(t1):
    with pytest.raises(ValueError, match="unknown option.*max_iter.*allowed: max_iterations"):
        solve(t1, "alternating", max_iter=3)
    with pytest.raises(ValueError, match="time_limit"):
        solve(t1, "bisection", time_limit=0)


def test_availability_is_truthy_and_declared_for_every_backend():
    assert Availability.AVAILABLE and not Availability.NOT_INSTALLED
    for spec in solvers_for("edgesplit").specs:
        assert set(spec.backends) <= set(BACKEND_MODULES)
    missing = SolverSpec("x", "edgesplit", "exact", "a:b", "", frozenset(), backends=("nosuch",))
    assert missing.availability() is Availability.AVAILABLE  # unknown backends need no module
    table = solver_table("edgesplit")
    assert set(table["method"]) == {s.method for s in solvers_for("edgesplit").specs}


def test_result_records_times_seed_options_and_trace(t1):
    result = solve(t1, "alternating", seed=5, max_iterations=50)
    assert result.seed == 5 and result.options == {"max_iterations": 50}
    assert result.timings.wall_s >= result.timings.solve_s >= 0
    assert list(result.trace.columns) == ["iteration", "makespan_s", "cuts_changed"]
    assert result.trace["makespan_s"].is_monotonic_decreasing


def test_iteration_limit_is_honest_and_written_as_feasible(t1):
    result = solve(t1, "alternating", max_iterations=1)
    assert result.status is Status.ITERATION_LIMIT and result.termination == "limit/iterations"
    assert result.verified
    document = json.loads(result.to_json())
    assert document["status"] == "feasible" and document["termination"] == "limit/iterations"


def test_canonical_solution_json_keys_and_order(t1):
    document = json.loads(solve(t1, "bisection").to_json())
    assert list(document)[:10] == [
        "model", "status", "objective", "bound", "cuts", "bandwidth_hz",
        "server_share_flops_per_s", "per_device_time_s", "method", "solver",
    ]
    assert document["status"] in CANONICAL_STATUSES
    assert document["cuts"] == [2, 1] and document["server_share_flops_per_s"] is None
    assert document["wall_time_s"] > 0


def test_frame_repr_and_html(t1):
    result = solve(t1, "bisection")
    frame = result.to_frame()
    assert list(frame.index) == ["fast", "slow"]
    assert frame.loc["fast", "cuts"] == 2
    assert frame["per_device_time_s"].tolist() == pytest.approx([3.2, 3.2])
    assert (frame["device_s"] + frame["server_s"] + frame["comm_s"]).tolist() == pytest.approx([3.2, 3.2])
    assert "status=optimal" in repr(result) and "verified=True" in repr(result)
    html = result._repr_html_()
    assert "<table>" in html and "fast" in html


def _tampered(result: Result, **solution_changes) -> Result:
    return result.replace(solution={**result.solution, **solution_changes})


def test_verify_rejects_an_infeasible_point_whatever_the_solver_said(t1):
    result = solve(t1, "bisection")
    bad = verify(t1, _tampered(result, bandwidth_hz=[4e6, 1.6e7]))
    assert bad.status is Status.ERROR and bad.verified is False and not bad.feasible
    assert "bandwidth_budget" in bad.message


def test_verify_replaces_a_wrong_objective_and_drops_optimal(t1):
    result = solve(t1, "bisection")
    lied = verify(t1, result.replace(objective=3.0, bound=3.0))
    assert lied.objective == pytest.approx(3.2) and lied.verified is False
    assert lied.status is Status.FEASIBLE and "replaced" in lied.message


def test_optimal_without_a_bound_is_downgraded(t1):
    result = solve(t1, "bisection")
    assert verify(t1, result.replace(bound=None)).status is Status.FEASIBLE


def test_verify_reports_a_malformed_point_as_an_error(t1):
    result = solve(t1, "bisection")
    broken = verify(t1, _tampered(result, cuts=[]))
    assert broken.status is Status.ERROR and "malformed point" in broken.message


def test_a_tiny_time_limit_is_reported_honestly(t3):
    for method in ("alternating", "enum_two_resource", "brute_force"):
        result = solve(t3, method, time_limit=1e-9)
        assert result.status in (Status.TIME_LIMIT, Status.OPTIMAL, Status.FEASIBLE), method
        assert result.verified, method
        if result.status is Status.TIME_LIMIT:
            assert result.termination == "limit/time"
            assert result.bound is None or result.bound <= 1.1 * (1 + 1e-9)


def test_bisection_time_limit_keeps_a_valid_bound_and_a_feasible_point(t1):
    result = solve(t1, "bisection", time_limit=1e-9)
    assert result.status in (Status.TIME_LIMIT, Status.OPTIMAL)
    assert result.verified and result.bound <= 3.2 * (1 + 1e-12) <= result.objective * (1 + 1e-12)
