"""Simulated verification (issue 6): the simulators against independent computations, the
statistics of the bound check, serial = Dask, and a small run of each model's verifier."""

from __future__ import annotations

from functools import cache, lru_cache

import numpy as np
import pytest

from edgeopt.analysis.verification import Runner, registered, verify_simulation
from edgeopt.analysis.verification.simulation import (
    CONFIDENCE_Z,
    SEED_BLOCK,
    Configuration,
    bound_check,
    rounds_to_target,
    run_seeds,
)
from edgeopt.analysis.verification.simulators import sparse_fel, split_learning

# ---- parallel split learning ----------------------------------------------------------------


def _explicit_map(task):
    """J: theta (flattened, layer-major) -> network output on a zero input, built by hand."""
    L, d = task.layers, task.dim
    J = np.zeros((d, L * d))
    for layer in range(L):
        block = np.eye(d)
        for later in range(layer + 1, L):
            block = task.mixing[later] @ block
        J[:, layer * d:(layer + 1) * d] = block
    return J


@lru_cache(maxsize=1)
def quadratic_task():
    return split_learning.LayeredQuadratic.random(3, np.array([4.0, 3.0, 2.0, 1.0]), dim=2, seed=1)


def test_split_learning_constants_are_exact():
    task = quadratic_task()
    J = _explicit_map(task)
    A = np.diag(task.curvature)
    hessian = J.T @ A @ J
    assert task.smoothness == pytest.approx(np.linalg.eigvalsh(hessian)[-1], rel=1e-12)
    noise = task.input_std**2 + task.target_std**2
    assert task.per_sample_variance == pytest.approx(noise * np.trace(J.T @ A @ A @ J), rel=1e-12)
    # Delta: F(theta_0) - min F, min by least squares on J theta = -mu.
    offset = J @ task.start.ravel() + task.residual_mean
    best = np.linalg.lstsq(J, -task.residual_mean, rcond=None)[0]
    assert np.allclose(J @ best + task.residual_mean, 0)
    assert task.initial_gap == pytest.approx(0.5 * offset @ A @ offset, rel=1e-12)
    theta = np.random.default_rng(0).normal(size=(3, task.layers, task.dim))
    expected = (theta.reshape(3, -1) @ J.T + task.residual_mean) @ A @ J
    assert np.allclose(task.gradient(theta).reshape(3, -1), expected, atol=1e-12)


def test_split_learning_matches_the_exact_expected_gradient_norm():
    """E||grad F(theta_r)||^2 of linear SGD has a closed recursion (mean and covariance of
    theta); the Monte Carlo mean of the simulator must agree within its standard error."""
    task, batch, rounds, seeds = quadratic_task(), 4, 12, 3000
    J, A = _explicit_map(task), np.diag(task.curvature)
    H, b = J.T @ A @ J, J.T @ A @ task.residual_mean
    step = 0.5 / task.smoothness
    noise = J.T @ A @ A @ J * (task.input_std**2 + task.target_std**2) * np.sum(task.weights**2) / batch
    mean, cov, exact = task.start.ravel(), np.zeros(H.shape), []
    for _ in range(rounds):
        exact.append(np.sum((H @ mean + b) ** 2) + np.trace(H @ H @ cov))
        move = np.eye(len(mean)) - step * H
        mean, cov = move @ mean - step * b, move @ cov @ move.T + step**2 * noise
    norms = split_learning.train(task, [1, 2, 3, 1], batch, step, rounds, np.random.default_rng(5), seeds)
    stderr = norms.std(axis=0, ddof=1) / np.sqrt(seeds)
    assert norms[0, 0] == pytest.approx(exact[0], rel=1e-12)
    assert np.all(np.abs(norms.mean(axis=0) - exact)[1:] <= 4.5 * stderr[1:])


def test_cuts_do_not_change_split_learning():
    task = quadratic_task()
    runs = [split_learning.train(task, cuts, 2, 0.3, 8, np.random.default_rng(7), 5)
            for cuts in ([1, 1, 1, 1], [3, 2, 1, 3], [3, 3, 3, 3])]
    assert all(np.array_equal(runs[0], other) for other in runs[1:])


# ---- sparse federated learning ----------------------------------------------------------------


def _device_task(task, k):
    """F_k alone: device k's data with weight 1."""
    return sparse_fel.LayeredLogistic(task.radii, task.block, (task.features[k],), (task.labels[k],), np.ones(1))


@lru_cache(maxsize=1)
def logistic_task():
    return sparse_fel.LayeredLogistic.random([0.4, 0.6, 0.8, 1.0], [40, 30, 20, 10], seed=3)


def test_logistic_gradient_smoothness_and_layer_bounds():
    task, rng = logistic_task(), np.random.default_rng(8)
    w = rng.normal(size=(2, 8)) * 5
    step = 1e-6
    numeric = np.array([[(task.loss((w + step * e)[None]) - task.loss((w - step * e)[None]))[0] / (2 * step)
                         for e in np.eye(8)] for w in w])
    assert np.allclose(task.gradient(w), numeric, atol=1e-7)
    # L_s: the finite-difference Hessian norm at 0 (every slope 1/4) equals it, and at random
    # points never exceeds it.

    def hessian_norm(point):
        columns = [np.array([1, -1]) @ task.gradient(np.stack([point + step * e, point - step * e]))
                   / (2 * step) for e in np.eye(8)]
        return np.linalg.norm(np.array(columns), 2)

    assert hessian_norm(np.zeros(8)) == pytest.approx(task.smoothness, rel=1e-6)
    for point in rng.normal(size=(5, 8)) * 2:
        assert hessian_norm(point) <= task.smoothness * (1 + 1e-6)
    # Layer-wise bounds hold for every device, even far from the origin.
    for k in range(task.devices):
        grads = _device_task(task, k).gradient(rng.normal(size=(50, 8)) * 20).reshape(50, task.layers, task.block)
        assert np.all(np.sum(grads**2, axis=2) <= task.grad_sq_bounds * (1 + 1e-12))


def test_logistic_optimum_is_a_minimum():
    task = logistic_task()
    others = task.loss(np.random.default_rng(9).normal(size=(200, 8)))
    assert np.all(others >= task.optimum - 1e-12)
    assert 0 < task.initial_gap < np.log(2)


def test_sparse_round_is_unbiased_masked_and_unnormalised():
    """E g = sum_k p_k a_k m_k * grad F_k: frozen layers and unselected devices contribute
    nothing (Monte Carlo over many seeds against exact device gradients)."""
    task, seeds = logistic_task(), 20000
    selected, first = [True, False, True, True], [2, 1, 4, 5]  # device 4: s = L + 1, no layer
    w = np.tile(np.random.default_rng(10).normal(size=8), (seeds, 1))
    g = task.sparse_round(w, selected, first, 3, np.random.default_rng(11))
    expected = np.zeros(8)
    for k, (on, s) in enumerate(zip(selected, first)):
        if on:
            mask = np.repeat(np.arange(1, task.layers + 1) >= s, task.block)
            expected += task.weights[k] * mask * _device_task(task, k).gradient(w[:1])[0]
    stderr = g.std(axis=0) / np.sqrt(seeds)
    assert np.all(np.abs(g.mean(axis=0) - expected) <= 5 * stderr + 1e-15)
    assert np.all(g[:, :2] == 0)  # layer 1: no selected device updates it
    normalised = task.sparse_round(w[:4], selected, first, 3, np.random.default_rng(12), normalised=True)
    plain = task.sparse_round(w[:4], selected, first, 3, np.random.default_rng(12))
    cover = np.array([0, task.weights[0], task.weights[0], task.weights[0] + task.weights[2]])
    scale = np.repeat(np.where(cover > 0, cover, 1.0), task.block)
    assert np.allclose(normalised, plain / scale)


# ---- statistics and execution ------------------------------------------------------------------


def _configuration(bound: float) -> Configuration:
    return Configuration("c", "m <= b", {"k": 1}, bound, "exact")


def test_bound_check_uses_a_one_sided_confidence_limit():
    values = np.array([1.0, 1.2, 0.8, 1.1, 0.9, 1.0])
    stderr = values.std(ddof=1) / np.sqrt(len(values))
    inside = bound_check(_configuration(1.0 - 0.9 * CONFIDENCE_Z * stderr), values)
    outside = bound_check(_configuration(1.0 - 1.1 * CONFIDENCE_Z * stderr), values)
    assert inside.passed and not outside.passed
    record = outside.to_record()
    assert record["measured"] == pytest.approx(1.0) and record["seeds"] == 6 and record["config"] == {"k": 1}
    assert "failing configuration" in str(_report(outside))


def _report(check):
    from edgeopt.analysis.verification import Report

    return Report("m", (check,))


def test_rounds_to_target_is_the_first_prefix_average_at_or_below():
    curve = np.array([4.0, 2.0, 0.0, 0.0, 5.0])
    assert rounds_to_target(curve, 2.0) == 3  # averages 4, 3, 2, 1.5, 2.2
    assert rounds_to_target(curve, 0.5) is None


def _draws(item, block):
    """A module-level task: the block's generator draws, tagged with the item."""
    from edgeopt.analysis.verification.simulation import block_rng

    return item + block_rng(0, block).random(block[1])


def test_seed_blocks_make_results_independent_of_where_they_run():
    serial = run_seeds(Runner(), _draws, [0.0, 10.0], SEED_BLOCK + 5)
    more = run_seeds(Runner(), _draws, [0.0], 2 * SEED_BLOCK)
    assert [len(v) for v in serial] == [SEED_BLOCK + 5] * 2
    assert np.array_equal(serial[0][:SEED_BLOCK], more[0][:SEED_BLOCK])
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        parallel = run_seeds(Runner(client=client), _draws, [0.0, 10.0], SEED_BLOCK + 5)
    assert all(np.array_equal(a, b) for a, b in zip(serial, parallel))


# ---- the verifiers, small ----------------------------------------------------------------------


@cache
def quick_report(model_id: str):
    return verify_simulation(model_id, seeds=16, quick=True)


@pytest.mark.parametrize("model_id", registered())
def test_quick_simulation_bounds_hold(model_id):
    result = quick_report(model_id)
    bounds = [c for c in result.checks if c.category in ("bound", "consistency")]
    assert len([c for c in bounds if c.category == "bound"]) >= 3
    failed = [(c.name, c.measured, c.bound, c.config) for c in bounds if not c.passed]
    assert not failed
    for check in bounds:
        record = check.to_record()
        assert record["kind"] == "simulated" and record["seeds"] == 16
        assert record["measured"] is not None and record["bound"] is not None


def test_edgesplit_comparison_matches_the_evaluator_ratios():
    """Cuts do not change the learning, so each speed-up in simulation must equal the ratio
    of per-round times the model's evaluator gives for the solvers' decisions."""
    from edgeopt.analysis.verification.edgesplit import PRESET, _preset_setup
    from edgeopt.solvers import solve

    model, _ = _preset_setup(PRESET, 4)
    exact = solve(model, "exact")
    per_round = {"exact": max(exact.evaluation.per_device["per_device_time_s"])}
    for check in quick_report("edgesplit").checks:
        if check.category != "comparison" or check.measured is None:
            continue
        method = check.name.split(" vs ")[1]
        other = solve(model, method)
        times = other.evaluation.per_device["per_device_time_s"]
        per_round[method] = sum(times) if other.solution.get("schedule") == "sequential" else max(times)
        assert check.bound / check.measured == pytest.approx(per_round[method] / per_round["exact"], rel=1e-9)
    assert len(per_round) == 5


def test_edgesplit_notes_report_the_rough_variance_finding():
    (note,) = quick_report("edgesplit").notes
    assert "rough sigma^2" in note and "bound with the exact sigma^2" in note


def test_tinyfel_comparison_counts_whole_rounds():
    """Both optimisers (P1 and P2) are compared with the baselines, each time in whole rounds
    of its own simulated round latency."""
    from edgeopt.analysis.verification.tinyfel import (
        P2_TIME_LIMIT_S,
        PRESET,
        _preset_setup,
        _solve_p2,
        simulated_round_latency,
    )
    from edgeopt.solvers import solve

    model, _, _ = _preset_setup(PRESET, 6)
    latency = {"exact": simulated_round_latency(model, solve(model, "exact").solution),
               "exact_p2": simulated_round_latency(model, _solve_p2(PRESET, 6, P2_TIME_LIMIT_S[True]).solution)}
    checks = [c for c in quick_report("tinyfel").checks
              if c.category == "comparison" and c.measured is not None]
    assert {c.config["optimiser"] for c in checks} == {"exact", "exact_p2"}
    for check in checks:
        assert ("P1 (least round latency)" in check.name) == (check.config["optimiser"] == "exact")
        rounds = check.measured / latency[check.config["optimiser"]]
        assert rounds == pytest.approx(round(rounds), abs=1e-9) and 1 <= round(rounds) <= 200


def test_tinyfel_p2_note_explains_how_p2_is_posed():
    """With the task's own constants, P2 at the simulated target has no feasible point: even
    every device at its deepest option leaves a bias above the target (an independent floor,
    since the linear bias falls in every a_k and n_k). The P2 that is compared is the preset's
    own total-latency problem."""
    from edgeopt.analysis.verification.tinyfel import (
        PRESET,
        TARGET_FRACTION,
        _p2_model,
        _preset_setup,
    )

    model, _, initial = _preset_setup(PRESET, 6)
    deepest = model.options.n_max
    floor = model.learning_terms(deepest > 0, deepest).bias
    assert floor > 10 * TARGET_FRACTION * initial
    note = quick_report("tinyfel").notes[-1]
    assert "P2 with the simulated task's own constants" in note and "infeasible" in note
    p2 = _p2_model(PRESET, 6)
    assert p2.total_latency and p2.instance.learning.target_stationarity == 0.5
