"""Solve one model every way and check the answers against each other (spec §5.6, §8 item 1).

Model-agnostic: these functions only talk to a model, :func:`edgeopt.solvers.solve` and the
:class:`~edgeopt.solvers.Result` objects it returns. Objectives and bounds are in the model's
objective unit (EdgeSplit: seconds of total training time J); times are wall-clock seconds.

    >>> from edgeopt.models import load_instance
    >>> from edgeopt.analysis.compare import compare_methods, cross_check
    >>> frame = compare_methods(load_instance("tests/data/edgesplit_t1.json"))  # doctest: +SKIP
    >>> cross_check(frame)["passed"].all()                                      # doctest: +SKIP
    True
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from edgeopt.solvers import Result, Status, Timings, solve, solvers_for

AGREEMENT = 1e-6
"""Relative tolerance of every cross-check: exact methods agree, bounds <= J* <= objectives."""

COLUMNS = [
    "method", "kind", "solver", "status", "objective", "bound", "gap", "verified", "wall_time_s",
    "ratio_to_exact", "gap_to_exact", "must_not_beat_exact", "message",
]
"""Columns of :func:`summarize`, in order."""

KIND_ORDER = ("exact", "relaxation", "approximate", "heuristic", "baseline")
"""Row order of the comparison tables."""


def applicable_methods(model: Any) -> list[str]:
    """Every registered method of the model's id that is installed here and applies to ``model``."""
    specs = solvers_for(model.model_id).specs
    usable = [s for s in specs if s.availability() and s.unsupported_reason(model) is None]
    return [s.method for s in sorted(usable, key=lambda s: KIND_ORDER.index(s.kind))]


def run_methods(
    model: Any,
    methods: Iterable[str] | None = None,
    time_limit: float | None = None,
    progress: bool = True,
) -> dict[str, Result]:
    """Solve ``model`` with each method (default: :func:`applicable_methods`).

    ``time_limit`` is in seconds per method. A method that raises is recorded as a Result
    with status ``error`` and the exception as its message, so one failure does not hide the
    other answers.
    """
    from tqdm import tqdm

    chosen = applicable_methods(model) if methods is None else list(methods)
    results: dict[str, Result] = {}
    for method in tqdm(chosen, desc="methods", disable=not progress, leave=False):
        started = time.perf_counter()
        try:
            results[method] = solve(model, method, time_limit=time_limit)
        except Exception as error:  # noqa: BLE001 - reported in the table, not swallowed
            results[method] = Result(
                model.model_id, method, Status.ERROR, message=f"{type(error).__name__}: {error}",
                timings=Timings(wall_s=time.perf_counter() - started),
            )
    return results


def summarize(results: dict[str, Result]) -> pd.DataFrame:
    """One row per Result: the comparison table of :func:`compare_methods`.

    Columns: ``method``, ``kind``, ``solver``, ``status``, ``objective`` and ``bound``
    (model objective unit), ``gap`` (relative (objective - bound)/objective, the method's
    own claim), ``verified`` (the model's evaluator accepted the point), ``wall_time_s``,
    ``ratio_to_exact`` (objective / J*, where J* is the best verified optimal objective of an
    exact method: the speed-up of the exact plan over this method), ``gap_to_exact``
    (ratio - 1), ``must_not_beat_exact`` (the spec requires objective >= J*) and ``message``.
    """
    rows = []
    for method, result in results.items():
        spec = solvers_for(result.model).spec(method)
        rows.append(
            {
                "method": method,
                "kind": spec.kind,
                "solver": result.solver or (spec.backends[0] if spec.backends else "python"),
                "status": result.status.value,
                "objective": _float(result.objective),
                "bound": _float(result.bound),
                "gap": _float(result.gap),
                "verified": result.verified,
                "wall_time_s": result.timings.wall_s,
                "must_not_beat_exact": _must_not_beat_exact(spec.kind, result),
                "message": result.message or "",
            }
        )
    frame = pd.DataFrame(rows)
    frame["ratio_to_exact"] = frame["objective"] / exact_optimum(frame)
    frame["gap_to_exact"] = frame["ratio_to_exact"] - 1.0
    return frame[COLUMNS]


def compare_methods(
    model: Any,
    methods: list[str] | None = None,
    time_limit: float | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Solve ``model`` every way and tabulate the outcomes (see :func:`summarize` for columns).

    ``methods`` defaults to every registered, installed and applicable method; ``time_limit``
    is in seconds per method; ``progress`` shows a tqdm bar. The Results themselves are kept
    in ``frame.attrs["results"]`` (method -> Result) for plots and further analysis.
    """
    results = run_methods(model, methods, time_limit=time_limit, progress=progress)
    frame = summarize(results)
    frame.attrs["results"] = results
    return frame


def exact_optimum(frame: pd.DataFrame) -> float:
    """J*: the smallest objective of a verified ``optimal`` exact row (NaN if there is none)."""
    accepted = frame["verified"].map(_accepted)
    proven = frame[(frame["kind"] == "exact") & (frame["status"] == "optimal") & accepted]
    return float(proven["objective"].min()) if len(proven) else float("nan")


def cross_check(frame: pd.DataFrame, tolerance: float = AGREEMENT) -> pd.DataFrame:
    """Every check of spec §5.6 that the table of :func:`compare_methods` allows, one per row.

    * ``verified``: the evaluator accepted every returned point (and no method failed);
    * ``exact agrees``: each exact method is optimal and within relative ``tolerance`` of J*;
    * ``bound <= J*``: each reported lower bound (relaxation, exact) is at most J*;
    * ``J* <= objective``: each heuristic, relaxation (rounded), approximate and baseline
      point is at least J* (not required of a point outside the model's own decision set,
      e.g. FedAvg's full local training when the instance does not allow it).

    Columns: ``check``, ``method``, ``value``, ``reference`` (J*, model unit), ``passed``,
    ``detail``. A missing J* makes every check that needs it fail.
    """
    reference = exact_optimum(frame)
    slack = tolerance * abs(reference)
    checks = []

    def add(check: str, method: str, value: float, passed: bool, detail: str = "") -> None:
        checks.append(
            {"check": check, "method": method, "value": value, "reference": reference,
             "passed": bool(passed), "detail": detail}
        )

    for row in frame.itertuples(index=False):
        has_point = Status(row.status).has_point
        if has_point or row.status == "error":
            add("verified", row.method, row.objective, _accepted(row.verified), row.message)
        if row.kind == "exact":
            within = abs(row.objective - reference) <= slack
            agrees = (row.status == "optimal" and within) or (
                row.status == "infeasible" and math.isnan(reference)  # all exact methods agree
            )
            difference = (row.objective - reference) / reference
            add("exact agrees", row.method, row.objective, agrees,
                f"status {row.status}, relative difference {difference:.2e}")
        if pd.notna(row.bound):
            add("bound <= J*", row.method, row.bound, row.bound <= reference + slack,
                f"relative margin {(reference - row.bound) / reference:.2e}")
        if row.kind != "exact" and has_point and row.must_not_beat_exact:
            add("J* <= objective", row.method, row.objective, row.objective >= reference - slack,
                f"gap to J* {row.gap_to_exact:.3e}")
    columns = ["check", "method", "value", "reference", "passed", "detail"]
    return pd.DataFrame(checks, columns=columns)


def speedup_table(
    model: Any,
    exact: str = "exact",
    baselines: Iterable[str] | None = None,
    heuristics: Iterable[str] = ("alternating",),
    name: str | None = None,
) -> pd.DataFrame:
    """EdgeSplit's exact plan against each baseline (spec §8 item 1).

    ``exact`` is a method id or kind; ``baselines`` default to every registered method of
    kind 'baseline'; ``heuristics`` are listed too. Columns: ``instance`` (``name``, default
    the model's repr), ``method``, ``kind``, ``status``, ``per_round_s`` and ``total_s``
    (objective J = rounds x per-round time, seconds) and ``speedup`` = J(method) / J(exact)
    as a float, or the method's status ('infeasible', 'error') when it has no feasible point.
    """
    specs = solvers_for(model.model_id).specs
    if baselines is None:
        baselines = [s.method for s in specs if s.kind == "baseline"]
    results = {"exact": solve(model, exact)}
    results.update({method: solve(model, method) for method in [*heuristics, *baselines]})
    exact_objective = results["exact"].objective if results["exact"].feasible else None
    reference = float("nan") if exact_objective is None else exact_objective
    rows = []
    for result in results.values():
        objective = result.objective if result.feasible else None
        rounds = result.extras.get("rounds_used")
        rows.append(
            {
                "instance": name or repr(model),
                "method": result.method,
                "kind": solvers_for(result.model).spec(result.method).kind,
                "status": result.status.value,
                "per_round_s": objective / rounds if objective is not None and rounds else float("nan"),
                "total_s": float("nan") if objective is None else objective,
                "speedup": result.status.value if objective is None else objective / reference,
            }
        )
    return pd.DataFrame(rows)


def _must_not_beat_exact(kind: str, result: Result) -> bool:
    """Whether spec §5.6 requires this point's objective to be >= the exact optimum.

    A point chosen outside the model's own decision set may beat it: a Result marks that with
    ``extras["full_local_allowed"] is False`` (EdgeSplit's FedAvg baseline, spec §5.5/§5.6).
    """
    return kind != "exact" and result.extras.get("full_local_allowed") is not False


def _float(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _accepted(verified: Any) -> bool:
    """True only for a boolean True (``verified`` is None when nothing was checked)."""
    return isinstance(verified, (bool, np.bool_)) and bool(verified)
