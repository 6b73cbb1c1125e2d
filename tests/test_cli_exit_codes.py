"""Exit codes of ``edgeopt``: one meaning each, documented in --help, every command's help and
the README. 0 solved, 1 infeasible / no point, 2 bad input (naming the field), 3 solver or
internal error, 4 time limit without a point, 130 interrupted (141, stdout closed: see
test_machine_output)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgeopt.analysis import cli
from edgeopt.analysis.commands import exit_codes
from edgeopt.solvers.registry import SolverSpec
from edgeopt.solvers.result import Result, Status

DATA = Path(__file__).parent / "data"
README = Path(__file__).parent.parent / "README.md"
T1 = str(DATA / "edgesplit_t1.json")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeopt.analysis.cli", *args],
                          capture_output=True, text=True, timeout=600)


def with_solver(monkeypatch, behaviour) -> None:
    """Replace every method's implementation by ``behaviour(model, **kwargs)``."""
    monkeypatch.setattr(SolverSpec, "load", lambda self: behaviour)


def test_0_solved():
    assert cli.main(["solve", T1]) == exit_codes.SOLVED == 0


def test_1_infeasible_names_the_binding_device(tmp_path, capsys):
    document = json.loads(Path(T1).read_text())
    document["devices"][0]["memory_bytes"] = 1000
    (tmp_path / "tight.json").write_text(json.dumps(document))
    assert cli.main(["solve", str(tmp_path / "tight.json"), "--json"]) == exit_codes.NO_POINT == 1
    result = json.loads(capsys.readouterr().out)
    assert result["infeasible_reason"] == "memory" and "device 'fast'" in result["message"]
    assert cli.main(["solve", str(DATA / "tinyfel_c.json")]) == 1
    assert cli.main(["validate", str(DATA / "tinyfel_c.json")]) == 1


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["solve", T1, "--method", "nosuch"], "unknown method 'nosuch'"),
        (["solve", T1, "--solver", "gurobi"], "cannot use solver 'gurobi'; allowed"),
        (["solve", str(DATA / "edgesplit_t3.json"), "--method", "bisection"], "does not apply"),
        (["validate", "BAD"], "devices[1].flops_per_s = -1"),
        (["solve", "BAD"], "devices[1].flops_per_s = -1"),
        (["preset", "edgesplit", "nosuch"], "unknown edgesplit preset 'nosuch'"),
    ],
)
def test_2_bad_input_names_the_field(args, named, tmp_path, capsys):
    document = json.loads(Path(T1).read_text())
    document["devices"][1]["flops_per_s"] = -1
    (tmp_path / "bad.json").write_text(json.dumps(document))
    args = [str(tmp_path / "bad.json") if a == "BAD" else a for a in args]
    assert cli.main(args) == exit_codes.BAD_INPUT == 2
    captured = capsys.readouterr()
    assert named in captured.err and captured.out == ""


def test_3_a_solver_failure_is_not_bad_input(monkeypatch, capsys):
    def fails(model, **kwargs):
        raise RuntimeError("HiGHS stopped with Numerical error")

    with_solver(monkeypatch, fails)
    assert cli.main(["solve", T1]) == exit_codes.SOLVER_ERROR == 3
    assert "HiGHS stopped" in capsys.readouterr().err


def test_3_a_value_error_inside_a_solver_is_not_bad_input(monkeypatch, capsys):
    def fails(model, **kwargs):
        raise ValueError("math domain error")

    with_solver(monkeypatch, fails)
    assert cli.main(["solve", T1]) == 3
    assert "internal error: ValueError: math domain error" in capsys.readouterr().err


def test_3_a_point_the_evaluator_rejects(monkeypatch, capsys):
    def wrong(model, **kwargs):
        point = {"cuts": [2, 1], "bandwidth_hz": [1e12, 1e12], "server_share_flops_per_s": None,
                 "per_device_time_s": [1.0, 1.0]}
        return Result(model=model.model_id, method="bisection", status=Status.OPTIMAL,
                      objective=1.0, bound=1.0, solution=point)

    with_solver(monkeypatch, wrong)
    assert cli.main(["solve", T1, "--json"]) == 3
    assert json.loads(capsys.readouterr().out)["status"] == "error"


def test_3_a_backend_that_is_not_installed():
    code = (
        "import sys\n"
        "from edgeopt.solvers import registry\n"
        "registry.BACKEND_MODULES['scip'] = ('edgeopt_no_such_backend_module',)\n"
        "from edgeopt.analysis.cli import main\n"
        f"sys.exit(main(['solve', {T1!r}, '--method', 'misocp_perspective']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 3 and "not installed; install it or choose another --solver" in done.stderr


def test_4_time_limit_without_a_point(monkeypatch, capsys):
    def stopped(model, **kwargs):
        return Result(model=model.model_id, method="bisection", status=Status.TIME_LIMIT,
                      bound=2.5, termination="time_limit", message="no point within 0.01 s")

    with_solver(monkeypatch, stopped)
    assert cli.main(["solve", T1, "--time-limit", "0.01", "--json"]) == exit_codes.TIME_LIMIT == 4
    document = json.loads(capsys.readouterr().out)
    assert document["status"] == "time_limit" and document["bound"] == 2.5 and document["objective"] is None


def test_130_interrupted(monkeypatch):
    def interrupted(model, **kwargs):
        raise KeyboardInterrupt

    with_solver(monkeypatch, interrupted)
    assert cli.main(["solve", T1]) == exit_codes.INTERRUPTED == 130


def test_every_code_is_documented_in_help_commands_and_readme():
    parser = cli.build_parser()
    text = parser.format_help()
    readme = README.read_text()
    for code, meaning in exit_codes.MEANINGS.items():
        assert f"  {code:<4} {meaning}" in text, code
        assert f"| {code} |" in readme, code
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, command in subparsers.choices.items():
        help_text = command.format_help()
        assert "exit codes:" in help_text, name
        for code in exit_codes.COMMAND_CODES.get(name, (0, 2, 3)):
            assert f"  {code:<4} " in help_text, (name, code)
    solve_help = run("solve", "--help")
    assert solve_help.returncode == 0 and "4    time limit reached without a point" in solve_help.stdout
