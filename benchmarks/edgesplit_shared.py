"""Shared-server EdgeSplit: the exact ``bisection_lagrangian`` against SCIP's perspective MISOCP
(``misocp_perspective``) side by side, and alone at large fleets (issue 15, item 1).

Random VGG16-CIFAR10 fleets, ``EdgeSplitModel.preset("vgg16-cifar10-hetero8", devices=N,
seed=s, server_mode="shared")``, several seeds. Each method's time is the median over repeats
of ``Result.timings.wall_s`` (as in ``edgesplit_scaling.py``); per size the table shows the
median over seeds, SCIP's time over ours measured on the same fleets (the median of the
per-fleet ratios), the largest relative objective difference to ``bisection_lagrangian``,
the largest gap (objective - bound)/objective and the statuses. The paper's alternating
heuristic is timed too, with its gap to the proven optimum.

    python benchmarks/edgesplit_shared.py --sizes 10 30 100 1000 10000 --seeds 3 --repeats 5
"""

from __future__ import annotations

import argparse
import sys
import time

import pandas as pd
from edgesplit_scaling import timed

from edgeopt.models.edgesplit import EdgeSplitModel
from edgeopt.solvers import solve

REFERENCE = "bisection_lagrangian"
SCIP = "misocp_perspective"
METHODS = (REFERENCE, SCIP, "alternating")
SAME_OPTIMUM = 1e-6
"""Relative difference under which two objectives count as the same optimum."""
TARGET_RATIO_N, TARGET_RATIO = 100, 50.0
TARGET_TIMES = {1000: 10.0, 10_000: 120.0}
"""Issue 15: >= 50x faster than SCIP at 100 devices; 1000 devices < 10 s; 10,000 < 2 min."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 30, 100, 1000, 10_000],
                        help="fleet sizes N (devices)")
    parser.add_argument("--seeds", type=int, default=3, help="random fleets per size (seeds 0..k-1)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed runs per (size, seed, method); the median is kept")
    parser.add_argument("--repeat-budget", type=float, default=5.0,
                        help="stop repeating a method once its runs took this many seconds")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), help="method ids to compare")
    parser.add_argument("--scip-max-devices", type=int, default=100,
                        help="skip SCIP above this many devices: it is slow")
    parser.add_argument("--time-limit", type=float, default=600.0, help="per solve [s]")
    parser.add_argument("--preset", default="vgg16-cifar10-hetero8")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> pd.DataFrame:
    """One row per (size, seed, method): time_s, status, objective, bound."""
    warm = EdgeSplitModel.preset(args.preset, devices=4, seed=0, server_mode="shared")
    for method in args.methods:  # import backends before timing
        solve(warm, method)
    rows = []
    for size in args.sizes:
        methods = [m for m in args.methods if m != SCIP or size <= args.scip_max_devices]
        if SCIP in args.methods and SCIP not in methods:
            print(f"note: {SCIP} skipped at N = {size} (> --scip-max-devices {args.scip_max_devices})",
                  file=sys.stderr, flush=True)
        for seed in range(args.seeds):
            model = EdgeSplitModel.preset(args.preset, devices=size, seed=seed, server_mode="shared")
            for method in methods:
                seconds, result = timed(model, method, args)
                print(f"N = {size:6d}  seed {seed}  {method:22s} {seconds:10.4f} s  {result.status.value}",
                      file=sys.stderr, flush=True)
                rows.append({"devices": size, "seed": seed, "method": method, "time_s": seconds,
                             "status": result.status.value, "objective": result.objective,
                             "bound": result.bound})
    return pd.DataFrame(rows)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (size, method): median time, median per-fleet time ratio to the reference, largest
    objective difference to the reference, largest own gap, statuses."""
    reference = runs[runs["method"] == REFERENCE].set_index(["devices", "seed"])
    runs = runs.join(reference[["objective", "time_s"]].add_prefix("ref_"), on=["devices", "seed"])
    runs["time_ratio"] = runs["time_s"] / runs["ref_time_s"]
    runs["diff_to_reference"] = (runs["objective"] - runs["ref_objective"]).abs() / runs["ref_objective"]
    runs["gap"] = (runs["objective"] - runs["bound"]) / runs["objective"]
    return runs.groupby(["devices", "method"], sort=False).agg(
        median_time_s=("time_s", "median"),
        time_vs_lagrangian=("time_ratio", "median"),
        max_diff_to_lagrangian=("diff_to_reference", "max"),
        max_gap=("gap", "max"),
        statuses=("status", lambda s: ", ".join(f"{k} x{v}" for k, v in s.value_counts().items())),
    )


def report_targets(runs: pd.DataFrame, table: pd.DataFrame) -> None:
    """Print the three targets of issue 15 item 1 and whether this run meets them."""
    print("\nTargets")
    key = (TARGET_RATIO_N, SCIP)
    if key in table.index:
        ratio = table.loc[key, "time_vs_lagrangian"]
        worst = table.loc[key, "max_diff_to_lagrangian"]
        limited = "time_limit" in table.loc[key, "statuses"]
        verdict = "PASS" if ratio >= TARGET_RATIO and worst <= SAME_OPTIMUM else "FAIL"
        print(f"  SCIP / {REFERENCE} time at N = {TARGET_RATIO_N}: {ratio:,.0f}x"
              f"{' (SCIP hit the time limit: a lower bound)' if limited else ''}, worst relative "
              f"objective difference {worst:.1e} (target >= {TARGET_RATIO:g}x, same optimum) -> {verdict}")
    else:
        print(f"  SCIP / {REFERENCE} at N = {TARGET_RATIO_N}: not run")
    for size, limit in TARGET_TIMES.items():
        key = (size, REFERENCE)
        if key not in table.index:
            print(f"  {REFERENCE} at N = {size}: not run (add {size} to --sizes)")
            continue
        at_size = runs[(runs["devices"] == size) & (runs["method"] == REFERENCE)]
        slowest = float(at_size["time_s"].max())
        proven = bool((at_size["status"] == "optimal").all())
        verdict = "PASS" if slowest < limit and proven else "FAIL"
        print(f"  {REFERENCE} at N = {size}: median {table.loc[key, 'median_time_s']:.3f} s, slowest fleet "
              f"{slowest:.3f} s, all optimal: {proven} (target < {limit:g} s) -> {verdict}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if REFERENCE not in args.methods:
        args.methods.insert(0, REFERENCE)
    started = time.perf_counter()
    runs = run(args)
    table = summarize(runs)
    with pd.option_context("display.width", 160, "display.max_columns", 20,
                           "display.float_format", "{:.4g}".format):
        print(f"\nEdgeSplit model (edgeopt reconstruction), shared server: {args.preset}, random fleets, "
              f"{args.seeds} seed(s), median of <= {args.repeats} repeats")
        print(table.to_string())
    report_targets(runs, table)
    print(f"\ntotal benchmark time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
