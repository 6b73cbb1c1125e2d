"""TinyFEL exact P1 methods side by side (spec §5.1, §5.3).

(a) ``bisection_mckp`` on ``resnet18-cifar10-cell`` fleets of ``--sizes`` devices (default
    100, 300, 1000), seeds 0..``--seeds``-1: the median wall time over seeds per size
    (target: < 5 s at 1000 devices) and its ratio to that target.
(b) At ``--small`` devices (default 20), on the same seeds: ``bisection_mckp`` against
    ``minlp_perspective`` (Pyomo + SCIP): the same optimum (relative 1e-6) and the time
    ratio minlp / bisection (target: >= 20x).

A method's time is ``Result.timings.wall_s`` (perf_counter around the method inside
``solve``, without the evaluator's re-check): the median of up to ``--repeats`` runs for the
bisection, one run for SCIP, whose ``--time-limit`` (default 600 s) makes the ratio a lower
bound when it is hit (marked in the table). A warm-up solve imports the backends first.
Per-run lines go to stderr, the tables and targets to stdout.

    python benchmarks/tinyfel_exact.py --seeds 3 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import pandas as pd

from edgeopt.models.tinyfel import TinyFELModel
from edgeopt.solvers import Result, solve

PRESET = "resnet18-cifar10-cell"
TARGET_LARGE_S = 5.0
TARGET_DEVICES = 1000
TARGET_RATIO = 20.0
SAME_OPTIMUM = 1e-6
"""Relative difference under which two objectives count as the same optimum."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000],
                        help="fleet sizes of part (a)")
    parser.add_argument("--small", type=int, default=20, help="devices in part (b); 0 skips it")
    parser.add_argument("--seeds", type=int, default=3, help="fleets per part (seeds 0..k-1)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed bisection runs per fleet; the median is kept")
    parser.add_argument("--time-limit", type=float, default=600.0, help="per solve [s]")
    parser.add_argument("--preset", default=PRESET)
    return parser.parse_args(argv)


def timed(model: TinyFELModel, method: str, repeats: int, time_limit: float) -> tuple[float, Result]:
    """Median ``wall_s`` [s] over ``repeats`` solves, and the last Result."""
    times = []
    for _ in range(repeats):
        result = solve(model, method, time_limit=time_limit)
        times.append(result.timings.wall_s)
    return statistics.median(times), result


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def part_a(args: argparse.Namespace) -> pd.DataFrame:
    rows = []
    for devices in args.sizes:
        for seed in range(args.seeds):
            model = TinyFELModel.preset(args.preset, devices=devices, seed=seed)
            seconds, result = timed(model, "bisection_mckp", args.repeats, args.time_limit)
            log(f"(a) K = {devices} seed {seed}: bisection_mckp {seconds:.3f} s "
                f"{result.status.value} T* = {result.objective}")
            rows.append({"devices": devices, "seed": seed, "bisection_s": seconds,
                         "status": result.status.value, "objective_s": result.objective,
                         "gap": result.gap, "verified": result.verified})
    return pd.DataFrame(rows)


def part_b(args: argparse.Namespace) -> pd.DataFrame:
    rows = []
    if args.small <= 0:
        return pd.DataFrame(rows)
    for seed in range(args.seeds):
        model = TinyFELModel.preset(args.preset, devices=args.small, seed=seed)
        fast, exact = timed(model, "bisection_mckp", args.repeats, args.time_limit)
        slow, scip = timed(model, "minlp_perspective", 1, args.time_limit)
        same = None
        if exact.objective is not None and scip.objective is not None:
            same = abs(scip.objective - exact.objective) / exact.objective
        log(f"(b) K = {args.small} seed {seed}: bisection {fast:.3f} s ({exact.status.value}), "
            f"minlp {slow:.3f} s ({scip.status.value}, {scip.extras.get('scip_rounds')} rounds)")
        rows.append({
            "devices": args.small, "seed": seed, "bisection_s": fast, "minlp_s": slow,
            "ratio": slow / fast, "bisection_status": exact.status.value,
            "minlp_status": scip.status.value, "bisection_T_s": exact.objective,
            "minlp_T_s": scip.objective, "relative_difference": same,
            "minlp_bound_s": scip.bound, "scip_rounds": scip.extras.get("scip_rounds"),
        })
    return pd.DataFrame(rows)


def report(large: pd.DataFrame, small: pd.DataFrame, args: argparse.Namespace) -> None:
    with pd.option_context("display.width", 160, "display.max_columns", 20,
                           "display.float_format", "{:.6g}".format):
        print(f"\nTinyFEL model (edgeopt reconstruction): {args.preset}, P1, "
              f"{args.seeds} seed(s), median of {args.repeats} bisection run(s)")
        print("\n(a) bisection_mckp by fleet size")
        print(large.to_string(index=False))
        summary = large.groupby("devices")["bisection_s"].agg(["median", "min", "max"])
        summary["median / target"] = summary["median"] / TARGET_LARGE_S
        print(summary.to_string())
        if not small.empty:
            print(f"\n(b) bisection_mckp vs minlp_perspective at K = {args.small}")
            print(small.to_string(index=False))
    print("\nTargets")
    at_target = large[large["devices"] == TARGET_DEVICES]
    if at_target.empty:
        print(f"  (a) not measured: add {TARGET_DEVICES} to --sizes")
    else:
        median = float(at_target["bisection_s"].median())
        proven = bool((at_target["status"] == "optimal").all() and at_target["verified"].all())
        verdict = "PASS" if median < TARGET_LARGE_S and proven else "FAIL"
        print(f"  (a) bisection_mckp at K = {TARGET_DEVICES}: median {median:.3f} s over seeds "
              f"= {median / TARGET_LARGE_S:.2f} of the {TARGET_LARGE_S:g} s target, all optimal "
              f"and verified: {proven} -> {verdict}")
    if small.empty:
        return
    ratio = float(small["ratio"].median())
    worst = small["relative_difference"].max()
    same = small["relative_difference"].notna().all() and worst <= SAME_OPTIMUM
    limited = (small["minlp_status"] == "time_limit").any()
    verdict = "PASS" if ratio >= TARGET_RATIO and same else "FAIL"
    print(f"  (b) minlp / bisection time at K = {args.small}: median {ratio:,.1f}x "
          f"(min {small['ratio'].min():,.1f}x)"
          f"{' (SCIP hit the time limit: a lower bound)' if limited else ''}, worst relative "
          f"objective difference {worst:.2e} (target >= {TARGET_RATIO:g}x with the same "
          f"optimum within {SAME_OPTIMUM:g}) -> {verdict}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    warm = TinyFELModel.preset(args.preset, devices=4, seed=1)
    for method in ("bisection_mckp", "minlp_perspective") if args.small > 0 else ("bisection_mckp",):
        solve(warm, method)
    large, small = part_a(args), part_b(args)
    report(large, small, args)
    print(f"\ntotal benchmark time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
