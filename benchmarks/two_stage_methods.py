"""Two-stage: every method on the spec's §8 preset side by side, and what the heuristics' skip
by certified relaxed bounds buys.

Part 1 (``--repeats`` runs each, median time): every registered two-stage method on
``TwoStageModel.preset("default")`` (10 devices, M_max = 400, N_max = 200: 80,600 cells):
status, Psi, bound, Psi / Psi* of ``exact`` and time / time of ``exact``.

Part 2: the ``sca_grid`` search over the whole grid with and without the pre-check of each
cell by its certified relaxed bound (:func:`edgeopt.solvers.two_stage.sca.sca_evaluator`,
``relaxations``): time of each, their ratio, cells the SCA ran in, and whether the answers
are identical (they must be: the skip only closes cells the SCA would close). Without the
skip the search takes minutes (``--no-slow`` leaves it out).

    python benchmarks/two_stage_methods.py                # about 4-5 minutes
    python benchmarks/two_stage_methods.py --no-slow      # part 1 only, under a minute
"""

from __future__ import annotations

import argparse
import statistics
import time

from edgeopt.models.two_stage import TwoStageModel
from edgeopt.solvers import solve, solvers_for
from edgeopt.solvers.two_stage import sca
from edgeopt.solvers.two_stage.cell import CellPrograms


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per method (median)")
    parser.add_argument("--no-slow", action="store_true", help="skip part 2's slow search")
    return parser.parse_args(argv)


def every_method(model: TwoStageModel, repeats: int) -> None:
    print(f"§8 preset: K = {model.n_devices}, caps {model.size['max_pretrain_rounds']} x "
          f"{model.size['max_finetune_rounds']}; median of {repeats} runs")
    print(f"{'method':<26} {'status':>9} {'psi':>13} {'bound':>13} {'psi/psi*':>9} "
          f"{'time_s':>8} {'t/t_exact':>9}")
    rows = []
    for spec in solvers_for("two_stage").specs:
        times, result = [], None
        for _ in range(repeats):
            started = time.perf_counter()
            result = solve(model, spec.method)
            times.append(time.perf_counter() - started)
        rows.append((spec.method, result, statistics.median(times)))
    exact = next(r for m, r, _ in rows if m == "exact")
    exact_time = next(t for m, _, t in rows if m == "exact")
    for method, result, seconds in rows:
        bound = "-" if result.bound is None else f"{result.bound:.10f}"
        print(f"{method:<26} {result.status.value:>9} {result.objective:>13.10f} {bound:>13} "
              f"{result.objective / exact.objective:>9.6f} {seconds:>8.2f} "
              f"{seconds / exact_time:>9.2f}")


def skip_ratio(model: TwoStageModel) -> None:
    cells = sca.grid_cells(model)
    bounds = sca.lower_bounds(model, cells)
    print("\nsca_grid search over every cell, with and without the relaxed-bound skip")
    print(f"{'skip':>6} {'time_s':>8} {'sca_cells':>9} {'skipped':>8} {'psi':>14} {'cell':>11}")
    outcomes = []
    for relaxations in (CellPrograms(model), None):
        rows: list = []
        skipped: list = []
        evaluate = sca.sca_evaluator(model, sca.CellSCA(model), "floor", rows, None,
                                     relaxations=relaxations, skipped=skipped)
        started = time.perf_counter()
        best, _ = sca.visit_cells(cells, bounds, evaluate)
        seconds = time.perf_counter() - started
        ran = len({(r["M"], r["N"]) for r in rows})
        outcomes.append((seconds, best[0].value, best[0].cell))
        print(f"{relaxations is not None!s:>6} {seconds:>8.2f} {ran:>9} {len(skipped):>8} "
              f"{best[0].value:>14.11f} {str(best[0].cell):>11}")
    (with_skip, value_a, cell_a), (without, value_b, cell_b) = outcomes
    print(f"ratio without/with skip: {without / with_skip:.1f}x; same answer: "
          f"{value_a == value_b and cell_a == cell_b}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    model = TwoStageModel.preset("default")
    every_method(model, args.repeats)
    if not args.no_slow:
        skip_ratio(model)


if __name__ == "__main__":
    main()
