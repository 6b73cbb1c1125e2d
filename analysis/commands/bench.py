"""``edgeopt bench``: time methods side by side on a preset family; write a CSV and a profile.

    edgeopt bench --model edgesplit --preset vgg16-cifar10-hetero8 --sizes 10 100 --seeds 3 \\
        --methods bisection relaxation_perspective alternating --out bench.csv --plot bench.png
    edgeopt bench --scaling --out scaling.csv --plot scaling.png     # every model, log-log

``--scaling`` runs each model's default family (:data:`~edgeopt.analysis.bench.SCALING_FAMILIES`;
``--model`` keeps one model, ``--sizes`` replaces the sizes) with the exact, relaxation and
heuristic kinds, writes the scaling table (median seconds per model, method and fleet size,
time relative to the exact method, measured log-log slope and the exact methods' stated
cost growth) and plots devices against seconds on log-log axes, one panel per model.

Exit codes: 0 done (whatever the statuses in the table), 2 bad input, 3 internal error.
"""

from __future__ import annotations

import argparse
import dataclasses
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
    parser.add_argument("--model", help="model id, e.g. edgesplit (required without --scaling)")
    parser.add_argument("--preset", help="preset name of the model (required without --scaling)")
    parser.add_argument("--sizes", type=int, nargs="+", metavar="N",
                        help="instance sizes (EdgeSplit: devices; required without --scaling)")
    parser.add_argument("--scaling", action="store_true",
                        help="scaling table and log-log plot over every model's default family")
    parser.add_argument("--seeds", type=int, default=1, metavar="K",
                        help="random instances per size: seeds 0..K-1 (default 1)")
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), metavar="M",
                        help="method ids or kinds, optionally METHOD:SOLVER "
                             f"(default: {' '.join(DEFAULT_METHODS)})")
    parser.add_argument("--repeats", type=int, default=None, metavar="R",
                        help="timed runs per pair; the median is reported (default 3; 1 with "
                             "--scaling)")
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
    if not args.scaling:
        for flag in ("model", "preset", "sizes"):
            if getattr(args, flag) is None:
                return f"--{flag} is required (unless --scaling)"
    if args.sizes is not None and any(size < 1 for size in args.sizes):
        return f"--sizes {args.sizes}: every size must be an integer >= 1"
    if args.seeds < 1:
        return f"--seeds {args.seeds}: must be an integer >= 1"
    if args.repeats is not None and args.repeats < 1:
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
    if args.scaling:
        return run_scaling(args)
    args.repeats = 3 if args.repeats is None else args.repeats
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


def run_scaling(args: argparse.Namespace) -> int:
    """``--scaling``: the scaling table of every (or ``--model``'s) default family, written
    to ``--out``, printed (or as JSON), and its log-log plot."""
    from edgeopt.analysis.bench import SCALING_FAMILIES, plot_scaling, scaling, scaling_table
    from edgeopt.analysis.commands.streams import print_json, solver_output
    from edgeopt.models import InstanceError

    families = [f for f in SCALING_FAMILIES if args.model in (None, f.model_id)]
    if not families:
        known = ", ".join(f.model_id for f in SCALING_FAMILIES)
        return _bad(f"--model {args.model}: no scaling family (known: {known})")
    if args.preset is not None:
        families = [dataclasses.replace(f, preset=args.preset) for f in families]
    try:
        with solver_output(getattr(args, "verbose", False)):
            frame = scaling(families, args.methods, range(args.seeds), args.sizes,
                            repeats=args.repeats or 1, time_limit=args.time_limit,
                            progress=not args.quiet)
    except (InstanceError, ValueError) as error:
        return _bad(str(error))
    table = scaling_table(frame, families)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as temporary:
        if out.suffix == ".parquet":
            table.to_parquet(temporary, index=False)
        else:
            table.to_csv(temporary, index=False)
    if args.json:
        print_json(table.to_dict(orient="records"))
    else:
        shown = table.drop(columns=["stated_growth"])
        print(shown.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
        for (model, method), text in table.groupby(["model", "method_id"])["stated_growth"].first().items():
            if text:
                print(f"{model} {method}: {text}")
    print(f"wrote {out} ({len(table)} rows)", file=sys.stderr)
    if args.plot:
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(args.plot) as temporary:
            plot_scaling(table).savefig(temporary, dpi=120)
        print(f"wrote {args.plot}", file=sys.stderr)
    return EXIT_OK


def _bad(message: str) -> int:
    print(f"edgeopt bench: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT
