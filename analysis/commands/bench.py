"""``edgeopt bench``: time methods side by side on a preset family; write a CSV and a profile.

    edgeopt bench --model edgesplit --preset vgg16-cifar10-hetero8 --sizes 10 100 --seeds 3 \\
        --methods bisection relaxation_perspective alternating --out bench.csv --plot bench.png

Exit codes: 0 done (whatever the statuses in the table), 2 bad input, 3 internal error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgeopt.files import atomic_path

EXIT_OK, EXIT_BAD_INPUT = 0, 2
DEFAULT_METHODS = ("exact", "relaxation", "heuristic")
TABLE_SUFFIXES = (".csv", ".parquet")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``bench`` parser to the ``edgeopt`` sub-commands."""
    parser = subparsers.add_parser(
        "bench", help="time methods side by side on a preset family (CSV/Parquet + profile PNG)",
        description="Run every method on every instance of a preset family, with interleaved "
                    "repeats; write one row per (instance, method) and print a summary.",
    )
    parser.add_argument("--model", required=True, help="model id, e.g. edgesplit")
    parser.add_argument("--preset", required=True, help="preset name of the model")
    parser.add_argument("--sizes", type=int, nargs="+", required=True, metavar="N",
                        help="instance sizes (EdgeSplit: devices)")
    parser.add_argument("--seeds", type=int, default=1, metavar="K",
                        help="random instances per size: seeds 0..K-1 (default 1)")
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), metavar="M",
                        help="method ids or kinds, optionally METHOD:SOLVER "
                             f"(default: {' '.join(DEFAULT_METHODS)})")
    parser.add_argument("--repeats", type=int, default=3, metavar="R",
                        help="timed runs per pair; the median is reported (default 3)")
    parser.add_argument("--time-limit", type=float, default=None, metavar="SEC",
                        help="seconds per solve")
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="table: .csv or .parquet")
    parser.add_argument("--plot", default=None, metavar="FILE.png",
                        help="Dolan-More performance profile of wall time")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the summary as a JSON list of rows")
    parser.set_defaults(handler=run)


def _check(args: argparse.Namespace) -> str | None:
    """The first problem with ``args`` (a message), or None."""
    if any(size < 1 for size in args.sizes):
        return f"--sizes {args.sizes}: every size must be an integer >= 1"
    if args.seeds < 1:
        return f"--seeds {args.seeds}: must be an integer >= 1"
    if args.repeats < 1:
        return f"--repeats {args.repeats}: must be an integer >= 1"
    if args.time_limit is not None and not 0 < args.time_limit < float("inf"):
        return f"--time-limit {args.time_limit}: must be a finite number of seconds > 0"
    if Path(args.out).suffix not in TABLE_SUFFIXES:
        return f"--out {args.out}: the file must end in {' or '.join(TABLE_SUFFIXES)}"
    if args.plot is not None and Path(args.plot).suffix != ".png":
        return f"--plot {args.plot}: the file must end in .png"
    return None


def run(args: argparse.Namespace) -> int:
    """Run the benchmark of ``args``; print the summary; write the table (and plot)."""
    from edgeopt.models import InstanceError

    problem = _check(args)
    if problem:
        return _bad(problem)
    from edgeopt.analysis.bench import bench, family, summary
    from edgeopt.analysis.commands.streams import print_json, solver_output

    try:
        instances = family(args.model, args.preset, args.sizes, range(args.seeds)).instances()
        with solver_output(getattr(args, "verbose", False)):
            frame = bench(instances, args.methods, repeats=args.repeats,
                          time_limit=args.time_limit, progress=not args.quiet)
    except (InstanceError, ValueError) as error:  # unknown model, preset, method or solver
        return _bad(str(error))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table = frame.copy()
    table.attrs = {}  # the Result objects stay in Python; the file holds the table only
    with atomic_path(out) as temporary:
        if out.suffix == ".parquet":
            table.to_parquet(temporary, index=False)
        else:
            table.to_csv(temporary, index=False)
    table_summary = summary(frame)
    if args.json:
        print_json(table_summary.reset_index().to_dict(orient="records"))
    else:
        print(table_summary.to_string(float_format=lambda x: f"{x:.4g}"))
    print(f"wrote {out} ({len(frame)} rows)", file=sys.stderr)
    if args.plot:
        from edgeopt.analysis.plots.profiles import plot_performance_profile

        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        figure = plot_performance_profile(frame, "time", title=f"{args.model} {args.preset}")
        with atomic_path(args.plot) as temporary:
            figure.savefig(temporary, dpi=120)
        print(f"wrote {args.plot}", file=sys.stderr)
    return EXIT_OK


def _bad(message: str) -> int:
    print(f"edgeopt bench: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT
