"""Property tests on random instances of both modes (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_edgesplit_document
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeopt.models.edgesplit import EdgeSplitModel
from edgeopt.solvers import Status, solve

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def build(seed: int, devices: int, layers: int, mode: str, **changes) -> EdgeSplitModel:
    document = random_edgesplit_document(np.random.default_rng(seed), devices, layers, mode)
    document.update(changes)
    return EdgeSplitModel.from_dict(document)


instances = st.builds(
    build,
    seed=st.integers(0, 2**32 - 1),
    devices=st.integers(1, 4),
    layers=st.integers(2, 5),
    mode=st.sampled_from(["dedicated", "shared"]),
)


@SETTINGS
@given(instances)
def test_default_exact_equals_brute_force_and_bounds_the_heuristic(model):
    exact = solve(model, "exact")
    reference = solve(model, "brute_force")
    heuristic = solve(model, "heuristic")
    assert exact.status is Status.OPTIMAL and exact.verified
    assert exact.objective == pytest.approx(reference.objective, rel=1e-6)
    assert heuristic.verified and heuristic.objective >= exact.objective * (1 - 1e-9)
    assert exact.bound <= reference.objective * (1 + 1e-9)


@SETTINGS
@given(instances)
def test_shared_server_is_never_faster_than_dedicated(model):
    shared = solve(model.with_changes(server_mode="shared"), "exact")
    dedicated = solve(model.with_changes(server_mode="dedicated"), "exact")
    assert shared.objective >= dedicated.objective * (1 - 1e-9)


@SETTINGS
@given(instances, st.sampled_from(["bandwidth_hz", "server_flops_per_s"]), st.floats(1.01, 10))
def test_more_resources_never_slow_training(model, field, factor):
    before = solve(model, "exact").objective
    richer = model.with_changes(**{field: getattr(model.instance, field) * factor})
    assert solve(richer, "exact").objective <= before * (1 + 1e-9)


@SETTINGS
@given(instances, st.integers(1, 5))
def test_rounds_scale_the_objective_and_leave_the_decisions(model, extra):
    base = solve(model, "exact")
    more = solve(model.with_changes(rounds=model.instance.rounds + extra), "exact")
    ratio = (model.instance.rounds + extra) / model.instance.rounds
    assert more.objective == pytest.approx(base.objective * ratio, rel=1e-9)


@SETTINGS
@given(instances, st.integers(0, 3), st.floats(1.01, 5))
def test_faster_devices_never_slow_training(model, index, factor):
    index %= model.n_devices
    document = model.to_dict()
    document["devices"][index]["flops_per_s"] *= factor
    faster = EdgeSplitModel.from_dict(document)
    assert solve(faster, "exact").objective <= solve(model, "exact").objective * (1 + 1e-9)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 6))
def test_identical_devices_common_cut_equals_equal_resources_equals_exact(seed, devices):
    document = random_edgesplit_document(np.random.default_rng(seed), 1, 4, "dedicated", include_sync=True)
    document["devices"] = [dict(document["devices"][0], name=f"d{i}") for i in range(devices)]
    model = EdgeSplitModel.from_dict(document)
    exact = solve(model, "exact").objective
    assert solve(model, "baseline_common_cut").objective == pytest.approx(exact, rel=1e-9)
    assert solve(model, "baseline_equal_resources").objective == pytest.approx(exact, rel=1e-9)
