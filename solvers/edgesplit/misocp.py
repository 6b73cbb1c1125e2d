"""``misocp_perspective`` and ``misocp_bigm``: mixed-integer SOCPs solved by SCIP through
Pyomo's ``scip_direct`` interface (spec §5.3(a), (b)).

Scaling (spec §9): bandwidth and server share enter as fractions p = b/B and q = s/F, so
every coefficient is in seconds (A, A' = A + S/F, d = D'/B, e = S/F). All seconds are then
divided by T_ub, a feasible makespan from the alternating heuristic, so the model's values
are O(1) and the makespan variable tau = T/T_ub lies in [T_lb/T_ub, 1]. Rotated cones are
written as products u*p >= x**2 of variables that equal about 1 where they bind, so SCIP's
absolute tolerances act as relative ones; SCIP recognises them as convex.

Only options that can take part in a point with T <= T_ub get variables: memory-feasible
ones with A + D'/B + S/F <= T_ub (dedicated: A' + D'/B <= T_ub). After the solve the cuts are
argmax_c x_{i,c}; resources are re-solved exactly for them (polish), and SCIP's dual bound
times T_ub is the reported bound per round.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyomo.environ as pyo
from pyomo.contrib.solver.common.factory import SolverFactory
from pyomo.contrib.solver.common.results import TerminationCondition

from edgeopt.models.edgesplit import EdgeSplitModel
from edgeopt.solvers.common.deadline import Deadline
from edgeopt.solvers.common.termination import pyomo_termination
from edgeopt.solvers.edgesplit.alternating import solve_alternating
from edgeopt.solvers.edgesplit.common import empty_solution, make_result
from edgeopt.solvers.edgesplit.resources import allocate_for_cuts
from edgeopt.solvers.result import Result, Status, Timings

UPPER_MARGIN = 1e-6
"""T_ub = (1 + UPPER_MARGIN) * heuristic makespan, so the heuristic point lies strictly inside."""

FEASIBILITY_TOLERANCE = 1e-9
"""SCIP's ``numerics/feastol`` (default 1e-6). SCIP's dual bound holds only up to this tolerance
on the O(1) scaled rows, and ``optimal`` needs the bound within 1e-6 of the polished objective."""



@dataclass(frozen=True)
class ScaledOptions:
    """The options that can beat T_ub, in units of T_ub (dimensionless).

    Option k belongs to ``device[k]`` and has table column ``column[k]``. ``fixed`` is A'/T_ub
    (dedicated) or A/T_ub (shared); ``comm`` is D'/(B T_ub); ``server`` is S/(F T_ub) in
    shared mode and zero in dedicated mode (where S/F is part of ``fixed``). ``upper_s`` is
    T_ub [s] and ``lower`` is T_lb/T_ub with T_lb = max_i min_c fixed (a valid bound).
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
    """The scaled data for a feasible per-round makespan ``upper_s`` [s] (every device keeps
    the option it uses in the point that reached ``upper_s``)."""
    table = model.options
    fixed = (table.device_s if model.shared else table.dedicated_s) / upper_s
    comm = table.bandwidth_seconds / model.instance.bandwidth_hz / upper_s
    server = (table.server_s if model.shared else np.zeros_like(table.server_s)) / upper_s
    lower = float(np.where(table.feasible, fixed, np.inf).min(axis=1).max())
    usable = table.feasible & (fixed + comm + server <= 1.0)
    device, column = np.nonzero(usable)
    return ScaledOptions(
        device=device,
        column=column,
        fixed=fixed[device, column],
        comm=comm[device, column],
        server=server[device, column],
        upper_s=upper_s,
        lower=min(lower, 1.0),
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


def _perspective_resource(m: pyo.ConcreteModel, name: str, need: np.ndarray, other: np.ndarray,
                          fixed: np.ndarray) -> list[int]:
    """One resource of the options with need_k > 0, in balanced units.

    With room_k = 1 - fixed_k - other_k (the most the option's term can take when tau <= 1,
    as its other term is at least other_k) and least_k = need_k/room_k (the least fraction
    that can work), the fraction is f_k = least_k P_k and the term is room_k W_k, with
    P_k W_k >= x_k^2 (the rotated cone t_k f_k >= need_k x_k^2), x_k <= P_k <= x_k/least_k,
    W_k <= x_k and sum_k least_k P_k <= 1. At a chosen option P W = 1 exactly, so SCIP's
    absolute tolerance is a relative error of the term, whatever its size.
    Returns the indices k that got variables; ``m.<name>_term[k]`` is room_k W_k.
    """
    ks = [k for k in m.K if need[k] > 0]
    room = 1.0 - fixed - other
    least = need / np.where(room > 0, room, 1.0)
    amount = pyo.Var(ks, bounds=lambda m, k: (0.0, 1.0 / least[k]))
    share = pyo.Var(ks, bounds=(0.0, 1.0))
    x = m.x
    parts = {
        "amount": amount,
        "share": share,
        "on": pyo.Constraint(ks, rule=lambda m, k: least[k] * amount[k] <= x[k]),
        "least": pyo.Constraint(ks, rule=lambda m, k: amount[k] >= x[k]),
        "most": pyo.Constraint(ks, rule=lambda m, k: share[k] <= x[k]),
        "cone": pyo.Constraint(ks, rule=lambda m, k: amount[k] * share[k] >= x[k] ** 2),
        "term": pyo.Expression(ks, rule=lambda m, k: room[k] * share[k]),
    }
    if ks:
        parts["budget"] = pyo.Constraint(rule=lambda m: sum(least[k] * amount[k] for k in ks) <= 1)
    for part, component in parts.items():
        m.add_component(f"{name}_{part}", component)
    return ks


def build_perspective(data: ScaledOptions, shared: bool) -> pyo.ConcreteModel:
    """Spec §5.3(b): per option p_k <= x_k, t_k p_k >= d_k x_k^2, sum p <= 1 (shared: also q_k,
    g_k for the server); tau >= sum_c (a x + t + g) per device. Options without traffic
    (server work) get no p, t (q, g); in dedicated mode ``data.server`` is zero, so ``shared``
    changes nothing here. The variables are rescaled by :func:`_perspective_resource`."""
    m = _common(data)
    comm = set(_perspective_resource(m, "comm", data.comm, data.server, data.fixed))
    work = set(_perspective_resource(m, "server", data.server, data.comm, data.fixed))

    def makespan(m, i):
        ks = data.of_device(i)
        terms = [m.comm_term[k] for k in ks if k in comm]
        terms += [m.server_term[k] for k in ks if k in work]
        return m.tau >= sum(data.fixed[k] * m.x[k] for k in ks) + sum(terms)

    m.makespan = pyo.Constraint(m.I, rule=makespan)
    return m


def _least_fraction(need: np.ndarray, room: np.ndarray) -> float:
    """min_k need_k/room_k: the smallest fraction any option of the device can work with."""
    return float(np.min(need / room))


def build_bigm(data: ScaledOptions, shared: bool) -> pyo.ConcreteModel:
    """Spec §5.3(a): per device p_i in [1/U_i, 1], u_i p_i >= 1, sum p <= 1 (shared: q_i, v_i
    likewise) and tau >= a_k + e_k v_i + d_k u_i - M_k (1 - x_k) per option. Every point with
    tau <= 1 has p_i >= min_c d/(1 - a - e), hence U_i; likewise V_i. Needs every d_k > 0
    (and e_k > 0 when shared)."""
    m = _common(data)
    options = [data.of_device(i) for i in range(data.n_devices)]
    a, d, e = data.fixed, data.comm, data.server
    p_min = [_least_fraction(d[ks], 1.0 - a[ks] - e[ks]) for ks in options]
    m.p = pyo.Var(m.I, bounds=lambda m, i: (p_min[i], 1.0))
    m.u = pyo.Var(m.I, bounds=lambda m, i: (1.0, 1.0 / p_min[i]))
    m.comm_cone = pyo.Constraint(m.I, rule=lambda m, i: m.u[i] * m.p[i] >= 1.0)
    m.comm_budget = pyo.Constraint(expr=sum(m.p[i] for i in m.I) <= 1.0)
    big_m = a + d / np.array(p_min)[data.device] - data.lower
    if shared:
        q_min = [_least_fraction(e[ks], 1.0 - a[ks] - d[ks]) for ks in options]
        m.q = pyo.Var(m.I, bounds=lambda m, i: (q_min[i], 1.0))
        m.v = pyo.Var(m.I, bounds=lambda m, i: (1.0, 1.0 / q_min[i]))
        m.server_cone = pyo.Constraint(m.I, rule=lambda m, i: m.v[i] * m.q[i] >= 1.0)
        m.server_budget = pyo.Constraint(expr=sum(m.q[i] for i in m.I) <= 1.0)
        big_m = big_m + e / np.array(q_min)[data.device]

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
    build: Callable[[ScaledOptions, bool], pyo.ConcreteModel],
    *,
    time_limit: float | None,
    seed: int | None,
    mip_gap: float,
) -> Result:
    """Heuristic T_ub and warm start, build, SCIP, polish. ``time_limit`` [s] covers it all."""
    deadline = Deadline(time_limit)
    started = time.perf_counter()
    table = model.options
    heuristic = solve_alternating(model)
    heuristic_cuts = np.asarray(heuristic.solution["cuts"])
    upper_s = max(heuristic.solution["per_device_time_s"])
    if upper_s == 0:  # nothing takes time: the heuristic's point is optimal
        return heuristic.replace(method=method, status=Status.OPTIMAL, bound=0.0, trace=None,
                                 termination="optimal", message=None)
    data = scale_options(model, upper_s * (1 + UPPER_MARGIN))
    pm = build(data, model.shared)
    for k in pm.K:
        pm.x[k].value = float(table.cuts[data.column[k]] == heuristic_cuts[data.device[k]])
    build_s = time.perf_counter() - started

    # SCIP stays silent: Pyomo 6.10's scip_direct reads SCIP's log through a pipe while
    # pyscipopt's optimize() holds the GIL, so a log longer than the pipe buffer (~64 KiB)
    # blocks the solve forever. For the same reason no ``tee`` option is offered.
    options: dict[str, float] = {"numerics/feastol": FEASIBILITY_TOLERANCE, "display/verblevel": 0}
    if seed is not None:
        options["randomization/randomseedshift"] = seed
    run = SolverFactory("scip_direct").solve(
        pm,
        tee=False,
        load_solutions=False,
        raise_exception_on_nonoptimal_result=False,
        warmstart_discrete_vars=True,
        rel_gap=mip_gap,
        time_limit=deadline.remaining,
        solver_options=options,
    )
    condition = run.termination_condition
    termination = pyomo_termination(condition)
    has_solution = run.solution_loader.get_number_of_solutions() > 0
    about = {"solver": "scip", "solver_version": scip_version(), "build_s": build_s,
             "solver_reported_s": run.timing_info.scip_time}
    message = None
    if condition is TerminationCondition.convergenceCriteriaSatisfied and has_solution:
        status = Status.OPTIMAL
    elif condition is TerminationCondition.maxTimeLimit:
        status = Status.TIME_LIMIT
        if not has_solution:
            message = "SCIP found no solution in time; the point is the alternating heuristic's"
    elif has_solution:
        status, message = Status.FEASIBLE, f"SCIP stopped early: {condition.name}"
    else:
        return Result(
            model=model.model_id, method=method, status=Status.ERROR,
            solution=empty_solution(model), device_names=model.device_names,
            termination=termination, message=f"SCIP stopped without a solution: {condition.name}",
            solver=about["solver"], solver_version=about["solver_version"],
            timings=Timings(build_s=build_s, solve_s=time.perf_counter() - started - build_s,
                            solver_reported_s=about["solver_reported_s"]),
        )

    cuts = heuristic_cuts
    if has_solution:
        run.solution_loader.load_vars()
        best = [max(data.of_device(i), key=lambda k: pm.x[k].value) for i in range(data.n_devices)]
        cuts = table.cuts[data.column[best]]
    _, makespan, bandwidth, shares = allocate_for_cuts(model, cuts)
    dual = run.objective_bound if run.objective_bound is not None else -math.inf
    bound_s = data.upper_s * max(data.lower, dual if math.isfinite(dual) else 0.0)
    bound_s = min(bound_s, makespan)  # SCIP's bound may exceed the exact value by its tolerance
    return make_result(
        model, method, status, cuts, bandwidth, shares,
        bound_per_round=bound_s,
        solve_s=time.perf_counter() - started - build_s,
        termination=termination,
        message=message,
        **about,
    )


def solve_misocp_perspective(
    model: EdgeSplitModel,
    *,
    backend: str | None = None,
    time_limit: float | None = None,
    seed: int | None = None,
    mip_gap: float = 1e-9,
) -> Result:
    """Exact J by the perspective MISOCP (§5.3(b)), both server modes, with SCIP's bound.

    ``time_limit`` [s] covers the heuristic, the model build and SCIP; ``mip_gap`` is SCIP's
    relative gap; ``seed`` shifts SCIP's random seeds.
    """
    return _solve(model, "misocp_perspective", build_perspective,
                  time_limit=time_limit, seed=seed, mip_gap=mip_gap)


def solve_misocp_bigm(
    model: EdgeSplitModel,
    *,
    backend: str | None = None,
    time_limit: float | None = None,
    seed: int | None = None,
    mip_gap: float = 1e-9,
) -> Result:
    """Exact J by the big-M MISOCP (§5.3(a)); needs D' > 0 (and S > 0 when shared) on every
    memory-feasible option. Options as for :func:`solve_misocp_perspective`."""
    return _solve(model, "misocp_bigm", build_bigm,
                  time_limit=time_limit, seed=seed, mip_gap=mip_gap)
