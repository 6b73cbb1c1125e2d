"""Fast re-solves (solvers.parametric): a Resolver equals fresh solves and reuses its problem."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from conftest import random_edgesplit_document

from edgeopt.models import preset
from edgeopt.models.edgesplit import EdgeSplitModel
from edgeopt.solvers import Status, solve
from edgeopt.solvers.edgesplit import relaxation, relaxation_resolve
from edgeopt.solvers.parametric import RESOLVERS, Resolver, resolver_for

METHOD = "relaxation_perspective"
AGREE = {"clarabel": 1e-6, "ecos": 1e-6, "scs": 1e-4}
"""Relative agreement of re-solve and fresh solve per backend (SCS is first-order)."""


def perturbed(model: EdgeSplitModel, rng: np.random.Generator) -> EdgeSplitModel:
    """``model`` with random numbers changed but the same option structure: bandwidth,
    server FLOP/s, rounds, and each device's FLOP/s, spectral efficiency and samples."""
    document = model.to_dict()
    document["bandwidth_hz"] *= float(rng.uniform(0.2, 5.0))
    document["server_flops_per_s"] *= float(rng.uniform(0.2, 5.0))
    document["rounds"] = int(rng.integers(1, 30))
    for device in document["devices"]:
        device["flops_per_s"] *= float(rng.uniform(0.3, 3.0))
        device["spectral_efficiency"] *= float(rng.uniform(0.3, 3.0))
        device["samples"] = int(rng.integers(1, 60))
    return EdgeSplitModel.from_dict(document)


def base_model(mode: str, seed: int) -> EdgeSplitModel:
    rng = np.random.default_rng(seed)
    return EdgeSplitModel.from_dict(
        random_edgesplit_document(rng, devices=4, layers=5, server_mode=mode)
    )


def assert_same(again, fresh, tolerance: float) -> None:
    assert again.verified, again.message
    assert again.method == fresh.method == METHOD
    assert again.objective == pytest.approx(fresh.objective, rel=tolerance)
    assert again.bound == pytest.approx(fresh.bound, rel=tolerance)
    assert again.bound <= again.objective * (1 + 1e-9)


@pytest.mark.parametrize("mode", ["dedicated", "shared"])
@pytest.mark.parametrize("backend", ["clarabel", "ecos"])
def test_resolver_equals_fresh_solves_over_random_changes_with_one_build(mode, backend):
    base = base_model(mode, 11)
    resolver = resolver_for(base, METHOD, backend)
    rng = np.random.default_rng(7)
    for _ in range(25):
        model = perturbed(base, rng)
        assert_same(resolver.solve(model), solve(model, METHOD, backend), AGREE[backend])
    assert (resolver.builds, resolver.solves) == (1, 25)


def test_scs_warm_started_resolves_agree_within_its_accuracy():
    base = base_model("dedicated", 3)
    resolver = resolver_for(base, METHOD, "scs")
    rng = np.random.default_rng(5)
    for _ in range(4):
        model = perturbed(base, rng)
        assert_same(resolver.solve(model), solve(model, METHOD, "scs"), AGREE["scs"])
    assert resolver.builds == 1


def test_the_programs_are_dpp_built_once_and_reused(monkeypatch):
    calls = []
    original = relaxation_resolve.build_program

    def counting(data, parametric=False):
        calls.append(parametric)
        return original(data, parametric)

    monkeypatch.setattr(relaxation_resolve, "build_program", counting)
    base = base_model("shared", 2)
    resolver = resolver_for(base, "relaxation")
    resolver.solve(base)
    program = resolver.program
    assert program.program.problem.is_dcp(dpp=True)
    assert program.program.problem.parameters()
    rng = np.random.default_rng(1)
    for _ in range(5):
        resolver.solve(perturbed(base, rng))
    assert all(restricted.problem.is_dcp(dpp=True) for restricted in program.restricted.values())
    assert calls == [True] * (1 + len(program.restricted))
    assert resolver.program is program


PRESET_CASES = [
    ("vgg16-cifar10-hetero8", 20, "dedicated"),
    ("resnet18-cifar10-hetero8", 60, "shared"),
    ("vgg16-cifar10-hetero8", 100, "dedicated"),
    ("vgg16-cifar10-hetero8", 40, "shared"),
]


def sweep_changes(model: EdgeSplitModel, rng: np.random.Generator) -> EdgeSplitModel:
    """``model`` with one or two of the numbers a sweep changes moved by up to 3x."""
    fields = rng.choice(["bandwidth_hz", "server_flops_per_s", "rounds"], size=2, replace=False)
    changes = {}
    for field in fields[: int(rng.integers(1, 3))]:
        value = getattr(model.instance, field) * float(rng.uniform(1 / 3, 3))
        changes[field] = max(1, round(value)) if field == "rounds" else value
    return model.with_changes(**changes)


def assert_exact(again, fresh) -> None:
    """Same rounded point and objective, bound within 1e-7 relative (solver accuracy)."""
    assert again.verified, again.message
    assert again.solution["cuts"] == fresh.solution["cuts"]
    assert again.objective == pytest.approx(fresh.objective, rel=1e-9)
    assert again.bound == pytest.approx(fresh.bound, rel=1e-7)
    assert again.status is fresh.status


@pytest.mark.parametrize("name, devices, mode", PRESET_CASES)
def test_active_set_re_solves_equal_fresh_solves_and_are_certified(name, devices, mode):
    base = preset("edgesplit", name, devices=devices, seed=devices).with_changes(server_mode=mode)
    resolver = resolver_for(base, METHOD)
    rng = np.random.default_rng(devices)
    model = base
    for _ in range(12):
        assert_exact(resolver.solve(model), solve(model, METHOD))
        model = sweep_changes(base, rng) if rng.random() < 0.5 else perturbed(base, rng)
    program = resolver.program
    assert (resolver.builds, program.full_solves + program.certified) == (1, 12)
    assert program.certified >= 10
    assert program.restricted_solves >= program.certified


@pytest.mark.parametrize("mode", ["dedicated", "shared"])
def test_random_changes_of_small_models_stay_exact_through_the_active_set(mode):
    base = base_model(mode, 21)
    resolver = resolver_for(base, METHOD)
    rng = np.random.default_rng(3)
    for _ in range(30):
        model = perturbed(base, rng)
        assert_same(resolver.solve(model), solve(model, METHOD), 1e-7)
    assert resolver.program.certified >= 20


def test_uncertified_active_sets_fall_back_to_the_full_program(monkeypatch):
    monkeypatch.setattr(relaxation_resolve, "CERTIFY", -1.0)
    base = preset("edgesplit", "vgg16-cifar10-hetero8", devices=20, seed=1)
    resolver = resolver_for(base, METHOD)
    for factor in (1.0, 0.5, 2.0):
        model = base.with_changes(bandwidth_hz=factor * base.instance.bandwidth_hz)
        assert_exact(resolver.solve(model), solve(model, METHOD))
    program = resolver.program
    assert (program.certified, program.fallbacks, program.full_solves) == (0, 2, 3)


def test_without_the_active_set_every_model_uses_the_full_program():
    base = base_model("dedicated", 8)
    default = resolver_for(base, METHOD)
    resolver = Resolver(default.spec, default.backend, partial(default.factory, active_set=False))
    rng = np.random.default_rng(2)
    for _ in range(3):
        model = perturbed(base, rng)
        assert_same(resolver.solve(model), solve(model, METHOD), 1e-6)
    program = resolver.program
    assert (program.full_solves, program.restricted_solves, program.restricted) == (3, 0, {})


def test_a_certified_bound_is_the_dual_function_over_all_options():
    base = preset("edgesplit", "vgg16-cifar10-hetero8", devices=30, seed=4)
    resolver = resolver_for(base, METHOD)
    resolver.solve(base)
    model = base.with_changes(bandwidth_hz=1.3 * base.instance.bandwidth_hz)
    result = resolver.solve(model)
    program = resolver.program
    assert program.certified == 1
    data = relaxation.ScaledOptions.from_model(model)
    warm = program.warm  # the multipliers of the restricted program that certified the point
    q = relaxation.dual_bound(data, warm.mu, warm.lam, warm.nu)
    per_round = result.bound / model.rounds_used
    assert per_round == pytest.approx(data.scale * max(q, data.fixed_bound), rel=1e-12)


def test_a_change_of_structure_rebuilds():
    base = base_model("dedicated", 4)
    resolver = resolver_for(base, METHOD)
    resolver.solve(base)
    document = base.to_dict()
    document["devices"].append({**document["devices"][0], "name": "extra"})
    bigger = EdgeSplitModel.from_dict(document)
    resolver.solve(bigger)
    assert resolver.builds == 2
    shared = base.with_changes(server_mode="shared")
    assert_same(resolver.solve(shared), solve(shared, METHOD), 1e-6)
    assert resolver.builds == 3


def test_an_infeasible_model_is_reported_without_building():
    base = base_model("dedicated", 6)
    document = base.to_dict()
    document["devices"][0]["memory_bytes"] = 1.0
    resolver = resolver_for(base, METHOD)
    result = resolver.solve(EdgeSplitModel.from_dict(document))
    assert result.status is Status.INFEASIBLE
    assert result.infeasible_reason == "memory"
    assert resolver.builds == 0


def test_resolver_for_methods_and_bad_input():
    model = EdgeSplitModel.preset("vgg16-cifar10-hetero8")
    assert resolver_for(model, "bisection") is None
    resolver = resolver_for(model, "relaxation", "ecos")
    assert isinstance(resolver, Resolver)
    assert (resolver.method, resolver.backend) == (METHOD, "ecos")
    assert ("edgesplit", METHOD) in RESOLVERS
    with pytest.raises(ValueError, match="cannot use solver"):
        resolver_for(model, "relaxation", "highs")
    with pytest.raises(ValueError, match="time_limit"):
        resolver.solve(model, time_limit=0)
