"""``edgeopt.solvers.api``: method selection, honest statuses, recorded options, and one
infeasible format whether an instance is solved once or re-solved in a sweep."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgeopt.models import load_instance, model_class
from edgeopt.solvers import solve, solver_table
from edgeopt.solvers.api import OPTIMALITY_GAP, verify
from edgeopt.solvers.parametric import resolver_for
from edgeopt.solvers.result import Status

DATA = Path(__file__).parent / "data"


def test_select_checks_availability_before_applicability():
    """Deciding whether TinyFEL's MINLP applies imports its module, hence Pyomo: with SCIP
    missing, select must say so without importing anything of the backend."""
    code = f"""
import sys
from edgeopt.solvers import registry
registry.BACKEND_MODULES["scip"] = ("edgeopt_no_such_backend_module",)
from edgeopt.models import load_instance
from edgeopt.solvers.api import select
model = load_instance({str(DATA / "tinyfel_a.json")!r})
try:
    select(model, "minlp_perspective")
    print("selected")
except RuntimeError as error:
    print("unavailable" if "not installed" in str(error) else f"other: {{error}}")
print(sorted(name for name in ("pyomo", "pyscipopt") if name in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.split("\n")[:2] == ["unavailable", "[]"], (done.stdout, done.stderr)


def test_verify_demotes_optimal_when_the_bound_exceeds_the_objective():
    model = load_instance(DATA / "edgesplit_t1.json")
    result = solve(model, "exact")
    assert result.status is Status.OPTIMAL
    too_high = verify(model, result.replace(bound=result.objective * (1 + 100 * OPTIMALITY_GAP)))
    assert too_high.status is Status.FEASIBLE and too_high.verified is True
    assert "exceeds the objective" in too_high.message and "not a valid lower bound" in too_high.message
    within = verify(model, result.replace(bound=result.objective * (1 + OPTIMALITY_GAP / 10)))
    assert within.status is Status.OPTIMAL and within.message is None


def test_a_bound_above_the_objective_is_named_even_when_not_claimed_optimal():
    model = load_instance(DATA / "edgesplit_t3.json")
    result = solve(model, "heuristic")
    claimed = result.replace(status=Status.FEASIBLE, bound=result.objective * 1.5, message="stalled")
    checked = verify(model, claimed)
    assert checked.status is Status.FEASIBLE and checked.message.startswith("stalled; the reported bound")


def test_solve_keeps_the_options_the_solver_recorded():
    """two_stage's exact method records the integer solver it resolved 'auto' to."""
    model = load_instance(DATA / "two_stage_t1.json")
    result = solve(model, "exact", integer="auto", time_limit=120)
    assert result.options == {"integer": "bnb", "prune": True, "time_limit": 120}
    plain = solve(model, "exact")
    assert plain.options == {"integer": "bnb", "prune": True}


def _infeasible_edgesplit(tmp_path: Path):
    document = json.loads((DATA / "edgesplit_t1.json").read_text())
    document["devices"][0]["memory_bytes"] = 1000
    path = tmp_path / "tight.json"
    path.write_text(json.dumps(document))
    return load_instance(path)


def test_the_re_solver_keeps_the_infeasible_solution_format(tmp_path, monkeypatch):
    """An infeasible instance gives the same document from ``solve`` and from a re-solver,
    including the fields the model's infeasible format adds at the top level."""
    model = _infeasible_edgesplit(tmp_path)
    reason = model.infeasibility()
    extended = dataclasses.replace(reason, solution_fields={"min_memory_bytes": 5e6})
    monkeypatch.setattr(type(model), "infeasibility", lambda self: extended)
    once = solve(model, "relaxation")
    resolver = resolver_for(model, "relaxation")
    assert resolver is not None
    again = resolver.solve(model)
    assert once.status is again.status is Status.INFEASIBLE
    assert again.to_dict()["min_memory_bytes"] == once.to_dict()["min_memory_bytes"] == 5e6
    volatile = {"wall_time_s", "timings"}
    assert ({k: v for k, v in again.to_dict().items() if k not in volatile}
            == {k: v for k, v in once.to_dict().items() if k not in volatile})


@pytest.mark.parametrize("model_id", sorted(solver_table()["model"].unique()))
def test_every_result_names_its_instance(model_id):
    paths = sorted(DATA.glob(f"{model_id}_*.json"))
    if paths:
        model = load_instance(paths[0])
    else:
        cls = model_class(model_id)
        model = cls.preset(cls.preset_names()[0])
    result = solve(model, "heuristic")
    assert result.instance_hash == model.content_hash() and len(result.instance_hash) == 64
