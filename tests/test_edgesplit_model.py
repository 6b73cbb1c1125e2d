"""EdgeSplit model: derived quantities (spec §3.2, §6), the evaluator, I/O and convergence term."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import known_answer_path, random_edgesplit_document

from edgeopt.models import InstanceError, load_instance
from edgeopt.models.edgesplit import EdgeSplitModel, convergence
from edgeopt.solvers.edgesplit.common import breakdown


def load(name: str) -> EdgeSplitModel:
    return load_instance(known_answer_path(name))


def test_t1_derived_quantities_match_the_spec():
    table = load("t1").options
    np.testing.assert_allclose(table.device_s, [[1, 2], [2, 4]], rtol=1e-15)
    np.testing.assert_allclose(table.server_s, [[0.2, 0.1], [0.2, 0.1]], rtol=1e-15)
    np.testing.assert_allclose(table.link_bits[0], [1.6e7, 4.4e6], rtol=1e-15)
    np.testing.assert_allclose(table.bandwidth_seconds, [[8e6, 2.2e6], [1.6e7, 4.4e6]], rtol=1e-15)
    np.testing.assert_allclose(table.memory_bytes, [5e6, 7.55e6], rtol=1e-15)


def test_t2_derived_quantities_and_memory_filter():
    table = load("t2").options
    np.testing.assert_array_equal(table.iterations, [3, 2])
    np.testing.assert_allclose(table.device_s, [[0.3, 1.0, 1.3]] * 2, rtol=1e-12)
    np.testing.assert_allclose(table.server_s, [[1.2, 0.36, 0], [0.8, 0.24, 0]], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(table.bandwidth_seconds[0], [1e7, 2.48e6, 2.4e6], rtol=1e-12)
    np.testing.assert_allclose(table.link_bits[1], [2.72e7, 9.28e6, 9.6e6], rtol=1e-12)
    np.testing.assert_allclose(table.memory_bytes, [1.8e6, 1.96e6, 2.1232e6], rtol=1e-12)
    np.testing.assert_array_equal(table.feasible, [[True, True, True], [True, False, False]])


def test_t3_derived_quantities():
    table = load("t3").options
    np.testing.assert_allclose(table.device_s[0], [0.1, 0.2], rtol=1e-12)
    np.testing.assert_allclose(table.server_flops[0], [3.24e9, 3.6e8], rtol=1e-12)
    np.testing.assert_allclose(table.bandwidth_seconds[0], [1.6e5, 1.44e6], rtol=1e-12)
    np.testing.assert_allclose(table.memory_bytes, [3.02e6, 6.19e6], rtol=1e-12)


def test_evaluator_reproduces_the_t1_optimum_by_hand():
    evaluation = load("t1").evaluate({"cuts": [2, 1], "bandwidth_hz": [2e6, 1.6e7]})
    assert evaluation.feasible
    assert evaluation.objective == pytest.approx(3.2, rel=1e-15)
    assert evaluation.per_device["per_device_time_s"] == pytest.approx([3.2, 3.2], rel=1e-15)


def test_evaluator_reproduces_the_t3_optimum_by_hand():
    model = load("t3")
    evaluation = model.evaluate(
        {"cuts": [1, 2], "bandwidth_hz": [8.8e5, 2.4e6], "server_share_flops_per_s": [3.96e9, 1.2e9]}
    )
    assert evaluation.feasible
    assert evaluation.objective == pytest.approx(1.1, rel=1e-14)


@pytest.mark.parametrize(
    ("decision", "violated"),
    [
        ({"cuts": [2, 1], "bandwidth_hz": [2e6, 1.7e7]}, "bandwidth_budget"),
        ({"cuts": [3, 1], "bandwidth_hz": [2e6, 1.6e7]}, "cut_domain"),
        ({"cuts": [0, 1], "bandwidth_hz": [2e6, 1.6e7]}, "cut_domain"),
        ({"cuts": [1.5, 1], "bandwidth_hz": [2e6, 1.6e7]}, "cut_domain"),
        ({"cuts": [2, 1], "bandwidth_hz": [0.0, 1.6e7]}, "finite_time"),
        ({"cuts": [2, 1], "bandwidth_hz": [-1e6, 1.6e7]}, "nonnegativity"),
    ],
)
def test_evaluator_flags_each_violated_constraint(decision, violated):
    evaluation = load("t1").evaluate(decision)
    assert not evaluation.feasible
    assert evaluation.violations[violated] > 0
    assert evaluation.objective is None


def test_evaluator_flags_memory_and_server_budget():
    t2 = load("t2").evaluate({"cuts": [3, 2], "bandwidth_hz": [4e6, 3.4e7]})
    assert t2.violations["memory"] == pytest.approx(1.96e6 - 1.9e6)
    t3 = load("t3").evaluate(
        {"cuts": [1, 2], "bandwidth_hz": [8.8e5, 2.4e6], "server_share_flops_per_s": [4e9, 1.2e9]}
    )
    assert not t3.feasible and t3.violations["server_budget"] > 1e-9


def test_evaluator_rejects_malformed_decisions():
    with pytest.raises(ValueError, match="bandwidth_hz"):
        load("t1").evaluate({"cuts": [2, 1], "bandwidth_hz": [1.0]})
    with pytest.raises(ValueError, match="server_share_flops_per_s"):
        load("t3").evaluate({"cuts": [1, 2], "bandwidth_hz": [1.0, 1.0]})


@pytest.mark.parametrize("seed", range(20))
def test_evaluator_agrees_with_the_vectorised_option_table(seed):
    """Two independent codes (evaluator loops, solver arrays) give the same device times."""
    rng = np.random.default_rng(seed)
    mode = "shared" if seed % 2 else "dedicated"
    model = EdgeSplitModel.from_dict(random_edgesplit_document(rng, devices=5, layers=6, server_mode=mode))
    table = model.options
    cuts = np.array([rng.choice(table.cuts) for _ in range(model.n_devices)])
    bandwidth = rng.uniform(0.1, 1.0, model.n_devices) * model.instance.bandwidth_hz
    shares = rng.uniform(0.1, 1.0, model.n_devices) * model.instance.server_flops_per_s if model.shared else None
    decision = {
        "cuts": cuts.tolist(),
        "bandwidth_hz": bandwidth.tolist(),
        "server_share_flops_per_s": None if shares is None else shares.tolist(),
    }
    evaluation = model.evaluate(decision)
    parts = breakdown(model, cuts, bandwidth, shares)
    for key in ("device_s", "server_s", "comm_s"):
        np.testing.assert_allclose(evaluation.per_device[key], parts[key], rtol=1e-12)
    fits = table.feasible[np.arange(model.n_devices), table.index_of(cuts)]
    assert (evaluation.violations["memory"] == 0) == bool(fits.all())


def test_round_trip_is_the_identity_and_keeps_metadata():
    document = json.loads(known_answer_path("t2").read_text())
    document["metadata"] = {"origin": "test"}
    document["devices"][0]["metadata"] = {"vendor": "acme"}
    model = EdgeSplitModel.from_dict(document)
    written = model.to_dict()
    assert written["metadata"] == {"origin": "test"}
    assert written["devices"][0]["metadata"] == {"vendor": "acme"}
    assert written["layers"][0]["bwd_flops"] is None
    assert written["layers"][1]["saved_act_bytes"] == 3e4
    assert EdgeSplitModel.from_dict(written).to_dict() == written
    assert EdgeSplitModel.from_json(model.to_json()).to_dict() == written


def test_writers_emit_defaults():
    document = json.loads(known_answer_path("t1").read_text())
    for key in ("optimizer_state_factor", "server_mode", "allow_full_local", "include_sync"):
        document.pop(key)
    written = EdgeSplitModel.from_dict(document).to_dict()
    assert written["optimizer_state_factor"] == 2
    assert written["server_mode"] == "dedicated"
    assert written["allow_full_local"] is False and written["include_sync"] is True


def test_from_kwargs_builds_the_same_model():
    document = json.loads(known_answer_path("t1").read_text())
    fields = {k: v for k, v in document.items() if k not in ("model", "version")}
    assert EdgeSplitModel.from_kwargs(**fields).to_dict() == EdgeSplitModel.from_dict(document).to_dict()


@pytest.mark.parametrize(
    ("change", "path"),
    [({"model": "nosuch"}, "model"), ({"version": 2}, "version"), ({"version": True}, "version")],
)
def test_unknown_model_or_version_is_a_clear_error(change, path):
    document = {**json.loads(known_answer_path("t1").read_text()), **change}
    with pytest.raises(InstanceError) as caught:
        load_instance(document)
    assert caught.value.issues[0].path == path
    assert "must be one of" in str(caught.value)


def test_parameters_table_declares_units_for_every_numeric_field():
    table = EdgeSplitModel.parameters()
    units = dict(zip(table["field"], table["unit"]))
    assert units["devices[].flops_per_s"] == "FLOP/s"
    assert units["bandwidth_hz"] == "Hz"
    assert units["layers[].param_bytes"] == "byte"
    assert "> 0" in table.set_index("field").loc["server_flops_per_s", "allowed"]


# ---- convergence term (spec §4.3) -------------------------------------------------------

def test_convergence_example_of_the_spec():
    assert convergence.optimal_step(0.1, 1.0, 1.0) == pytest.approx(0.05)
    assert convergence.rounds_needed(0.1, 1.0, 1.0, 10.0, None) == 8000


def test_sympy_derivation_matches_the_numeric_form_at_random_points():
    import sympy as sp

    terms = convergence.derivation()
    s = terms["symbols"]
    rng = np.random.default_rng(7)
    for _ in range(50):
        L, var, gap, eps = rng.uniform(0.1, 5), rng.uniform(0.01, 3), rng.uniform(0.1, 20), rng.uniform(0.01, 4)
        values = {s["L_f"]: L, s["sigma2"]: var, s["Delta"]: gap, s["epsilon"]: eps}
        gamma = float(terms["optimal_step"].subs(values))
        assert gamma == pytest.approx(convergence.optimal_step(eps, L, var), rel=1e-12)
        exact = float(terms["rounds_optimal"].subs(values))
        assert convergence.rounds_needed(eps, L, var, gap, None) == math.ceil(exact - 1e-9 * exact)
        # The bound at R(epsilon) equals epsilon: the two expressions are inverse.
        at_rounds = terms["bound"].subs({**values, s["gamma"]: gamma, s["R"]: terms["rounds"].subs({**values, s["gamma"]: gamma})})
        assert float(at_rounds) == pytest.approx(eps, rel=1e-10)
    # Descent lemma summed over R rounds gives the bound when gamma <= 1/L (factor >= 1/2).
    gamma, L = s["gamma"], s["L_f"]
    factor = 1 - L * gamma / 2
    assert sp.simplify(factor.subs(gamma, 1 / L) - sp.Rational(1, 2)) == 0


def test_convergence_replaces_rounds_and_unreachable_target_is_infeasible():
    document = json.loads(known_answer_path("t1").read_text())
    document["convergence"] = {"epsilon": 0.1, "smoothness": 1, "variance": 1, "initial_gap": 10, "learning_rate": None}
    model = EdgeSplitModel.from_dict(document)
    assert model.rounds_used == 8000
    assert model.evaluate({"cuts": [2, 1], "bandwidth_hz": [2e6, 1.6e7]}).objective == pytest.approx(8000 * 3.2)
    document["convergence"].update(learning_rate=0.5, epsilon=0.4)
    unreachable = EdgeSplitModel.from_dict(document)
    problem = unreachable.infeasibility()
    assert problem is not None and problem.reason == "target_unreachable"
    assert "noise floor" in problem.message
