"""Benchmark solution methods side by side on instance families, and their performance profile.

Model-agnostic: only model ids, preset factories, :func:`edgeopt.solvers.solve` and
:class:`~edgeopt.solvers.Result` are used. Objectives and bounds are in the model's
objective unit (EdgeSplit: seconds of total training time J); times are wall-clock seconds
(``Result.timings.wall_s``: the method inside ``solve``, without the evaluator's re-check).

    >>> from edgeopt.analysis.bench import bench, family, summary
    >>> runs = bench(family("edgesplit", "vgg16-cifar10-hetero8", sizes=[10], seeds=[0, 1]),
    ...              ["bisection", "alternating"], progress=False)            # doctest: +SKIP
    >>> summary(runs)                                                          # doctest: +SKIP

A method is named by its id or kind (``"bisection"``, ``"exact"``), optionally with a
backend after a colon (``"relaxation_perspective:scs"``); that label names its rows.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from edgeopt.solvers import Result, Status, Timings, solve, solvers_for
from edgeopt.solvers.registry import KINDS

COLUMNS = [
    "instance", "method", "solver", "solver_version", "kind", "status", "solved", "verified",
    "objective", "bound", "best_bound", "best_objective", "gap_to_best_bound",
    "gap_to_best_objective", "time_s", "min_time_s", "repeats", "message",
]
"""Columns of :func:`bench` (after the instance's size columns, see :func:`bench`)."""

SKIPPED = "skipped"
"""``status`` of a method that does not apply to an instance (or is not installed here)."""

SOLVED = (Status.OPTIMAL, Status.FEASIBLE)
"""Statuses that count as solved when the evaluator verified the point (and ``infeasible``)."""


@dataclass(frozen=True)
class Family:
    """Preset instances of one model over fleet sizes and seeds.

    ``size_option`` is the preset keyword that sets the size (EdgeSplit: ``devices``);
    ``overrides`` are further preset keywords (e.g. ``server_mode="shared"``).
    """

    model_id: str
    preset: str
    sizes: tuple[int, ...]
    seeds: tuple[int, ...] = (0,)
    size_option: str = "devices"
    overrides: dict[str, Any] = field(default_factory=dict)

    def instances(self) -> dict[str, Any]:
        """``{"<preset>-n<size>-s<seed>": model}`` for every size and seed."""
        from edgeopt.models import preset

        return {
            f"{self.preset}-n{size}-s{seed}": preset(
                self.model_id, self.preset, **{self.size_option: size}, seed=seed, **self.overrides
            )
            for size in self.sizes
            for seed in self.seeds
        }


def family(
    model_id: str,
    preset_name: str,
    sizes: Sequence[int],
    seeds: Sequence[int] = (0,),
    size_option: str = "devices",
    **overrides: Any,
) -> Family:
    """A :class:`Family` of preset instances: every size in ``sizes`` times every seed."""
    return Family(model_id, preset_name, tuple(sizes), tuple(seeds), size_option, overrides)


Instances = Family | Mapping[str, Any] | Iterable["Family | tuple[str, Any]"]


def named_instances(instances: Instances) -> dict[str, Any]:
    """Normalise ``instances`` (a Family, a {name: model} mapping, or an iterable of
    Families and (name, model) pairs) to one {name: model} dict; names must be unique."""
    if isinstance(instances, Family):
        return instances.instances()
    if isinstance(instances, Mapping):
        return dict(instances)
    named: dict[str, Any] = {}
    for item in instances:
        batch = item.instances() if isinstance(item, Family) else dict([item])
        repeated = sorted(set(batch) & set(named))
        if repeated:
            raise ValueError(f"instance names {repeated} appear twice: give them unique names")
        named.update(batch)
    return named


def _split(label: str) -> tuple[str, str | None]:
    """``"method:solver"`` -> (method, solver); ``"method"`` -> (method, None)."""
    method, _, solver = label.partition(":")
    return method, solver or None


def bench(
    instances: Instances,
    methods: Sequence[str],
    repeats: int = 3,
    time_limit: float | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Run every method on every instance, ``repeats`` times, interleaved; one row per pair.

    Repeats are interleaved (each round runs every method once, the order rotating), so
    machine noise hits all methods alike; each method's module and backend are imported
    before timing. ``time_limit`` is in seconds per solve. A method that does not apply to
    an instance (``SolverSpec.unsupported_reason``, or its backend is not installed) gets a
    row with status ``skipped`` and the reason as ``message``; one that raises gets status
    ``error``.

    Columns: the instance's ``model.size`` counts (e.g. ``devices``), then :data:`COLUMNS`:
    ``time_s`` / ``min_time_s`` median / min wall time [s]; ``status``, ``objective``,
    ``bound``, ``verified`` of the last repeat; ``solved`` (a verified ``optimal`` or
    ``feasible`` point, or ``infeasible``); ``best_bound`` the largest bound any method
    proved on the instance and ``best_objective`` the smallest verified objective (points
    outside the model's decision set excluded, see :func:`in_decision_set`);
    ``gap_to_best_bound`` = (objective - best_bound) / |objective| and
    ``gap_to_best_objective`` = (objective - best_objective) / |best_objective|.
    The Results of the last repeat are in ``frame.attrs["results"]`` ({(instance, label):
    Result}) and the skip notes in ``frame.attrs["notes"]``.
    """
    if repeats < 1:
        raise ValueError(f"repeats = {repeats!r}: must be an integer >= 1")
    models = named_instances(instances)
    labels = list(dict.fromkeys(methods))
    if not models or not labels:
        raise ValueError("bench needs at least one instance and one method")
    from tqdm import tqdm

    results: dict[tuple[str, str], Result] = {}
    times: dict[tuple[str, str], list[float]] = {}
    skipped: dict[tuple[str, str], str] = {}
    kinds: dict[tuple[str, str], str] = {}
    bar = tqdm(total=len(models) * len(labels) * repeats, desc="bench", disable=not progress)
    for name, model in models.items():
        runnable = []
        for label in labels:
            kinds[name, label], reason = _resolve(model, label)
            if reason:
                skipped[name, label] = reason
                bar.update(repeats)
            else:
                runnable.append(label)
        for round_ in range(repeats):
            shift = round_ % max(1, len(runnable))
            for label in runnable[shift:] + runnable[:shift]:
                result = _timed_solve(model, label, time_limit)
                results[name, label] = result
                times.setdefault((name, label), []).append(result.timings.wall_s)
                bar.update()
    bar.close()
    notes = [f"{name}: {label} skipped: {reason}" for (name, label), reason in skipped.items()]
    if progress:
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
    frame = _table(models, labels, results, times, skipped, kinds)
    frame.attrs["results"] = results
    frame.attrs["notes"] = notes
    return frame


def _resolve(model: Any, label: str) -> tuple[str, str | None]:
    """(kind, why ``label`` cannot run on ``model`` here or None); imports the method.

    Not applicable (``unsupported_reason``, no method of that kind for this model) and not
    installed are reasons to skip; an unknown method or solver raises ``ValueError``.
    """
    method, solver = _split(label)
    registry = solvers_for(model.model_id)
    if method in KINDS:
        try:
            method = registry.choose(model, method, solver)
        except ValueError as error:
            return method, str(error)
    spec = registry.spec(method)
    if solver is not None and solver not in spec.backends:
        allowed = ", ".join(spec.backends) or "none (leave the solver unset)"
        raise ValueError(f"method {spec.method!r} cannot use solver {solver!r}; allowed: {allowed}")
    reason = spec.unsupported_reason(model)
    if reason:
        return spec.kind, f"{spec.method} does not apply: {reason}"
    if not spec.availability(solver):
        return spec.kind, f"{spec.method}: backend {solver or spec.backends[0]!r} is not installed"
    spec.load()  # import the method and its backend before timing
    return spec.kind, None


def _timed_solve(model: Any, label: str, time_limit: float | None) -> Result:
    """``solve`` with the label's method and solver; an exception becomes an ``error`` Result."""
    method, solver = _split(label)
    started = time.perf_counter()
    try:
        return solve(model, method, solver, time_limit=time_limit)
    except Exception as error:  # noqa: BLE001 - reported in the table, not swallowed
        return Result(
            model.model_id, method, Status.ERROR, message=f"{type(error).__name__}: {error}",
            timings=Timings(wall_s=time.perf_counter() - started),
        )


def is_solved(result: Result) -> bool:
    """A verified optimal/feasible point, or a proof of infeasibility."""
    return result.status is Status.INFEASIBLE or (result.status in SOLVED and result.verified is True)


def in_decision_set(result: Result) -> bool:
    """Whether the point lies in the model's own decision set (EdgeSplit's FedAvg baseline
    may use full local training where the instance forbids it: ``full_local_allowed`` False)."""
    return result.extras.get("full_local_allowed") is not False


def _table(
    models: dict[str, Any],
    labels: list[str],
    results: dict[tuple[str, str], Result],
    times: dict[tuple[str, str], list[float]],
    skipped: dict[tuple[str, str], str],
    kinds: dict[tuple[str, str], str],
) -> pd.DataFrame:
    """The rows of :func:`bench`, skipped pairs included."""
    rows = []
    for name, model in models.items():
        ran = [results[name, label] for label in labels if (name, label) in results]
        bounds = [r.bound for r in ran if r.bound is not None and r.status is not Status.ERROR]
        points = [r.objective for r in ran if r.feasible and in_decision_set(r)]
        best_bound = max(bounds, default=math.nan)
        best_objective = min(points, default=math.nan)
        for label in labels:
            row = {**model.size, "instance": name, "method": label, "kind": kinds[name, label],
                   "best_bound": best_bound, "best_objective": best_objective}
            if (name, label) in skipped:
                row.update(status=SKIPPED, solved=False, repeats=0, message=skipped[name, label])
                rows.append(row)
                continue
            result, seconds = results[name, label], times[name, label]
            objective = _float(result.objective)
            row.update({
                "solver": result.solver,
                "solver_version": result.solver_version,
                "status": result.status.value,
                "solved": is_solved(result),
                "verified": result.verified,
                "objective": objective,
                "bound": _float(result.bound),
                "gap_to_best_bound": _relative(objective - best_bound, objective),
                "gap_to_best_objective": _relative(objective - best_objective, best_objective),
                "time_s": statistics.median(seconds),
                "min_time_s": min(seconds),
                "repeats": len(seconds),
                "message": result.message or "",
            })
            rows.append(row)
    frame = pd.DataFrame(rows)
    size_columns = [c for c in frame.columns if c not in COLUMNS]
    return frame.reindex(columns=COLUMNS[:1] + size_columns + COLUMNS[1:])


def _relative(difference: float, reference: float) -> float:
    """difference / |reference| (NaN when either is NaN; +-inf or NaN when reference is 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(difference) / abs(np.float64(reference)))


def _float(value: float | None) -> float:
    return math.nan if value is None else float(value)


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per method of a :func:`bench` table.

    ``solved`` / ``instances`` counts; ``time_ratio_geomean``: geometric mean over the
    instances the method solved of its median time / the fastest solving method's;
    ``median_time_s``; ``max_gap_to_best_bound`` and ``max_gap_to_best_objective`` (NaN
    when the method returned no point).
    """
    solved = frame[frame["solved"]]
    fastest = solved.groupby("instance")["time_s"].min()
    ratio = solved["time_s"] / solved["instance"].map(fastest).to_numpy()
    geomean = np.exp(np.log(ratio).groupby(solved["method"]).mean())
    grouped = frame.groupby("method", sort=False)
    table = pd.DataFrame({
        "kind": grouped["kind"].first(),
        "solved": grouped["solved"].sum().astype(int),
        "instances": grouped.size(),
        "time_ratio_geomean": geomean,
        "median_time_s": grouped["time_s"].median(),
        "max_gap_to_best_bound": grouped["gap_to_best_bound"].max(),
        "max_gap_to_best_objective": grouped["gap_to_best_objective"].max(),
    })
    table.index.name = "method"
    return table.loc[list(dict.fromkeys(frame["method"]))]


METRICS = {"time": "time_s", "objective": "objective"}
"""Aliases of :func:`performance_profile` metrics; any other positive column works by name."""


def performance_ratios(frame: pd.DataFrame, metric: str = "time") -> pd.DataFrame:
    """Dolan-More ratios r[p, s] = m[p, s] / min_s m[p, s], instance x method (smaller is
    better); ``inf`` where method s did not solve instance p (or no method did)."""
    column = METRICS.get(metric, metric)
    values = frame.pivot(index="instance", columns="method", values=column)
    solved = frame.pivot(index="instance", columns="method", values="solved").astype(bool)
    values = values.where(solved)
    if (values <= 0).any().any():
        raise ValueError(f"performance profile of {column!r} needs positive values")
    best = values.min(axis=1)
    ratios = values.div(best, axis=0).fillna(math.inf)
    return ratios[list(dict.fromkeys(frame["method"]))]


def performance_profile(frame: pd.DataFrame, metric: str = "time") -> pd.DataFrame:
    """Dolan-More performance profile of a :func:`bench` table.

    rho_s(tau) = fraction of instances that method s solved within a factor tau of the best
    method on that instance (``metric``: 'time' = ``time_s``, 'objective', or a column name;
    smaller is better); unsolved counts as never. Returned as a step function: index ``tau``
    (1 and every finite ratio, ascending), one column per method, values in [0, 1].
    """
    ratios = performance_ratios(frame, metric)
    finite = ratios.to_numpy()[np.isfinite(ratios.to_numpy())]
    taus = np.unique(np.concatenate([[1.0], finite]))
    data = {method: [(ratios[method] <= tau).mean() for tau in taus] for method in ratios}
    return pd.DataFrame(data, index=pd.Index(taus, name="tau"))


# ---- scaling: devices against seconds, per model and method ---------------------------------


@dataclass(frozen=True)
class ScalingFamily:
    """A model's default family for :func:`scaling`: preset, fleet sizes, preset keywords,
    and the stated cost growth of the model's exact methods (id -> statement; the same
    statement is in each method's docstring)."""

    model_id: str
    preset: str
    sizes: tuple[int, ...]
    overrides: dict[str, Any] = field(default_factory=dict)
    growth: dict[str, str] = field(default_factory=dict)


SCALING_FAMILIES = (
    ScalingFamily(
        "edgesplit", "vgg16-cifar10-hetero8", (10, 100, 1000, 10000),
        growth={"bisection": "O(N |C|) per bisection step (C: candidate cuts), O(log(1/tol)) "
                             "steps"},
    ),
    ScalingFamily(
        "tinyfel", "resnet18-cifar10-cell", (10, 30, 100, 300, 1000),
        growth={"bisection_mckp": "O(K L) numpy per dual evaluation, about 60 per knapsack "
                                  "check, O(log(1/tol)) checks; plus an exact frontier search "
                                  "over the few devices reduced-cost fixing leaves free"},
    ),
    ScalingFamily(
        "two_stage", "default", (5, 10, 20, 50, 100),
        growth={"exact": "best-first over blocks of the (M, N) grid: O(log(M_max N_max)) block "
                         "splits per surviving cell, each bound O(K); one conic solve (size "
                         "O(K)) per cell not closed by a bound, plus its integer search"},
    ),
)
"""Default families of ``edgeopt bench --scaling`` (sizes = devices)."""


def scaling(
    families: Sequence[ScalingFamily] = SCALING_FAMILIES,
    methods: Sequence[str] = ("exact", "relaxation", "heuristic"),
    seeds: Sequence[int] = (0,),
    sizes: Sequence[int] | None = None,
    repeats: int = 1,
    time_limit: float | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """:func:`bench` over each family (``sizes`` replaces every family's own), one frame:
    columns ``model`` and ``method_id`` (the method a kind resolved to) before the
    :func:`bench` columns. The Results are in ``attrs["results"]`` keyed by (model,
    instance, label)."""
    frames, results = [], {}
    for fam in families:
        chosen = tuple(sizes) if sizes else fam.sizes
        frame = bench(family(fam.model_id, fam.preset, chosen, seeds, **fam.overrides),
                      methods, repeats=repeats, time_limit=time_limit, progress=progress)
        ran = frame.attrs["results"]
        frame.insert(0, "model", fam.model_id)
        frame.insert(1, "method_id", [
            ran[(i, m)].method if (i, m) in ran else "" for i, m in zip(frame["instance"],
                                                                        frame["method"])])
        results.update({(fam.model_id, *key): value for key, value in ran.items()})
        frame.attrs = {}
        frames.append(frame)
    joined = pd.concat(frames, ignore_index=True)
    joined.attrs["results"] = results
    return joined


def scaling_table(frame: pd.DataFrame,
                  families: Sequence[ScalingFamily] = SCALING_FAMILIES) -> pd.DataFrame:
    """One row per (model, method, devices) of a :func:`scaling` frame: the method id, the
    median time over seeds [s], its ratio to the exact method's median at that size, the
    solved share, the worst gap to the best objective, the least bound / best objective
    (NaN without a bound), then per (model, method) the
    log-log slope of time against devices (least squares over the sizes: the measured
    growth exponent) and the stated growth of exact methods."""
    stated = {(f.model_id, method): text for f in families for method, text in f.growth.items()}
    ran = frame[frame["status"] != SKIPPED]
    grouped = ran.groupby(["model", "method", "devices"], sort=False)
    table = pd.DataFrame({
        "method_id": grouped["method_id"].first(),
        "median_time_s": grouped["time_s"].median(),
        "solved_share": grouped["solved"].mean(),
        "max_gap_to_best_objective": grouped["gap_to_best_objective"].max(),
        "min_bound_over_best_objective": (ran["bound"] / ran["best_objective"]).groupby(
            [ran["model"], ran["method"], ran["devices"]], sort=False).min(),
    }).reset_index()
    exact = table[table["method"] == "exact"].set_index(["model", "devices"])["median_time_s"]
    keys = list(zip(table["model"], table["devices"]))
    table["time_vs_exact"] = [
        t / exact[k] if k in exact.index and exact[k] > 0 else math.nan
        for t, k in zip(table["median_time_s"], keys)
    ]
    slopes = {}
    for (model, method), part in table.groupby(["model", "method"], sort=False):
        usable = part[part["median_time_s"] > 0]
        slopes[model, method] = (
            float(np.polyfit(np.log(usable["devices"]), np.log(usable["median_time_s"]), 1)[0])
            if usable["devices"].nunique() >= 2 else math.nan)
    table["loglog_slope"] = [slopes[m, k] for m, k in zip(table["model"], table["method"])]
    table["stated_growth"] = [stated.get((m, i), "") for m, i in
                              zip(table["model"], table["method_id"])]
    return table


def plot_scaling(table: pd.DataFrame):
    """Log-log plot of :func:`scaling_table`: devices against median seconds, one panel per
    model, one line per method. Returns the matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(table["model"]))
    figure, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.6), squeeze=False)
    for axis, model in zip(axes[0], models):
        part = table[table["model"] == model]
        for method, line in part.groupby("method", sort=False):
            label = f"{method} ({line['method_id'].iloc[0]})"
            axis.loglog(line["devices"], line["median_time_s"], marker="o", label=label)
        axis.set_title(model)
        axis.set_xlabel("devices")
        axis.set_ylabel("median seconds")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    return figure
