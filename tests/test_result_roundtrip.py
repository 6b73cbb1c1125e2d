"""Results round-trip through JSON (``Result.to_json`` / ``Result.from_json``, and the CLI's
``solve --json``) with everything needed to re-check them later against their instance:
status, termination, objective, bound, gap, timings per phase, solver and version, options,
seed and the instance's content hash; ``edgeopt check`` re-evaluates and refuses a mismatch."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from edgeopt.models import load_instance, model_class
from edgeopt.solvers import solve, solver_table
from edgeopt.solvers.result import Result, Status, Timings

DATA = Path(__file__).parent / "data"
MODELS = sorted(solver_table()["model"].unique())
FIELDS = ("model", "method", "status", "termination", "objective", "bound", "gap", "timings",
          "solver", "solver_version", "options", "seed", "instance_hash", "solution",
          "device_names", "breakdown", "message", "infeasible_reason", "extras", "verified")


def instances(model_id: str) -> list:
    """The known-answer instances of ``model_id``, else its first preset."""
    paths = sorted(DATA.glob(f"{model_id}_*.json"))
    if paths:
        return [load_instance(path) for path in paths]
    cls = model_class(model_id)
    return [cls.preset(cls.preset_names()[0])]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeopt.analysis.cli", *args],
                          capture_output=True, text=True, timeout=600)


def assert_same(before: Result, after: Result) -> None:
    for name in FIELDS:
        assert getattr(after, name) == getattr(before, name), name


@pytest.mark.parametrize("kind", ["exact", "relaxation", "heuristic"])
@pytest.mark.parametrize("model_id", MODELS)
def test_every_result_survives_json(model_id, kind):
    for model in instances(model_id):
        result = solve(model, kind, seed=7)
        text = result.to_json()
        again = Result.from_json(text)
        assert_same(result, again)
        assert again.to_json() == text
        assert again.instance_hash == model.content_hash() and again.seed == 7
        document = json.loads(text)
        assert document["timings"]["wall_s"] == document["wall_time_s"] == result.timings.wall_s
        finite_gap = result.gap is not None and math.isfinite(result.gap)
        assert document["gap"] == (result.gap if finite_gap else None)


def test_the_canonical_fields_come_first_and_unchanged():
    model = load_instance(DATA / "edgesplit_t1.json")
    document = solve(model, "exact").to_dict()
    keys = list(document)
    assert keys[:4] == ["model", "status", "objective", "bound"]
    assert keys[4:8] == ["cuts", "bandwidth_hz", "server_share_flops_per_s", "per_device_time_s"]
    assert keys[8:11] == ["method", "solver", "wall_time_s"]
    assert document["cuts"] == [2, 1] and document["objective"] == pytest.approx(3.2)


def test_exact_status_timings_and_trace_are_restored():
    result = Result(
        model="edgesplit", method="alternating", status=Status.ITERATION_LIMIT, objective=5.0,
        bound=None, solution={"cuts": [1]}, device_names=("d",), termination="iteration_limit",
        timings=Timings(build_s=0.25, solve_s=1.5, wall_s=2.0, solver_reported_s=1.25),
        options={"max_iterations": 3}, seed=2, instance_hash="ab" * 32, extras={"rounds_done": 3},
    )
    import pandas as pd

    result = result.replace(trace=pd.DataFrame({"iteration": [0, 1], "objective": [6.0, 5.0]}))
    document = result.to_dict(include_trace=True)
    assert document["status"] == "feasible" and document["result_status"] == "iteration_limit"
    again = Result.from_dict(document)
    assert_same(result, again)
    assert again.trace.to_dict("list") == {"iteration": [0, 1], "objective": [6.0, 5.0]}
    assert again.extras == {"rounds_done": 3} and "rounds_done" not in again.solution


def test_a_document_without_the_new_fields_still_reads():
    old = {"model": "edgesplit", "status": "optimal", "objective": 3.2, "bound": 3.2, "cuts": [2, 1],
           "method": "bisection", "solver": None, "wall_time_s": 0.5}
    result = Result.from_dict(old)
    assert result.status is Status.OPTIMAL and result.solution == {"cuts": [2, 1]}
    assert result.timings.wall_s == 0.5 and result.instance_hash is None


@pytest.mark.parametrize(
    ("text", "named"),
    [("{", "not JSON"), ("[1, 2]", "JSON list"), ('{"model": "edgesplit"}', "status"),
     ('{"model": "x", "status": "great", "objective": 1, "bound": 1, "method": "m", "solver": null,'
      ' "wall_time_s": 0}', "status = 'great'")],
)
def test_not_a_result_is_an_error_naming_what_is_wrong(text, named):
    with pytest.raises(ValueError, match=named):
        Result.from_json(text)


def test_content_hash_depends_on_content_only(tmp_path):
    model = load_instance(DATA / "tinyfel_a.json")
    shuffled = dict(reversed(list(json.loads((DATA / "tinyfel_a.json").read_text()).items())))
    (tmp_path / "same.json").write_text(json.dumps(shuffled))
    assert load_instance(tmp_path / "same.json").content_hash() == model.content_hash()
    changed = model.with_changes({"devices[0].flops_per_s": model.get_field("devices[0].flops_per_s") * 2})
    assert changed.content_hash() != model.content_hash() and len(model.content_hash()) == 64


def test_cli_solve_json_is_read_back_and_checked(tmp_path):
    instance = DATA / "tinyfel_a.json"
    saved = tmp_path / "result.json"
    done = cli("solve", str(instance), "--json")
    saved.write_text(done.stdout)
    result = Result.from_json(done.stdout)
    assert result.status is Status.OPTIMAL and result.instance_hash == load_instance(instance).content_hash()
    assert result.timings.solve_s > 0 and result.solver == "highs"

    checked = cli("check", str(saved), str(instance), "--json")
    verdict = json.loads(checked.stdout)
    assert checked.returncode == 0 and verdict["confirmed"] is True and verdict["status"] == "optimal"
    assert verdict["evaluated_objective"] == pytest.approx(result.objective, rel=1e-12)


@pytest.mark.parametrize(
    ("factor", "status", "says"),
    [(0.5, "feasible", "replaced by the evaluator's"),  # slower but feasible: objective is wrong
     (2.0, "error", "evaluator rejected")],  # more bandwidth than the instance has
)
def test_check_rejects_a_tampered_point(factor, status, says, tmp_path):
    instance = DATA / "edgesplit_t1.json"
    document = solve(load_instance(instance), "exact").to_dict()
    document["bandwidth_hz"] = [value * factor for value in document["bandwidth_hz"]]
    saved = tmp_path / "tampered.json"
    saved.write_text(json.dumps(document))
    done = cli("check", str(saved), str(instance), "--json")
    verdict = json.loads(done.stdout)
    assert done.returncode == 1 and verdict["confirmed"] is False and verdict["status"] == status
    assert says in verdict["message"]
    assert bool(verdict["violations"]) is (status == "error")


def test_check_refuses_another_instance_or_a_result_without_hash(tmp_path):
    instance = DATA / "edgesplit_t1.json"
    model = load_instance(instance)
    document = solve(model, "exact").to_dict()
    saved = tmp_path / "result.json"
    saved.write_text(json.dumps(document))
    edited = tmp_path / "edited.json"
    model.with_changes(bandwidth_hz=model.get_field("bandwidth_hz") * 1.01).save(edited)
    refused = cli("check", str(saved), str(edited))
    assert refused.returncode == 2 and "instance_sha256" in refused.stderr and refused.stdout == ""
    other_model = cli("check", str(saved), str(DATA / "tinyfel_a.json"))
    assert other_model.returncode == 2 and "model:" in other_model.stderr

    del document["instance_sha256"]
    saved.write_text(json.dumps(document))
    unhashed = cli("check", str(saved), str(instance))
    assert unhashed.returncode == 2 and "instance_sha256 is missing" in unhashed.stderr
