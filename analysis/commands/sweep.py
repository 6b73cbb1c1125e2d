"""``edgeopt sweep``: solve an instance over a grid of parameter values, writing Parquet.

    edgeopt sweep INSTANCE.json --param KEY=V1,V2,... [--param KEY=log:START:STOP:NUM |
        KEY=lin:START:STOP:NUM ...] --method M [--solver S] --out FILE.parquet
        [--workers N | --scheduler ADDRESS | --serial] [--resume] [--time-limit SEC]

KEY is a field path of the canonical instance JSON (``bandwidth_hz``,
``devices[2].flops_per_s``, ``devices[*].memory_bytes`` (every device), ``learning.shift``;
see :mod:`edgeopt.models.paths`); several ``--param`` make a full grid.
``lin:START:STOP:NUM`` is NUM evenly spaced values, ``log:START:STOP:NUM`` NUM values evenly
spaced in log scale from START to STOP (both > 0). A value written as an integer literal is an
int (integer fields such as ``rounds`` need one), ``true``/``false`` are booleans, other
numbers floats, anything else a string. Exit codes: 0 done, 2 bad input, 3 internal error.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

_INTEGER = re.compile(r"[+-]?\d+")


def register(subparsers: Any) -> None:
    """Add the ``sweep`` parser."""
    parser = subparsers.add_parser(
        "sweep", help="solve an instance over a parameter grid, writing a Parquet table",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("instance", help="canonical instance JSON file")
    parser.add_argument(
        "--param", "-p", action="append", required=True, metavar="KEY=VALUES",
        help="KEY=V1,V2,... or KEY=lin:START:STOP:NUM or KEY=log:START:STOP:NUM (repeatable)",
    )
    parser.add_argument("--method", "-m", default="exact",
                        help="kind or method id (default: exact)")
    parser.add_argument("--solver", "-s", default=None, help="backend, e.g. scip, highs, clarabel")
    parser.add_argument("--out", "-o", required=True, metavar="FILE.parquet", help="output table")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None, metavar="N",
                       help="local Dask worker processes (default: the machine's cores)")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="run on an existing Dask cluster, e.g. tcp://host:8786")
    where.add_argument("--serial", action="store_true", help="solve in this process (debugging)")
    parser.add_argument("--resume", action="store_true",
                        help="solve only the points missing from --out")
    parser.add_argument("--time-limit", type=float, default=None, metavar="SEC",
                        help="seconds per point")
    parser.add_argument("--json", action="store_true",
                        help="print what was written as JSON: file, points, count per status")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the sweep; 0 when every point is in ``--out``, 2 on bad input (message, no traceback)."""
    from pathlib import Path

    from edgeopt.analysis.commands.streams import print_json, solver_output
    from edgeopt.analysis.sweep import SweepError, sweep

    try:
        grid = dict(parse_param(text) for text in args.param)
        if len(grid) != len(args.param):
            raise SweepError("a KEY is given in more than one --param")
        if args.workers is not None and args.workers < 1:
            raise SweepError(f"--workers {args.workers}: must be >= 1")
        if not Path(args.instance).is_file():
            raise SweepError(f"{args.instance}: no such file")
        with solver_output(getattr(args, "verbose", False)):
            frame = sweep(
                Path(args.instance), grid=grid, method=args.method, solver=args.solver,
                time_limit=args.time_limit, out=args.out, resume=args.resume, workers=args.workers,
                scheduler=args.scheduler, serial=args.serial,
            )
    except SweepError as error:
        print(f"edgeopt sweep: error: {error}", file=sys.stderr)
        return 2
    statuses = {str(status): int(count) for status, count in frame["status"].value_counts().items()}
    if args.json:
        print_json({"output": args.out, "points": len(frame), "statuses": statuses})
    else:
        counts = ", ".join(f"{status} {count}" for status, count in statuses.items())
        print(f"wrote {args.out}: {len(frame)} points ({counts})")
    return 0


def parse_param(text: str) -> tuple[str, list[Any]]:
    """``'rounds=1,2'`` -> ``('rounds', [1, 2])``; ``lin:``/``log:`` ranges expanded."""
    from edgeopt.analysis.sweep import SweepError

    key, sep, spec = text.partition("=")
    key, spec = key.strip(), spec.strip()
    if not sep or not key or not spec:
        raise SweepError(f"--param {text!r}: expected KEY=V1,V2,... or KEY=lin|log:START:STOP:NUM")
    head = spec.split(":", 1)[0]
    if head in ("lin", "log"):
        return key, _spaced(key, head, spec.split(":")[1:])
    return key, [parse_value(part.strip()) for part in spec.split(",")]


def parse_value(text: str) -> Any:
    """An int for an integer literal, a bool for true/false, else a float, else the text."""
    if _INTEGER.fullmatch(text):
        return int(text)
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return float(text)
    except ValueError:
        return text


def _spaced(key: str, scale: str, parts: list[str]) -> list[Any]:
    """NUM values from START to STOP; ints when both ends are integer literals and every value
    is integral."""
    import numpy as np

    from edgeopt.analysis.sweep import SweepError

    usage = f"{key}={scale}:{':'.join(parts)}: expected {scale}:START:STOP:NUM"
    if len(parts) != 3 or not _INTEGER.fullmatch(parts[2]) or int(parts[2]) < 1:
        raise SweepError(f"{usage} with NUM an integer >= 1")
    ends = [parse_value(part) for part in parts[:2]]
    if any(isinstance(end, (bool, str)) for end in ends):
        raise SweepError(f"{usage} with numbers START and STOP")
    if scale == "log" and min(ends) <= 0:
        raise SweepError(f"{usage} with START, STOP > 0 (log scale)")
    space = np.geomspace if scale == "log" else np.linspace
    values = [float(v) for v in space(ends[0], ends[1], int(parts[2]))]
    integral = all(abs(v - round(v)) <= 1e-9 * max(1.0, abs(v)) for v in values)
    if all(isinstance(end, int) for end in ends) and integral:
        return [int(round(v)) for v in values]
    return values
