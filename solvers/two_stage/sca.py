"""``sca_grid``: the paper's method (spec §6.4) - successive convex approximation per cell,
floor rounding, and a two-dimensional search over (M, N).

**Cell SCA.** For fixed (M, N) and relaxed batches the problem in the original variables
(D, f_s, B_k, f_k, p_k, u) is

    min  M/D + N sum_k alpha_k^2/B_k
    s.t. M kappa_s C_s D f_s^2 + N sum_k [kappa_k C_k B_k f_k^2 + p_k S/r_k(p_k)] <= E_max
         M C_s D/f_s + N u <= T_max,    C_k B_k/f_k + S/r_k(p_k) <= u,    box constraints.

It is solved in scaled variables d = D/D^max, b_k = B_k/B_k^max, x_s = f_s/f_s^max,
x_k = f_k/f_k^max, y_k = p_k/P_k^max, all in (0, 1] (the energy row divided by E_max, the delay
row and u by T_max: spec §10 scaling). At iterate j each non-convex term is replaced by a
global upper bound that is tight and has the same gradient there (AM-GM for the products,
the tangent for the concave upload energy):

    d x^2 <= (c d^2 + x^4/c)/2,         c = x_j^2/d_j
    d/x   <= (c d^2 + 1/(c x^2))/2,     c = 1/(d_j x_j)
    y S/r(y)  (concave)  <= its tangent at y_j;   S/r(y) itself is convex (kept exact),

the same for (b_k, x_k). The convex subproblem (cvxpy, DPP: compiled once per model and
stage shape, re-solved with new parameters; Clarabel or ECOS) has the iterate as a feasible
point, so its optimum is feasible for the original problem and never worse.

Safeguards (solver round-off): a subproblem point is accepted only if it meets both budgets
exactly by the original formulas (else its batches get the §5.5 oracle's resources, or are
shrunk by tiny relative steps) and does not worsen Q; so every iterate in the trace is
feasible and Q never rises. Stops (``termination`` in the trace): ``converged`` (relative
change < ``tolerance``, 1e-9, or a subproblem optimum worse than the iterate by at most
``NOISE_RTOL``: round-off at the limit), ``iteration_limit`` (``max_iterations``, 200),
``no_progress`` (a worse optimum), ``infeasible_step``, ``subproblem_<status>``,
``time_limit``; the last accepted iterate is kept. Start: the pre-check point, unit batches
with clocks and powers at their caps when that fits the energy budget, else with the oracle's
minimum-energy resources (a cell failing the pre-check is infeasible). The spec argues the
limit is the global relaxed optimum of the cell (the §5.3 change of variables preserves KKT
points); the tests compare it with the closed form of T2, the reference value of T4 and an
independent SLSQP solve of §5.3.

**Rounding.** ``floor`` takes the integer parts of the relaxed batches (feasible: the batch
set is a down-set, §5.2; a batch within 1e-6 relative below an integer counts as that
integer when the oracle confirms it). ``floor_fill`` then raises one batch by 1 at a time,
largest decrease of Q first, while the §5.5 oracle says the point stays within both
budgets; a batch whose +1 step fails is never tried again (a larger point cannot pass where a
smaller one failed). The reported resources are the oracle's canonical ones (§3.4).

**Search over (M, N)** (the paper's two-dimensional search). ``search="grid"`` (default):
every cell of {0..M_max} x {0..N_max} minus (0, 0) is a candidate; cells are visited by
increasing valid lower bound (§6.2 batch caps, floored because the rounded points are
integer) and a cell is skipped when that bound cannot beat the incumbent or when a smaller
cell failed its pre-check (§5.2). Every skipped cell's rounded value is >= the incumbent, so
the value is that of the exhaustive grid, at a fraction of the cost (T1-T4: one SCA cell);
a cell whose relaxed Psi already reaches the incumbent is not rounded. The caps bound is weak
when the energy budget binds across many devices, so a cell it does not close first gets its
certified relaxed bound (one conic solve of :mod:`.cell`, the bound ``exact`` uses): if that
reaches the incumbent the cell is closed without SCA. The SCA's relaxed value is >= that
bound, so this closes only cells the SCA would have closed (same answer; a test compares
both). On the §8 preset (80,600 cells) 2121 cells are closed so and the SCA runs in 20:
9.8 s instead of about 3-4 minutes, same optimum.
``search="full"`` runs the SCA in every pre-check-feasible cell (for heat maps: the per-cell
values are in the trace). The reported cell is the one with the smallest *rounded* Psi.

**Why it is not faster than** ``exact``. Both visit cells best first, but ``exact`` closes
a cell with one conic solve of the convex reformulation (§5.3) and closes whole blocks of
the grid with Lagrangian cuts from those solves' multipliers, while this method (the
paper's) runs an SCA per visited cell, tens of conic solves in the original variables, and
has only the caps bound and the per-cell relaxed bound to skip cells (an SCA iterate
certifies nothing, so it cannot prune a block). Measured on one loaded 2-core run of the
``default`` preset with 20 devices and 1000 x 1000 round caps: 107 s here against 56 s for
``exact`` (same cell, Psi 1.4e-4 higher here, from floor rounding). Use it to reproduce the
paper's procedure or its SCA traces; use ``exact`` (or ``relaxation``) for speed.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import version
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd

from edgeopt.models.two_stage import TwoStageModel, convergence
from edgeopt.models.two_stage.derived import LN2
from edgeopt.solvers.common.deadline import Deadline
from edgeopt.solvers.result import Result, Status, Timings, infeasible_result
from edgeopt.solvers.two_stage.bounds import CellBounds
from edgeopt.solvers.two_stage.cell import CellPrograms

METHOD = "sca_grid"

BACKENDS = ("clarabel", "ecos")

SOLVER_SETTINGS: dict[str, tuple[dict[str, Any], ...]] = {
    "clarabel": (
        {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10},
        {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10, "equilibrate_enable": False},
        {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10, "max_step_fraction": 0.9},
    ),
    "ecos": (
        {"abstol": 1e-10, "reltol": 1e-10, "feastol": 1e-10, "max_iters": 200},
        {"max_iters": 200},
    ),
}
"""Settings tried in turn for each subproblem until one returns a solution. The SCA stops on a
1e-9 relative change, so subproblems are solved an order of magnitude tighter than the cvxpy
defaults (1e-8). Near the limit, with clocks and powers at their caps, Clarabel's
equilibration occasionally stalls (``InsufficientProgress``); without it, or with shorter
interior-point steps, the same subproblem solves (T2 cell (4, 6), iteration 5)."""

TINY = 1e-12
"""Smallest clock or power ratio taken from a subproblem (they are positive in exact
arithmetic: every cost is finite only there)."""

REPAIR_STEPS = 30
"""Shrink steps of :meth:`CellSCA.repair` (the last one shrinks the batches by ~5e-4)."""

NOISE_RTOL = 1e-7
"""A subproblem optimum worse than the iterate by at most this much (relative) is solver
round-off at the limit: the SCA stops as converged and keeps the iterate."""

INTEGER_SNAP = 1e-6
"""A relaxed batch within this relative distance below an integer is tried as that integer."""

SKIP_RTOL = 1e-6
"""Slack on the SCA's relaxed value (within ~1e-8 of the relaxed optimum) when it decides that
a cell cannot beat the search's cutoff without rounding it."""

SOLVED = ("optimal", "optimal_inaccurate")
"""Subproblem statuses whose point is used (after the feasibility and progress checks)."""

ROUNDINGS = ("floor", "floor_fill")
SEARCHES = ("grid", "full")

_version = cache(version)


# ---- applicability and options ---------------------------------------------------------------


def unsupported(model: TwoStageModel) -> str | None:
    """Stage-constant SCA needs static channels (spec §3.3: per-round gains need per_round)."""
    if model.derived.time_varying:
        return ("a device has a channel_gain_schedule: the stage-constant SCA assumes static "
                "channels (per_round policy: method 'relaxation_per_round')")
    return None


def check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    """``value`` if it is one of ``allowed``, else a ValueError naming the option."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} = {value!r}: must be one of {', '.join(allowed)}")
    return value


def check_iterations(max_iterations: Any, tolerance: Any) -> tuple[int, float]:
    """Validated (max_iterations >= 1 integer, 0 < tolerance < 1)."""
    if isinstance(max_iterations, bool) or not isinstance(max_iterations, Integral) \
            or max_iterations < 1:
        raise ValueError(f"max_iterations = {max_iterations!r}: must be an integer >= 1")
    if isinstance(tolerance, bool) or not isinstance(tolerance, Real) or not 0 < tolerance < 1:
        raise ValueError(f"tolerance = {tolerance!r}: must be a number in (0, 1)")
    return int(max_iterations), float(tolerance)


def check_seed(seed: Any) -> None:
    """The methods are deterministic; ``seed`` is accepted (and recorded by ``solve``) when it
    is ``None`` or an integer >= 0."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0):
        raise ValueError(f"seed = {seed!r}: must be an integer >= 0 or None (the method is "
                         "deterministic; the seed is only recorded)")


def check_backend(backend: str | None) -> str:
    """The cvxpy backend (default Clarabel; never ECOS_BB)."""
    chosen = backend or BACKENDS[0]
    if chosen not in BACKENDS:
        raise ValueError(f"solver = {backend!r}: the SCA uses one of {', '.join(BACKENDS)}")
    return chosen


# ---- the scaled cell problem -------------------------------------------------------------------


@dataclass(frozen=True)
class Budgets:
    """Energy [J] and delay [s] budgets of a cell (the instance's unless a method splits them)."""

    energy_j: float
    delay_s: float

    @classmethod
    def of(cls, model: TwoStageModel, share: float = 1.0) -> Budgets:
        d = model.derived
        return cls(share * d.energy_budget_j, share * d.delay_budget_s)

    def caps(self, model: TwoStageModel) -> CellBounds:
        """The §6.2 integer caps under these budgets."""
        return CellBounds(model, energy_budget_j=self.energy_j, delay_budget_s=self.delay_s)

    def oracle(self) -> dict[str, float]:
        return {"energy_budget_j": self.energy_j, "delay_budget_s": self.delay_s}


@dataclass
class Point:
    """A point of the scaled cell problem: batches D, B_k [sample], clock ratios x_s, x_k and
    power ratios y_k (all in (0, 1]). An absent stage keeps unit placeholders."""

    D: float
    xs: float
    B: np.ndarray
    x: np.ndarray
    y: np.ndarray


class CellCosts:
    """Per-sample and per-round constants of the scaled problem and the original formulas.

    ``es``/``ek`` = kappa C f^max^2 [J/sample at the clock cap], ``ts``/``tk`` = C/f^max
    [s/sample], ``snr`` = P^max h/(N_0 b) [-], ``w`` = S ln2/b [s]: the upload time at power
    ratio y is w/ln(1 + snr y) and its energy g(y) = P^max y w/ln(1 + snr y) (concave in y).
    """

    def __init__(self, model: TwoStageModel):
        d = model.derived
        self.es = d.server_capacitance * d.server_cycles * d.server_clock_hz**2
        self.ts = d.server_cycles / d.server_clock_hz
        self.ek = d.device_capacitance * d.device_cycles * d.device_clock_hz**2
        self.tk = d.device_cycles / d.device_clock_hz
        self.snr = d.max_power_w * d.channel_gain / (d.noise_w_per_hz * d.bandwidth_hz)
        self.w = d.bits * LN2 / d.bandwidth_hz
        self.pmax = d.max_power_w
        self.alpha2 = d.weights**2

    def upload_time(self, y: np.ndarray) -> np.ndarray:
        return self.w / np.log1p(self.snr * y)

    def upload_energy(self, y: np.ndarray) -> np.ndarray:
        return self.pmax * y * self.upload_time(y)

    def upload_energy_slope(self, y: np.ndarray) -> np.ndarray:
        """g'(y) = P w [ln(1+z) - z/(1+z)] / ln(1+z)^2 with z = snr y (series for small z)."""
        z = self.snr * y
        log = np.log1p(z)
        small = z < 1e-3
        zs = np.where(small, z, 0.0)
        series = zs * zs * (0.5 - zs * (2 / 3 - zs * (0.75 - 0.8 * zs)))
        numerator = np.where(small, series, log - z / (1 + z))
        return self.pmax * self.w * numerator / log**2

    def batch_term(self, M: int, N: int, p: Point) -> float:
        return (M / p.D if M else 0.0) + (N * float(np.sum(self.alpha2 / p.B)) if N else 0.0)

    def totals(self, M: int, N: int, p: Point) -> tuple[float, float]:
        """(E [J], T [s]) of a point with the original formulas (max over devices)."""
        energy = M * self.es * p.D * p.xs**2 if M else 0.0
        delay = M * self.ts * p.D / p.xs if M else 0.0
        if N:
            energy += N * float(np.sum(self.ek * p.B * p.x**2 + self.upload_energy(p.y)))
            delay += N * float(np.max(self.tk * p.B / p.x + self.upload_time(p.y)))
        return energy, delay


class _Program:
    """The convex SCA subproblem of one stage shape, compiled once (DPP) and re-solved with
    parameters: round counts, budgets and the iterate enter only through parameters."""

    def __init__(self, model: TwoStageModel, costs: CellCosts, pre: bool, fine: bool):
        import cvxpy as cp

        d = model.derived
        K = d.n_devices
        self.pre, self.fine = pre, fine
        self.params: dict[str, Any] = {}
        objective, energy, delay, constraints = 0, 0, 0, []

        def param(name: str, shape=(), nonneg: bool = True):
            self.params[name] = cp.Parameter(shape, nonneg=nonneg, name=name)
            return self.params[name]

        if pre:  # d = D / D^max in (0, 1]
            self.d_ratio = cp.Variable(name="d")
            self.xs = cp.Variable(name="x_s")
            objective += param("M") * cp.inv_pos(self.d_ratio)
            energy += param("eD") * cp.square(self.d_ratio) + param("ex") * cp.power(self.xs, 4)
            delay += param("tD") * cp.square(self.d_ratio) + param("tx") * cp.power(self.xs, -2)
            constraints += [self.d_ratio >= 1 / d.server_max_batch, self.d_ratio <= 1, self.xs <= 1]
        if fine:  # b_k = B_k / B_k^max in (0, 1]
            self.b = cp.Variable(K, name="b")
            self.x = cp.Variable(K, name="x")
            self.y = cp.Variable(K, name="y")
            self.u = cp.Variable(name="u")
            objective += cp.sum(cp.multiply(param("Nw", K), cp.inv_pos(self.b)))
            energy += cp.sum(
                cp.multiply(param("eB", K), cp.square(self.b))
                + cp.multiply(param("ek", K), cp.power(self.x, 4))
                + cp.multiply(param("gy", K), self.y)
            ) + param("g0", nonneg=False)
            upload = cp.multiply(param("w", K), cp.inv_pos(cp.log(1 + cp.multiply(costs.snr, self.y))))
            compute = cp.multiply(param("tB", K), cp.square(self.b)) + cp.multiply(
                param("tk", K), cp.power(self.x, -2))
            delay += param("N") * self.u
            constraints += [
                self.u >= compute + upload, self.b >= 1 / d.device_max_batch, self.b <= 1,
                self.x <= 1, self.y <= 1,
            ]
        self.Dmax = float(d.server_max_batch)
        self.Bmax = d.device_max_batch.astype(float)
        self.problem = cp.Problem(cp.Minimize(objective), [energy <= 1, delay <= 1, *constraints])

    def set(self, M: int, N: int, p: Point, budgets: Budgets, costs: CellCosts) -> None:
        """Parameters of the upper-bound model at iterate ``p`` (rows scaled by the budgets)."""
        E, T = budgets.energy_j, budgets.delay_s
        values: dict[str, Any] = {}
        if self.pre:
            dj = p.D / self.Dmax
            c_e, c_t = p.xs**2 / dj, 1 / (dj * p.xs)
            es, ts = costs.es * self.Dmax, costs.ts * self.Dmax
            values.update(M=M / self.Dmax, eD=M * es * c_e / (2 * E), ex=M * es / (2 * c_e * E),
                          tD=M * ts * c_t / (2 * T), tx=M * ts / (2 * c_t * T))
        if self.fine:
            bj = p.B / self.Bmax
            c_e, c_t = p.x**2 / bj, 1 / (bj * p.x)
            ek, tk = costs.ek * self.Bmax, costs.tk * self.Bmax
            slope = costs.upload_energy_slope(p.y)
            values.update(
                Nw=N * costs.alpha2 / self.Bmax, eB=N * ek * c_e / (2 * E),
                ek=N * ek / (2 * c_e * E), gy=N * slope / E,
                g0=N * float(np.sum(costs.upload_energy(p.y) - slope * p.y)) / E,
                w=costs.w / T, tB=tk * c_t / (2 * T), tk=tk / (2 * c_t * T), N=N,
            )
        for name, value in values.items():
            self.params[name].value = np.asarray(value, dtype=float).reshape(
                self.params[name].shape)

    def point(self, previous: Point) -> Point:
        """The solver's point clipped into its boxes (round-off), an absent stage keeping the
        placeholders of ``previous``."""
        D, xs, B, x, y = previous.D, previous.xs, previous.B, previous.x, previous.y
        if self.pre:
            D = float(np.clip(float(self.d_ratio.value) * self.Dmax, 1.0, self.Dmax))
            xs = float(np.clip(self.xs.value, TINY, 1.0))
        if self.fine:
            B = np.clip(np.asarray(self.b.value, dtype=float) * self.Bmax, 1.0, self.Bmax)
            x, y = (np.clip(np.asarray(v.value, dtype=float), TINY, 1.0) for v in (self.x, self.y))
        return Point(D, xs, B, x, y)


@dataclass
class Relaxed:
    """Outcome of the SCA in one cell: the relaxed point (batches real), Q, the iterations
    and how it stopped; ``trace`` rows (iteration 0 = the start point)."""

    M: int
    N: int
    point: Point
    batch_term: float
    iterations: int
    termination: str
    trace: list[dict[str, Any]] = field(default_factory=list)

    @property
    def D(self) -> float:
        return self.point.D if self.M else 0.0

    @property
    def B(self) -> np.ndarray:
        return self.point.B if self.N else np.zeros_like(self.point.B)


class CellSCA:
    """The SCA of spec §6.4 for any cell of one model (programs compiled on first use).

    ``relax(M, N, budgets)`` returns :class:`Relaxed` or ``None`` when the cell fails its
    pre-check (unit batches exceed a budget under the §5.5 oracle).
    """

    def __init__(self, model: TwoStageModel, backend: str | None = None,
                 tolerance: float = 1e-9, max_iterations: int = 200):
        self.model = model
        self.backend = check_backend(backend)
        self.max_iterations, self.tolerance = check_iterations(max_iterations, tolerance)
        self.costs = CellCosts(model)
        self._programs: dict[tuple[bool, bool], _Program] = {}
        self.subproblems = 0

    @property
    def solver_version(self) -> str:
        return _version(self.backend)

    def program(self, pre: bool, fine: bool) -> _Program:
        key = (pre, fine)
        if key not in self._programs:
            self._programs[key] = _Program(self.model, self.costs, pre, fine)
        return self._programs[key]

    def resources(self, M: int, N: int, D: float, B: np.ndarray, budgets: Budgets) -> Point | None:
        """Batches (D, B) with the oracle's canonical resources (scaled), or ``None`` when the
        oracle finds them outside a budget."""
        d = self.model.derived
        K = d.n_devices
        cell = self.model.min_energy(M, N, D, B, **budgets.oracle())
        if not cell.feasible:
            return None
        xs = cell.server_clock_hz / d.server_clock_hz if M else 1.0
        x = cell.device_clock_hz / d.device_clock_hz if N else np.ones(K)
        y = cell.power_w / d.max_power_w if N else np.ones(K)
        return Point(float(D), float(xs), np.asarray(B, float), np.asarray(x, float),
                     np.asarray(y, float))

    def start(self, M: int, N: int, budgets: Budgets) -> Point | None:
        """The pre-check point (``None`` if it fails): unit batches with clocks and powers at
        their caps when that fits the energy budget (well-scaled subproblems), else the
        oracle's minimum-energy resources (slower, and so feasible, whenever anything is)."""
        K = self.model.n_devices
        fastest = Point(1.0, 1.0, np.ones(K), np.ones(K), np.ones(K))
        energy, delay = self.costs.totals(M, N, fastest)
        if energy <= budgets.energy_j and delay <= budgets.delay_s:
            return fastest
        return self.resources(M, N, 1.0, np.ones(K), budgets)

    def repair(self, M: int, N: int, p: Point, budgets: Budgets) -> Point | None:
        """The subproblem's point if it meets both budgets exactly (original formulas). Solver
        round-off can leave it slightly outside (~1e-8 relative): then its batches get the
        oracle's resources (same Q) if they fit, else they are shrunk by 1e-12 * 2^i relative
        (i < ``REPAIR_STEPS``) at the solver's clocks and powers, which lowers every compute
        energy and time; ``None`` if nothing fits."""
        energy, delay = self.costs.totals(M, N, p)
        if energy <= budgets.energy_j and delay <= budgets.delay_s:
            return p
        fixed = self.resources(M, N, p.D, p.B, budgets)
        if fixed is not None:
            return fixed
        for i in range(1, REPAIR_STEPS):
            shrink = 1 - 1e-12 * 2**i
            q = Point(max(1.0, p.D * shrink), p.xs, np.maximum(1.0, p.B * shrink), p.x, p.y)
            energy, delay = self.costs.totals(M, N, q)
            if energy <= budgets.energy_j and delay <= budgets.delay_s:
                return q
        return None

    def relax(self, M: int, N: int, budgets: Budgets | None = None,
              deadline: Deadline | None = None) -> Relaxed | None:
        """Run the SCA in cell (M, N) from the pre-check point (see the module docstring)."""
        budgets = budgets or Budgets.of(self.model)
        point = self.start(M, N, budgets)
        if point is None:
            return None
        program = self.program(M > 0, N > 0)
        costs = self.costs
        value = costs.batch_term(M, N, point)
        trace = [self._row(M, N, 0, point, value, math.nan, "start")]
        termination = "iteration_limit"
        for iteration in range(1, self.max_iterations + 1):
            if deadline is not None and deadline.expired:
                termination = "time_limit"
                break
            program.set(M, N, point, budgets, costs)
            status = self._solve(program)
            if status not in SOLVED:
                termination = f"subproblem_{status}"
                break
            candidate = self.repair(M, N, program.point(point), budgets)
            if candidate is None:
                termination = "infeasible_step"
                break
            new_value = costs.batch_term(M, N, candidate)
            if new_value > value:  # solver noise near the limit, or a real failure
                termination = "converged" if new_value <= value * (1 + NOISE_RTOL) else "no_progress"
                break
            change = (value - new_value) / new_value
            point, value = candidate, new_value
            trace.append(self._row(M, N, iteration, point, value, change, status))
            if change < self.tolerance:
                termination = "converged"
                break
        return Relaxed(M, N, point, value, len(trace) - 1, termination, trace)

    def _solve(self, program: _Program) -> str:
        """Solve a subproblem with the tight settings, then (numerical trouble) with the
        backend's defaults; the status (``solver_error`` when the backend raised)."""
        import cvxpy as cp

        status = "solver_error"
        for settings in SOLVER_SETTINGS[self.backend]:
            self.subproblems += 1
            try:
                with warnings.catch_warnings():  # an inaccurate status is checked by the caller
                    warnings.simplefilter("ignore", UserWarning)
                    program.problem.solve(solver=self.backend.upper(), **settings)
                status = program.problem.status
            except cp.error.SolverError:
                status = "solver_error"
            if status in SOLVED:
                break
        return status

    def _row(self, M: int, N: int, iteration: int, p: Point, value: float, change: float,
             status: str) -> dict[str, Any]:
        energy, delay = self.costs.totals(M, N, p)
        d = self.model.derived
        K = p.B.size
        return {
            "M": M, "N": N, "iteration": iteration, "batch_term": value,
            "relative_change": change, "energy_j": energy, "delay_s": delay,
            "pretrain_batch": p.D if M else 0.0,
            "finetune_batch": [float(b) for b in p.B] if N else [0.0] * K,
            "server_clock_hz": p.xs * d.server_clock_hz if M else 0.0,
            "device_clock_hz": [float(v) for v in p.x * d.device_clock_hz] if N else [0.0] * K,
            "power_w": [float(v) for v in p.y * d.max_power_w] if N else [0.0] * K,
            "status": status,
        }


# ---- rounding -----------------------------------------------------------------------------------


def _feasible(model: TwoStageModel, M: int, N: int, D: int, B: np.ndarray, budgets: Budgets) -> bool:
    return model.min_energy(M, N, D, B, **budgets.oracle()).feasible


def floor_batches(model: TwoStageModel, M: int, N: int, D: float, B: np.ndarray,
                  budgets: Budgets | None = None) -> tuple[int, np.ndarray]:
    """Integer batches at or below the relaxed (D, B) that the oracle accepts: the floors, a
    value within ``INTEGER_SNAP`` below an integer counting as it when that still fits."""
    budgets = budgets or Budgets.of(model)
    d = model.derived
    B = np.asarray(B, float)
    for snap in (INTEGER_SNAP, 0.0):
        Di = int(min(d.server_max_batch, max(1, math.floor(D * (1 + snap))))) if M else 0
        Bi = np.minimum(d.device_max_batch, np.maximum(1, np.floor(B * (1 + snap)))).astype(int)
        if not N:
            Bi = np.zeros_like(Bi)
        if _feasible(model, M, N, Di, Bi, budgets):
            return Di, Bi
    while True:  # solver round-off left the relaxed point outside: shrink (unit batches fit)
        Di = max(1, Di - 1) if M else 0
        Bi = np.maximum(1, Bi - 1) if N else Bi
        if _feasible(model, M, N, Di, Bi, budgets):
            return Di, Bi


def fill_batches(model: TwoStageModel, M: int, N: int, D: int, B: np.ndarray,
                 budgets: Budgets | None = None) -> tuple[int, np.ndarray]:
    """``floor_fill``: +1 steps from a feasible integer point, largest decrease of Q first,
    while the oracle accepts the point; a direction that failed once is dropped (down-set)."""
    budgets = budgets or Budgets.of(model)
    d = model.derived
    B = np.asarray(B, int).copy()
    caps = np.concatenate([[d.server_max_batch], d.device_max_batch])
    x = np.concatenate([[D], B]).astype(int)
    open_ = np.array([M > 0] + [N > 0] * d.n_devices)
    weights = np.concatenate([[M], N * d.weights**2]).astype(float)
    while True:
        open_ &= x < caps
        if not open_.any():
            break
        gains = np.where(open_, weights / np.maximum(x * (x + 1.0), 1.0), -np.inf)
        for i in np.argsort(-gains, kind="stable"):
            if not open_[i]:
                break
            trial = x.copy()
            trial[i] += 1
            if _feasible(model, M, N, int(trial[0]), trial[1:], budgets):
                x = trial
                break
            open_[i] = False
        else:
            break
    return int(x[0]), x[1:]


def round_cell(model: TwoStageModel, relaxed: Relaxed, rounding: str,
               budgets: Budgets | None = None) -> tuple[int, np.ndarray]:
    """Integer batches of a relaxed cell by ``floor`` or ``floor_fill``."""
    D, B = floor_batches(model, relaxed.M, relaxed.N, relaxed.D, relaxed.B, budgets)
    if rounding == "floor_fill":
        D, B = fill_batches(model, relaxed.M, relaxed.N, D, B, budgets)
    return D, B


# ---- valid per-cell lower bounds and the search --------------------------------------------------


def grid_cells(model: TwoStageModel) -> list[tuple[int, int]]:
    """Every cell of {0..M_max} x {0..N_max} except (0, 0)."""
    d = model.derived
    return [(M, N) for M in range(d.max_pretrain_rounds + 1)
            for N in range(d.max_finetune_rounds + 1) if M + N]


def lower_bounds(model: TwoStageModel, cells: list[tuple[int, int]]) -> np.ndarray:
    """A valid lower bound on the integer Psi of each cell (+inf where the caps prove the
    cell infeasible): LB(M, N) of :mod:`.bounds` (Psi at the floored §6.2 caps)."""
    bounds = CellBounds(model)
    return np.array([bounds.cell(M, N) for M, N in cells], dtype=float)


@dataclass
class Candidate:
    """An evaluated cell: its rounded Psi and whatever the evaluator keeps (``data``)."""

    value: float
    cell: tuple[int, int]
    data: Any


def visit_cells(cells: list[tuple[int, int]], bounds: np.ndarray,
                evaluate: Callable[[int, int, float], Candidate | None], *, keep: int = 1,
                prune: bool = True, deadline: Deadline | None = None,
                incumbents: Iterable[Candidate] = ()) -> tuple[list[Candidate], str]:
    """Visit ``cells`` by increasing lower bound (+inf: proven infeasible, never visited) and
    return the ``keep`` best candidates by value (``incumbents`` included), and the
    termination (``completed`` or ``time_limit``).

    With ``prune``, the visit stops at the first bound >= the keep-th best value (the bounds
    are sorted, so no later cell can enter), and a cell is skipped when a cell
    (m, n) <= (M, N) failed its pre-check (``evaluate`` returned None; infeasibility
    propagates to larger cells, §5.2), and ``evaluate(M, N, cutoff)`` gets the keep-th best
    value so far (+inf without pruning): a cell that cannot beat it may return value +inf.
    Without ``prune`` every cell with a finite bound is evaluated.
    """
    order = np.argsort(bounds, kind="stable")
    found: list[Candidate] = sorted(incumbents, key=lambda c: (c.value, c.cell))
    failed: list[tuple[int, int]] = []
    termination = "completed"
    for i in order:
        if not np.isfinite(bounds[i]):
            break
        M, N = cells[i]
        if prune and len(found) >= keep and bounds[i] >= found[keep - 1].value:
            break
        if prune and any(m <= M and n <= N for m, n in failed):
            continue
        if deadline is not None and deadline.expired and found:
            termination = "time_limit"
            break
        cutoff = found[keep - 1].value if prune and len(found) >= keep else math.inf
        candidate = evaluate(M, N, cutoff)
        if candidate is None:
            failed.append((M, N))
            continue
        found.append(candidate)
        found.sort(key=lambda c: (c.value, c.cell))
    return found[:keep], termination


# ---- results ----------------------------------------------------------------------------------------


def instance_infeasible(model: TwoStageModel, method: str) -> Result | None:
    """The model's own infeasibility report (spec §5.5), or ``None``."""
    found = model.infeasibility()
    if found is None:
        return None
    return infeasible_result(
        model, method, model.empty_solution(), found.reason, found.message,
        min_delay_s=found.details.get("min_delay_s"), min_energy_j=found.details.get("min_energy_j"),
    )


def point_result(model: TwoStageModel, method: str, M: int, N: int, D: int, B, *,
                 status: Status = Status.FEASIBLE, solver: str | None = None,
                 solver_version: str | None = None, trace: Any = None,
                 termination: str | None = None, message: str | None = None,
                 solve_s: float = 0.0, extras: dict[str, Any] | None = None) -> Result:
    """A Result for integer (M, N, D, B): canonical resources (``model.solution``) and Psi."""
    K = model.n_devices
    D = int(D) if M else 0
    B = [int(b) for b in np.broadcast_to(B, (K,))] if N else [0] * K
    return Result(
        model=model.model_id, method=method, status=status,
        objective=float(model.bound(M, N, D, B)), bound=None,
        solution=model.solution(M, N, D, B), device_names=model.device_names,
        solver=solver, solver_version=solver_version, trace=trace, termination=termination,
        message=message, extras=extras or {}, timings=Timings(solve_s=solve_s, wall_s=solve_s),
    )


def search_result(model: TwoStageModel, method: str, best: list[Candidate], termination: str,
                  started: float, *, trace: Any, solver: str | None = None,
                  solver_version: str | None = None, extras: dict[str, Any] | None = None,
                  ) -> Result | None:
    """The Result of a cell search: the best candidate (``data`` starts with the integer D and
    B), status ``feasible`` or ``time_limit``; a ``time_limit`` Result without a point when
    the limit came first; ``None`` when the search completed without any feasible cell (the
    caller explains why)."""
    solve_s = time.perf_counter() - started
    if not best:
        if termination != "time_limit":
            return None
        return Result(model=model.model_id, method=method, status=Status.TIME_LIMIT,
                      solution=model.empty_solution(), device_names=model.device_names,
                      solver=solver, termination="time_limit", trace=trace,
                      message="the time limit came before the first cell was evaluated",
                      timings=Timings(solve_s=solve_s, wall_s=solve_s))
    top = best[0]
    M, N = top.cell
    status = Status.TIME_LIMIT if termination == "time_limit" else Status.FEASIBLE
    return point_result(model, method, M, N, top.data[0], top.data[1], status=status,
                        solver=solver, solver_version=solver_version, trace=trace,
                        termination=termination, solve_s=solve_s, extras=extras)


def sca_evaluator(model: TwoStageModel, sca: CellSCA, rounding: str, rows: list[dict[str, Any]],
                  deadline: Deadline | None, budgets: Budgets | None = None,
                  relaxations: CellPrograms | None = None, skipped: list | None = None,
                  ) -> Callable[[int, int], Candidate | None]:
    """Cell evaluation by SCA + rounding; appends the SCA iterations (and the rounded value on
    the last row of each cell) to ``rows``. A cell whose relaxed Psi is already >= the
    search's ``cutoff`` (1 + ``SKIP_RTOL``) is not rounded (value +inf): its integer points
    are no better than its relaxed optimum, which the SCA reaches (spec §6.4).

    ``relaxations`` (the instance's own budgets only): before the SCA, the cell's certified
    relaxed bound (:mod:`.cell`, one conic solve) is compared with the cutoff the same way;
    a cell it closes is appended to ``skipped`` and gets value +inf without SCA. Every SCA
    iterate is a relaxed point, so its Psi is >= that bound: the skip closes only cells the
    SCA would have closed, and the search's answer is the same."""

    def evaluate(M: int, N: int, cutoff: float = math.inf) -> Candidate | None:
        if relaxations is not None and math.isfinite(cutoff):
            bound = relaxations.solve(M, N, direct=True)
            psi = float(convergence.psi_from_q(M, N, bound.bound, model.coefficients))
            if bound.solved and psi >= cutoff * (1 + SKIP_RTOL):
                if skipped is not None:
                    skipped.append((M, N))
                return Candidate(math.inf, (M, N), None)
        relaxed = sca.relax(M, N, budgets, deadline)
        if relaxed is None:
            return None
        relaxed_psi = float(model.bound(M, N, relaxed.D, relaxed.B))
        if relaxed_psi >= cutoff * (1 + SKIP_RTOL):  # rounding cannot enter the best
            relaxed.trace[-1].update(termination=relaxed.termination)
            rows.extend(relaxed.trace)
            return Candidate(math.inf, (M, N), None)
        D, B = round_cell(model, relaxed, rounding, budgets)
        value = float(model.bound(M, N, D, B if N else np.zeros(model.n_devices)))
        relaxed.trace[-1].update(termination=relaxed.termination, rounded_psi=value,
                                 rounded_pretrain_batch=D, rounded_finetune_batch=[int(b) for b in B])
        rows.extend(relaxed.trace)
        return Candidate(value, (M, N), (D, B, relaxed))

    return evaluate


TRACE_COLUMNS = ["M", "N", "iteration", "batch_term", "relative_change", "energy_j", "delay_s",
                 "pretrain_batch", "finetune_batch", "server_clock_hz", "device_clock_hz",
                 "power_w", "status", "termination", "rounded_psi", "rounded_pretrain_batch",
                 "rounded_finetune_batch"]


def trace_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The per-iteration trace: one row per SCA iterate of every evaluated cell (iteration 0 =
    the pre-check point): Q (``batch_term``, 1/sample), its relative change, E [J] and T [s]
    by the original formulas, the relaxed batches [sample], clocks [Hz] and powers [W], the
    subproblem status; the cell's last row carries its ``termination``, rounded Psi and
    integer batches."""
    return pd.DataFrame(rows, columns=TRACE_COLUMNS)


# ---- the method ---------------------------------------------------------------------------------


def solve_sca_grid(
    model: TwoStageModel,
    *,
    backend: str | None = None,
    time_limit: float | None = None,
    seed: int | None = None,
    rounding: str = "floor",
    search: str = "grid",
    max_iterations: int = 200,
    tolerance: float = 1e-9,
) -> Result:
    """SCA in each cell (relaxed batches), ``rounding`` (``floor`` | ``floor_fill``), and the
    ``search`` over (M, N) (``grid``: exhaustive answer with valid-bound skipping | ``full``:
    SCA in every feasible cell). ``max_iterations`` and ``tolerance`` (relative objective
    change) stop the SCA of a cell. ``seed`` is unused (deterministic)."""
    rounding = check_choice("rounding", rounding, ROUNDINGS)
    search_mode = check_choice("search", search, SEARCHES)
    check_seed(seed)
    sca = CellSCA(model, backend, tolerance, max_iterations)
    started = time.perf_counter()
    infeasible = instance_infeasible(model, METHOD)
    if infeasible is not None:
        return infeasible.replace(solver=sca.backend)
    deadline = Deadline(time_limit)
    rows: list[dict[str, Any]] = []
    cells = grid_cells(model)
    skipped: list[tuple[int, int]] = []
    evaluate = sca_evaluator(model, sca, rounding, rows, deadline,
                             relaxations=CellPrograms(model, sca.backend), skipped=skipped)
    best, termination = visit_cells(cells, lower_bounds(model, cells), evaluate,
                                    prune=search_mode == "grid", deadline=deadline)
    result = search_result(
        model, METHOD, best, termination, started, trace=trace_frame(rows), solver=sca.backend,
        solver_version=sca.solver_version,
        extras={"cells_evaluated": int(trace_frame(rows).groupby(["M", "N"]).ngroups),
                "cells_closed_by_relaxed_bound": len(skipped),
                "subproblems": sca.subproblems},
    )
    return result or no_cell(model, METHOD)


def no_cell(model: TwoStageModel, method: str) -> Result:
    """Status ``error``: the instance passed its pre-check but no cell did (not expected:
    the pre-check cells (1, 0) and (0, 1) are in every full grid)."""
    return Result(model=model.model_id, method=method, status=Status.ERROR,
                  solution=model.empty_solution(), device_names=model.device_names,
                  message="no cell passed its pre-check although the instance did")
