"""Sensitivity of a model's optimal objective J to instance parameters named by field paths.

Works for every model and method through the generic contract only: parameters are field
paths of the canonical instance JSON (``bandwidth_hz``, ``devices[1].flops_per_s``), each
point is ``solve(model.with_changes({...}), method, solver)``, and duals come from
``Result.extras``. Derivatives are in objective units per parameter unit (EdgeSplit: seconds
per Hz for ``bandwidth_hz``); elasticities ``dJ/dp * p / J`` are dimensionless.

* :func:`local_sensitivity`: finite differences (with kink detection) and relaxation duals.
* :func:`one_at_a_time`, :func:`tradeoff_front`: curves of J over one parameter.
* :func:`tornado_data`: J when each parameter moves by +-x %.

**Duals, sign convention.** ``dual_derivative`` is dJ/dp itself, the same quantity as the
finite difference: J(p + dp) ~ J(p) + dual_derivative * dp. A budget that J does not increase
with (bandwidth, server throughput) therefore has a derivative <= 0; the Lagrange multiplier
lambda >= 0 of a budget row ``sum <= p`` is its negative. A solver reports them in
``extras["duals_by_field"]`` (field path -> dJ/dp); for solvers that only report
``extras["duals"]`` by constraint name, pass ``dual_fields`` (constraint name -> field path).

**Fix-and-relax (mixed-integer models).** J is the optimum over integer decisions of a convex
problem, hence piecewise smooth. Where the optimal integer decisions are locally unique, J
coincides near p with the optimum of the convex problem that has them fixed, so that
problem's duals give dJ/dp. Recipe: (1) solve exactly; (2) fix the decisions the model
declares ``integer``/``binary`` at the optimum; (3) solve the remaining continuous problem
(EdgeSplit: fixing the cuts leaves a convex resource problem); (4) read its budget duals.
When the dual method accepts a ``fix`` option (``{variable: values}``) this module does exactly
that. Otherwise it solves the plain convex relaxation and uses its duals for J only when the
relaxation is tight (its proven bound equals the optimum within :data:`TIGHT_GAP`): then
J - J_relax >= 0 vanishes at p, so both have the same derivative wherever both are smooth.
At a kink (optimal integer decisions switch at p) no single derivative exists: the one-sided
differences are reported and ``kink`` is set.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from edgeopt.models import InstanceError
from edgeopt.solvers import Result, solve
from edgeopt.solvers.api import select
from edgeopt.solvers.registry import Capability

SCHEMES = ("central", "forward", "backward")

KINK_TOLERANCE = 1e-2
"""Relative mismatch |forward - backward| / max(|forward|, |backward|) above which a point
is reported as a kink. Smooth optima give ~ the relative step (1e-4); a switch of the optimal
integer decisions gives a jump of the slope (5 % at T1's cut switch in bandwidth)."""

OBJECTIVE_RESOLUTION = 1e-9
"""Relative accuracy assumed for optimal objectives; differences below it are noise."""

AGREEMENT_RTOL = 1e-4
"""Relative tolerance of the ``agree`` column (central difference vs dual derivative); a
one-sided difference gets 10 h/|p| instead when larger (its truncation error is O(h))."""

TIGHT_GAP = 1e-6
"""A relaxation whose bound is within this relative gap of the optimum counts as tight."""


# ---- points ------------------------------------------------------------------------------
def numeric_field(model: Any, path: str) -> float | int:
    """The number at field path ``path`` of ``model``; ``ValueError`` if it is not a number.

    A ``[*]`` path (``devices[*].memory_bytes``) names one common value of every entry, so
    the entries must hold equal values; it is then changed on all of them at once."""
    value = model.get_field(path)
    if isinstance(value, list):
        if not value or any(v != value[0] for v in value):
            raise ValueError(
                f"{path} = {value!r}: the entries differ, so there is no one value to vary; "
                "name one entry (e.g. devices[0].memory_bytes)"
            )
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{path} = {value!r} is not a number; sensitivity needs a numeric field")
    return value


def solve_at(
    model: Any, changes: Mapping[str, Any], method: str = "exact", solver: str | None = None
) -> Result | None:
    """``solve`` the model with ``changes`` (field path -> value) applied; ``None`` when the
    changed instance fails validation (e.g. a budget pushed below 0)."""
    try:
        changed = model.with_changes(dict(changes)) if changes else model
    except InstanceError:
        return None
    return solve(changed, method, solver)


def objective_of(result: Result | None) -> float:
    """The verified objective of ``result``, NaN without a verified point."""
    if result is None or not result.feasible or result.objective is None:
        return math.nan
    return float(result.objective)


def integer_decisions(model: Any, result: Result | None) -> dict[str, tuple | int | None]:
    """The values of the decisions ``model.variables`` declares integer or binary: a tuple
    for a per-device list, the number itself for a scalar decision (e.g. two_stage's rounds;
    None when the result has no point)."""
    names = [v.name for v in model.variables if v.domain in ("integer", "binary")]
    values = {} if result is None or not result.feasible else result.solution
    return {name: _decision(values.get(name)) for name in names}


def _decision(value: Any) -> tuple | int | None:
    if isinstance(value, list | tuple):
        return tuple(value)
    return value


def _with_integer_type(value: float, integer: bool) -> float | int:
    return round(value) if integer else value


# ---- local derivatives -------------------------------------------------------------------
def local_sensitivity(
    model: Any,
    params: Sequence[str],
    method: str = "exact",
    solver: str | None = None,
    step: float = 1e-4,
    scheme: str = "central",
    *,
    duals: bool = True,
    dual_method: str = "relaxation",
    dual_solver: str | None = None,
    dual_fields: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Derivatives of the optimal objective J with respect to each field path in ``params``.

    Finite differences use the relative step h = ``step * |p|`` (``step`` if p = 0; integer
    fields: ``max(1, round(step * |p|))``), ``scheme`` 'central', 'forward' or 'backward'.
    A side the instance does not allow (e.g. ``rounds`` = 1 - 1) falls back to the other.
    Duals come from one solve with ``dual_method`` (see the module docstring); set
    ``duals=False`` to skip it.

    Columns, one row per parameter: ``param``, ``value`` p, ``objective`` J(p), ``step`` h,
    ``scheme`` (the one used), ``forward``, ``backward``, ``derivative`` dJ/dp [J unit per p
    unit], ``kink`` (forward and backward differ: J is not differentiable at p; None if only
    one side was computed), ``decision_change`` (the optimal integer decisions differ among
    p - h, p, p + h), ``dual_derivative`` (dJ/dp from duals, NaN where they do not apply to
    J), ``relaxed_dual`` (the dual as reported, also when the relaxation is not tight),
    ``dual_note``, ``agree`` (finite difference and dual within :data:`AGREEMENT_RTOL`;
    None where not both apply or at a kink) and ``elasticity`` dJ/dp * p / J [-].
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme = {scheme!r}: choose one of {', '.join(SCHEMES)}")
    if not step > 0:
        raise ValueError(f"step = {step!r}: must be a relative step > 0")
    values = {path: numeric_field(model, path) for path in params}
    base = solve(model, method, solver)
    base_value = objective_of(base)
    if math.isnan(base_value):
        raise ValueError(f"no verified point at the base instance ({base.status.value}): "
                         f"{base.message or 'nothing to differentiate'}")
    found: dict[str, tuple[float, bool]] = {}
    note = "duals not requested"
    if duals:
        found, note = dual_derivatives(model, base, dual_method, dual_solver, dual_fields)
    rows = []
    for path, value in values.items():
        row = _finite_difference(model, path, value, base, method, solver, step, scheme)
        reported, applies = found.get(path, (math.nan, False))
        row["relaxed_dual"] = reported
        row["dual_derivative"] = reported if applies else math.nan
        row["dual_note"] = note if path in found or not found else "no dual for this field"
        row["agree"] = _agree(row)
        row["elasticity"] = row["derivative"] * value / base_value if base_value else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _finite_difference(
    model: Any, path: str, value: float | int, base: Result, method: str,
    solver: str | None, step: float, scheme: str,
) -> dict[str, Any]:
    integer = isinstance(value, int)
    h = step * abs(value) if value != 0 else step
    h = max(1, round(h)) if integer else h
    sign = {"forward": +1, "backward": -1}
    order = ["backward", "forward"] if scheme == "backward" else ["forward", "backward"]
    results = {side: solve_at(model, {path: value + sign[side] * h}, method, solver)
               for side in (order if scheme == "central" else order[:1])}
    if scheme != "central" and math.isnan(objective_of(results[scheme])):
        results[order[1]] = solve_at(model, {path: value + sign[order[1]] * h}, method, solver)
    j0 = objective_of(base)
    slope = {
        "forward": (objective_of(results.get("forward")) - j0) / h,
        "backward": (j0 - objective_of(results.get("backward"))) / h,
    }
    forward, backward = slope["forward"], slope["backward"]
    if scheme == "central" and not (math.isnan(forward) or math.isnan(backward)):
        used, derivative = "central", 0.5 * (forward + backward)
        resolution = OBJECTIVE_RESOLUTION * abs(j0) / h
        mismatch = abs(forward - backward)
        kink = bool(mismatch > max(KINK_TOLERANCE * max(abs(forward), abs(backward)), resolution))
    else:
        used = next((s for s in order if not math.isnan(slope[s])), order[0])
        derivative, kink = slope[used], None
    solved = [r for r in (base, *results.values()) if not math.isnan(objective_of(r))]
    decisions = [integer_decisions(model, r) for r in solved]
    return {
        "param": path,
        "value": value,
        "objective": j0,
        "step": h,
        "scheme": used,
        "forward": forward,
        "backward": backward,
        "derivative": derivative,
        "kink": kink,
        "decision_change": any(d != decisions[0] for d in decisions[1:]),
    }


def _agree(row: Mapping[str, Any]) -> bool | None:
    fd, dual = row["derivative"], row["dual_derivative"]
    if row["kink"] or math.isnan(fd) or math.isnan(dual):
        return None
    rtol = AGREEMENT_RTOL
    if row["scheme"] != "central":
        rtol = max(rtol, 10 * row["step"] / (abs(row["value"]) or 1.0))
    resolution = OBJECTIVE_RESOLUTION * abs(row["objective"]) / row["step"]
    return bool(abs(fd - dual) <= rtol * max(abs(fd), abs(dual)) + resolution)


def dual_derivatives(
    model: Any,
    base: Result,
    dual_method: str = "relaxation",
    dual_solver: str | None = None,
    dual_fields: Mapping[str, str] | None = None,
) -> tuple[dict[str, tuple[float, bool]], str]:
    """Dual-based dJ/dp by field path: ({path: (dJ/dp, applies to J)}, note).

    ``base`` is the optimum of the exact method. With a ``fix`` option on ``dual_method``
    the integer decisions of ``base`` are fixed (fix-and-relax: the duals apply to J);
    otherwise the plain relaxation's duals apply to J only if its bound is tight.
    """
    try:
        spec, _ = select(model, dual_method, dual_solver)
    except (ValueError, RuntimeError) as error:
        return {}, f"no duals: {error}"
    if not spec.has(Capability.DUALS):
        return {}, f"no duals: method {spec.method!r} reports none"
    fixed = {k: list(v) if isinstance(v, tuple) else v
             for k, v in integer_decisions(model, base).items()}
    if fixed and "fix" in spec.options:
        relaxed = solve(model, spec.method, dual_solver, fix=fixed)
        applies, note = relaxed.status.has_point, f"fix-and-relax ({spec.method})"
    else:
        relaxed = solve(model, spec.method, dual_solver)
        j = objective_of(base)
        gap = math.inf if relaxed.bound is None else (j - relaxed.bound) / max(abs(j), 1e-300)
        applies = gap <= TIGHT_GAP
        note = (f"tight relaxation ({spec.method}, gap {gap:.1e})" if applies else
                f"relaxation gap {gap:.1e}: relaxed_dual is dJ_relax/dp, not dJ/dp "
                f"(fix the integer decisions to get dJ/dp)")
    by_field = relaxed.extras.get("duals_by_field")
    if by_field is None:
        named = relaxed.extras.get("duals", {})
        if not dual_fields:
            listed = ", ".join(named) or "none"
            return {}, (f"no duals by field: {spec.method!r} reports duals by name only ({listed}); "
                        "pass dual_fields={name: field path}")
        by_field = {dual_fields[name]: v for name, v in named.items() if name in dual_fields}
    return {path: (float(v), applies) for path, v in by_field.items()}, note


# ---- curves ------------------------------------------------------------------------------
def one_at_a_time(
    model: Any, param: str, values: Iterable[float], method: str = "exact", solver: str | None = None
) -> pd.DataFrame:
    """J over ``values`` of one field path, the others held at the model's values.

    Columns: ``param`` (named by the field path), ``status``, ``objective``, ``bound`` and one
    column per integer decision (a tuple, e.g. ``cuts``); ``frame.attrs`` records ``param``
    and ``decisions`` (those column names). Values the instance rejects get status 'invalid'.
    """
    integer = isinstance(numeric_field(model, param), int)
    rows = []
    for value in values:
        value = _with_integer_type(value, integer)
        result = solve_at(model, {param: value}, method, solver)
        row: dict[str, float | str | tuple | None] = {
            param: value,
            "status": "invalid" if result is None else result.status.value,
            "objective": objective_of(result),
            "bound": math.nan if result is None or result.bound is None else result.bound,
        }
        row.update(integer_decisions(model, result))
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.attrs.update(param=param, decisions=list(integer_decisions(model, None)))
    return frame


def pareto_mask(cost: Sequence[float], value: Sequence[float]) -> np.ndarray:
    """True for points no other point dominates when both ``cost`` and ``value`` are
    minimised (dominates: <= in both and < in one). NaN points are never efficient."""
    x, y = np.asarray(cost, dtype=float), np.asarray(value, dtype=float)
    valid = ~(np.isnan(x) | np.isnan(y))
    mask = valid.copy()
    for i in np.flatnonzero(valid):
        better = valid & (x <= x[i]) & (y <= y[i]) & ((x < x[i]) | (y < y[i]))
        mask[i] = not better.any()
    return mask


def tradeoff_front(
    model: Any,
    budget_param: str,
    values: Iterable[float],
    method: str = "exact",
    solver: str | None = None,
    quantity: str = "objective",
) -> pd.DataFrame:
    """Non-dominated (budget, ``quantity``) points, both minimised, sorted by budget.

    ``budget_param`` is a field path (e.g. ``bandwidth_hz``) treated as a cost, ``quantity``
    a column of :func:`one_at_a_time` ('objective' or 'bound'). Answers "how much J does each
    extra unit of budget buy, and beyond which budget does more stop helping"."""
    frame = one_at_a_time(model, budget_param, values, method, solver)
    front = frame[pareto_mask(frame[budget_param], frame[quantity])]
    front = front.sort_values(budget_param).reset_index(drop=True)
    front.attrs.update(frame.attrs, quantity=quantity)
    return front


def tornado_data(
    model: Any,
    params: Sequence[str],
    fraction: float = 0.1,
    method: str = "exact",
    solver: str | None = None,
) -> pd.DataFrame:
    """J when each parameter alone moves to p (1 - ``fraction``) and p (1 + ``fraction``).

    Integer fields are rounded (so a small ``fraction`` may leave them unchanged). Columns:
    ``param``, ``value``, ``low_value``, ``high_value``, ``objective`` J(p),
    ``objective_low``, ``objective_high``, ``change_low``, ``change_high`` (J change [J unit])
    and ``swing``, the extent of the bar drawn around J(p), i.e. max(changes, 0) -
    min(changes, 0); rows sorted by ``swing``, largest first (NaN where a value is invalid).
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction = {fraction!r}: must lie in (0, 1), e.g. 0.1 for +-10 %")
    base = objective_of(solve(model, method, solver))
    rows = []
    for path in params:
        value = numeric_field(model, path)
        integer = isinstance(value, int)
        low = _with_integer_type(value * (1 - fraction), integer)
        high = _with_integer_type(value * (1 + fraction), integer)
        j_low = objective_of(solve_at(model, {path: low}, method, solver))
        j_high = objective_of(solve_at(model, {path: high}, method, solver))
        changes = (j_low - base, j_high - base)
        swing = max(*changes, 0.0) - min(*changes, 0.0) if not np.isnan(changes).any() else math.nan
        rows.append({
            "param": path, "value": value, "low_value": low, "high_value": high,
            "objective": base, "objective_low": j_low, "objective_high": j_high,
            "change_low": changes[0], "change_high": changes[1],
            "swing": swing,
        })
    frame = pd.DataFrame(rows).sort_values("swing", ascending=False, kind="stable")
    frame.attrs["fraction"] = fraction
    return frame.reset_index(drop=True)
