"""``edgeopt sensitivity``: local derivatives, elasticities and a tornado chart of one instance.

    edgeopt sensitivity INSTANCE.json --param KEY [--param KEY ...] [--method M] [--solver S]
        [--step H] [--tornado FRACTION] [--out FILE.csv] [--plot FILE.png]

KEY is a field path of the canonical instance JSON (``bandwidth_hz``, ``devices[2].flops_per_s``).
Prints one row per KEY (see :func:`edgeopt.analysis.sensitivity.local_sensitivity`); with
``--tornado`` adds J at p (1 -+ FRACTION). ``--out`` writes the table as CSV, ``--plot`` the
tornado chart (with ``--tornado``) or the elasticity bars. Exit codes: 0 done, 2 bad input,
3 solver or internal error.
"""

from __future__ import annotations

import argparse
import sys

from edgeopt.files import atomic_path

EXIT_OK, EXIT_BAD_INPUT = 0, 2


class _BadInput(Exception):
    """A user error: printed without a traceback, exit code 2."""


def _relative_step(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must lie in (0, 1), e.g. 1e-4 or 0.1")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sensitivity`` sub-command."""
    parser = subparsers.add_parser(
        "sensitivity", help="derivatives, elasticities and tornado data of the optimal objective")
    parser.add_argument("instance", help="canonical instance JSON file")
    parser.add_argument("--param", "-p", action="append", required=True, metavar="KEY",
                        help="field path, e.g. bandwidth_hz or devices[2].flops_per_s (repeatable)")
    parser.add_argument("--method", "-m", default="exact", help="method or kind (default: exact)")
    parser.add_argument("--solver", "-s", default=None, help="backend of --method")
    parser.add_argument("--step", type=_relative_step, default=1e-4, metavar="H",
                        help="relative finite-difference step (default 1e-4)")
    parser.add_argument("--tornado", type=_relative_step, default=None, metavar="FRACTION",
                        help="also evaluate each KEY at p (1 -+ FRACTION), e.g. 0.1")
    parser.add_argument("--out", default=None, metavar="FILE.csv", help="write the table as CSV")
    parser.add_argument("--plot", default=None, metavar="FILE.png",
                        help="tornado chart (with --tornado), else elasticity bars")
    parser.add_argument("--json", action="store_true", help="print the table as a JSON list of rows")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the command; bad input is reported on stderr with exit code 2."""
    from edgeopt.analysis.commands.streams import print_json, solver_output

    try:
        with solver_output(getattr(args, "verbose", False)):
            table, figure = _compute(args)
    except _BadInput as error:
        print(f"edgeopt sensitivity: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print_json(table.to_dict(orient="records"))
    else:
        print(table.to_string(index=False, float_format=lambda x: f"{x:.6g}"))
    if args.out:
        with atomic_path(args.out) as temporary:
            table.to_csv(temporary, index=False)
        print(f"wrote {args.out}", file=sys.stderr)
    if args.plot:
        with atomic_path(args.plot) as temporary:
            figure.savefig(temporary, dpi=120)
        print(f"wrote {args.plot}", file=sys.stderr)
    return EXIT_OK


def _compute(args: argparse.Namespace):
    from pathlib import Path

    from edgeopt.analysis.plots.sensitivity import plot_elasticities, plot_tornado
    from edgeopt.analysis.sensitivity import local_sensitivity, tornado_data
    from edgeopt.models import InstanceError, load_instance
    from edgeopt.models.paths import FieldPathError

    if not Path(args.instance).is_file():
        raise _BadInput(f"{args.instance}: no such file")
    try:
        model = load_instance(Path(args.instance))
    except InstanceError as error:
        raise _BadInput(f"{args.instance}: {error}") from None
    params = list(dict.fromkeys(args.param))
    try:
        table = local_sensitivity(model, params, args.method, args.solver, step=args.step)
        tornado = None
        if args.tornado is not None:
            tornado = tornado_data(model, params, args.tornado, args.method, args.solver)
    except (FieldPathError, ValueError) as error:  # a solver failure (RuntimeError) is exit 3
        raise _BadInput(str(error)) from None
    if tornado is None:
        return table, (plot_elasticities(table) if args.plot else None)
    columns = ["param", "low_value", "high_value", "objective_low", "objective_high", "swing"]
    table = table.merge(tornado[columns], on="param", how="left")
    return table, (plot_tornado(tornado) if args.plot else None)
