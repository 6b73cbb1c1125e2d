"""Parameter sweeps: solve one instance at many points of its parameter space.

    >>> frame = sweep("tests/data/edgesplit_t1.json", grid={"bandwidth_hz": [1e7, 2e7]},
    ...               serial=True, progress=False)                       # doctest: +SKIP
    >>> frame[["bandwidth_hz", "status", "objective"]]                   # doctest: +SKIP

A point sets some fields of the canonical instance JSON, named by field paths
(``bandwidth_hz``, ``devices[2].flops_per_s``, ``devices[*].memory_bytes``,
``learning.shift``; see :mod:`edgeopt.models.paths`). Points come from a full grid (Cartesian product of value
lists) or from ``samples`` Latin-hypercube or uniform random draws within ``ranges``.
Every point's instance is validated (and the method checked against it) before any solve,
so a bad key or value fails at once with an error naming it.

Points are solved serially or on Dask (a LocalCluster of processes by default, or an existing
cluster). Tasks carry the instance JSON text and the points; workers rebuild models. Points are
sent to workers in chunks of neighbours, and each worker process keeps the *resolver* built for
a sweep (see :data:`ResolverFactory`), so a resolver that builds a backend model once and
changes parameters in place is used where one exists (:func:`reuse`, the default).

With ``out``, rows are journaled as they arrive and a Parquet table is kept up to date (see
:mod:`edgeopt.analysis.sweep_store`); ``resume=True`` solves only the points not yet there.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from edgeopt.models import InstanceError, load_instance
from edgeopt.models.paths import FieldPathError
from edgeopt.models.registry import read_document
from edgeopt.solvers import Result, solve
from edgeopt.solvers.api import select

RESULT_COLUMNS = (
    "point_id", "status", "objective", "bound", "gap", "verified", "wall_time_s",
    "method", "solver", "termination", "solution", "message", "sweep_id",
)
"""Columns after the parameter columns. ``objective`` and ``bound`` are in the model's
objective unit, ``gap`` is relative, ``wall_time_s`` is the seconds spent on the point
(model building included), ``solution`` is the Result's solution as JSON text."""

TABLE_REFRESH_S = 5.0
"""Seconds between rewrites of the Parquet table while a sweep runs."""

Resolver = Callable[[dict[str, Any]], Result]
"""Solves one point: field path -> value, applied to the sweep's instance."""

ResolverFactory = Callable[[dict[str, Any], str, str | None, float | None], Resolver]
"""``factory(document, method, solver, time_limit) -> Resolver``: built once per worker process
and sweep. Must be a picklable (module-level) function."""

Scalar = bool | int | float | str


class SweepError(ValueError):
    """Bad sweep input: a key, value, range or option; the message names it."""


def rebuild(
    document: dict[str, Any], method: str, solver: str | None, time_limit: float | None
) -> Resolver:
    """Build a fresh model for every point and ``solve`` it."""

    def resolve(values: dict[str, Any]) -> Result:
        return solve(_model(document, values), method, solver, time_limit=time_limit)

    return resolve


def reuse(
    document: dict[str, Any], method: str, solver: str | None, time_limit: float | None
) -> Resolver:
    """The default resolver: re-solve in place where the method allows it (a backend model
    built once, numbers changed; see :mod:`edgeopt.solvers.parametric`), else :func:`rebuild`.
    Results are verified by the model's evaluator either way."""
    from edgeopt.solvers.parametric import resolver_for

    cached = resolver_for(load_instance(document), method, solver)
    if cached is None:
        return rebuild(document, method, solver, time_limit)
    return lambda values: cached.solve(_model(document, values), time_limit)


def grid_points(grid: dict[str, Sequence[Any]]) -> list[dict[str, Scalar]]:
    """The full Cartesian product of ``grid`` (key -> values), last key varying fastest.

    >>> grid_points({"rounds": [1, 2], "bandwidth_hz": [1e7]})
    [{'rounds': 1, 'bandwidth_hz': 10000000.0}, {'rounds': 2, 'bandwidth_hz': 10000000.0}]
    """
    if not grid:
        raise SweepError("grid is empty: give at least one key with values")
    for key, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise SweepError(f"{key}: needs a non-empty list of values, got {values!r}")
        converted = [_scalar(key, value) for value in values]
        if len({_canonical({key: value}) for value in converted}) != len(converted):
            raise SweepError(f"{key}: values repeat in {list(values)!r}")
    keys = list(grid)
    values = [[_scalar(key, value) for value in grid[key]] for key in keys]
    return [dict(zip(keys, combination)) for combination in itertools.product(*values)]


def sample_points(
    ranges: dict[str, tuple], samples: int, sampling: str = "lhs", seed: int | None = None
) -> list[dict[str, Scalar]]:
    """``samples`` points drawn within ``ranges`` (key -> ``(lo, hi)`` or ``(lo, hi, "log")``).

    ``sampling`` is ``"lhs"`` (Latin hypercube: each key's range cut into ``samples`` equal
    strata, one draw per stratum, strata paired at random) or ``"random"`` (independent
    uniform draws). ``"log"`` draws uniformly in log space (``lo > 0``). A range whose ends
    are both ints gives ints (rounded). The same ``seed`` gives the same points.
    """
    if sampling not in ("lhs", "random"):
        raise SweepError(f"sampling={sampling!r}: samples need 'lhs' or 'random'")
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise SweepError(f"samples={samples!r}: must be an integer >= 1")
    if not ranges:
        raise SweepError("ranges is empty: give at least one key with (lo, hi)")
    bounds = {key: _range(key, spec) for key, spec in ranges.items()}
    rng = np.random.default_rng(seed)
    if sampling == "lhs":
        unit = np.column_stack(
            [(rng.permutation(samples) + rng.random(samples)) / samples for _ in bounds]
        )
    else:
        unit = rng.random((samples, len(bounds)))
    columns = {}
    for column, (key, (lo, hi, log, integer)) in enumerate(bounds.items()):
        if log:
            values = np.exp(np.log(lo) + unit[:, column] * (np.log(hi) - np.log(lo)))
        else:
            values = lo + unit[:, column] * (hi - lo)
        columns[key] = [int(round(v)) if integer else float(v) for v in values]
    return [{key: columns[key][row] for key in bounds} for row in range(samples)]


def point_id(values: dict[str, Any]) -> str:
    """A stable 16-hex-digit hash of a point's parameter values (key order does not matter)."""
    return hashlib.sha1(_canonical(values).encode()).hexdigest()[:16]


def sweep(
    model_or_instance: Any,
    grid: dict[str, Sequence[Any]] | None = None,
    samples: int | None = None,
    ranges: dict[str, tuple] | None = None,
    sampling: str | None = None,
    seed: int | None = None,
    method: str = "exact",
    solver: str | None = None,
    time_limit: float | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    workers: int | None = None,
    client: Any = None,
    scheduler: str | None = None,
    serial: bool = False,
    progress: bool = True,
    resolver: ResolverFactory = reuse,
    chunk_size: int | None = None,
) -> pd.DataFrame:
    """Solve ``model_or_instance`` at every point of a grid or sample; one row per point.

    ``model_or_instance`` is a model, an instance dict, JSON text or a file path. Give
    ``grid`` (key -> values; the full product) or ``samples`` with ``ranges`` (``sampling``
    ``"lhs"`` (default) or ``"random"``, reproducible with ``seed``; see :func:`sample_points`).
    ``method``, ``solver`` and ``time_limit`` (seconds per point) go to ``solve``.

    Execution: ``serial=True`` solves in this process; otherwise on Dask: ``client`` or
    ``scheduler`` (an address) use a running cluster, else a LocalCluster of ``workers``
    processes (default: the machine's cores) is started and closed here. ``chunk_size``
    points (default: a few per worker) go to a worker together. ``resolver`` builds the
    function that solves one point (default :func:`rebuild`).

    With ``out`` (a ``.parquet`` path) rows are written as they arrive; ``resume=True`` keeps
    the rows already there and solves only the missing points. Returns the table in point
    order: a column per key (named by the key), then :data:`RESULT_COLUMNS`. A point whose
    solve raises gets status ``error`` and the exception as ``message``; a point drawn twice
    is solved once.
    Raises :class:`SweepError` on bad input, before any solve.
    """
    document = _document(model_or_instance)
    points = _points(grid, samples, ranges, sampling, seed)
    keys = list(points[0])
    _validate(document, grid, ranges, points, method, solver)
    if time_limit is not None and not time_limit > 0:
        raise SweepError(f"time_limit={time_limit!r}: must be a number of seconds > 0")
    if resume and out is None:
        raise SweepError("resume=True needs out= (the file to resume)")
    if resume and grid is None and seed is None:
        raise SweepError("resume of a sampled sweep needs seed= (to draw the same points again)")
    text = json.dumps(document, sort_keys=True)
    sweep_id = point_id({"sweep": [text, method, solver, time_limit]})
    unique = {point_id(point): point for point in points}  # integer ranges may repeat a point
    ids, points = list(unique), list(unique.values())
    task = functools.partial(_solve_chunk, resolver, text, method, solver, time_limit, sweep_id)
    with _Recorder(out, resume, keys, ids, sweep_id, progress) as recorder:
        todo = [(pid, point) for pid, point in zip(ids, points) if pid not in recorder.done]
        if serial:
            for item in todo:
                recorder.record_all(task([item]))
        elif todo:
            _run_dask(task, todo, recorder, workers, client, scheduler, chunk_size)
        return recorder.frame()


# ---- points and validation ---------------------------------------------------------------


def _document(source: Any) -> dict[str, Any]:
    if hasattr(source, "to_dict") and hasattr(source, "model_id"):
        return source.to_dict()
    try:
        return load_instance(read_document(source)).to_dict()
    except InstanceError as error:
        raise SweepError(f"instance: {error}") from None


def _points(grid, samples, ranges, sampling, seed) -> list[dict[str, Scalar]]:
    if grid is not None:
        if samples is not None or ranges is not None or sampling not in (None, "grid"):
            raise SweepError("give grid= or samples= with ranges=, not both")
        return grid_points(grid)
    if samples is None or ranges is None:
        raise SweepError("give grid= (key -> values) or samples= with ranges= (key -> (lo, hi))")
    if sampling not in (None, "lhs", "random"):
        raise SweepError(
            f"sampling={sampling!r}: samples need 'lhs' or 'random' ('grid' takes grid=)"
        )
    return sample_points(ranges, samples, sampling or "lhs", seed)


def _validate(document, grid, ranges, points, method, solver) -> None:
    """Check the method on the instance, each key's values alone (errors name the key), then
    every point."""
    if grid is not None:
        singles = [{key: _scalar(key, value)} for key, values in grid.items() for value in values]
    else:
        singles = [{key: value} for key, spec in ranges.items() for value in _ends(key, spec)]
    for values in [{}, *singles, *points]:
        _check(document, values, method, solver)


def _check(document, values, method, solver) -> None:
    shown = ", ".join(f"{key}={value!r}" for key, value in values.items()) or "instance"
    try:
        model = _model(document, values)
    except FieldPathError as error:
        raise SweepError(f"unknown key: {error}") from None
    except InstanceError as error:
        raise SweepError(f"{shown}: {error}") from None
    try:
        select(model, method, solver)
    except (ValueError, RuntimeError) as error:
        raise SweepError(f"{shown}: {error}") from None


def _model(document: dict[str, Any], values: dict[str, Any]):
    model = load_instance(document)
    return model.with_changes(values) if values else model


def _scalar(key: str, value: Any) -> Scalar:
    if isinstance(value, np.generic):
        value = value.item()
    if not isinstance(value, (bool, int, float, str)):
        raise SweepError(f"{key}: value {value!r} is not a number, string or boolean")
    if isinstance(value, float) and not math.isfinite(value):
        raise SweepError(f"{key}: value {value!r} is not finite")
    return value


def _range(key: str, spec: Any) -> tuple[float, float, bool, bool]:
    """``(lo, hi, log, integer)`` of a range spec, checked."""
    if not isinstance(spec, (tuple, list)) or len(spec) not in (2, 3):
        raise SweepError(f"{key}: range must be (lo, hi) or (lo, hi, 'log'), got {spec!r}")
    lo, hi = (_scalar(key, end) for end in spec[:2])
    scale = spec[2] if len(spec) == 3 else "lin"
    if scale not in ("lin", "log"):
        raise SweepError(f"{key}: range scale {scale!r} must be 'lin' or 'log'")
    if any(isinstance(end, (bool, str)) for end in (lo, hi)) or not lo < hi:
        raise SweepError(f"{key}: range ({lo!r}, {hi!r}) needs numbers lo < hi")
    if scale == "log" and lo <= 0:
        raise SweepError(f"{key}: a log range needs lo > 0, got {lo!r}")
    return float(lo), float(hi), scale == "log", isinstance(lo, int) and isinstance(hi, int)


def _ends(key: str, spec: Any) -> list[Scalar]:
    lo, hi, _, integer = _range(key, spec)
    return [int(lo), int(hi)] if integer else [lo, hi]


def _canonical(values: dict[str, Any]) -> str:
    return json.dumps(values, sort_keys=True, separators=(",", ":"))


# ---- solving (runs in workers) ------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _resolver(factory: ResolverFactory, text: str, method: str, solver, time_limit) -> Resolver:
    """The resolver of one sweep, built once per process."""
    return factory(json.loads(text), method, solver, time_limit)


def _solve_chunk(
    factory: ResolverFactory,
    text: str,
    method: str,
    solver: str | None,
    time_limit: float | None,
    sweep_id: str,
    chunk: list[tuple[str, dict[str, Any]]],
) -> list[dict[str, Any]]:
    """Rows of the points of ``chunk`` (point_id, values), solved in order by one resolver."""
    resolve = _resolver(factory, text, method, solver, time_limit)
    rows = []
    for pid, values in chunk:
        start = time.perf_counter()
        try:
            result = resolve(values)
        except Exception as error:  # noqa: BLE001 - one failing point must not end the sweep
            row = {"status": "error", "method": method, "solver": solver,
                   "message": f"{type(error).__name__}: {error}"}
        else:
            row = _result_fields(result)
        row.update(values, point_id=pid, sweep_id=sweep_id, wall_time_s=time.perf_counter() - start)
        rows.append(row)
    return rows


def _result_fields(result: Result) -> dict[str, Any]:
    return {
        "status": result.status.value,
        "objective": _finite(result.objective),
        "bound": _finite(result.bound),
        "gap": _finite(result.gap),
        "verified": result.verified,
        "method": result.method,
        "solver": result.solver,
        "termination": None if result.termination is None else str(result.termination),
        "solution": json.dumps(result.solution, default=str),
        "message": result.message,
    }


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _run_dask(task, todo, recorder, workers, client, scheduler, chunk_size) -> None:
    from distributed import as_completed

    from edgeopt.analysis.cluster import dask_client, worker_count

    with dask_client(workers, client, scheduler) as connected:
        size = chunk_size or max(1, min(16, len(todo) // (8 * worker_count(connected))))
        chunks = [todo[start:start + size] for start in range(0, len(todo), size)]
        futures = [connected.submit(task, chunk, pure=False) for chunk in chunks]
        try:
            for future in as_completed(futures):
                recorder.record_all(future.result())
        finally:
            connected.cancel(futures)


# ---- recording ----------------------------------------------------------------------------


class _Recorder:
    """Collects rows, journals them, refreshes the Parquet table and the progress bar."""

    def __init__(self, out, resume: bool, keys: list[str], ids: list[str], sweep_id: str,
                 progress: bool):
        from edgeopt.analysis.sweep_store import StoreError, SweepStore

        self.keys, self.ids = keys, ids
        self.store = SweepStore(out) if out is not None else None
        self.done: dict[str, dict[str, Any]] = {}
        if self.store is not None:
            try:
                previous = self.store.start(resume, keys, point_id)
            except StoreError as error:
                raise SweepError(f"cannot resume: {error}") from None
            foreign = {row.get("sweep_id") for row in previous.values()} - {sweep_id}
            if foreign:
                self.store.close()
                raise SweepError(
                    f"{out} holds a sweep of another instance, method, solver or time limit; "
                    "write to a new file or run without resume"
                )
            wanted = set(ids)
            self.done = {pid: row for pid, row in previous.items() if pid in wanted}
        self.written = time.monotonic()
        self.bar = _progress_bar(len(ids), len(self.done), progress)

    def __enter__(self) -> _Recorder:
        return self

    def record_all(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            if self.store is not None:
                self.store.append(row)
            self.done[row["point_id"]] = row
        self.bar.update(len(rows))
        if self.store is not None and time.monotonic() - self.written > TABLE_REFRESH_S:
            self.store.write_table(self.frame())
            self.written = time.monotonic()

    def frame(self) -> pd.DataFrame:
        rows = [self.done[pid] for pid in self.ids if pid in self.done]
        return pd.DataFrame(rows, columns=[*self.keys, *RESULT_COLUMNS])

    def __exit__(self, *exc_info) -> None:
        self.bar.close()
        if self.store is not None:
            try:
                self.store.write_table(self.frame())
            finally:
                self.store.close()


def _progress_bar(total: int, initial: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc="sweep", unit="point")
