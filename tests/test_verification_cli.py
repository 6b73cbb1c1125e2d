"""``edgeopt verify``: outputs, JSON fields and exit codes (0 passed, 1 failed, 2 bad input)."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
import sympy as sp

from edgeopt.analysis.cli import main
from edgeopt.analysis.verification import registry
from edgeopt.analysis.verification.report import Check
from edgeopt.analysis.verification.simulation import Configuration, block_rng
from edgeopt.analysis.verification.steps import Step


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["verify", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_symbolic_json_lists_every_step(capsys):
    code, out, err = run(capsys, "tinyfel", "--symbolic", "--json")
    assert code == 0, err
    checks = json.loads(out)
    assert len(checks) >= 14
    assert all({"name", "kind", "passed"} <= set(c) for c in checks)
    assert all(c["kind"] == "symbolic" and c["passed"] for c in checks)
    assert {c["category"] for c in checks} == {"step"}


def test_symbolic_text_report(capsys):
    code, out, _ = run(capsys, "edgesplit", "--symbolic")
    assert code == 0
    assert "verification of edgesplit" in out and "all checks passed" in out and "E1 descent lemma" in out


def test_simulate_json_has_measured_bound_and_seeds(capsys):
    code, out, err = run(capsys, "edgesplit", "--simulate", "--quick", "--seeds", "8", "--json")
    assert code == 0, err
    checks = json.loads(out)
    simulated = [c for c in checks if c["kind"] == "simulated"]
    assert simulated and len(simulated) == len(checks)
    for check in simulated:
        assert {"measured", "bound", "seeds"} <= set(check) and check["seeds"] == 8


@pytest.mark.parametrize(
    "args, message",
    [
        (("nosuch",), "no verifier registered for model 'nosuch'"),
        (("edgesplit", "--seeds", "1"), "--seeds 1: must be an integer >= 2"),
        (("edgesplit", "--workers", "0"), "--workers 0: must be an integer >= 1"),
    ],
)
def test_bad_input_exits_2_with_a_message(capsys, args, message):
    code, out, err = run(capsys, *args)
    assert code == 2 and message in err and "Traceback" not in err and out == ""


def test_a_model_without_a_verifier_exits_2(capsys, monkeypatch):
    monkeypatch.delitem(registry.VERIFIERS, "two_stage")
    code, _, err = run(capsys, "two_stage")
    assert code == 2 and "no verifier registered for model 'two_stage'" in err


# ---- a plug-in whose checks fail: exit 1 and the failing configuration is printed ----------


def _failing_plugin() -> types.ModuleType:
    module = types.ModuleType("fake_verifier")
    x = sp.Symbol("x", positive=True)
    module.MODEL_ID = "fake"
    module.steps = lambda: [Step("wrong step", "x <= x/2", "<=", x, x / 2,
                                 sample=lambda rng, n: {x: rng.uniform(1, 2, n)})]
    module.configurations = lambda quick: [
        Configuration("too small", "draws <= 0.1", {"level": 0.1}, 0.1, "exact")
    ]
    module.simulate = lambda configuration, block: block_rng(0, block).uniform(0.5, 1.0, block[1])
    module.compare = lambda seeds, runner, quick: (
        [Check("compare", "simulated", "comparison", "ok", "by hand", True, measured=1.0, bound=2.0,
               seeds=seeds)],
        ["a note"],
    )
    return module


@pytest.fixture
def failing(monkeypatch):
    monkeypatch.setitem(sys.modules, "fake_verifier", _failing_plugin())
    monkeypatch.setitem(registry.VERIFIERS, "fake", "fake_verifier")


def test_failures_exit_1_and_print_the_configuration(capsys, failing):
    code, out, err = run(capsys, "fake", "--seeds", "4")
    assert code == 1
    assert "[FAIL] symbolic  wrong step" in out and "[FAIL] simulated too small" in out
    assert 'failing configuration: {"level": 0.1}' in out
    assert "FAILED too small; configuration: {'level': 0.1}" in err
    assert "note: a note" in out


def test_failures_in_json(capsys, failing):
    code, out, _ = run(capsys, "fake", "--simulate", "--seeds", "4", "--json")
    checks = json.loads(out)
    assert code == 1
    assert [c["passed"] for c in checks] == [False, True]
    assert checks[0]["config"] == {"level": 0.1} and checks[0]["bound"] == 0.1
    assert 0.5 <= checks[0]["measured"] <= 1.0 and np.isclose(checks[0]["ratio"], checks[0]["measured"] / 0.1)
