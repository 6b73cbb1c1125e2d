"""The ``edgeopt`` command line: outputs, exit codes, no tracebacks on bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import known_answer_path


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgeopt.analysis.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_solve_json_is_exactly_the_canonical_solution():
    done = run("solve", str(known_answer_path("t1")), "--method", "exact", "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["model"] == "edgesplit" and document["status"] == "optimal"
    assert document["objective"] == pytest.approx(3.2) and document["cuts"] == [2, 1]


def test_solve_table_is_readable():
    done = run("solve", str(known_answer_path("t3")), "--method", "heuristic")
    assert done.returncode == 0
    assert "alternating" in done.stdout and "per_device_time_s" in done.stdout and "d1" in done.stdout


def test_infeasible_instance_exits_1_naming_the_device(tmp_path):
    document = json.loads(known_answer_path("t1").read_text())
    document["devices"][0]["memory_bytes"] = 1000
    path = tmp_path / "tight.json"
    path.write_text(json.dumps(document))
    done = run("solve", str(path), "--json")
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert result["status"] == "infeasible" and result["infeasible_reason"] == "memory"
    assert "device 'fast'" in result["message"] and "needs >= 5000000 bytes" in result["message"]
    validated = run("validate", str(path))
    assert validated.returncode == 1 and "no memory-feasible cut" in validated.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("solve", "missing.json"),
        ("solve", "{bad}"),
        ("solve", "T1", "--method", "nosuch"),
        ("solve", "T3", "--method", "bisection"),
        ("solve", "T1", "--solver", "gurobi"),
        ("solve", "T1", "--time-limit", "0"),
        ("solve", "T1", "--time-limit", "soon"),
        ("preset", "edgesplit", "nosuch-preset"),
        ("preset", "nosuch-model", "x"),
        ("preset", "edgesplit", "vgg16-cifar10-hetero8", "--devices", "0"),
        ("validate", "BAD"),
    ],
)
def test_bad_input_exits_2_without_a_traceback(args, tmp_path):
    bad = tmp_path / "bad.json"
    document = json.loads(known_answer_path("t1").read_text())
    document["devices"][1]["flops_per_s"] = -1
    bad.write_text(json.dumps(document))
    names = {"T1": str(known_answer_path("t1")), "T3": str(known_answer_path("t3")), "BAD": str(bad)}
    done = run(*[names.get(a, a) for a in args])
    assert done.returncode == 2, (args, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert "error" in done.stderr


def test_validate_reports_the_field_path(tmp_path):
    document = json.loads(known_answer_path("t1").read_text())
    document["devices"][1]["flops_per_s"] = -1
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    done = run("validate", str(path))
    assert "devices[1].flops_per_s = -1: must be a finite number > 0" in done.stderr


def test_preset_round_trip_through_validate_and_solve(tmp_path):
    path = tmp_path / "fleet.json"
    made = run("preset", "edgesplit", "vgg16-cifar10-hetero8", "--devices", "5", "--seed", "3", "-o", str(path))
    assert made.returncode == 0, made.stderr
    assert run("validate", str(path)).returncode == 0
    solved = run("solve", str(path), "--json")
    assert solved.returncode == 0 and len(json.loads(solved.stdout)["cuts"]) == 5


def test_solvers_lists_every_method():
    done = run("solvers")
    assert done.returncode == 0
    for method in ("bisection", "misocp_perspective", "relaxation_perspective", "alternating"):
        assert method in done.stdout


def test_command_line_does_not_import_backends_for_pure_python_methods():
    code = (
        "import sys; from edgeopt.analysis.cli import main; "
        f"main(['solve', {str(known_answer_path('t1'))!r}, '--json']); "
        "print(sorted(m for m in ('pyomo', 'cvxpy', 'pyscipopt', 'highspy', 'sympy') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "[]"
