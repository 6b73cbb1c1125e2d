"""Re-solve vs rebuild: a bandwidth sweep of one relaxation, solved three ways side by side.

For each fleet size N, a random preset fleet (``preset(NAME, devices=N, seed=SEED)``) is
swept over ``--points`` values of ``bandwidth_hz`` (log-spaced, ``--low``..``--high`` times
the preset's). Each point is solved three times, interleaved so machine noise hits all alike:

* rebuild: ``solve(model, METHOD, SOLVER)``, which builds and canonicalises the problem anew;
* in place: a Resolver whose program is built with ``active_set=False`` (the factory's
  keyword): the full DPP program with its Parameters changed in place;
* active set: ``resolver_for(...).solve(model)``, the certified active set (a small DPP
  program over each device's few promising options, priced over all options; see
  ``edgeopt.solvers.edgesplit.relaxation_resolve.ParametricRelaxation``).

Times are ``time.perf_counter`` around each call [s] (the models are built beforehand, for
all alike). A ratio is total rebuild time / total time of a re-solve path (target >= 5x for
the active set); the differences are the largest relative |objective| and |bound|
differences of the active-set path from the rebuild over the sweep. ``build share`` is the
part of the rebuild time spent building and canonicalising (``Result.timings.build_s``), the
only part the in-place path can skip: its ratio cannot exceed 1 / (1 - build share).
``certified`` counts the points the active set answered without the full program.

    python benchmarks/resolve_vs_rebuild.py --sizes 20 100 --points 200
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from edgeopt.models import preset
from edgeopt.solvers import Result, solve
from edgeopt.solvers.parametric import Resolver, resolver_for

TARGET_RATIO = 5.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="edgesplit")
    parser.add_argument("--preset", default="vgg16-cifar10-hetero8")
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 100], help="devices N")
    parser.add_argument("--seed", type=int, default=0, help="random fleet seed")
    parser.add_argument("--points", type=int, default=200, help="sweep points")
    parser.add_argument("--low", type=float, default=0.25, help="lowest bandwidth / preset's")
    parser.add_argument("--high", type=float, default=4.0, help="highest bandwidth / preset's")
    parser.add_argument("--method", default="relaxation_perspective")
    parser.add_argument("--solver", default=None, help="backend (default: the method's first)")
    return parser.parse_args(argv)


def relative(a: float | None, b: float | None) -> float:
    """|a - b| / max(1, |a|), or inf when one side is missing."""
    if a is None or b is None:
        return float("inf")
    return abs(a - b) / max(1.0, abs(a))


def paths(args: argparse.Namespace, base) -> tuple[Resolver, Resolver]:
    """(in-place resolver with the full program, active-set resolver) for ``base``."""
    active = resolver_for(base, args.method, args.solver)
    if active is None:
        raise SystemExit(f"method {args.method!r} has no re-solve path")
    full = Resolver(active.spec, active.backend, partial(active.factory, active_set=False))
    return full, active


def timed(call: Callable[..., Result], *args: Any) -> tuple[Result, float]:
    """(result of ``call(*args)``, its wall time [s])."""
    started = time.perf_counter()
    result = call(*args)
    return result, time.perf_counter() - started


def sweep(args: argparse.Namespace, size: int) -> dict[str, float]:
    """Time one sweep three ways; return the totals [s], ratios, differences and counts."""
    base = preset(args.model, args.preset, devices=size, seed=args.seed)
    values = base.instance.bandwidth_hz * np.geomspace(args.low, args.high, args.points)
    models = [base.with_changes(bandwidth_hz=float(value)) for value in values]
    full, active = paths(args, base)
    solve(base, args.method, args.solver)  # import the backend before timing
    rebuild_s = in_place_s = active_s = 0.0
    objective_diff = bound_diff = build_s = 0.0
    verified = 0
    for model in models:
        fresh, seconds = timed(solve, model, args.method, args.solver)
        rebuild_s += seconds
        in_place_s += timed(full.solve, model)[1]
        again, seconds = timed(active.solve, model)
        active_s += seconds
        build_s += fresh.timings.build_s
        objective_diff = max(objective_diff, relative(fresh.objective, again.objective))
        bound_diff = max(bound_diff, relative(fresh.bound, again.bound))
        verified += bool(fresh.verified and again.verified)
    return {
        "devices": size, "rebuild_s": rebuild_s, "in_place_s": in_place_s, "active_s": active_s,
        "in_place_ratio": rebuild_s / in_place_s, "ratio": rebuild_s / active_s,
        "build_share": build_s / rebuild_s, "objective_diff": objective_diff,
        "bound_diff": bound_diff, "verified": verified, "builds": active.builds,
        "certified": getattr(active.program, "certified", 0),
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print(f"{args.model} {args.preset}, {args.method} ({args.solver or 'default backend'}), "
          f"{args.points}-point sweep of bandwidth_hz x [{args.low:g}, {args.high:g}]")
    print(f"{'N':>5} {'rebuild [s]':>12} {'in place [s]':>13} {'ratio':>7} "
          f"{'active set [s]':>15} {'ratio':>7} {'build share':>12} {'max |dJ|/J':>11} "
          f"{'max |dbound|':>13} {'verified':>9} {'certified':>10} {'builds':>7}  target")
    for size in args.sizes:
        row = sweep(args, size)
        verdict = "PASS" if row["ratio"] >= TARGET_RATIO else "FAIL"
        print(f"{size:5d} {row['rebuild_s']:12.3f} {row['in_place_s']:13.3f} "
              f"{row['in_place_ratio']:6.2f}x {row['active_s']:15.3f} {row['ratio']:6.2f}x "
              f"{row['build_share']:12.0%} "
              f"{row['objective_diff']:11.1e} {row['bound_diff']:13.1e} "
              f"{row['verified']:4d}/{args.points:<4d} {row['certified']:10d} {row['builds']:7d}  "
              f">= {TARGET_RATIO:g}x {verdict}", flush=True)


if __name__ == "__main__":
    main()
