"""Two-stage ``exact`` at the issue's size: 100 devices, rounds up to 10,000 in each stage.

Fleets ``TwoStageModel.preset("default", devices=K, seed=s, max_pretrain_rounds=R,
max_finetune_rounds=R)``; per seed the median of ``--repeats`` wall times of ``exact``
(``Result.timings.wall_s``), its status, Psi*, the cell, the grid size and how it was
closed (block splits, relaxed and integer solves), then the target (< 30 s) as a ratio.
A warm-up solve imports the backends first.

    python benchmarks/two_stage_large.py --seeds 1 2 3 --repeats 3
    python benchmarks/two_stage_large.py --energy 3000 --delay 1000   # both stages in play
"""

from __future__ import annotations

import argparse
import statistics
import sys

import pandas as pd

from edgeopt.models.two_stage import TwoStageModel
from edgeopt.solvers import solve

TARGET_S = 30.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=10_000, help="M_max = N_max")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--energy", type=float, default=None,
                        help="E_max [J] (default: the preset's 30 J, where 100 devices cannot "
                             "afford fine-tuning; 3000 makes both stages compete)")
    parser.add_argument("--delay", type=float, default=None, help="T_max [s] (default: 100)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    solve(TwoStageModel.preset("default", devices=4, seed=1, max_pretrain_rounds=5,
                               max_finetune_rounds=5), "exact")
    rows = []
    for seed in args.seeds:
        budgets = {key: value for key, value in (("energy_budget_j", args.energy),
                                                 ("delay_budget_s", args.delay)) if value}
        model = TwoStageModel.preset("default", devices=args.devices, seed=seed,
                                     max_pretrain_rounds=args.rounds,
                                     max_finetune_rounds=args.rounds, **budgets)
        times = []
        for _ in range(args.repeats):
            result = solve(model, "exact")
            times.append(result.timings.wall_s)
        pruning = result.extras["pruning"]
        rows.append({
            "seed": seed, "exact_s": statistics.median(times), "status": result.status.value,
            "psi": result.objective, "gap": result.gap,
            "M": result.solution.get("pretrain_rounds"), "N": result.solution.get("finetune_rounds"),
            "cells": pruning["grid_cells"], "blocks_split": pruning["blocks_split"],
            "relaxed_solves": pruning["relaxed_solves"], "integer_solves": pruning["integer_solves"],
        })
        print(f"seed {seed}: {rows[-1]['exact_s']:.3f} s {result.status.value}", file=sys.stderr)
    frame = pd.DataFrame(rows)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(frame.to_string(index=False))
    median = float(frame["exact_s"].median())
    optimal = bool((frame["status"] == "optimal").all())
    verdict = "PASS" if median < TARGET_S and optimal else "FAIL"
    print(f"\nexact at K = {args.devices}, caps {args.rounds} x {args.rounds}: median {median:.3f} s "
          f"= {median / TARGET_S:.3f} of the {TARGET_S:g} s target, all optimal: {optimal} -> {verdict}")


if __name__ == "__main__":
    main()
