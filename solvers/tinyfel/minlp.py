"""``minlp_perspective``: P1 as one MINLP in perspective form, solved by SCIP through Pyomo's
``scip_direct`` interface (spec §5.3).

Scaled units: bandwidth as a fraction beta = b/B of the band, rate as z = r/B (bit/s per
Hz of band), time in units of T_UB, a feasible per-round latency (excluding T_dl) from a
cheap start point (below), so every number is O(1). Over the options i = (k, n) that can
take part in a point with T <= T_UB (available, energy minimum <= B, rate-cap latency
Tcmp + Q ln2/S_k < T_UB):

    min tau  s.t.  sum_{i of k} y_i <= 1 (the rest is "none");  tau >= sum_{i of k} (c_i y_i + t_i)
                   beta_i in [b_fl, y_i + b_fl],  sum_i beta_i <= 1 + |I| b_fl,  beta_i >= e_i y_i
                   z_i ln2 <= beta_i log(1 + s_i / beta_i),  z_i ln2 <= s_i y_i     (rate)
                   t_i z_i >= q_i y_i^2,  0 <= t_i <= (1 - c_i) y_i,  tau <= 1
                   bias row;  sum_i y_i >= K_min

with c = Tcmp/T_UB, q = Q/(B T_UB), s = S_k/B, e = bmin^E/B and b_fl = 1e-9 (of B).
Each unused floor b_fl is given back to the budget, so any feasible point of P1 maps to a
point of this program (b + b_fl on its options has a higher rate): the program is a
relaxation of P1 on T <= T_UB and SCIP's dual bound, times T_UB, is a lower bound on T*.

The perspective y r(b/y) of the rate (spec §5.3) is stated through the semicontinuous
bandwidth: beta_i = b_fl when y_i = 0 and the univariate concave rate r(beta) plus the cap
z <= s y (the rate cap S/ln2 in units of B) switch the option off; SCIP's perspective
handler derives the perspective cuts from this on/off structure. Decision the spec leaves
open: the bivariate form beta log(1 + s y / beta) and the spec's floor 1e-10 B both made
SCIP 10 return wrong answers on our tests (SCIP lifts any bound below its 1e-9
``minzerodistance``, emptying the y = 0 domain [b_fl, b_fl], and the gradients s/b_fl ~ 1e12
of the bivariate form produced invalid cuts: "optimal" 1.8 s on spec instance A, whose
optimum is 1.476 s); b_fl = 1e-9 B moves T by about 1e-9 relative per selected device.

Bias rows (unit of G^2, scaled by 1/G^2, tightened by the ``COVERAGE_MARGIN`` of
``bisection_mckp`` so that SCIP's points meet the budget without tolerance), with N(a)
added when ``include_noise_in_budget``:

* linear: G^2 (1 - sum p_k rho_n y_i) <= eps0;
* quadratic: sum_l G_l^2 (1 - u_l)^2 <= eps0, u_l = sum_{i covering l} p_k y_i (convex MIQCP);
* normalised (spec §9): sum_l G_l^2 f_l <= eps0 with f_l >= 4 (1 - u_l)^2 - 3 (1 - w_l),
  w_l binary, w_l >= y_i for every option i covering l, w_l <= sum of those y_i. Then
  w_l = 1 iff u_l > 0 and f_l is exactly 4 (1 - u_l)^2 there and 1 where u_l = 0.

Start point and T_UB: the multiple-choice knapsack of ``bisection_mckp`` at T = inf on a
linear restriction of the bias row (linear: the row itself; quadratic: Phi <= eps0, as
Phi_q <= Phi; normalised: Phi [+ N] <= eps0/4, as the normalised bias is <= 4 Phi), or every
eligible device at n_k^max when that knapsack is infeasible, then a greedy descent (drop
or shrink the device with most bandwidth while T decreases and the bias row holds). Its
options warm-start SCIP. Without any start point the program is solved without T_UB
(tau and t unbounded, time unit max Tcmp).

SCIP runs silent (``scip_direct`` deadlocks on a long log) with ``limits/gap`` = 1e-7 and
``numerics/feastol`` = 1e-9. Its options (argmax y per device) are polished by
:func:`~edgeopt.solvers.tinyfel.common.equalise`, so the returned point is exact; the
better of that and the start point is reported, with SCIP's bound (clipped to it).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pyomo.environ as pyo
from pyomo.contrib.solver.common.factory import SolverFactory
from pyomo.contrib.solver.common.results import TerminationCondition

from edgeopt.models.tinyfel import TinyFELModel
from edgeopt.models.tinyfel.radio import LN2
from edgeopt.solvers.edgesplit.common import Deadline
from edgeopt.solvers.edgesplit.misocp import scip_version
from edgeopt.solvers.result import Result, Status
from edgeopt.solvers.tinyfel.bisection_mckp import COVERAGE_MARGIN, choose, energy_only
from edgeopt.solvers.tinyfel.common import (
    empty_solution,
    equalise,
    finish_times,
    infeasible_result,
    make_result,
)

METHOD = "minlp_perspective"

FLOOR = 1e-9
"""b_fl / B: the least bandwidth fraction of every option (keeps the log defined)."""

MIP_GAP = 1e-7
"""SCIP's ``limits/gap``."""

FEASIBILITY_TOLERANCE = 1e-9
"""SCIP's ``numerics/feastol``."""

UPPER_MARGIN = 1e-6
"""T_UB = (1 + UPPER_MARGIN) x the start point's latency, so that point lies inside."""

CHOSEN = 0.5
"""SCIP's y_i above this selects option i (binaries come back within feastol of 0 or 1)."""

TERMINATION = {
    TerminationCondition.convergenceCriteriaSatisfied: "optimal",
    TerminationCondition.maxTimeLimit: "time_limit",
}


def unsupported(model: TinyFELModel) -> str | None:
    """Why the MINLP does not model this instance (``None`` when it does)."""
    if model.total_latency:
        return "solves P1 (objective 'round_latency'); P2 needs pareto_sweep"
    return None


@dataclass(frozen=True)
class Point:
    """Options (a, n) with their equalised bandwidths [Hz] and latency T [s] (no T_dl)."""

    selected: np.ndarray
    layers: np.ndarray
    bandwidth: np.ndarray
    latency_s: float


def budget_holds(model: TinyFELModel, selected: np.ndarray, layers: np.ndarray) -> bool:
    """K_min and the bias row C2 in the model's own measure (no tolerance)."""
    inst = model.instance
    if int(np.sum(selected)) < inst.min_selected:
        return False
    return model.learning_terms(selected, layers).budget_value <= inst.bias_budget


def equalised(model: TinyFELModel, selected: np.ndarray, layers: np.ndarray) -> Point | None:
    """The point of fixed options with equal finishing times (``None``: energy minima > B)."""
    layers = np.where(selected, layers, 0)
    bandwidth = equalise(model, selected, layers)
    if bandwidth is None:
        return None
    finish = finish_times(model, selected, layers, bandwidth)["finish_s"]
    return Point(selected, layers, bandwidth, float(finish.max(initial=0.0)))


def start_point(model: TinyFELModel) -> Point | None:
    """A cheap feasible point (module docstring), or ``None`` if none was found."""
    inst, table = model.instance, model.options
    limit = inst.bias_budget / 4.0 if inst.aggregation == "normalised" else None
    noisy = True if inst.aggregation == "normalised" else None
    found = choose(model, energy_only(model), bias_limit=limit, include_noise=noisy)
    if found is None:
        eligible = table.n_max > 0
        found = (eligible, np.where(eligible, table.n_max, 0))
    selected, layers = (np.asarray(x).copy() for x in found)
    point = equalised(model, selected, layers) if budget_holds(model, selected, layers) else None
    return None if point is None else descend(model, point)


def descend(model: TinyFELModel, point: Point) -> Point:
    """Greedy: for the devices in decreasing order of bandwidth, try dropping the device or
    updating one layer fewer; take the first move that keeps the bias row and lowers T;
    repeat until no move helps."""
    table, n_min = model.options, model.instance.min_updated_layers
    improved = True
    while improved:
        improved = False
        for k in np.argsort(-point.bandwidth):
            if not point.selected[k]:
                break
            n = point.layers[k]
            moves = [0] + ([n - 1] if n - 1 >= n_min and table.available[k, n - 2] else [])
            for move in moves:
                selected, layers = point.selected.copy(), point.layers.copy()
                selected[k], layers[k] = move > 0, move
                if not budget_holds(model, selected, layers):
                    continue
                candidate = equalised(model, selected, layers)
                if candidate is not None and candidate.latency_s < point.latency_s * (1 - 1e-12):
                    point, improved = candidate, True
                    break
            if improved:
                break
    return point


@dataclass(frozen=True)
class Scaled:
    """The options i of the program and their scaled numbers (module docstring); ``unit_s``
    is the time unit [s] (T_UB, or max Tcmp when ``bounded`` is False)."""

    device: np.ndarray
    layers: np.ndarray
    compute: np.ndarray
    upload: np.ndarray
    snr: np.ndarray
    energy: np.ndarray
    unit_s: float
    bounded: bool

    @classmethod
    def build(cls, model: TinyFELModel, upper_s: float | None) -> Scaled:
        table = model.options
        budget = table.bandwidth_hz
        usable = table.available & (table.energy_bandwidth_hz <= budget)
        if upper_s is not None:
            usable &= table.latency_floor_s < upper_s
            unit = upper_s
        else:
            unit = float(np.max(table.compute_s, where=table.available, initial=0.0)) or 1.0
        device, column = np.nonzero(usable)
        return cls(
            device=device,
            layers=column + 1,
            compute=table.compute_s[device, column] / unit,
            upload=table.upload_bits[column] / (budget * unit),
            snr=table.snr_hz[device] / budget,
            energy=table.energy_bandwidth_hz[device, column] / budget,
            unit_s=unit,
            bounded=upper_s is not None,
        )

    def of_device(self, k: int) -> list[int]:
        return [int(i) for i in np.flatnonzero(self.device == k)]


def build(model: TinyFELModel, data: Scaled) -> pyo.ConcreteModel:
    """The scaled MINLP of the module docstring."""
    inst, table = model.instance, model.options
    options = range(len(data.device))
    m = pyo.ConcreteModel()
    m.I = pyo.Set(initialize=list(options))
    top = 1.0 if data.bounded else None
    m.y = pyo.Var(m.I, within=pyo.Binary)
    m.beta = pyo.Var(m.I, bounds=(FLOOR, 1.0 + FLOOR))
    m.z = pyo.Var(m.I, bounds=lambda m, i: (0.0, data.snr[i] / LN2))
    m.t = pyo.Var(m.I, bounds=(0.0, top))
    m.tau = pyo.Var(bounds=(0.0, top))
    m.objective = pyo.Objective(expr=m.tau)
    owned = {k: data.of_device(k) for k in range(model.n_devices)}
    m.K = pyo.Set(initialize=[k for k, own in owned.items() if own])
    m.one = pyo.Constraint(m.K, rule=lambda m, k: sum(m.y[i] for i in owned[k]) <= 1)
    m.latency = pyo.Constraint(m.K, rule=lambda m, k: m.tau >= sum(
        data.compute[i] * m.y[i] + m.t[i] for i in owned[k]))
    m.on = pyo.Constraint(m.I, rule=lambda m, i: m.beta[i] <= m.y[i] + FLOOR)
    m.budget = pyo.Constraint(expr=sum(m.beta[i] for i in m.I) <= 1.0 + FLOOR * len(options))
    m.rate = pyo.Constraint(m.I, rule=lambda m, i: m.z[i] * LN2 <= m.beta[i] * pyo.log(
        1.0 + data.snr[i] / m.beta[i]))
    m.cap = pyo.Constraint(m.I, rule=lambda m, i: m.z[i] * LN2 <= data.snr[i] * m.y[i])
    m.cone = pyo.Constraint(m.I, rule=lambda m, i: m.t[i] * m.z[i] >= data.upload[i] * m.y[i] ** 2)
    if data.bounded:
        m.idle = pyo.Constraint(m.I, rule=lambda m, i: m.t[i] <= (1.0 - data.compute[i]) * m.y[i])
    energetic = [i for i in options if data.energy[i] > 0]
    m.energy = pyo.Constraint(energetic, rule=lambda m, i: m.beta[i] >= data.energy[i] * m.y[i])
    if inst.min_selected > 0:
        m.count = pyo.Constraint(expr=sum(m.y[i] for i in m.I) >= inst.min_selected)

    grad_total = table.grad_sq.sum()
    noise = table.noise_const / grad_total
    if inst.include_noise_in_budget:
        noise = noise + sum(table.noise_coeff[data.device[i]] / grad_total * m.y[i] for i in m.I)
    limit = inst.bias_budget / grad_total - COVERAGE_MARGIN
    weights = table.weights[data.device]
    if inst.aggregation == "unnormalised" and inst.bias_form == "linear":
        ratio = table.ratio[data.layers - 1]
        bias = 1.0 - sum(weights[i] * ratio[i] * m.y[i] for i in m.I)
    else:
        share = table.grad_sq / grad_total
        L = model.n_layers
        covering = [[i for i in options if data.layers[i] >= L - j] for j in range(L)]
        m.J = pyo.Set(initialize=list(range(L)))
        m.u = pyo.Expression(m.J, rule=lambda m, j: sum(weights[i] * m.y[i] for i in covering[j]))
        if inst.aggregation == "normalised":
            m.w = pyo.Var(m.J, within=pyo.Binary)
            m.f = pyo.Var(m.J, bounds=(0.0, 4.0))
            m.w_on = pyo.Constraint(
                [(j, i) for j in range(L) for i in covering[j]],
                rule=lambda m, j, i: m.w[j] >= m.y[i])
            m.w_off = pyo.Constraint(m.J, rule=lambda m, j: m.w[j] <= sum(
                m.y[i] for i in covering[j]))
            m.layer_bias = pyo.Constraint(m.J, rule=lambda m, j: m.f[j] >= 4.0 * (
                1.0 - m.u[j]) ** 2 - 3.0 * (1.0 - m.w[j]))
            bias = sum(share[j] * m.f[j] for j in m.J)
        else:
            bias = sum(share[j] * (1.0 - m.u[j]) ** 2 for j in m.J)
    m.bias = pyo.Constraint(expr=bias + noise <= limit)
    return m


def solve_minlp_perspective(
    model: TinyFELModel,
    *,
    backend: str | None = None,
    time_limit: float | None = None,
    seed: int | None = None,
    mip_gap: float = MIP_GAP,
) -> Result:
    """Exact P1 by the perspective MINLP (module docstring), every bias form and both
    aggregation rules, with SCIP's dual bound. ``time_limit`` [s] covers the start point,
    the build and SCIP: SCIP's incumbent (or the start point) is then returned with status
    ``time_limit`` and SCIP's bound. ``mip_gap`` is SCIP's relative gap; ``seed`` shifts
    SCIP's random seeds."""
    started = time.perf_counter()
    deadline = Deadline(time_limit)
    diagnosis = model.infeasibility()
    if diagnosis is not None:
        return infeasible_result(model, METHOD, diagnosis.reason, diagnosis.message,
                                 infeasible_details=diagnosis.details)
    start = start_point(model)
    upper = None if start is None else start.latency_s * (1 + UPPER_MARGIN)
    if upper == 0.0:  # nothing needs time: the start point is optimal
        return _result(model, start, Status.OPTIMAL, 0.0, started, 0.0, "optimal", None, None)
    data = Scaled.build(model, upper)
    pm = build(model, data)
    if start is not None:
        for i in pm.I:
            k = data.device[i]
            pm.y[i].value = float(start.selected[k] and start.layers[k] == data.layers[i])
        if hasattr(pm, "w"):  # normalised: layer j + 1 is covered iff u > 0
            cover = model.learning_terms(start.selected, start.layers).coverage
            for j in pm.J:
                pm.w[j].value = float(cover[j] > 0)
    build_s = time.perf_counter() - started

    options: dict[str, float] = {"numerics/feastol": FEASIBILITY_TOLERANCE,
                                 "display/verblevel": 0}
    if seed is not None:
        options["randomization/randomseedshift"] = seed
    # Silent: scip_direct reads SCIP's log through a pipe while pyscipopt holds the GIL, so
    # a long log blocks the solve forever (see edgesplit.misocp).
    run = SolverFactory("scip_direct").solve(
        pm, tee=False, load_solutions=False, raise_exception_on_nonoptimal_result=False,
        warmstart_discrete_vars=start is not None, rel_gap=mip_gap,
        time_limit=deadline.remaining, solver_options=options,
    )
    condition = run.termination_condition
    termination = TERMINATION.get(condition, condition.name)
    point = start
    if run.solution_loader.get_number_of_solutions() > 0:
        run.solution_loader.load_vars()
        polished = _polish(model, data, pm)
        if polished is not None and (point is None or polished.latency_s < point.latency_s):
            point = polished
    dual = run.objective_bound
    bound_s = data.unit_s * dual if dual is not None and math.isfinite(dual) else 0.0
    message = None
    if condition is TerminationCondition.convergenceCriteriaSatisfied:
        status = Status.OPTIMAL
    elif condition is TerminationCondition.maxTimeLimit:
        status = Status.TIME_LIMIT
    elif condition is TerminationCondition.provenInfeasible and start is None:
        return infeasible_result(model, METHOD, "bandwidth",
                                 "SCIP proved that no selection meets the bandwidth, bias "
                                 "budget and min_selected rows together")
    else:
        status, message = Status.FEASIBLE, f"SCIP stopped early: {condition.name}"
    if point is None:
        return Result(model=model.model_id, method=METHOD, status=Status.TIME_LIMIT
                      if status is Status.TIME_LIMIT else Status.ERROR,
                      solution=empty_solution(model), device_names=model.device_names,
                      solver="scip", solver_version=scip_version(), termination=termination,
                      message=f"SCIP stopped without a usable point: {condition.name}")
    solve_s = time.perf_counter() - started - build_s
    return _result(model, point, status, bound_s, started, build_s, termination, message,
                   run.timing_info.scip_time, solve_s)


def _polish(model: TinyFELModel, data: Scaled, pm: pyo.ConcreteModel) -> Point | None:
    """SCIP's options, re-checked exactly and equalised (``None`` if they fail a row)."""
    selected = np.zeros(model.n_devices, dtype=bool)
    layers = np.zeros(model.n_devices, dtype=int)
    for i in pm.I:
        if (pm.y[i].value or 0.0) > CHOSEN:
            k = data.device[i]
            selected[k], layers[k] = True, data.layers[i]
    if not budget_holds(model, selected, layers):
        return None
    return equalised(model, selected, layers)


def _result(
    model: TinyFELModel,
    point: Point,
    status: Status,
    bound_s: float,
    started: float,
    build_s: float,
    termination: str,
    message: str | None,
    reported_s: float | None = None,
    solve_s: float | None = None,
) -> Result:
    """The Result of ``point`` with the bound ``bound_s`` [s] on T (excluding T_dl)."""
    t_dl = model.options.downlink_s
    return make_result(
        model, METHOD, status, point.selected, point.layers, point.bandwidth,
        bound_round_s=min(bound_s, point.latency_s) + t_dl,
        solver="scip", solver_version=scip_version(), build_s=build_s,
        solve_s=time.perf_counter() - started - build_s if solve_s is None else solve_s,
        solver_reported_s=reported_s, termination=termination, message=message,
    )
