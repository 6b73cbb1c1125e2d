"""``minlp_perspective``: P1 as one MINLP in perspective form, solved by SCIP through Pyomo's
``scip_direct`` interface (spec §5.3), with the perspective of the rate as tangent cuts.

Balanced units (every variable is about 1 where it binds): T_UB is the latency (excluding
T_dl) of a cheap feasible start point (below) times 1 + 1e-6, and only options that can
finish by T_UB take part. For option i = (k, n): c_i = Tcmp/T_UB, l_i = b-hat_i(T_UB)/B (the
least band fraction finishing by T_UB), kappa_i = S_k / b-hat_i(T_UB), e_i = bmin^E/B and
g_i = Q_n / (rho_i (T_UB - Tcmp)) <= 1 (< 1 only where the energy minimum binds). The
bandwidth is b = l_i B P_i, the rate r = rho_i Z_i with rho_i = r_k(b-hat_i(T_UB)), the
upload time (T_UB - Tcmp) W_i, T = T_UB tau:

    min tau  s.t.  sum_{i of k} y_i <= 1 (the rest is "none"),
                   tau >= sum_{i of k} (c_i y_i + (1 - c_i) W_i)            (latency C1)
                   l_i P_i <= y_i,  sum_i l_i P_i <= 1,  l_i P_i >= e_i y_i  (bandwidth C4, C6)
                   W_i Z_i >= g_i y_i^2,  W_i <= y_i                        (rotated cone)
                   Z_i log(1 + kappa_i) <= y_i h_i(P_i / y_i)               (perspective rate)
                   bias row C2;  sum_i y_i >= K_min

with h_i(x) = x log(1 + kappa_i / x), so that at P = Z = W = y = 1 the option finishes at
exactly T_UB. The perspective y h(P/y) is concave and positively homogeneous, so it is the
minimum of its tangent planes through the origin, Z log(1 + kappa) <= a(x0) P + b(x0) y with
a = log(1 + kappa/x0) - kappa/(x0 + kappa) and b = kappa x0/(x0 + kappa) (x0 = inf: the rate
cap). The program is given to SCIP with the tangents at x0 = 2^-6..2^6 and inf (a MISOCP,
which SCIP solves reliably); each round adds the tangents at SCIP's P/y and at the polished
point's bandwidths of the chosen options, until the polished latency is within
:data:`OA_GAP` of the bound (outer approximation). Any set of tangents over-estimates the
rate, so every round's program is a relaxation of P1 on T <= T_UB and SCIP's dual bound,
times T_UB, is a valid lower bound on T*; the largest one is reported.

Decision the spec leaves open: the spec writes the rate row as the nonlinear perspective
b log(1 + S y / b) with a floor b_fl. Given to SCIP 10 as an expression (with b_fl = 1e-10 B
or 1e-9 B, in bivariate, univariate or exponential form), SCIP returned wrong "optimal" or
"infeasible" answers on our tests (1.8 s instead of 1.476 s on spec instance A; 15.9 s
instead of 13.58 s and "infeasible" on 5-device presets): it treats the expression as
non-convex and its estimators break down near the floor. The tangent form needs no floor.

Bias rows (unit of G^2, scaled by 1/G^2, tightened by the ``COVERAGE_MARGIN`` of
``bisection_mckp`` so that SCIP's points meet the budget without tolerance), with N(a)
added when ``include_noise_in_budget``:

* linear: G^2 (1 - sum p_k rho_n y_i) <= eps0;
* quadratic: sum_l G_l^2 (1 - u_l)^2 <= eps0, u_l = sum_{i covering l} p_k y_i (convex MIQCP);
* normalised (spec §9): sum_l G_l^2 f_l <= eps0 with f_l >= 4 (1 - u_l)^2 - 3 (1 - w_l),
  w_l binary, w_l >= y_i for every option i covering l, w_l <= sum of those y_i. Then
  w_l = 1 iff u_l > 0 and f_l is exactly 4 (1 - u_l)^2 there and 1 where u_l = 0.

Start point: the multiple-choice knapsack of ``bisection_mckp`` at T = inf on a linear
restriction of the bias row (linear: the row itself; quadratic: Phi <= eps0, as
Phi_q <= Phi; normalised: Phi + N <= eps0/4, as the normalised bias is <= 4 Phi), or every
eligible device at n_k^max when that knapsack is infeasible, then a greedy descent (drop
or shrink the device with most bandwidth while T decreases and the bias row holds). Its
options warm-start SCIP. Without a start point, T_UB is the latency of every eligible device
at n_k^max (no selection is slower).

SCIP runs silent (``scip_direct`` deadlocks on a long log) with ``limits/gap`` = 1e-7 and
``numerics/feastol`` = 1e-9. Its options (argmax y per device) are polished by
:func:`~edgeopt.solvers.tinyfel.common.equalise`, so the returned point is exact; the best
polished point is reported, with the bound clipped to it. ``extras['scip_rounds']`` counts
the SCIP solves.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pyomo.environ as pyo
from pyomo.contrib.solver.common.factory import SolverFactory
from pyomo.contrib.solver.common.results import TerminationCondition

from edgeopt.models.tinyfel import TinyFELModel, radio
from edgeopt.solvers.common.deadline import Deadline
from edgeopt.solvers.common.termination import pyomo_termination
from edgeopt.solvers.edgesplit.misocp import scip_version
from edgeopt.solvers.result import Result, Status
from edgeopt.solvers.tinyfel.bisection_mckp import COVERAGE_MARGIN, choose, energy_only
from edgeopt.solvers.tinyfel.common import (
    empty_solution,
    equalise,
    finish_times,
    infeasible_result,
    make_result,
    structural_infeasibility,
)

METHOD = "minlp_perspective"

MIP_GAP = 1e-7
"""SCIP's ``limits/gap``."""

FEASIBILITY_TOLERANCE = 1e-9
"""SCIP's ``numerics/feastol``."""

UPPER_MARGIN = 1e-6
"""T_UB = (1 + UPPER_MARGIN) x the start point's latency, so that point lies inside."""

INITIAL_RATIOS = tuple(2.0**j for j in range(-6, 7)) + (math.inf,)
"""P/y of the tangents every option starts with (inf: the rate cap)."""

CUT_SPACING = 1e-9
"""A tangent within this relative distance of an existing one is not added."""

OA_GAP = 5e-7
"""Stop the rounds once (T_best - bound) <= OA_GAP T_best."""

MAX_ROUNDS = 30
"""SCIP rounds (tangents added in between) before giving up on closing the gap."""

CHOSEN = 0.5
"""SCIP's y_i above this selects option i (binaries come back within feastol of 0 or 1)."""



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
class Balanced:
    """The options i of the program (those that can finish by T_UB) in balanced units: the
    compute share ``compute`` c_i = Tcmp/T_UB, the least band fraction ``least`` l_i =
    b-hat_i(T_UB)/B, ``snr`` kappa_i = S_k / b-hat_i(T_UB) and the energy minimum
    ``energy`` e_i = bmin^E/B and ``need`` g_i = Q_n / (r_k(b-hat_i) (T_UB - Tcmp)), 1 unless
    the energy minimum binds at T_UB (all dimensionless); ``upper_s`` = T_UB [s]. Options
    with l_i = 0 upload nothing and need no band (``free``)."""

    device: np.ndarray
    layers: np.ndarray
    compute: np.ndarray
    least: np.ndarray
    snr: np.ndarray
    energy: np.ndarray
    need: np.ndarray
    upper_s: float

    @classmethod
    def at(cls, model: TinyFELModel, upper_s: float) -> Balanced:
        table = model.options
        budget = table.bandwidth_hz
        band = table.min_bandwidth(upper_s)
        device, column = np.nonzero(np.isfinite(band) & (band <= budget))
        least = band[device, column]
        compute = table.compute_s[device, column]
        rate = radio.rate(least, table.snr_hz[device])
        with np.errstate(divide="ignore", invalid="ignore"):
            need = table.upload_bits[column] / (rate * (upper_s - compute))
        return cls(
            device=device,
            layers=column + 1,
            compute=compute / upper_s,
            least=least / budget,
            snr=table.snr_hz[device] / np.where(least > 0, least, 1.0),
            energy=table.energy_bandwidth_hz[device, column] / budget,
            need=np.where(least > 0, np.minimum(need, 1.0), 0.0),
            upper_s=upper_s,
        )

    @property
    def free(self) -> np.ndarray:
        return self.least == 0

    def cut(self, i: int, ratio: float) -> tuple[float, float]:
        """(a, b) of the tangent Z log(1 + kappa) <= a P + b y of the perspective rate
        y h(P/y), h(x) = x log(1 + kappa/x), at P/y = ``ratio`` (+inf: the rate cap)."""
        kappa = self.snr[i]
        if math.isinf(ratio):
            return 0.0, kappa
        return math.log1p(kappa / ratio) - kappa / (ratio + kappa), kappa * ratio / (ratio + kappa)


def build(model: TinyFELModel, data: Balanced) -> pyo.ConcreteModel:
    """The balanced MISOCP of the module docstring, with the initial tangents."""
    inst = model.instance
    options = range(len(data.device))
    loaded = [i for i in options if not data.free[i]]
    m = pyo.ConcreteModel()
    m.I = pyo.Set(initialize=list(options))
    m.y = pyo.Var(m.I, within=pyo.Binary)
    m.P = pyo.Var(m.I, bounds=lambda m, i: (0.0, 0.0 if data.free[i] else 1.0 / data.least[i]))
    m.Z = pyo.Var(m.I, bounds=lambda m, i: (0.0, data.snr[i] / math.log1p(data.snr[i])))
    m.W = pyo.Var(m.I, bounds=(0.0, 1.0))
    m.tau = pyo.Var(bounds=(0.0, 1.0))
    m.objective = pyo.Objective(expr=m.tau)
    owned = {k: [int(i) for i in np.flatnonzero(data.device == k)] for k in range(model.n_devices)}
    m.K = pyo.Set(initialize=[k for k, own in owned.items() if own])
    m.one = pyo.Constraint(m.K, rule=lambda m, k: sum(m.y[i] for i in owned[k]) <= 1)
    m.latency = pyo.Constraint(m.K, rule=lambda m, k: m.tau >= sum(
        data.compute[i] * m.y[i] + (1.0 - data.compute[i]) * m.W[i] for i in owned[k]))
    m.on = pyo.Constraint(m.I, rule=lambda m, i: data.least[i] * m.P[i] <= m.y[i])
    m.budget = pyo.Constraint(expr=sum(data.least[i] * m.P[i] for i in m.I) <= 1.0)
    m.cone = pyo.Constraint(
        loaded, rule=lambda m, i: m.W[i] * m.Z[i] >= data.need[i] * m.y[i] ** 2)
    m.idle = pyo.Constraint(m.I, rule=lambda m, i: m.W[i] <= (0.0 if data.free[i] else m.y[i]))
    energetic = [i for i in options if data.energy[i] > 0]
    m.energy = pyo.Constraint(
        energetic, rule=lambda m, i: data.least[i] * m.P[i] >= data.energy[i] * m.y[i])
    if inst.min_selected > 0:
        m.count = pyo.Constraint(expr=sum(m.y[i] for i in m.I) >= inst.min_selected)
    m.cuts = pyo.ConstraintList()
    m.ratios = {i: [] for i in options}
    for i in loaded:
        for ratio in INITIAL_RATIOS:
            add_cut(m, data, i, ratio)
    m.bias = pyo.Constraint(expr=_bias_row(model, data, m))
    return m


def add_cut(m: pyo.ConcreteModel, data: Balanced, i: int, ratio: float) -> bool:
    """Add the tangent of option i at P/y = ``ratio`` unless one within CUT_SPACING
    (relative) exists; whether a cut was added."""
    known = m.ratios[i]
    if any(r == ratio or (math.isfinite(r) and abs(r - ratio) <= CUT_SPACING * r)
           for r in known):
        return False
    known.append(ratio)
    a, b = data.cut(i, ratio)
    m.cuts.add(m.Z[i] * math.log1p(data.snr[i]) <= a * m.P[i] + b * m.y[i])
    return True


def _bias_row(model: TinyFELModel, data: Balanced, m: pyo.ConcreteModel):
    """The bias row C2 (module docstring) as a Pyomo relation, scaled by 1/G^2."""
    inst, table = model.instance, model.options
    options = range(len(data.device))
    grad_total = table.grad_sq.sum()
    noise = 0.0
    if inst.include_noise_in_budget:
        noise = table.noise_const / grad_total + sum(
            table.noise_coeff[data.device[i]] / grad_total * m.y[i] for i in m.I)
    limit = inst.bias_budget / grad_total - COVERAGE_MARGIN
    weights = table.weights[data.device]
    if inst.aggregation == "unnormalised" and inst.bias_form == "linear":
        ratio = table.ratio[data.layers - 1]
        return 1.0 - sum(weights[i] * ratio[i] * m.y[i] for i in m.I) + noise <= limit
    share = table.grad_sq / grad_total
    L = model.n_layers
    covering = [[i for i in options if data.layers[i] >= L - j] for j in range(L)]
    m.J = pyo.Set(initialize=list(range(L)))
    m.u = pyo.Expression(m.J, rule=lambda m, j: sum(weights[i] * m.y[i] for i in covering[j]))
    if inst.aggregation != "normalised":
        return sum(share[j] * (1.0 - m.u[j]) ** 2 for j in m.J) + noise <= limit
    m.w = pyo.Var(m.J, within=pyo.Binary)
    m.f = pyo.Var(m.J, bounds=(0.0, 4.0))
    m.w_on = pyo.Constraint([(j, i) for j in range(L) for i in covering[j]],
                            rule=lambda m, j, i: m.w[j] >= m.y[i])
    m.w_off = pyo.Constraint(m.J, rule=lambda m, j: m.w[j] <= sum(m.y[i] for i in covering[j]))
    m.layer_bias = pyo.Constraint(m.J, rule=lambda m, j: m.f[j] >= 4.0 * (
        1.0 - m.u[j]) ** 2 - 3.0 * (1.0 - m.w[j]))
    return sum(share[j] * m.f[j] for j in m.J) + noise <= limit


def warm_start(model: TinyFELModel, data: Balanced, m: pyo.ConcreteModel, point: Point) -> None:
    """Discrete values of ``point`` as SCIP's start (y, and w for the normalised rule)."""
    for i in m.I:
        k = data.device[i]
        m.y[i].value = float(point.selected[k] and point.layers[k] == data.layers[i])
    if hasattr(m, "w"):  # layer j + 1 is covered iff u > 0
        cover = model.learning_terms(point.selected, point.layers).coverage
        for j in m.J:
            m.w[j].value = float(cover[j] > 0)


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
    the build and every SCIP round: the best point is then returned with status
    ``time_limit`` and the best bound. ``mip_gap`` is SCIP's relative gap; ``seed`` shifts
    SCIP's random seeds."""
    if isinstance(mip_gap, bool) or not isinstance(mip_gap, int | float) or not 0 <= mip_gap < 1:
        raise ValueError(f"mip_gap = {mip_gap!r}: must be a number in [0, 1)")
    started = time.perf_counter()
    deadline = Deadline(time_limit)
    blocked = structural_infeasibility(model, METHOD)
    if blocked is not None:
        return blocked
    table = model.options
    best = start_point(model)
    if best is None:  # every eligible device at n_max: no selection is slower
        eligible = table.n_max > 0
        everyone = equalised(model, eligible, np.where(eligible, table.n_max, 0))
        if everyone is None:
            return _error(model, "no start point: the bias row fails on the linear restriction "
                                 "and every eligible device exceeds B with its energy minimum")
        upper = everyone.latency_s
    else:
        upper = best.latency_s
    if upper == 0.0:  # nothing needs time: the start point is optimal
        return _result(model, best, Status.OPTIMAL, 0.0, started, 0.0, "optimal", None)
    data = Balanced.at(model, upper * (1 + UPPER_MARGIN))
    pm = build(model, data)
    build_s = time.perf_counter() - started

    options: dict[str, float] = {"numerics/feastol": FEASIBILITY_TOLERANCE,
                                 "display/verblevel": 0}
    if seed is not None:
        options["randomization/randomseedshift"] = seed
    bound_s, rounds, reported = 0.0, 0, 0.0
    status, termination, message = Status.FEASIBLE, "rounds", None
    while True:
        rounds += 1
        if best is not None:
            warm_start(model, data, pm, best)
        # Silent: scip_direct reads SCIP's log through a pipe while pyscipopt holds the GIL,
        # so a long log blocks the solve forever (see edgesplit.misocp).
        run = SolverFactory("scip_direct").solve(
            pm, tee=False, load_solutions=False, raise_exception_on_nonoptimal_result=False,
            warmstart_discrete_vars=best is not None, rel_gap=mip_gap,
            time_limit=deadline.remaining, solver_options=options,
        )
        reported += run.timing_info.scip_time or 0.0
        condition = run.termination_condition
        termination = pyomo_termination(condition)
        dual = run.objective_bound
        if dual is not None and math.isfinite(dual):
            bound_s = max(bound_s, data.upper_s * dual)
        if condition is TerminationCondition.provenInfeasible:
            if best is None:
                return infeasible_result(model, METHOD, "bias_budget",
                                         "SCIP proved that no selection meets the bias budget "
                                         "and min_selected rows together")
            status, message = Status.FEASIBLE, "SCIP reported infeasible despite a start point"
            break
        if run.solution_loader.get_number_of_solutions() == 0:
            status = Status.TIME_LIMIT if deadline.expired else Status.FEASIBLE
            message = f"SCIP stopped without a solution: {condition.name}"
            break
        values = run.solution_loader.get_vars()
        chosen = [i for i in pm.I if (values[pm.y[i]] or 0.0) > CHOSEN]
        polished = _polish(model, data, chosen)
        if polished is not None and (best is None or polished.latency_s < best.latency_s):
            best = polished
        if condition is not TerminationCondition.convergenceCriteriaSatisfied:
            status = Status.TIME_LIMIT if condition is TerminationCondition.maxTimeLimit \
                else Status.FEASIBLE
            message = None if status is Status.TIME_LIMIT else f"SCIP stopped: {condition.name}"
            break
        if best is not None and best.latency_s - bound_s <= OA_GAP * best.latency_s:
            status = Status.OPTIMAL
            break
        loaded = [i for i in chosen if not data.free[i]]
        added = [add_cut(pm, data, i, values[pm.P[i]] / values[pm.y[i]]) for i in loaded
                 if values[pm.P[i]] > 0]
        if polished is not None:
            added += [add_cut(pm, data, i, _ratio(model, data, polished, i)) for i in loaded]
        if not any(added) or rounds >= MAX_ROUNDS or deadline.expired:
            status = Status.TIME_LIMIT if deadline.expired else Status.FEASIBLE
            message = None if deadline.expired else (
                f"outer approximation stopped after {rounds} SCIP rounds without closing the gap")
            break
    if best is None:
        return _error(model, message or "no feasible point found", termination)
    return _result(model, best, status, bound_s, started, build_s, termination, message,
                   reported, extras={"scip_rounds": rounds})


def _ratio(model: TinyFELModel, data: Balanced, point: Point, i: int) -> float:
    """P/y of option i at ``point``: its bandwidth in units of l_i B."""
    k = data.device[i]
    return point.bandwidth[k] / (data.least[i] * model.options.bandwidth_hz)


def _polish(model: TinyFELModel, data: Balanced, chosen: list[int]) -> Point | None:
    """SCIP's options, re-checked exactly and equalised (``None`` if they fail a row)."""
    selected = np.zeros(model.n_devices, dtype=bool)
    layers = np.zeros(model.n_devices, dtype=int)
    for i in chosen:
        k = data.device[i]
        selected[k], layers[k] = True, data.layers[i]
    if not budget_holds(model, selected, layers):
        return None
    return equalised(model, selected, layers)


def _error(model: TinyFELModel, message: str, termination: str | None = None) -> Result:
    return Result(model=model.model_id, method=METHOD, status=Status.ERROR,
                  solution=empty_solution(model), device_names=model.device_names,
                  solver="scip", solver_version=scip_version(), termination=termination,
                  message=message)


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
    extras: dict | None = None,
) -> Result:
    """The Result of ``point`` with the bound ``bound_s`` [s] on T (excluding T_dl)."""
    result = make_result(
        model, METHOD, status, point.selected, point.layers, point.bandwidth,
        bound_round_s=min(bound_s, point.latency_s) + model.options.downlink_s,
        solver="scip", solver_version=scip_version(), build_s=build_s,
        solve_s=time.perf_counter() - started - build_s, solver_reported_s=reported_s,
        termination=termination, message=message,
    )
    return result.replace(extras={**result.extras, **(extras or {})})
