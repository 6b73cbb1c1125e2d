"""The ``edgeopt`` command line.

    edgeopt solve INSTANCE.json [--method M] [--solver S] [--time-limit SEC] [--json]
    edgeopt preset MODEL NAME [--devices N] [--seed S] [-o FILE] [--json]
    edgeopt preset MODEL list [--json]
    edgeopt validate FILE [--json]
    edgeopt solvers [--model MODEL] [--json]
    edgeopt demo

With ``--json`` stdout is exactly one JSON document; solver output (the HiGHS banner, logs)
goes to stderr with ``--verbose`` and is discarded without it.

Exit codes (see :mod:`edgeopt.analysis.commands.exit_codes`): 0 solved, 1 infeasible or no
point found, 2 bad input (the message names the field), 3 solver or internal error, 4 time
limit without a point, 130 interrupted, 141 stdout closed early.
Backends (Pyomo, cvxpy, SCIP, HiGHS) are imported only when the chosen method needs them.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from edgeopt.analysis.commands import COMMAND_MODULES, exit_codes
from edgeopt.analysis.commands.streams import print_json, silence_stdout, solver_output

if TYPE_CHECKING:
    from edgeopt.solvers.result import Result

PRESET_LIST = "list"


class BadInput(Exception):
    """A user error on the command line: printed without a traceback, exit code 2."""


class SolverFailure(Exception):
    """A solver cannot run or failed: printed without a traceback, exit code 3."""


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a finite number of seconds > 0")
    return value


def _int_at_least(minimum: int):
    """An argparse type accepting integers >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r}: must be an integer >= {minimum}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    from edgeopt import __version__

    parser = argparse.ArgumentParser(
        prog="edgeopt",
        description="Resource management for edge learning: solve, inspect and validate model instances.",
        epilog=exit_codes.epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"edgeopt {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    solve = commands.add_parser("solve", help="solve an instance file")
    solve.add_argument("instance", help="canonical instance JSON file")
    solve.add_argument(
        "--method", "-m", default="exact",
        help="exact | relaxation | heuristic, or a method id such as bisection (default: exact)",
    )
    solve.add_argument("--solver", "-s", default=None, help="backend: scip, highs, clarabel, ecos, scs")
    solve.add_argument("--time-limit", type=_positive_float, default=None, metavar="SEC", help="seconds")
    solve.add_argument("--json", action="store_true", help="print exactly the canonical solution JSON")

    preset = commands.add_parser("preset", help="write a preset instance as canonical JSON")
    preset.add_argument("model", help="model id, e.g. edgesplit")
    preset.add_argument("name", help="preset name, or 'list' for the names of the model's presets")
    preset.add_argument("--devices", type=_int_at_least(1), default=None, metavar="N")
    preset.add_argument("--seed", type=_int_at_least(0), default=None, metavar="S")
    preset.add_argument("-o", "--output", default=None, metavar="FILE", help="file (default: stdout)")
    preset.add_argument("--json", action="store_true",
                        help="'list' as a JSON list; with -o, a JSON note of what was written")

    validate = commands.add_parser("validate", help="check an instance file and report every problem")
    validate.add_argument("instance")
    validate.add_argument("--json", action="store_true",
                          help="print the verdict as JSON: valid, feasible, every problem")

    solvers = commands.add_parser("solvers", help="list methods, backends, capabilities, availability")
    solvers.add_argument("--model", default=None)
    solvers.add_argument("--json", action="store_true", help="print the table as a JSON list")

    commands.add_parser("demo", help="solve the VGG16-CIFAR preset exactly and compare with the baselines")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands)
    for name, subparser in commands.choices.items():
        _add_common_flags(subparser, default=argparse.SUPPRESS)
        subparser.epilog = exit_codes.epilog(name)
        subparser.formatter_class = argparse.RawDescriptionHelpFormatter
    _add_common_flags(parser, default=False)
    return parser


def _add_common_flags(parser: argparse.ArgumentParser, default: object) -> None:
    """``--verbose`` and ``--debug``, accepted before or after the sub-command."""
    parser.add_argument("--verbose", "-v", action="store_true", default=default,
                        help="solver logs (to stderr; stdout stays the result only)")
    parser.add_argument("--debug", action="store_true", default=default,
                        help="show tracebacks of internal errors")


def _load(path: str):
    from edgeopt.models import InstanceError, load_instance

    if not Path(path).is_file():
        raise BadInput(f"{path}: no such file")
    try:
        return load_instance(Path(path))
    except InstanceError as error:
        raise BadInput(f"{path}: {error}") from None


def cmd_solve(args: argparse.Namespace) -> int:
    from edgeopt.solvers import solve

    model = _load(args.instance)
    _select(model, args.method, args.solver)
    with solver_output(args.verbose):
        result = solve(model, args.method, args.solver, time_limit=args.time_limit)
    if args.json:
        print(result.to_json())
    else:
        print(result.summary())
        if result.device_names and result.status.has_point:
            print()
            print(result.to_frame().to_string(float_format=lambda x: f"{x:.6g}"))
    return solve_exit_code(result)


def _select(model: object, method: str, solver: str | None) -> None:
    """Check the method and backend before solving: bad names are bad input (2), a backend
    that is not installed a solver error (3); what fails after this is never bad input."""
    from edgeopt.solvers.api import BackendUnavailable, select

    try:
        select(model, method, solver)
    except BackendUnavailable as error:
        raise SolverFailure(f"{error}; install it or choose another --solver") from None
    except ValueError as error:
        raise BadInput(str(error)) from None


def solve_exit_code(result: Result) -> int:
    """0 a verified point, 3 the solver erred (or its point or objective was rejected by the
    evaluator), 4 time limit before any point, 1 otherwise (infeasible, no point found)."""
    from edgeopt.solvers.result import Status

    if result.feasible:
        return exit_codes.SOLVED
    if result.status is Status.ERROR or (result.status.has_point and result.verified is False):
        return exit_codes.SOLVER_ERROR
    if result.status is Status.TIME_LIMIT:
        return exit_codes.TIME_LIMIT
    return exit_codes.NO_POINT


def cmd_preset(args: argparse.Namespace) -> int:
    from edgeopt.models import InstanceError, model_class

    try:
        cls = model_class(args.model)
    except InstanceError as error:
        raise BadInput(str(error.issues[0])) from None
    if args.name == PRESET_LIST:
        names = cls.preset_names()
        if args.json:
            print_json(names)
        else:
            print("\n".join(names))
        return exit_codes.SOLVED
    options = {k: v for k, v in (("devices", args.devices), ("seed", args.seed)) if v is not None}
    try:
        model = cls.preset(args.name, **options)
    except (ValueError, InstanceError) as error:
        raise BadInput(str(error)) from None
    if args.output:
        model.save(args.output)
        print(f"wrote {args.output}: {model!r}", file=sys.stderr)
        if args.json:
            print_json({"output": args.output, "model": model.model_id, "preset": args.name,
                        "size": model.size})
    else:
        print(model.to_json())
    return exit_codes.SOLVED


def cmd_validate(args: argparse.Namespace) -> int:
    from edgeopt.models import InstanceError, load_instance

    if not args.json:
        return _validate_text(args)
    verdict: dict = {"file": args.instance, "valid": False, "feasible": None, "problems": []}
    code = exit_codes.BAD_INPUT
    if not Path(args.instance).is_file():
        verdict["problems"] = [{"path": None, "message": "no such file"}]
    else:
        try:
            model = load_instance(Path(args.instance))
        except InstanceError as error:
            verdict["problems"] = [
                {"path": issue.path, "message": issue.message, "text": str(issue)} for issue in error.issues
            ]
        else:
            problem = model.infeasibility()
            verdict.update(valid=True, model=model.model_id, size=model.size, feasible=problem is None)
            code = exit_codes.SOLVED
            if problem is not None:
                verdict.update(infeasible_reason=problem.reason, message=problem.message)
                code = exit_codes.NO_POINT
    for problem in verdict["problems"]:
        print(f"edgeopt validate: error: {problem.get('text', problem['message'])}", file=sys.stderr)
    print_json(verdict)
    return code


def _validate_text(args: argparse.Namespace) -> int:
    model = _load(args.instance)
    problem = model.infeasibility()
    if problem is not None:
        print(f"{args.instance}: valid but infeasible ({problem.reason}): {problem.message}")
        return exit_codes.NO_POINT
    print(f"{args.instance}: valid {model!r}")
    return exit_codes.SOLVED


def cmd_solvers(args: argparse.Namespace) -> int:
    from edgeopt.solvers import solver_table

    try:
        table = solver_table(args.model)
    except ValueError as error:
        raise BadInput(str(error)) from None
    if args.json:
        print_json(table.to_dict(orient="records"))
        return exit_codes.SOLVED
    columns = ["model", "method", "kind", "backends", "available", "proves_optimality", "reports_bound"]
    print(table[columns].to_string(index=False))
    return exit_codes.SOLVED


def cmd_demo(args: argparse.Namespace) -> int:
    from edgeopt.models.edgesplit import EdgeSplitModel
    from edgeopt.solvers import solve
    from edgeopt.solvers.registry import solvers_for

    baselines = solvers_for("edgesplit").methods("baseline")

    model = EdgeSplitModel.preset("vgg16-cifar10-hetero8")
    print(f"EdgeSplit model (edgeopt reconstruction), preset vgg16-cifar10-hetero8: {model!r}\n")
    result = solve(model, "exact")
    print(result.summary())
    print()
    print(result.to_frame().to_string(float_format=lambda x: f"{x:.6g}"))
    print("\nspeed-up of the optimum over each baseline (total training time):")
    for method in baselines:
        other = solve(model, method)
        if other.objective is None:
            print(f"  {method:<28} {other.status.value}: {other.message}")
        else:
            print(f"  {method:<28} {other.objective:12.2f} s   {other.objective / result.objective:5.2f}x")
    return exit_codes.SOLVED if result.feasible else exit_codes.NO_POINT


COMMANDS = {
    "solve": cmd_solve,
    "preset": cmd_preset,
    "validate": cmd_validate,
    "solvers": cmd_solvers,
    "demo": cmd_demo,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return exit_codes.SOLVED
    if args.verbose:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    handler = getattr(args, "handler", None) or COMMANDS[args.command]
    try:
        code = handler(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:  # the reader left early (edgeopt ... | head): not an error of ours
        silence_stdout()
        return exit_codes.STDOUT_CLOSED
    except BadInput as error:
        print(f"edgeopt {args.command}: error: {error}", file=sys.stderr)
        return exit_codes.BAD_INPUT
    except SolverFailure as error:
        print(f"edgeopt {args.command}: solver error: {error}", file=sys.stderr)
        return exit_codes.SOLVER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return exit_codes.INTERRUPTED
    except Exception as error:  # noqa: BLE001 - last line of defence: no raw tracebacks for users
        if args.debug:
            traceback.print_exc()
        print(f"edgeopt {args.command}: internal error: {type(error).__name__}: {error} "
              "(run with --debug for the traceback)", file=sys.stderr)
        return exit_codes.SOLVER_ERROR


if __name__ == "__main__":
    sys.exit(main())
