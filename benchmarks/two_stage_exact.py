"""Two-stage ``exact``: time on K = 20 fleets with 1000 x 1000 round caps, against solving
every (M, N) cell, plus the pruning rate; and a full enumeration on a small grid.

Large instance (per seed): ``TwoStageModel.preset("default", devices=K, seed=s,
max_pretrain_rounds=1000, max_finetune_rounds=1000)``. Columns:

* ``exact_s``: wall time of ``solve_exact`` (perf_counter; median of ``--repeats`` runs), its
  status, Psi*, the cell and the relative gap to its bound; ``relaxed``/``integer`` solves and
  branch-and-bound ``nodes``; ``pruned`` = share of the grid's cells closed without any solve
  (by block bounds, cell bounds or infeasibility of whole blocks); ``int_s`` the part of the
  time spent in the integer cell searches.
* Every cell: the number of feasible cells is counted exactly (for each M the largest N that
  passes the unit-batch pre-check, by bisection: the feasible cells form a down-set), then
  ``--sample`` feasible cells drawn at random are solved as a full enumeration would solve
  them: relaxed program, then the integer cell problem to optimality with no cutoff
  (``--cell-limit`` seconds each; a cell stopped by it counts with the limit, so that mean is
  a lower bound), sharing one compiled set of cvxpy programs. ``every_s`` = feasible cells x mean per-cell time: an EXTRAPOLATION, not a
  run (the full grid would take days). ``relax_only_s`` = feasible cells x mean relaxed-solve
  time, what even a relaxation-only enumeration would cost. Ratios are to ``exact_s``.

Small grid (``--small-devices``, ``--small-rounds``, ``--small-energy``, ``--small-delay``;
budgets tight enough that several cells need their integer problem): exact with pruning and
``prune=False`` (every feasible cell's integer problem solved) are both run; the table shows
both times, their ratio (measured) and whether the optima agree (relative 1e-9).

    python benchmarks/two_stage_exact.py                       # seeds 1 2, about 5-10 minutes
    python benchmarks/two_stage_exact.py --seeds 1 --sample 4  # quicker
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from edgeopt.models.two_stage import TwoStageModel
from edgeopt.solvers.two_stage.bounds import CellBounds
from edgeopt.solvers.two_stage.cell import CellPrograms
from edgeopt.solvers.two_stage.exact import Deadline, solve_exact
from edgeopt.solvers.two_stage.integer import CellVector, branch_and_bound

TARGET_S = 10.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--rounds", type=int, nargs=2, default=[1000, 1000], help="M_max N_max")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=1, help="exact runs per seed (median)")
    parser.add_argument("--sample", type=int, default=8, help="cells timed for the extrapolation")
    parser.add_argument("--cell-limit", type=float, default=30.0, help="seconds per sampled cell")
    parser.add_argument("--small-devices", type=int, default=4)
    parser.add_argument("--small-rounds", type=int, nargs=2, default=[20, 10])
    parser.add_argument("--small-energy", type=float, default=1.0, help="E_max [J]")
    parser.add_argument("--small-delay", type=float, default=6.0, help="T_max [s]")
    parser.add_argument("--small-seeds", type=int, nargs="+", default=[1])
    return parser.parse_args(argv)


def feasible_frontier(model: TwoStageModel) -> list[int]:
    """For each M, the largest N whose cell passes the unit-batch pre-check (-1: none)."""
    d = model.derived
    out = []
    for M in range(d.max_pretrain_rounds + 1):
        def ok(N: int, M: int = M) -> bool:
            if M + N == 0:
                return True
            vector = CellVector(model, M, N)
            return vector.feasible(np.ones(vector.size, int))

        lo, hi = -1, d.max_finetune_rounds
        if not ok(0):
            out.append(-1)
            continue
        lo = 0
        while lo < hi:  # largest feasible N in [lo, hi]
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if ok(mid) else (lo, mid - 1)
        out.append(lo)
    return out


def time_cell(model: TwoStageModel, programs: CellPrograms, M: int, N: int,
              limit: float) -> tuple[float, float, bool]:
    """(relaxed seconds, relaxed + integer seconds, finished) for one cell, no cutoff; the
    compiled programs are shared by all cells (as a full enumeration would share them)."""
    started = time.perf_counter()
    caps = CellBounds(model).caps(M, N)
    vector = CellVector(model, M, N, caps)
    root = programs.solve(M, N, box=(np.ones(vector.size), vector.cap.astype(float)),
                          integer=True)
    relaxed = time.perf_counter() - started
    deadline = Deadline(limit)
    search = branch_and_bound(model, M, N, programs, caps=caps, root=root, deadline=deadline)
    return relaxed, time.perf_counter() - started, search.complete


def large(args: argparse.Namespace) -> None:
    print(f"K = {args.devices}, round caps {args.rounds[0]} x {args.rounds[1]}, preset "
          f"'default' (seeded fleets)")
    header = (f"{'seed':>4} {'exact_s':>8} {'status':>8} {'psi*':>12} {'cell':>11} {'gap':>8} "
              f"{'relaxed':>7} {'integer':>7} {'nodes':>6} {'pruned':>9} {'int_s':>7} "
              f"{'feasible':>8} {'cell_s':>7} {'every_s':>10} {'ratio':>8} {'relax_only_s':>12} "
              f"{'ratio':>6}")
    print(header)
    rng = np.random.default_rng(0)
    for seed in args.seeds:
        model = TwoStageModel.preset("default", devices=args.devices, seed=seed,
                                     max_pretrain_rounds=args.rounds[0],
                                     max_finetune_rounds=args.rounds[1])
        times, result = [], None
        for _ in range(args.repeats):
            started = time.perf_counter()
            result = solve_exact(model)
            times.append(time.perf_counter() - started)
        exact_s = statistics.median(times)
        stats = result.extras["pruning"]
        doc = result.to_dict()
        gap = (result.objective - result.bound) / result.objective
        frontier = feasible_frontier(model)
        cells = [(M, N) for M, top in enumerate(frontier) for N in range(top + 1) if M + N]
        picks = rng.choice(len(cells), size=min(args.sample, len(cells)), replace=False)
        relaxed_t, total_t, finished = [], [], 0
        programs = CellPrograms(model)
        for M, N in ((0, 1), (1, 0), (1, 1)):  # compile the three DPP programs first
            programs.solve(M, N)
        for index in picks:
            M, N = cells[int(index)]
            r, t, done = time_cell(model, programs, M, N, args.cell_limit)
            relaxed_t.append(r)
            total_t.append(t)
            finished += done
            print(f"  sampled cell ({M}, {N}): relaxed {r:.3f} s, relaxed + integer {t:.2f} s"
                  f"{'' if done else ' (stopped by --cell-limit)'}", flush=True)
        per_cell = statistics.mean(total_t)
        every = per_cell * len(cells)
        relax_only = statistics.mean(relaxed_t) * len(cells)
        cell = f"({doc['pretrain_rounds']},{doc['finetune_rounds']})"
        print(f"{seed:>4} {exact_s:>8.2f} {result.status.value:>8} {result.objective:>12.9f} "
              f"{cell:>11} {gap:>8.1e} {stats['relaxed_solves']:>7} {stats['integer_solves']:>7} "
              f"{stats['integer_nodes']:>6} {stats['pruning_rate']:>9.6f} "
              f"{stats['integer_seconds']:>7.2f} {len(cells):>8} {per_cell:>7.3f} "
              f"{every:>10.3g} {every / exact_s:>8.3g} {relax_only:>12.3g} "
              f"{relax_only / exact_s:>6.1f}")
        if finished < len(total_t):
            print(f"     ({len(total_t) - finished} sampled cells hit --cell-limit: every_s "
                  f"and its ratio are lower bounds)")
        print(f"     target exact < {TARGET_S:g} s: {'met' if exact_s < TARGET_S else 'MISSED'}"
              f"; every_s and relax_only_s are extrapolated from {len(total_t)} sampled "
              f"cells x {len(cells)} feasible cells (of {stats['grid_cells']} in the grid)",
              flush=True)


def small(args: argparse.Namespace) -> None:
    M_max, N_max = args.small_rounds
    print(f"\nsmall grid, both run: K = {args.small_devices}, round caps {M_max} x {N_max}, "
          f"E_max = {args.small_energy:g} J, T_max = {args.small_delay:g} s")
    print(f"{'seed':>4} {'exact_s':>8} {'every_cell_s':>12} {'ratio':>6} {'psi_pruned':>12} "
          f"{'psi_every':>12} {'same':>5} {'int_solves':>10} {'every_int':>9}")
    for seed in args.small_seeds:
        model = TwoStageModel.preset("default", devices=args.small_devices, seed=seed,
                                     max_pretrain_rounds=M_max, max_finetune_rounds=N_max,
                                     energy_budget_j=args.small_energy,
                                     delay_budget_s=args.small_delay)
        started = time.perf_counter()
        pruned = solve_exact(model)
        pruned_s = time.perf_counter() - started
        started = time.perf_counter()
        every = solve_exact(model, prune=False)
        every_s = time.perf_counter() - started
        same = abs(pruned.objective - every.objective) <= 1e-9 * every.objective
        print(f"{seed:>4} {pruned_s:>8.2f} {every_s:>12.2f} {every_s / pruned_s:>6.1f} "
              f"{pruned.objective:>12.9f} {every.objective:>12.9f} {str(same):>5} "
              f"{pruned.extras['pruning']['integer_solves']:>10} "
              f"{every.extras['pruning']['integer_solves']:>9}", flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    large(args)
    small(args)


if __name__ == "__main__":
    main()
