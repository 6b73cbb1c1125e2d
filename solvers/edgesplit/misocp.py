"""``misocp_perspective`` and ``misocp_bigm``: mixed-integer SOCPs solved by SCIP through
Pyomo's ``scip_direct`` interface (spec §5.3(a), (b)).

Scaling (spec §9): bandwidth and server share enter as fractions p = b/B and q = s/F, so
every coefficient is in seconds (A, A' = A + S/F, d = D'/B, e = S/F). All seconds are then
divided by T_ub, a feasible makespan from the alternating heuristic, so the model's values
are O(1) and the makespan variable tau = T/T_ub lies in [T_lb/T_ub, 1]. Only memory-feasible
options get variables. Rotated cones are written as t*p >= d*x**2, which SCIP recognises.

After the solve the cuts are argmax_c x_{i,c}; resources are then re-solved exactly for
those cuts (polish), and SCIP's dual bound (times T_ub) is the reported bound per round.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass

import numpy as np
import pyomo.environ as pyo
from pyomo.contrib.solver.common.factory import SolverFactory
from pyomo.contrib.solver.common.results import TerminationCondition

from edgeopt.models.edgesplit import EdgeSplitModel
from edgeopt.solvers.edgesplit.alternating import solve_alternating
from edgeopt.solvers.edgesplit.common import Deadline, empty_solution, make_result
from edgeopt.solvers.edgesplit.resources import allocate_for_cuts
from edgeopt.solvers.result import Result, Status

UPPER_MARGIN = 1e-6
"""T_ub = (1 + UPPER_MARGIN) * heuristic makespan, so the heuristic point stays strictly inside."""

FEASIBILITY_TOLERANCE = 1e-9
"""SCIP's ``numerics/feastol`` (default 1e-6). Its dual bound holds only up to this tolerance on
the O(1) scaled rows; at 1e-6 the bound on T3 came out 2e-6 above the optimum."""


@dataclass(frozen=True)
class ScaledOptions:
    """The memory-feasible options in units of T_ub (dimensionless).

    Option k belongs to ``device[k]`` and has table column ``column[k]``. ``fixed`` is A'/T_ub
    (dedicated) or A/T_ub (shared); ``comm`` is D'/(B T_ub); ``server`` is S/(F T_ub) in
    shared mode and zero in dedicated mode (where it is part of ``fixed``).
    """

    device: np.ndarray
    column: np.ndarray
    fixed: np.ndarray
    comm: np.ndarray
    server: np.ndarray
    upper_s: float
    lower: float
    n_devices: int

    def of_device(self, i: int) -> list[int]:
        """Option indices k of device i."""
        return [int(k) for k in np.flatnonzero(self.device == i)]


def scale_options(model: EdgeSplitModel, upper_s: float) -> ScaledOptions:
    """The scaled option data for a feasible per-round makespan ``upper_s`` [s]."""
    table = model.options
    device, column = np.nonzero(table.feasible)
    fixed = table.device_s if model.shared else table.dedicated_s
    server = table.server_s if model.shared else np.zeros_like(table.server_s)
    lower_s = float(np.where(table.feasible, fixed, np.inf).min(axis=1).max())  # T_lb
    return ScaledOptions(
        device=device,
        column=column,
        fixed=fixed[device, column] / upper_s,
        comm=table.bandwidth_seconds[device, column] / model.instance.bandwidth_hz / upper_s,
        server=server[device, column] / upper_s,
        upper_s=upper_s,
        lower=min(lower_s / upper_s, 1.0),
        n_devices=model.n_devices,
    )


def _common(data: ScaledOptions) -> pyo.ConcreteModel:
    """Binaries x_k, makespan tau in [T_lb/T_ub, 1], one option per device, objective tau."""
    m = pyo.ConcreteModel()
    m.K = pyo.RangeSet(0, len(data.device) - 1)
    m.I = pyo.RangeSet(0, data.n_devices - 1)
    m.x = pyo.Var(m.K, within=pyo.Binary)
    m.tau = pyo.Var(bounds=(data.lower, 1.0))
    m.choose = pyo.Constraint(m.I, rule=lambda m, i: sum(m.x[k] for k in data.of_device(i)) == 1)
    m.objective = pyo.Objective(expr=m.tau)
    return m


def build_perspective(data: ScaledOptions, shared: bool = False) -> pyo.ConcreteModel:
    """Spec §5.3(b): per option p_k <= x_k, t_k p_k >= d_k x_k^2 (and q, g for the server).

    Options without traffic (server work) get no p, t (q, g): their term is zero.
    """
    m = _common(data)
    traffic = [k for k in m.K if data.comm[k] > 0]
    m.p = pyo.Var(traffic, bounds=(0.0, 1.0))
    m.t = pyo.Var(traffic, bounds=(0.0, 1.0))  # t <= tau <= 1 is implied by the makespan row
    m.p_on = pyo.Constraint(traffic, rule=lambda m, k: m.p[k] <= m.x[k])
    m.comm_cone = pyo.Constraint(traffic, rule=lambda m, k: m.t[k] * m.p[k] >= data.comm[k] * m.x[k] ** 2)
    if traffic:
        m.band = pyo.Constraint(expr=sum(m.p[k] for k in traffic) <= 1.0)
    work = [k for k in m.K if data.server[k] > 0]  # empty in dedicated mode
    m.q = pyo.Var(work, bounds=(0.0, 1.0))
    m.g = pyo.Var(work, bounds=(0.0, 1.0))
    m.q_on = pyo.Constraint(work, rule=lambda m, k: m.q[k] <= m.x[k])
    m.server_cone = pyo.Constraint(work, rule=lambda m, k: m.g[k] * m.q[k] >= data.server[k] * m.x[k] ** 2)
    if work:
        m.server_budget = pyo.Constraint(expr=sum(m.q[k] for k in work) <= 1.0)

    def makespan(m, i):
        ks = data.of_device(i)
        return m.tau >= sum(
            data.fixed[k] * m.x[k] + (m.t[k] if k in m.p else 0) + (m.g[k] if k in m.q else 0) for k in ks
        )

    m.makespan = pyo.Constraint(m.I, rule=makespan)
    return m


def _least_fraction(need: np.ndarray, slack: np.ndarray) -> float:
    """min need/slack over options with positive slack (the smallest fraction that can work)."""
    usable = slack > 0
    return float(np.min(need[usable] / slack[usable]))


def build_bigm(data: ScaledOptions, shared: bool) -> pyo.ConcreteModel:
    """Spec §5.3(a): per device p_i in [1/U_i, 1], u_i p_i >= 1, u_i <= U_i (shared: q_i, v_i),
    and tau >= a_k + e_k v_i + d_k u_i - M_k (1 - x_k) per option (every d_k, e_k > 0)."""
    m = _common(data)
    devices = range(data.n_devices)
    options = [data.of_device(i) for i in devices]
    a, d, e = data.fixed, data.comm, data.server
    # Every point with tau <= 1 has p_i >= min_c d/(1 - a - e) (q_i <= 1), likewise for q_i.
    p_min = [_least_fraction(d[ks], 1.0 - a[ks] - e[ks]) for ks in options]
    m.p = pyo.Var(m.I, bounds=lambda m, i: (p_min[i], 1.0))
    m.u = pyo.Var(m.I, bounds=lambda m, i: (1.0, 1.0 / p_min[i]))
    m.comm_cone = pyo.Constraint(m.I, rule=lambda m, i: m.u[i] * m.p[i] >= 1.0)
    m.band = pyo.Constraint(expr=sum(m.p[i] for i in m.I) <= 1.0)
    u_max = np.array([1.0 / p_min[i] for i in data.device])
    big_m = a + d * u_max - data.lower
    if shared:
        q_min = [_least_fraction(e[ks], 1.0 - a[ks] - d[ks]) for ks in options]
        m.q = pyo.Var(m.I, bounds=lambda m, i: (q_min[i], 1.0))
        m.v = pyo.Var(m.I, bounds=lambda m, i: (1.0, 1.0 / q_min[i]))
        m.server_cone = pyo.Constraint(m.I, rule=lambda m, i: m.v[i] * m.q[i] >= 1.0)
        m.server_budget = pyo.Constraint(expr=sum(m.q[i] for i in m.I) <= 1.0)
        big_m = big_m + e * np.array([1.0 / q_min[i] for i in data.device])

    def makespan(m, k):
        i = int(data.device[k])
        server = e[k] * m.v[i] if shared else 0.0
        return m.tau >= a[k] + server + d[k] * m.u[i] - big_m[k] * (1 - m.x[k])

    m.makespan = pyo.Constraint(m.K, rule=makespan)
    return m


@functools.cache
def scip_version() -> str:
    """The SCIP library version, e.g. '10.0.2'."""
    import pyscipopt

    scip = pyscipopt.Model()
    return f"{scip.getMajorVersion()}.{scip.getMinorVersion()}.{scip.getTechVersion()}"


def _solve(
    model: EdgeSplitModel,
    method: str,
    build,
    *,
    time_limit: float | None,
    seed: int | None,
    mip_gap: float,
    tee: bool,
) -> Result:
    """Heuristic T_ub, build, SCIP solve, polish; ``build(data, shared)`` makes the Pyomo model."""
    deadline = Deadline(time_limit)
    started = time.perf_counter()
    heuristic = solve_alternating(model)
    heuristic_cuts = np.asarray(heuristic.solution["cuts"])
    data = scale_options(model, max(heuristic.solution["per_device_time_s"]) * (1 + UPPER_MARGIN))
    pm = build(data, model.shared)
    for k in pm.K:  # warm start: the heuristic's cuts
        pm.x[k].value = float(model.options.cuts[data.column[k]] == heuristic_cuts[data.device[k]])
    build_s = time.perf_counter() - started

    options: dict[str, float] = {"numerics/feastol": FEASIBILITY_TOLERANCE}
    if seed is not None:
        options["randomization/randomseedshift"] = seed
    solver = SolverFactory("scip_direct")
    run = solver.solve(
        pm,
        tee=tee,
        load_solutions=False,
        raise_exception_on_nonoptimal_result=False,
        warmstart_discrete_vars=True,
        rel_gap=mip_gap,
        time_limit=deadline.remaining,
        solver_options=options,
    )
    dual = run.objective_bound
    bound_s = data.lower * data.upper_s
    if dual is not None and math.isfinite(dual):
        bound_s = max(bound_s, dual * data.upper_s)
    condition = run.termination_condition
    has_solution = run.solution_loader.get_number_of_solutions() > 0
    common = dict(solver="scip", solver_version=scip_version(), build_s=build_s,
                  solver_reported_s=run.timing_info.scip_time)
    if condition is TerminationCondition.convergenceCriteriaSatisfied and has_solution:
        status, termination, message = Status.OPTIMAL, "optimal", None
    elif condition is TerminationCondition.maxTimeLimit:
        status, termination = Status.TIME_LIMIT, "time_limit"
        message = None if has_solution else "SCIP found no solution in time; the point is the heuristic's"
    elif has_solution:
        status, termination, message = Status.FEASIBLE, condition.name, f"SCIP stopped: {condition.name}"
    else:
        return Result(
            model=model.model_id, method=method, status=Status.ERROR, solution=empty_solution(model),
            device_names=model.device_names, termination=condition.name,
            message=f"SCIP stopped without a solution: {condition.name}", **common,
        )

    if has_solution:
        run.solution_loader.load_vars()
        cuts = heuristic_cuts.copy()
        for i in range(data.n_devices):
            ks = data.of_device(i)
            best = max(ks, key=lambda k: pm.x[k].value)
            cuts[i] = model.options.cuts[data.column[best]]
    else:
        cuts = heuristic_cuts
    _, _, bandwidth, shares = allocate_for_cuts(model, cuts)
    return make_result(
        model, method, status, cuts, bandwidth, shares,
        bound_per_round=bound_s,
        solve_s=time.perf_counter() - started - build_s,
        termination=termination,
        message=message,
        **common,
    )


def solve_misocp_perspective(
    model: EdgeSplitModel,
    *,
    backend: str | None = None,
    time_limit: float | None = None,
    seed: int | None = None,
    mip_gap: float = 1e-9,
    tee: bool = False,
) -> Result:
    """Exact J via the perspective MISOCP (§5.3(b)), both server modes; bound from SCIP.

    ``time_limit`` [s] covers the heuristic, the model build and SCIP; ``mip_gap`` is SCIP's
    relative gap; ``seed`` shifts SCIP's random seeds; ``tee`` prints the SCIP log.
    """
    return _solve(model, "misocp_perspective", build_perspective,
                  time_limit=time_limit, seed=seed, mip_gap=mip_gap, tee=tee)


def solve_misocp_bigm(
    model: EdgeSplitModel,
    *,
    backend: str | None = None,
    time_limit: float | None = None,
    seed: int | None = None,
    mip_gap: float = 1e-9,
    tee: bool = False,
) -> Result:
    """Exact J via the big-M MISOCP (§5.3(a)); needs D' > 0 (and S > 0 when shared) on every
    memory-feasible option. Options as for :func:`solve_misocp_perspective`."""
    return _solve(model, "misocp_bigm", build_bigm,
                  time_limit=time_limit, seed=seed, mip_gap=mip_gap, tee=tee)
