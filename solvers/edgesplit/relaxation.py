"""``relaxation_perspective``: the convex-hull (perspective) relaxation of spec §5.4, in cvxpy.

Scaled program (every number O(1)). Let N be the number of devices and T_ub [s] the
equal-resources makespan (b_i = B/N, s_i = F/N, best cut per device), which is feasible.
Over the memory-feasible options k = (i, c), flattened into vectors:

    minimise    tau
    subject to  sum_{c} x_k = 1 for every device i,   x >= 0
                sum_{c} (a_k x_k + w_k [+ v_k]) <= tau      for every device i      (dual mu_i)
                w_k u_k >= g_k x_k^2,  u >= 0,  sum_k u_k <= N                       (dual lam)
                v_k z_k >= h_k x_k^2,  z >= 0,  sum_k z_k <= N       (shared only)   (dual nu)

with a = A'/T_ub (dedicated) or A/T_ub (shared), g = N D'/(B T_ub) and h = N S/(F T_ub).
u = N b/B is the bandwidth of an option in units of the equal share B/N (u = N p with the
spec's fraction p = b/B), w = (D'/B)(x^2/p)/T_ub its communication time in units of T_ub;
z and v are the same for the server share. Each hyperbolic constraint w u >= g x^2 is the
rotated cone ||(2 sqrt(g) x, w - u)|| <= w + u. Options with g = 0 (h = 0) get no cone.
The relaxed per-round makespan is T_ub tau.

Bound. For any mu >= 0 with sum mu = 1 and lam, nu >= 0, minimising the Lagrangian over
x, w, u, v, z gives the dual function

    q(mu, lam, nu) = sum_i min_c (mu_i a_k + 2 sqrt(mu_i lam g_k) + 2 sqrt(mu_i nu h_k))
                     - (lam + nu) N,

a lower bound on the relaxation, hence on J/(R T_ub), whatever the solver's accuracy. The
reported bound is R T_ub max(q at the solver's multipliers, max_i min_c a_k): valid even for
SCS's low-accuracy multipliers (they only make it weaker) and tight when the solve is.

Rounding: c_i = argmax_c x_k (values within 1e-6 tie; ties: larger bandwidth, then the
smallest cut), then resources are re-solved exactly for those cuts.

Time limits: Clarabel gets ``time_limit`` and SCS ``time_limit_secs`` (the time left after
building); ECOS has no time option, so the deadline is only checked before its solve (one
solve may overrun the limit).

Fast re-solves of the same program with new numbers live in
:mod:`edgeopt.solvers.edgesplit.relaxation_resolve`.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import version

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from edgeopt.models.edgesplit import EdgeSplitModel
from edgeopt.solvers.common.deadline import Deadline
from edgeopt.solvers.common.tolerances import OPTIMALITY_GAP
from edgeopt.solvers.edgesplit.common import make_result
from edgeopt.solvers.edgesplit.resources import allocate_for_cuts
from edgeopt.solvers.result import Result, Status

METHOD = "relaxation_perspective"

CVXPY_NAMES = {"clarabel": cp.CLARABEL, "ecos": cp.ECOS, "scs": cp.SCS}
"""Backend -> cvxpy solver name (never ECOS_BB: the relaxation is continuous)."""

SOLVER_SETTINGS: dict[str, dict[str, float]] = {
    "clarabel": {"tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9, "tol_feas": 1e-9},
    "ecos": {"max_iters": 200},
    "scs": {"eps_abs": 1e-6, "eps_rel": 1e-6, "max_iters": 20_000},
}
"""Options passed to each backend. Clarabel's defaults (1e-8) leave its budget duals ~3e-5 off
the analytic derivative on T1; 1e-9 brings them to ~2e-6 at no measurable cost (an
occasional ``optimal_inaccurate`` status is kept in ``Result.termination``; the bound stays valid). SCS defaults to 1e-4 accuracy; 1e-6 keeps its bound within
~1e-6 of the interior-point ones on small fleets. SCS is first-order: on 1000 devices it may
stop at the iteration cap (``optimal_inaccurate``, ~1-2 min); its bound stays valid, only weaker."""

TIME_LIMIT_KEYS = {"clarabel": "time_limit", "scs": "time_limit_secs"}
"""Each backend's time-limit option [s]; ECOS has none."""

_version = cache(version)
"""The installed version of a backend package (looked up once)."""

TIE = 1e-6
"""Relaxed x values (in [0, 1]) within TIE of a device's largest one count as tied."""


@dataclass(frozen=True)
class ScaledOptions:
    """The memory-feasible options of a model, flattened and scaled by ``scale`` = T_ub [s].

    ``device`` and ``column`` give each option's (i, c) position in the option table;
    ``fixed`` = a, ``link`` = g and ``server`` = h (None in dedicated mode) are as in the
    module docstring (dimensionless).
    """

    n_devices: int
    n_columns: int
    device: np.ndarray
    column: np.ndarray
    fixed: np.ndarray
    link: np.ndarray
    server: np.ndarray | None
    scale: float

    @classmethod
    def from_model(cls, model: EdgeSplitModel, cuts: list[int] | None = None) -> ScaledOptions:
        """Scaled options of ``model``; with ``cuts`` (one per device) only those options,
        which makes the program the convex resource problem of the fixed cuts."""
        table, inst, n = model.options, model.instance, model.n_devices
        device, column = np.nonzero(table.feasible)
        if cuts is not None:
            chosen = np.asarray(cuts)
            if chosen.shape != (n,):
                raise ValueError(f"fix['cuts'] has {chosen.size} entries: needs one cut per device ({n})")
            keep = table.cuts[column] == chosen[device]
            device, column = device[keep], column[keep]
            missing = sorted(set(range(n)) - set(device.tolist()))
            if missing:
                i = missing[0]
                raise ValueError(
                    f"fix['cuts'][{i}] = {cuts[i]!r}: not a memory-feasible cut of device "
                    f"{model.device_names[i]!r} (allowed: {table.cuts[table.feasible[i]].tolist()})"
                )
        fixed = (table.device_s if model.shared else table.dedicated_s)[device, column]
        link = n * table.bandwidth_seconds[device, column] / inst.bandwidth_hz
        server = n * table.server_s[device, column] if model.shared else None
        equal_share = fixed + link + (0.0 if server is None else server)
        per_device = np.full(n, np.inf)
        np.minimum.at(per_device, device, equal_share)
        upper = float(per_device.max())
        scale = upper if upper > 0 else 1.0
        return cls(
            n_devices=n,
            n_columns=table.feasible.shape[1],
            device=device,
            column=column,
            fixed=fixed / scale,
            link=link / scale,
            server=None if server is None else server / scale,
            scale=scale,
        )

    @property
    def fixed_bound(self) -> float:
        """max_i min_c a (scaled): no device finishes before its fixed time; q at lam = nu = 0."""
        return float(self.per_device_min(self.fixed).max())

    def take(self, index: np.ndarray) -> ScaledOptions:
        """The options at ``index`` (repeats allowed), same devices and scale."""
        return ScaledOptions(
            n_devices=self.n_devices,
            n_columns=self.n_columns,
            device=self.device[index],
            column=self.column[index],
            fixed=self.fixed[index],
            link=self.link[index],
            server=None if self.server is None else self.server[index],
            scale=self.scale,
        )

    def slot_template(self, slots: int) -> ScaledOptions:
        """``slots`` placeholder options per device (device-major) for a parametric program
        into which any ``slots`` options per device can be written: every placeholder gets a
        cone wherever any option of the model needs the resource (a zero 2 sqrt(g) is fine)."""
        size = self.n_devices * slots
        return ScaledOptions(
            n_devices=self.n_devices,
            n_columns=self.n_columns,
            device=np.repeat(np.arange(self.n_devices), slots),
            column=np.zeros(size, dtype=int),
            fixed=np.ones(size),
            link=np.full(size, float(self.link.any())),
            server=None if self.server is None else np.full(size, float(self.server.any())),
            scale=self.scale,
        )

    def per_device_min(self, values: np.ndarray) -> np.ndarray:
        """Minimum of an option vector over each device's options."""
        out = np.full(self.n_devices, np.inf)
        np.minimum.at(out, self.device, values)
        return out

    @property
    def structure(self) -> tuple:
        """What fixes the program's shape: the options, and which need bandwidth / server work.

        Two models with equal ``structure`` differ only in the numbers a, g, h, so one
        parametric program (:class:`ParametricRelaxation`) solves both.
        """
        server = None if self.server is None else (self.server > 0).tobytes()
        return (
            self.n_devices, self.n_columns, self.device.tobytes(), self.column.tobytes(),
            (self.link > 0).tobytes(), server,
        )


def _coefficient(values: np.ndarray, parametric: bool) -> np.ndarray | cp.Parameter:
    """``values`` as a constant, or as a nonnegative cvxpy Parameter holding them."""
    if not parametric:
        return values
    return cp.Parameter(values.size, nonneg=True, value=values)


@dataclass(frozen=True)
class Resource:
    """One budget of the program: its cone variables and constraints on the options ``active``.

    ``root`` = 2 sqrt(need) on the active options (a Parameter in a parametric program).
    """

    active: np.ndarray
    units: cp.Variable
    seconds: cp.Variable
    budget: cp.Constraint
    cone: cp.Constraint
    root: np.ndarray | cp.Parameter


def _resource(
    x: cp.Variable, need: np.ndarray, n_devices: int, parametric: bool = False
) -> Resource | None:
    """Cones w u >= need x^2 on the options with need > 0 and sum u <= N (None if none)."""
    active = np.flatnonzero(need > 0)
    if active.size == 0:
        return None
    units = cp.Variable(active.size, nonneg=True)
    seconds = cp.Variable(active.size)
    root = _coefficient(2.0 * np.sqrt(need[active]), parametric)
    lifted = cp.multiply(root, x[active])
    cone = cp.SOC(seconds + units, cp.vstack([lifted, seconds - units]), axis=0)
    return Resource(active, units, seconds, cp.sum(units) <= n_devices, cone, root)


@dataclass(frozen=True)
class Program:
    """The cvxpy problem and the handles needed to read its primal and dual solution.

    ``fixed`` holds a (a Parameter in a parametric program).
    """

    problem: cp.Problem
    x: cp.Variable
    rows: cp.Constraint
    bandwidth: Resource | None
    server: Resource | None
    fixed: np.ndarray | cp.Parameter


def build_program(data: ScaledOptions, parametric: bool = False) -> Program:
    """The scaled relaxation of the module docstring as a cvxpy problem.

    With ``parametric`` the numbers a, 2 sqrt(g), 2 sqrt(h) are cvxpy Parameters (the
    problem is DPP), to be changed in place by :func:`set_numbers`.
    """
    count = data.device.size
    incidence = sp.csr_matrix(
        (np.ones(count), (data.device, np.arange(count))), shape=(data.n_devices, count)
    )
    x = cp.Variable(count, nonneg=True)
    tau = cp.Variable()
    bandwidth = _resource(x, data.link, data.n_devices, parametric)
    server = None if data.server is None else _resource(x, data.server, data.n_devices, parametric)
    fixed = _coefficient(data.fixed, parametric)
    per_device = incidence @ cp.multiply(fixed, x)
    constraints = [incidence @ x == 1]
    for resource in (bandwidth, server):
        if resource is not None:
            per_device = per_device + incidence[:, resource.active] @ resource.seconds
            constraints += [resource.cone, resource.budget]
    rows = per_device <= tau
    problem = cp.Problem(cp.Minimize(tau), [rows, *constraints])
    return Program(problem, x, rows, bandwidth, server, fixed)


def set_numbers(program: Program, data: ScaledOptions) -> None:
    """Write the numbers of ``data`` into a parametric ``program`` of the same structure."""
    if not isinstance(program.fixed, cp.Parameter):
        raise TypeError("set_numbers needs a program built with parametric=True")
    program.fixed.value = data.fixed
    for resource, need in ((program.bandwidth, data.link), (program.server, data.server)):
        if resource is None:
            continue
        if not isinstance(resource.root, cp.Parameter) or need is None:
            raise TypeError("set_numbers needs a parametric program of the same structure")
        resource.root.value = 2.0 * np.sqrt(need[resource.active])


def option_prices(
    data: ScaledOptions, mu: np.ndarray, lam: float, nu: float
) -> np.ndarray | None:
    """Each option's term of the dual function, mu_i a_k + 2 sqrt(mu_i lam g_k) [+ the same
    with nu, h_k] (scaled), or None when mu has no positive entry.

    ``mu`` is clipped at 0 and normalised to sum 1, ``lam`` and ``nu`` clipped at 0.
    """
    mu = np.maximum(np.asarray(mu, dtype=float), 0.0)
    if not mu.sum() > 0:
        return None
    weight = (mu / math.fsum(mu))[data.device]
    price = weight * data.fixed + 2.0 * np.sqrt(weight * max(lam, 0.0) * data.link)
    if data.server is not None:
        price = price + 2.0 * np.sqrt(weight * max(nu, 0.0) * data.server)
    return price


def dual_bound(data: ScaledOptions, mu: np.ndarray, lam: float, nu: float) -> float:
    """Lagrangian dual function q(mu, lam, nu) (scaled): a lower bound for any multipliers.

    ``mu`` is clipped at 0 and normalised to sum 1, ``lam`` and ``nu`` clipped at 0.
    """
    price = option_prices(data, mu, lam, nu)
    if price is None:
        return -math.inf
    return math.fsum(data.per_device_min(price)) - (max(lam, 0.0) + max(nu, 0.0)) * data.n_devices


def round_cuts(
    data: ScaledOptions, model: EdgeSplitModel, x: np.ndarray, units: np.ndarray
) -> np.ndarray:
    """c_i = argmax_c x (within TIE), ties: larger bandwidth ``units``, then the smallest cut."""
    shape = (data.n_devices, data.n_columns)
    relaxed = np.full(shape, -np.inf)
    relaxed[data.device, data.column] = x
    bandwidth = np.full(shape, -np.inf)
    bandwidth[data.device, data.column] = units
    tied = relaxed >= relaxed.max(axis=1, keepdims=True) - TIE
    bandwidth = np.where(tied, bandwidth, -np.inf)
    best = bandwidth == bandwidth.max(axis=1, keepdims=True)
    return model.options.cuts[np.argmax(best, axis=1)]


def equal_share_cuts(data: ScaledOptions, model: EdgeSplitModel) -> np.ndarray:
    """Each device's best cut with the equal share (used when the solver returns no point)."""
    total = np.full((data.n_devices, data.n_columns), np.inf)
    total[data.device, data.column] = (
        data.fixed + data.link + (0.0 if data.server is None else data.server)
    )
    return model.options.cuts[np.argmin(total, axis=1)]


def _budget_dual(resource: Resource | None) -> float:
    """The multiplier of a budget row (0 without the budget or without a dual)."""
    if resource is None or resource.budget.dual_value is None:
        return 0.0
    return float(resource.budget.dual_value)


def multipliers(program: Program) -> tuple[np.ndarray, float, float]:
    """(mu, lam, nu) of a solved program: the row and budget multipliers."""
    return program.rows.dual_value, _budget_dual(program.bandwidth), _budget_dual(program.server)


def _run(
    program: Program, backend: str, deadline: Deadline, warm_start: bool = False
) -> tuple[str, str | None]:
    """Solve; return (cvxpy status, error message or None). ``warm_start`` lets cvxpy reuse
    the previous solve where the backend allows it (Clarabel: its solver object, data updated
    in place; SCS: the previous solution as starting point; ECOS: nothing)."""
    settings = dict(SOLVER_SETTINGS[backend], warm_start=warm_start)
    remaining = deadline.remaining
    if remaining is not None and backend in TIME_LIMIT_KEYS:
        settings[TIME_LIMIT_KEYS[backend]] = max(remaining, 1e-3)
    if deadline.expired:
        return "not_started", "time limit reached before the solve"
    try:
        with warnings.catch_warnings():
            # cvxpy warns on 'optimal_inaccurate'; the status is reported in the Result and
            # the bound is the dual function, valid whatever the accuracy.
            warnings.filterwarnings("ignore", message="Solution may be inaccurate")
            program.problem.solve(solver=CVXPY_NAMES[backend], **settings)
    except cp.SolverError as error:
        return "solver_error", str(error)
    return program.problem.status, None


def has_solution(program: Program, status_text: str) -> bool:
    """Whether the last solve of ``program`` returned a point (and multipliers)."""
    return status_text in cp.settings.SOLUTION_PRESENT and program.x.value is not None


@dataclass
class Clock:
    """Times [s] of one model's solve, over all its backend solves: ``solve_s`` is the
    backends' solves, ``build_s`` everything before them (building, cvxpy's canonicalisation
    or Parameter refresh, pricing), ``reported_s`` the backends' own times (None: none)."""

    last: float = field(default_factory=time.perf_counter)
    build_s: float = 0.0
    solve_s: float = 0.0
    reported_s: float | None = None

    def run(
        self, program: Program, backend: str, deadline: Deadline, warm_start: bool = False
    ) -> tuple[str, str | None]:
        """:func:`_run`, adding its times."""
        built = time.perf_counter()
        outcome = _run(program, backend, deadline, warm_start)
        solved = time.perf_counter()
        compile_s = program.problem.compilation_time or 0.0
        self.build_s += built - self.last + compile_s
        self.solve_s += solved - built - compile_s
        self.last = solved
        stats = program.problem.solver_stats
        if stats is not None and stats.solve_time is not None:
            self.reported_s = (self.reported_s or 0.0) + stats.solve_time
        return outcome


def relaxed_point(
    program: Program, data: ScaledOptions, index: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(x, bandwidth units u) on the options of ``data`` from a program solved over the
    options ``index`` of ``data`` (None: all of them); repeated options add up, options
    outside ``index`` get 0, and options without traffic get u = 0 (as in the full program)."""
    index = np.arange(data.device.size) if index is None else index
    if program.x.value is None:
        raise ValueError("the program has no solution to read")
    x = np.zeros(data.device.size)
    np.add.at(x, index, program.x.value)
    own_units = np.zeros(index.size)
    if program.bandwidth is not None:
        own_units[program.bandwidth.active] = program.bandwidth.units.value
    units = np.zeros(data.device.size)
    np.add.at(units, index, own_units)
    return x, np.where(data.link > 0, units, 0.0)


def read_solution(
    program: Program, data: ScaledOptions, model: EdgeSplitModel, index: np.ndarray | None = None
) -> tuple[float, np.ndarray, dict]:
    """(certified scaled bound, rounded cuts, extras) from a program solved over the options
    ``index`` of ``data`` (None: all); the bound is q over all options of ``data``.

    extras: ``relaxation_value_s`` (the solver's primal value of the relaxed J, s) and
    ``duals`` = {``bandwidth_budget``: dJ_relax/dB [s/Hz], ``server_budget`` (shared):
    dJ_relax/dF [s per FLOP/s]}. Perturbing the row sum u <= N to N(1 + e) is the same as
    B -> B(1 + e), so dJ_relax/dB = -R T_ub lam N / B (likewise F with nu).
    """
    mu, lam, nu = multipliers(program)
    bound = max(data.fixed_bound, dual_bound(data, mu, lam, nu))
    cuts = round_cuts(data, model, *relaxed_point(program, data, index))
    rounds = model.rounds_used
    if rounds is None:  # infeasibility() reports an unreachable target before any solve
        raise ValueError("the convergence target is unreachable: no round count")
    inst, factor = model.instance, rounds * data.scale * data.n_devices
    duals = {"bandwidth_budget": -factor * lam / inst.bandwidth_hz}
    by_field = {"bandwidth_hz": duals["bandwidth_budget"]}
    if model.shared:
        duals["server_budget"] = -factor * nu / inst.server_flops_per_s
        by_field["server_flops_per_s"] = duals["server_budget"]
    value = rounds * data.scale * float(program.problem.value)
    return bound, cuts, {"relaxation_value_s": value, "duals": duals, "duals_by_field": by_field}


def solve_relaxation_perspective(
    model: EdgeSplitModel,
    *,
    backend: str | None = None,
    time_limit: float | None = None,
    seed: int | None = None,
    fix: dict[str, list[int]] | None = None,
) -> Result:
    """Lower bound from the perspective relaxation plus a rounded, exactly re-allocated point.

    ``fix={"cuts": [...]}`` keeps one option per device (fix-and-relax): the program is then
    the convex resource problem of those cuts, its value is their optimal J and its duals
    are dJ/dB (dJ/dF) wherever those cuts stay optimal nearby (``duals_by_field`` in extras).

    ``result.bound`` = R T_ub q [s] (see the module docstring); ``objective`` is J of the
    rounded cuts with optimal resources. ``result.extras`` holds ``relaxation_value_s`` and
    ``duals`` (see :func:`read_solution`): derivatives of the relaxed optimal J w.r.t. the
    budgets, so <= 0 (J_relax(B + dB) ~ J_relax(B) + duals['bandwidth_budget'] dB). If the
    solver returns no point, each device takes its best cut with the equal share and the
    bound is R T_ub max_i min_c a; the status is then ``time_limit`` or ``feasible``
    with a message. ``seed`` is unused (the method is deterministic).
    """
    backend = backend or "clarabel"
    deadline, clock = Deadline(time_limit), Clock()
    unknown = sorted(set(fix or {}) - {"cuts"})
    if unknown:
        raise ValueError(f"fix got {unknown}: only 'cuts' can be fixed")
    data = ScaledOptions.from_model(model, cuts=None if fix is None else list(fix["cuts"]))
    program = build_program(data)
    status_text, error = clock.run(program, backend, deadline)
    return assemble_result(model, data, program, backend, clock, status_text, error, deadline)


def assemble_result(
    model: EdgeSplitModel,
    data: ScaledOptions,
    program: Program,
    backend: str,
    clock: Clock,
    status_text: str,
    error: str | None,
    deadline: Deadline,
    index: np.ndarray | None = None,
    certified: bool = True,
) -> Result:
    """The Result of a solved ``program`` over the options ``index`` of ``data`` (None:
    all). A point that is not ``certified`` optimal for the full relaxation once the
    deadline has passed gets status ``time_limit``."""
    if has_solution(program, status_text):
        bound, cuts, extras = read_solution(program, data, model, index)
    else:
        bound, cuts, extras = data.fixed_bound, equal_share_cuts(data, model), {}
    limited = status_text == cp.USER_LIMIT or (
        deadline.expired and (status_text != cp.OPTIMAL or not certified)
    )
    status = Status.TIME_LIMIT if limited else Status.FEASIBLE
    _, _, bandwidth, shares = allocate_for_cuts(model, cuts)
    result = make_result(
        model,
        METHOD,
        status,
        cuts,
        bandwidth,
        shares,
        bound_per_round=data.scale * bound,
        solver=backend,
        solver_version=_version(backend),
        build_s=clock.build_s,
        solve_s=clock.solve_s,
        solver_reported_s=clock.reported_s,
        termination="time_limit" if limited else status_text,
        message=None if error is None else f"{backend}: {error}; fell back to equal-share cuts",
    )
    if status is Status.FEASIBLE and result.gap is not None and result.gap <= OPTIMALITY_GAP:
        result = result.replace(status=Status.OPTIMAL)
    return result.replace(extras={**result.extras, **extras})
