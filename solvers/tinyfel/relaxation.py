"""``relaxation_expcone``: the exponential-cone relaxation of P1 bisected on T, in cvxpy,
with a certified lower bound and a rounded point (spec §5.4).

Program at a latency T (a ``cp.Parameter`` in units of ``unit_s``; built once). Over the
options i = (k, n) that are available and whose energy minimum fits in B, with y_i relaxed
to [0, 1], bandwidth beta_i and rate z_i in units of B:

    minimise   sum_i beta_i + W (d_cov + d_cnt)
    subject to sum_{i of k} y_i <= 1,   beta_i >= e_i y_i   (energy)
               z_i ln2 <= -rel_entr(beta_i, beta_i + s_i y_i)      (rate perspective, exp cone)
               q_i y_i <= (T - c_i) z_i                             (latency, DPP in T)
               coverage row + d_cov,  sum_i y_i + d_cnt >= K_min,   d >= 0

with c = Tcmp/unit, q = Q/(B unit), s = S_k/B, e = bmin^E/B. The coverage row is the linear
sum_i a_i y_i >= 1 - eps0/G^2 (a_i = p_k rho_n, minus N's coefficient / G^2 with
``include_noise_in_budget``) or, for ``bias_form = quadratic``, the convex
sum_l (G_l^2/G^2) (1 - u_l)^2 [+ N/G^2] <= eps0/G^2. The spec's bandwidth row sum beta <= 1
is the objective here, so that every solve returns multipliers; the shortfalls d (price
W = :data:`SHORTFALL_PRICE`) keep the program feasible at every T.

Why the bound is valid whatever the solver's accuracy. For fixed y the least beta_i meeting
the rate and latency rows is y_i b-hat_i(T)/B (the perspective is exact), so the program at
T is the LP relaxation of the knapsack of spec §5.1 with cost_i(T) = b-hat_i(T)/B. For any
multipliers lam (coverage) and mu (count) >= 0 the Lagrangian dual function

    g(lam, mu) = lam r + mu K_min + sum_k min(0, min_{i of k} (cost_i(T) - lam a_i - mu))

is a lower bound on sum_i cost_i(T) y_i over the relaxed rows (weak duality), hence on the
bandwidth any selection meeting the rows needs at T. The solver only proposes (lam, mu);
g is recomputed here from the exact Lambert-W cost_i(T), and when the proposal does not
certify (an inaccurate or failed solve), a few rounds of golden-section ascent of the
concave g from it try to. If g > 1 + :data:`CERTIFY_MARGIN`, no selection finishes by T,
so T* > T: T is *certified*. The quadratic row is first
replaced by its tangent at the solver's coverage u-bar (valid because Phi_q is convex:
Phi_q(u) >= Phi_q(u-bar) + grad Phi_q(u-bar)(u - u-bar)), which gives a linear row a, r. The
bisection moves T_lo only to certified latencies, so ``bound`` = T_lo + T_dl is a proven
lower bound on T_round*; a poor solve can only fail to certify (a weaker bound), never
make it invalid.

Bisection: T_hi doubled from max_k Tcmp_k,n_min until a latency is not certified, then
bisected to T_hi - T_lo <= :data:`TOLERANCE` T_hi. Rounding (from the solve at the final
T_hi): per device the largest of y_i and 1 - sum_i y_i (ties within :data:`TIE`: larger n),
then a greedy repair of K_min and of the budget row (the move with the largest row decrease
per unit of cost(T_hi), the decrease exact for the linear row and first-order for the
quadratic one), then :func:`~edgeopt.solvers.tinyfel.common.equalise`. If the repair fails,
the cheap start point of ``minlp_perspective`` is used. Status ``feasible`` (``time_limit``
when the deadline stops the bisection; the certified bound and a point are still given).

Time limits: Clarabel and SCS get the time left; ECOS has no time option (one solve may
overrun). ``extras`` hold ``relaxed_round_latency_s`` (T_hi + T_dl, s) and the ``trace``
has one row per solve: ``T_s``, ``certified``, ``dual_bound`` (g, units of B),
``solver_status``.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from importlib.metadata import version

import cvxpy as cp
import numpy as np
import pandas as pd
import scipy.sparse as sp

from edgeopt.models.tinyfel import TinyFELModel
from edgeopt.models.tinyfel.radio import LN2
from edgeopt.solvers.common.deadline import Deadline
from edgeopt.solvers.result import Result, Status
from edgeopt.solvers.tinyfel.common import (
    empty_solution,
    equalise,
    make_result,
    structural_infeasibility,
)

METHOD = "relaxation_expcone"

CVXPY_NAMES = {"clarabel": cp.CLARABEL, "ecos": cp.ECOS, "scs": cp.SCS}
"""Backend -> cvxpy solver name (never ECOS_BB: the relaxation is continuous)."""

SOLVER_SETTINGS: dict[str, dict[str, float]] = {
    "clarabel": {},
    "ecos": {"max_iters": 200},
    "scs": {"eps_abs": 1e-6, "eps_rel": 1e-6, "max_iters": 20_000},
}
"""Options passed to each backend. Clarabel (default tolerances 1e-8) certifies to about 1e-7
of the LP threshold. ECOS usually ends ``optimal_inaccurate`` on these exponential cones and
SCS is first-order: their multipliers certify less, so their bounds come out up to ~1e-4
(relative) lower, never invalid."""

TIME_LIMIT_KEYS = {"clarabel": "time_limit", "scs": "time_limit_secs"}
"""Each backend's time-limit option [s]; ECOS has none."""

TOLERANCE = 1e-7
"""Stop the bisection when T_hi - T_lo <= TOLERANCE T_hi."""

CERTIFY_MARGIN = 1e-9
"""T is certified when the dual function exceeds 1 + CERTIFY_MARGIN (units of B)."""

SHORTFALL_PRICE = 1e3
"""W: price of a unit shortfall of the coverage row (unit of G^2 / G^2) or of K_min."""

TIE = 1e-6
"""Relaxed values within TIE of a device's largest count as tied (larger n wins)."""

MAX_WIDENINGS = 200
"""Doublings of T_hi before giving up."""

ASCENT_ROUNDS = 3
"""Rounds of golden-section ascent of g when the solver's multipliers do not certify."""


def unsupported(model: TinyFELModel) -> str | None:
    """Why the relaxation does not apply (``None`` when it does)."""
    inst = model.instance
    if model.total_latency:
        return "relaxes P1 (objective 'round_latency'); P2 has no convex relaxation here"
    if inst.aggregation != "unnormalised":
        return "the normalised aggregation's bias bound is not convex in the coverage (spec §9)"
    return None


@dataclass(frozen=True)
class Options:
    """The options i of the program, with their device, n and table column, and the rows'
    coefficients: ``gain`` a_i of the linear row (unit of G^2 / G^2), ``noise`` N's
    coefficient / G^2, ``covers`` (I, L) whether option i trains layer l."""

    device: np.ndarray
    layers: np.ndarray
    gain: np.ndarray
    noise: np.ndarray
    covers: np.ndarray
    n_devices: int

    @classmethod
    def of(cls, model: TinyFELModel) -> Options:
        table = model.options
        usable = table.available & (table.energy_bandwidth_hz <= table.bandwidth_hz)
        device, column = np.nonzero(usable)
        grad_total = table.grad_sq.sum()
        noise = table.noise_coeff[device] / grad_total
        if not model.instance.include_noise_in_budget:
            noise = np.zeros_like(noise)
        L = model.n_layers
        covers = (np.arange(L)[None, :] >= (L - column - 1)[:, None]).astype(float)
        gain = table.weights[device] * table.ratio[column] - noise
        return cls(device, column + 1, gain, noise, covers, model.n_devices)

    def cost(self, model: TinyFELModel, latency_s: float) -> np.ndarray:
        """cost_i(T) = b-hat_i(T)/B (+inf where option i cannot finish by T)."""
        table = model.options
        band = table.min_bandwidth(latency_s)[self.device, self.layers - 1]
        return band / table.bandwidth_hz


@dataclass
class Program:
    """The parametric cvxpy program and the handles read after a solve."""

    problem: cp.Problem
    latency: cp.Parameter
    y: cp.Variable
    coverage: cp.Constraint
    count: cp.Constraint | None
    unit_s: float


def build(model: TinyFELModel, options: Options, unit_s: float) -> Program:
    """The program of the module docstring with T a Parameter (units of ``unit_s``)."""
    table, inst = model.options, model.instance
    count = options.device.size
    budget = table.bandwidth_hz
    columns = options.layers - 1
    compute = table.compute_s[options.device, columns] / unit_s
    upload = table.upload_bits[columns] / (budget * unit_s)
    snr = table.snr_hz[options.device] / budget
    energy = table.energy_bandwidth_hz[options.device, columns] / budget
    incidence = sp.csr_matrix(
        (np.ones(count), (options.device, np.arange(count))), shape=(options.n_devices, count)
    )
    latency = cp.Parameter(nonneg=True, value=1.0)
    y = cp.Variable(count, nonneg=True)
    beta = cp.Variable(count, nonneg=True)
    rate = cp.Variable(count, nonneg=True)
    short = cp.Variable(2, nonneg=True)
    rows = [
        incidence @ y <= 1,
        rate * LN2 <= -cp.rel_entr(beta, beta + cp.multiply(snr, y)),
        cp.multiply(upload, y) <= cp.multiply(latency - compute, rate),
    ]
    if (energy > 0).any():
        rows.append(beta >= cp.multiply(energy, y))
    grad_total = table.grad_sq.sum()
    limit = (inst.bias_budget - (table.noise_const if inst.include_noise_in_budget else 0.0))
    limit /= grad_total
    if inst.bias_form == "quadratic":
        share = table.grad_sq / grad_total
        cover = options.covers.T @ cp.multiply(table.weights[options.device], y)
        bias = cp.sum(cp.multiply(share, cp.square(1 - cover))) + options.noise @ y
        coverage = bias <= limit + short[0]
    else:
        coverage = options.gain @ y + short[0] >= 1.0 - limit
    rows.append(coverage)
    count_row = None
    if inst.min_selected > 0:
        count_row = cp.sum(y) + short[1] >= inst.min_selected
        rows.append(count_row)
    objective = cp.Minimize(cp.sum(beta) + SHORTFALL_PRICE * cp.sum(short))
    return Program(cp.Problem(objective, rows), latency, y, coverage, count_row, unit_s)


def tangent_row(model: TinyFELModel, options: Options, y: np.ndarray) -> tuple[np.ndarray, float]:
    """(a, r) of a linear row sum a_i y_i >= r implied by the coverage row (unit of G^2/G^2):
    the row itself (linear form) or its tangent at the coverage of ``y`` (quadratic form)."""
    table, inst = model.options, model.instance
    grad_total = table.grad_sq.sum()
    limit = (inst.bias_budget - (table.noise_const if inst.include_noise_in_budget else 0.0))
    limit /= grad_total
    if inst.bias_form != "quadratic":
        return options.gain, 1.0 - limit
    weights = table.weights[options.device]
    share = table.grad_sq / grad_total
    point = options.covers.T @ (weights * np.clip(y, 0.0, 1.0))
    slope = 2.0 * share * (1.0 - point)  # -d(Phi_q/G^2)/du_l at the point
    gain = weights * (options.covers @ slope) - options.noise
    value = float(np.sum(share * (1.0 - point) ** 2))
    return gain, value + float(slope @ point) - limit


def dual_bound(
    options: Options, cost: np.ndarray, gain: np.ndarray, required: float,
    lam: float, mu: float, min_selected: int,
) -> float:
    """g(lam, mu) of the module docstring (units of B); lam, mu are clipped at 0."""
    lam, mu = max(lam, 0.0), max(mu, 0.0)
    reduced = np.where(np.isfinite(cost), cost - lam * gain - mu, np.inf)
    best = np.zeros(options.n_devices)
    np.minimum.at(best, options.device, reduced)
    return lam * required + mu * min_selected + math.fsum(best)


def certificate(
    options: Options, cost: np.ndarray, gain: np.ndarray, required: float,
    lam: float, mu: float, min_selected: int,
) -> float:
    """The largest g(lam, mu) found (units of B): at the solver's multipliers and, when they
    do not certify, after :data:`ASCENT_ROUNDS` rounds of golden-section ascent on lam and
    mu in turn from there (g is concave, so each search is over a unimodal function)."""
    def g(x: float, y: float) -> float:
        return dual_bound(options, cost, gain, required, x, y, min_selected)

    best = g(lam, mu)
    if best > 1.0 + CERTIFY_MARGIN:
        return best
    lam, mu = max(lam, 0.0), max(mu, 0.0)
    for _ in range(ASCENT_ROUNDS):
        lam = _golden(lambda x, y=mu: g(x, y), max(4.0 * lam, SHORTFALL_PRICE))
        if min_selected > 0:
            mu = _golden(lambda y, x=lam: g(x, y), max(4.0 * mu, SHORTFALL_PRICE))
        best = max(best, g(lam, mu))
    return best


def _golden(f, upper: float, steps: int = 60) -> float:
    """The maximiser of a unimodal ``f`` on [0, upper] by golden-section search."""
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = 0.0, upper
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(steps):
        if fc >= fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = f(d)
    return c if fc >= fd else d


def _multiplier(constraint: cp.Constraint | None) -> float:
    if constraint is None or constraint.dual_value is None:
        return 0.0
    return float(np.asarray(constraint.dual_value).ravel()[0])


def _run(program: Program, backend: str, deadline: Deadline) -> str:
    """Solve; return cvxpy's status (or 'solver_error')."""
    settings = dict(SOLVER_SETTINGS[backend])
    if deadline.seconds is not None and backend in TIME_LIMIT_KEYS:
        settings[TIME_LIMIT_KEYS[backend]] = max(deadline.remaining, 1e-3)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Solution may be inaccurate")
            program.problem.solve(solver=CVXPY_NAMES[backend], **settings)
    except cp.SolverError:
        return "solver_error"
    return program.problem.status


def solve_relaxation_expcone(
    model: TinyFELModel,
    *,
    backend: str | None = None,
    time_limit: float | None = None,
    seed: int | None = None,
) -> Result:
    """A certified lower bound on T_round* and a rounded point (module docstring).
    ``backend``: 'clarabel' (default), 'ecos' or 'scs'; ``time_limit`` [s] is checked
    before each solve; ``seed`` is unused (deterministic)."""
    backend = backend or "clarabel"
    started = time.perf_counter()
    deadline = Deadline(time_limit)
    blocked = structural_infeasibility(model, METHOD)
    if blocked is not None:
        return blocked
    table, inst = model.options, model.instance
    options = Options.of(model)
    n_min = inst.min_updated_layers
    unit = max(float(table.compute_s[:, n_min - 1].max()), 1e-9)
    program = build(model, options, unit)
    build_s = time.perf_counter() - started
    rows: list[dict] = []

    def certified(T: float) -> tuple[bool, np.ndarray | None]:
        """Solve at T; (certified infeasible, relaxed y or None)."""
        program.latency.value = T / unit
        status = _run(program, backend, deadline)
        y = program.y.value if status in cp.settings.SOLUTION_PRESENT else None
        point = np.zeros(options.device.size) if y is None else y
        gain, required = tangent_row(model, options, point)
        lam, mu = (0.0, 0.0) if y is None else (_multiplier(program.coverage),
                                                 _multiplier(program.count))
        bound = certificate(options, options.cost(model, T), gain, required, lam, mu,
                            inst.min_selected)
        done = bound > 1.0 + CERTIFY_MARGIN
        rows.append({"iteration": len(rows) + 1, "T_s": T, "certified": done,
                     "dual_bound": bound, "solver_status": status})
        return done, y

    lower, upper, relaxed = 0.0, unit, None
    timed_out = False
    for _ in range(MAX_WIDENINGS):
        if deadline.expired:
            timed_out = True
            break
        done, y = certified(upper)
        if not done:
            relaxed = y
            break
        lower, upper = upper, 2.0 * upper
    else:
        raise RuntimeError(f"every latency up to {upper!r} s was certified infeasible")
    while not timed_out and upper - lower > TOLERANCE * upper:
        if deadline.expired:
            timed_out = True
            break
        middle = 0.5 * (lower + upper)
        done, y = certified(middle)
        if done:
            lower = middle
        else:
            upper = middle
            relaxed = y if y is not None else relaxed
    solve_s = time.perf_counter() - started - build_s

    point = None if relaxed is None else round_point(model, options, relaxed, upper)
    message = None
    if point is None:
        from edgeopt.solvers.tinyfel.minlp import start_point

        start = start_point(model)
        point = None if start is None else (start.selected, start.layers, start.bandwidth)
        message = "rounding failed; the point is minlp_perspective's start point"
    status = Status.TIME_LIMIT if timed_out else Status.FEASIBLE
    if point is None:
        return Result(model=model.model_id, method=METHOD, status=status if timed_out else
                      Status.ERROR, bound=lower + table.downlink_s,
                      solution=empty_solution(model), device_names=model.device_names,
                      solver=backend, solver_version=version(backend),
                      message="no feasible point found from the relaxation")
    selected, layers, bandwidth = point
    result = make_result(
        model, METHOD, status, selected, layers, bandwidth,
        bound_round_s=lower + table.downlink_s, solver=backend,
        solver_version=version(backend), build_s=build_s, solve_s=solve_s,
        trace=pd.DataFrame(rows), termination="time_limit" if timed_out else "converged",
        message=message,
    )
    return result.replace(extras={**result.extras,
                                  "relaxed_round_latency_s": upper + table.downlink_s})


def round_point(
    model: TinyFELModel, options: Options, y: np.ndarray, latency_s: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(a, n, b) from relaxed ``y``: argmax per device, greedy repair, equalise (``None`` if
    the repair cannot meet the rows with options that finish by ``latency_s``)."""
    K, L = model.n_devices, model.n_layers
    relaxed = np.zeros((K, L + 1))  # column 0: none
    relaxed[options.device, options.layers] = np.clip(y, 0.0, 1.0)
    relaxed[:, 0] = 1.0 - relaxed[:, 1:].sum(axis=1)
    tied = relaxed >= relaxed.max(axis=1, keepdims=True) - TIE
    layers = L - np.argmax(tied[:, ::-1], axis=1)  # the largest tied column
    cost = np.full((K, L + 1), np.inf)
    cost[:, 0] = 0.0
    cost[options.device, options.layers] = options.cost(model, latency_s)
    layers = np.where(np.isfinite(cost[np.arange(K), layers]), layers, 0)
    layers = repair(model, options, layers, cost)
    if layers is None:
        return None
    selected = layers > 0
    bandwidth = equalise(model, selected, layers, start_s=latency_s)
    return None if bandwidth is None else (selected, layers, bandwidth)


def repair(
    model: TinyFELModel, options: Options, layers: np.ndarray, cost: np.ndarray
) -> np.ndarray | None:
    """Greedy repair of K_min and of the budget row: repeatedly take the move (device k to a
    larger option) with the largest decrease of the row (or, while K_min fails, a new
    device) per unit of added cost; ``None`` when no finite-cost move is left."""
    inst = model.instance
    K = model.n_devices
    rows = np.arange(K)
    while True:
        selected = layers > 0
        terms = model.learning_terms(selected, layers)
        short = int(selected.sum()) < inst.min_selected
        if not short and terms.budget_value <= inst.bias_budget:
            return layers
        gain, _ = tangent_row(model, options, _indicator(options, layers))
        value = np.zeros(cost.shape)  # row value sum a y of each device's options
        value[options.device, options.layers] = gain
        delta_gain = value - value[rows, layers][:, None]
        larger = np.arange(cost.shape[1])[None, :] > layers[:, None]
        usable = larger & np.isfinite(cost)
        usable &= (~selected[:, None]) if short else (delta_gain > 0)
        if not usable.any():
            return None
        delta_cost = np.where(usable, cost, 0.0) - cost[rows, layers][:, None]
        if short:
            score = np.where(usable, -delta_cost, -np.inf)
        else:
            ratio = np.divide(delta_gain, delta_cost, out=np.full(cost.shape, np.inf),
                              where=delta_cost > 0)
            score = np.where(usable, ratio, -np.inf)
        k, n = np.unravel_index(np.argmax(score), score.shape)
        layers = layers.copy()
        layers[k] = n


def _indicator(options: Options, layers: np.ndarray) -> np.ndarray:
    """The 0/1 vector y of a decision over the program's options."""
    return (options.layers == layers[options.device]).astype(float)
