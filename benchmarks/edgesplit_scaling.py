"""EdgeSplit solver scaling: exact, relaxation and heuristic methods side by side (spec §8.5).

Random VGG16-CIFAR10 fleets of N devices (``EdgeSplitModel.preset("vgg16-cifar10-hetero8",
devices=N, seed=s)``), several seeds. Each method's wall time is the median over repeats of
``Result.timings.wall_s`` (``time.perf_counter`` around the method inside ``solve``); the
table shows the median over seeds, the ratio to ``bisection`` measured in the same run, the
largest gap (J - J*)/J* to the bisection optimum J* and the relaxation gap (J* - bound)/J*.

    python benchmarks/edgesplit_scaling.py --sizes 10 100 1000 --seeds 3 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import pandas as pd

from edgeopt.models.edgesplit import EdgeSplitModel
from edgeopt.solvers import Result, solve, solvers_for

METHODS = (
    "bisection", "bisection_mckp", "misocp_perspective", "relaxation_perspective", "alternating",
)
REFERENCE = "bisection"
SCIP_METHODS = {"misocp_perspective", "misocp_bigm"}
TARGET_LARGE_N, TARGET_LARGE_S = 1000, 1.0
TARGET_SCIP_N, TARGET_SCIP_RATIO = 100, 100.0
SAME_OPTIMUM = 1e-6
"""Relative difference under which two objectives count as the same optimum."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000],
                        help="fleet sizes N (devices)")
    parser.add_argument("--seeds", type=int, default=3,
                        help="random fleets per size (seeds 0..k-1)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed runs per (size, seed, method); the median is kept")
    parser.add_argument("--repeat-budget", type=float, default=2.0,
                        help="stop repeating a method once its runs took this many seconds")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), help="method ids to compare")
    parser.add_argument("--scip-max-devices", type=int, default=100,
                        help="skip SCIP (MISOCP) methods above this many devices: they are slow")
    parser.add_argument("--time-limit", type=float, default=600.0, help="per solve [s]")
    parser.add_argument("--preset", default="vgg16-cifar10-hetero8")
    return parser.parse_args(argv)


def timed(model: EdgeSplitModel, method: str, args: argparse.Namespace) -> tuple[float, Result]:
    """Median ``wall_s`` [s] over up to ``args.repeats`` solves, and the last Result."""
    times: list[float] = []
    while len(times) < args.repeats and sum(times) < args.repeat_budget:
        result = solve(model, method, time_limit=args.time_limit)
        times.append(result.timings.wall_s)
    return statistics.median(times), result


def run(args: argparse.Namespace) -> pd.DataFrame:
    """One row per (size, seed, method): time_s, status, objective, bound."""
    warm = EdgeSplitModel.preset(args.preset, devices=4, seed=0)
    for method in args.methods:  # import backends and build caches before timing
        solve(warm, method)
    rows = []
    for size in args.sizes:
        methods = [m for m in args.methods if m not in SCIP_METHODS or size <= args.scip_max_devices]
        for method in sorted(set(args.methods) - set(methods)):
            print(f"note: {method} skipped at N = {size} (> --scip-max-devices "
                  f"{args.scip_max_devices}; SCIP is slow)", flush=True)
        for seed in range(args.seeds):
            model = EdgeSplitModel.preset(args.preset, devices=size, seed=seed)
            for method in methods:
                seconds, result = timed(model, method, args)
                print(f"N = {size:5d}  seed {seed}  {method:24s} {seconds:10.4f} s  "
                      f"{result.status.value}", file=sys.stderr, flush=True)
                rows.append({"devices": size, "seed": seed, "method": method, "time_s": seconds,
                             "status": result.status.value, "objective": result.objective,
                             "bound": result.bound})
    return pd.DataFrame(rows)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (size, method): median time, ratio to bisection, worst gap to J*, relaxation gap."""
    reference = runs[runs["method"] == REFERENCE].set_index(["devices", "seed"])["objective"]
    ref_time = runs[runs["method"] == REFERENCE].groupby("devices")["time_s"].median()
    runs = runs.join(reference.rename("optimum"), on=["devices", "seed"])
    runs["gap_to_optimum"] = (runs["objective"] - runs["optimum"]) / runs["optimum"]
    runs["bound_gap"] = (runs["optimum"] - runs["bound"]) / runs["optimum"]
    table = runs.groupby(["devices", "method"], sort=False).agg(
        median_time_s=("time_s", "median"),
        max_gap_to_optimum=("gap_to_optimum", "max"),
        max_bound_gap=("bound_gap", "max"),
        statuses=("status", lambda s: ", ".join(f"{k} x{v}" for k, v in s.value_counts().items())),
    )
    reference_time = table.index.get_level_values("devices").map(ref_time).to_numpy()
    table.insert(1, "time_vs_bisection", table["median_time_s"] / reference_time)
    return table


def report_targets(runs: pd.DataFrame, table: pd.DataFrame) -> None:
    """Print the two scaling targets and whether this run meets them."""
    print("\nTargets")
    key = (TARGET_LARGE_N, REFERENCE)
    if key in table.index:
        seconds = table.loc[key, "median_time_s"]
        verdict = "PASS" if seconds < TARGET_LARGE_S else "FAIL"
        print(f"  bisection at N = {TARGET_LARGE_N}: median {seconds:.4f} s "
              f"(target: well under {TARGET_LARGE_S:g} s) -> {verdict}")
    else:
        print(f"  bisection at N = {TARGET_LARGE_N}: not run (add {TARGET_LARGE_N} to --sizes)")
    key = (TARGET_SCIP_N, "misocp_perspective")
    if key not in table.index:
        print(f"  SCIP MISOCP vs bisection at N = {TARGET_SCIP_N}: not run")
        return
    ratio = table.loc[key, "time_vs_bisection"]
    at_size = runs[runs["devices"] == TARGET_SCIP_N].set_index("seed")
    scip = at_size[at_size["method"] == key[1]]
    optimum = at_size[at_size["method"] == REFERENCE]["objective"]
    gap = float((scip["objective"] / optimum - 1).abs().max())
    limited = (scip["status"] == "time_limit").any()
    same = gap <= SAME_OPTIMUM
    verdict = "PASS" if ratio >= TARGET_SCIP_RATIO and same else "FAIL"
    print(f"  SCIP MISOCP / bisection time at N = {TARGET_SCIP_N}: {ratio:,.0f}x"
          f"{' (SCIP hit the time limit: a lower bound)' if limited else ''}, "
          f"worst relative objective difference {gap:.2e} "
          f"(target: >= {TARGET_SCIP_RATIO:g}x with the same optimum within {SAME_OPTIMUM:g}) "
          f"-> {verdict}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    registered = {spec.method for spec in solvers_for("edgesplit").specs}
    unknown = sorted(set(args.methods) - registered)
    if unknown:
        names = ", ".join(sorted(registered))
        raise SystemExit(f"unknown method(s) {unknown}; registered: {names}")
    if REFERENCE not in args.methods:
        args.methods.insert(0, REFERENCE)
    for spec in solvers_for("edgesplit").specs:
        if spec.method in args.methods and not spec.availability():
            print(f"note: {spec.method} skipped: backend {spec.backends[0]!r} is not installed")
            args.methods.remove(spec.method)
    started = time.perf_counter()
    runs = run(args)
    table = summarize(runs)
    with pd.option_context("display.width", 140, "display.max_columns", 20,
                           "display.float_format", "{:.4g}".format):
        print(f"\nEdgeSplit model (edgeopt reconstruction): {args.preset}, random fleets, "
              f"{args.seeds} seed(s), median of <= {args.repeats} repeats")
        print(table.to_string())
    report_targets(runs, table)
    print(f"\ntotal benchmark time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
