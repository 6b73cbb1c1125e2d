"""Cross-checks generated from the registry for every registered model (a new model gets them
by registering and declaring ``examples()``; see docs/adding_a_model.md).

On each model's examples, every applicable, installed method is run once (cached) and:
- every returned point is re-checked by the model's own evaluator;
- relaxation bound <= exact optimum <= heuristic objective (and every bound <= the optimum);
- the exact routes agree with one another;
- an infeasible example gives ``infeasible`` with the model's reason code from every method;
- under a time limit a method stops within twice the limit plus a constant, and a stop at the
  limit says ``limit/time`` and still carries only verified points and valid bounds.
"""

from __future__ import annotations

import functools

import pytest

from edgeopt.models import MODEL_IDS, model_class
from edgeopt.solvers import Capability, Result, Status, solve
from edgeopt.solvers.registry import solvers_for

RTOL = 1e-6
"""Relative tolerance of the order checks (the optimality gap every exact method certifies)."""

TIME_LIMIT_S = 0.5
LIMIT_SLACK_S = 30.0
"""A time-limited solve must return within 2 x TIME_LIMIT_S + LIMIT_SLACK_S: model building,
imports and the iteration under way are not interruptible, and a machine shared with other
work can slow them several-fold. This catches a method that ignores the limit on a long run;
the tight check (2x plus a small constant, on instances built to be slow) is the property
suite's."""


@functools.cache
def examples(model_id: str) -> dict[str, object]:
    return {example.name: example for example in model_class(model_id).examples()}


def runnable(model_id: str, model) -> list[str]:
    """The methods of ``model_id`` that apply to ``model`` and can run here."""
    specs = solvers_for(model_id).specs
    return [s.method for s in specs if s.unsupported_reason(model) is None and s.availability()]


def cases(feasible: bool) -> list:
    found = []
    for model_id in MODEL_IDS:
        for name, example in examples(model_id).items():
            if (example.infeasible_reason is None) == feasible:
                found.append(pytest.param(model_id, name, id=f"{model_id}/{name}"))
    return found


def method_cases(feasible: bool, capability: Capability | None = None) -> list:
    found = []
    for param in cases(feasible):
        model_id, name = param.values
        model = examples(model_id)[name].model
        for method in runnable(model_id, model):
            spec = solvers_for(model_id).spec(method)
            if capability is None or spec.has(capability):
                found.append(pytest.param(model_id, name, method, id=f"{model_id}/{name}/{method}"))
    return found


@functools.cache
def outcome(model_id: str, name: str, method: str) -> Result:
    return solve(examples(model_id)[name].model, method)


def optimum(model_id: str, name: str) -> float:
    """The example's optimum from the model's default exact method (which must prove it)."""
    result = outcome(model_id, name, solvers_for(model_id).choose(examples(model_id)[name].model, "exact", None))
    assert result.status is Status.OPTIMAL and result.verified, result
    return result.objective


def test_every_model_declares_feasible_and_infeasible_examples():
    assert MODEL_IDS, "no model is registered"
    for model_id in MODEL_IDS:
        declared = examples(model_id).values()
        assert any(e.infeasible_reason is None for e in declared), f"{model_id}: no feasible example"
        assert any(e.infeasible_reason for e in declared), f"{model_id}: no infeasible example"
        for example in declared:
            found = example.model.infeasibility()
            reason = None if found is None else found.reason
            assert reason == example.infeasible_reason, (model_id, example.name, found)
            assert example.model.model_id == model_id


@pytest.mark.parametrize(("model_id", "name", "method"), method_cases(feasible=True))
def test_every_answer_is_confirmed_by_the_evaluator(model_id, name, method):
    result = outcome(model_id, name, method)
    assert result.status is not Status.ERROR, result.message
    if result.status.has_point and result.objective is not None:
        assert result.verified is True, result.message
        evaluation = examples(model_id)[name].model.evaluate(result.solution)
        assert evaluation.feasible
        assert evaluation.objective == pytest.approx(result.objective, rel=1e-9)
    if result.status is Status.OPTIMAL:
        assert result.gap is not None and result.gap <= RTOL


@pytest.mark.parametrize(("model_id", "name"), cases(feasible=True))
def test_bounds_are_below_and_points_above_the_exact_optimum(model_id, name):
    best = optimum(model_id, name)
    scale = RTOL * abs(best)
    for method in runnable(model_id, examples(model_id)[name].model):
        result = outcome(model_id, name, method)
        if result.bound is not None:
            assert result.bound <= best + scale, f"{method}: bound {result.bound} above the optimum {best}"
        if result.verified:
            assert result.objective >= best - scale, f"{method}: objective {result.objective} below the optimum {best}"


@pytest.mark.parametrize(("model_id", "name"), cases(feasible=True))
def test_exact_routes_agree(model_id, name):
    best = optimum(model_id, name)
    model = examples(model_id)[name].model
    exact = [s.method for s in solvers_for(model_id).specs if s.kind == "exact"]
    agreed = []
    for method in (m for m in runnable(model_id, model) if m in exact):
        result = outcome(model_id, name, method)
        assert result.status is Status.OPTIMAL, f"{method}: {result.status} ({result.message})"
        assert result.objective == pytest.approx(best, rel=RTOL), method
        agreed.append(method)
    assert agreed, f"{model_id}/{name}: no exact method ran"


@pytest.mark.parametrize(("model_id", "name", "method"), method_cases(feasible=False))
def test_infeasible_examples_give_the_reason_from_every_method(model_id, name, method):
    result = outcome(model_id, name, method)
    assert result.status is Status.INFEASIBLE
    assert result.infeasible_reason == examples(model_id)[name].infeasible_reason
    assert result.message and str(result.termination) == "infeasible"
    assert result.objective is None and result.verified is None


@pytest.mark.parametrize(
    ("model_id", "name", "method"), method_cases(feasible=True, capability=Capability.TIME_LIMIT)
)
def test_a_time_limit_is_honoured_and_reported(model_id, name, method):
    result = solve(examples(model_id)[name].model, method, time_limit=TIME_LIMIT_S)
    assert result.timings.wall_s <= 2 * TIME_LIMIT_S + LIMIT_SLACK_S
    assert result.status is not Status.ERROR, result.message
    if result.status is Status.TIME_LIMIT:
        assert str(result.termination) == "limit/time"
    if result.status.has_point and result.objective is not None:
        assert result.verified is True
    if result.bound is not None:
        best = optimum(model_id, name)
        assert result.bound <= best + RTOL * abs(best)
