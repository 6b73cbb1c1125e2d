"""Symbolic verification of the derivations (issue 6): every step holds, and the checker
rejects wrong steps (symbolically wrong, numerically wrong, wrong certificate)."""

from __future__ import annotations

import html
import json
from functools import cache

import numpy as np
import pytest
import sympy as sp

from edgeopt.analysis.verification import NoVerifier, registered, verify_derivation
from edgeopt.analysis.verification.registry import REQUIRED, VERIFIERS, verifier
from edgeopt.analysis.verification.steps import Step, check_step, descent_lemma_values


@cache
def report(model_id: str):
    return verify_derivation(model_id, points=100)


@pytest.mark.parametrize("model_id", registered())
def test_every_derivation_step_holds(model_id):
    result = report(model_id)
    failed = [f"{c.name}: {c.detail}" for c in result.checks if not c.passed]
    assert not failed
    assert all(c.kind == "symbolic" and c.category == "step" for c in result.checks)
    assert len(result.checks) >= 8


@pytest.mark.parametrize("model_id", ["edgesplit", "tinyfel"])
def test_the_derivation_ends_in_the_models_own_expressions(model_id):
    """The final identities compare with the model's convergence module (its `bound`,
    `rounds`, ...), symbolically; a report that never reaches the model would prove nothing."""
    names = [c.name for c in report(model_id).checks]
    model_steps = [n for n in names if "model's" in n]
    assert len(model_steps) >= 4
    proved = [c for c in report(model_id).checks if "model's" in c.name and "symbolic: proved" in c.detail]
    assert len(proved) >= 3


@pytest.mark.parametrize("model_id", registered())
def test_identities_are_proved_symbolically_and_numerically(model_id):
    for check in report(model_id).checks:
        if check.how.startswith("SymPy: lhs - rhs"):
            assert "symbolic: proved" in check.detail and "numeric: max relative difference" in check.detail


def test_a_wrong_identity_fails_symbolically():
    """E8 with half the noise term: the model's bound is not what the steps give."""
    from edgeopt.models.edgesplit import convergence

    s = convergence.derivation()["symbols"]
    gamma, L, var, gap, R = s["gamma"], s["L_f"], s["sigma2"], s["Delta"], s["R"]
    wrong = Step("wrong", "", "==", (gap + R * L * gamma**2 * var / 2) / (gamma * R / 2),
                 2 * gap / (gamma * R) + L * gamma * var / 2,
                 sample=lambda rng, n: {x: rng.uniform(0.1, 2, n) for x in (gamma, L, var, gap, R)})
    check = check_step(wrong, np.random.default_rng(0), 50)
    assert not check.passed and "NOT reduced to 0" in check.detail


def test_an_identity_must_also_hold_at_the_random_points():
    """Symbolically true under p3 = 1 - p1 - p2, but the points ignore that constraint:
    the numeric half of the check catches what the substitution hid."""
    p1, p2, p3 = sp.symbols("p1 p2 p3", positive=True)
    step = Step("constrained", "", "==", p1 + p2 + p3, sp.S.One, substitutions={p3: 1 - p1 - p2},
                sample=lambda rng, n: {p: rng.uniform(0, 1, n) for p in (p1, p2, p3)})
    check = check_step(step, np.random.default_rng(1), 50)
    assert not check.passed and "symbolic: proved" in check.detail


def test_a_too_strong_descent_lemma_is_violated_at_random_smooth_functions():
    f_next, f_x, inner, g2, gamma, L = sp.symbols("f_next f_x inner g2 gamma L", real=True)

    def sample(rng, n):
        values = descent_lemma_values(rng, n)
        return {f_next: values["f_next"], f_x: values["f_x"], inner: values["inner"],
                g2: values["g2"], gamma: values["gamma"], L: values["L"]}

    true = Step("lemma", "", "<=", f_next, f_x - gamma * inner + L * gamma**2 * g2 / 2, sample=sample)
    strong = Step("L/4", "", "<=", f_next, f_x - gamma * inner + L * gamma**2 * g2 / 4, sample=sample)
    rng = np.random.default_rng(2)
    assert check_step(true, rng, 100).passed
    failed = check_step(strong, rng, 100)
    assert not failed.passed and "VIOLATED" in failed.detail


def test_a_certificate_must_equal_the_slack():
    x, y = sp.symbols("x y", positive=True)
    sample = lambda rng, n: {x: rng.uniform(0, 1, n), y: rng.uniform(1, 2, n)}  # noqa: E731
    good = Step("good", "", "<=", x, x + y**2, sample=sample, certificate=y**2)
    bad = Step("bad", "", "<=", x, x + y**2, sample=sample, certificate=y)
    rng = np.random.default_rng(3)
    assert check_step(good, rng, 20).passed
    assert not check_step(bad, rng, 20).passed


def test_descent_lemma_samples_are_smooth_functions_with_a_valid_constant():
    """Independent check of the sampler: f(x - gamma g) computed from the returned numbers
    never beats the lemma, and the quadratic half is tight (slack 0 for g on the top
    eigenvector)."""
    values = descent_lemma_values(np.random.default_rng(4), 40)
    gamma = values["gamma"]
    bound = values["f_x"] - gamma * values["inner"] + values["L"] * gamma**2 * values["g2"] / 2
    slack = bound - values["f_next"]
    assert np.all(slack >= -1e-9 * (1 + np.abs(bound)))
    assert np.min(np.abs(slack[1::2]) / (1 + np.abs(bound[1::2]))) < 1e-9


def test_tinyfel_spec_snippet_exchange_of_sums():
    """Spec §4.3's shipped SymPy test, independent of the verifier's own steps."""
    K, L = 3, 4
    p = sp.symbols(f"p1:{K + 1}", nonnegative=True)
    a = sp.symbols(f"a1:{K + 1}")
    x = sp.Matrix(K, L, lambda k, j: sp.Symbol(f"x{k + 1}{j + 1}"))
    G = sp.symbols(f"G1:{L + 1}", nonnegative=True)
    G2 = sum(G)
    u = [sum(p[k] * a[k] * x[k, j] for k in range(K)) for j in range(L)]
    rho = [sum(x[k, j] * G[j] for j in range(L)) / G2 for k in range(K)]
    assert sp.simplify(sum((1 - u[j]) * G[j] for j in range(L))
                       - G2 * (1 - sum(p[k] * a[k] * rho[k] for k in range(K)))) == 0


def test_report_renders_as_text_html_and_json():
    result = report("edgesplit")
    text, page = str(result), result._repr_html_()
    records = json.loads(result.to_json())
    assert "all checks passed" in text and "<table>" in page
    for check in result.checks:
        assert check.name in text and html.escape(check.name) in page
    assert {"name", "kind", "passed", "statement", "how"} <= set(records[0])
    assert all(r["kind"] == "symbolic" and r["passed"] is True for r in records)
    assert len(result.to_frame()) == len(result.checks)


def test_registry_and_plugins():
    assert registered() == sorted(VERIFIERS)
    for model_id in registered():
        module = verifier(model_id)
        assert all(hasattr(module, name) for name in REQUIRED) and module.MODEL_ID == model_id
    with pytest.raises(NoVerifier, match="no verifier registered for model 'nosuch'.*edgesplit"):
        verifier("nosuch")


def test_a_model_without_a_verifier_gets_a_clear_error(monkeypatch):
    monkeypatch.delitem(VERIFIERS, "two_stage")
    with pytest.raises(NoVerifier, match="its verifier is still to come"):
        verify_derivation("two_stage")


def test_every_registered_model_has_a_verifier():
    from edgeopt.models.registry import MODEL_IDS

    assert set(MODEL_IDS) <= set(VERIFIERS)
