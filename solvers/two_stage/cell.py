"""The relaxed cell problem of spec §5.3: fixed rounds (M, N), real batches, in time variables.

For a cell (M, N) (R = M + N >= 1) the batch term Q = M/D + N sum_k alpha_k^2/B_k is minimised
over real D in [1, D^max], B_k in [1, B_k^max] and per-round times t_s, t_k, tau_k, u:

    M A_s D^3/t_s^2 + N sum_k [A_k B_k^3/t_k^2 + phi_k(tau_k)] <= E_max          (energy)
    M t_s + N u <= T_max,   u >= t_k + tau_k                                       (delay)
    t_s >= c_s D,   t_k >= c_k B_k,   tau_k >= tau_k^min

with A = kappa C^3 [J s^2], c = C/f^max [s/sample], phi_k(tau) = (N_0 b_k/h_k) tau expm1(ln2 S/(b_k
tau)) [J] (identities I7, I8: every row is convex). Psi = [a0 + a1 M + a2 Q]/(M + N).

cvxpy program (backends ``clarabel``, ``ecos``). Times are in units of T_r = T_max/R and energies
in units of E_r = E_max/R (so a round of either stage is O(1)), batches as fractions of their
caps: d = D/D^max, b_k = B_k/B_k^max, and the objective is Q/Q_caps with Q_caps the value at the
caps (>= 1). As in §5.3, ``d <= G_s geo_mean([e_s, t_s], [1, 2])`` means e_s >= A_s D^3/t_s^2 and
``-rel_entr(tau, w) >= c - tau ln(E_max/(scale T_max))`` means w >= scale tau 2^{S/(b tau)}
(scale = N_0 b/h, upload energy w - scale tau). The program is DPP: the numbers that depend on
(M, N) are Parameters, so one compiled program per stage pattern (both stages, pre-training
only, fine-tuning only) serves every cell (:class:`CellPrograms`).

Certified bound (``bound``): the Lagrangian dual function g(lambda, nu) of the energy row, the
delay row and the rows u >= t_k + tau_k, evaluated *by this module in closed form* at the
solver's multipliers (converted to SI), with mu = sum_k nu_k so that u drops out:

    g = M S(lambda, mu) + N sum_k H_k(lambda, nu_k) - lambda E_max - mu T_max,
    S = min_{D in [1, D^max], t >= c_s D} 1/D + lambda A_s D^3/t^2 + mu t
    H_k = min_{B in [1, B^max], t >= c_k B} alpha_k^2/B + lambda A_k B^3/t^2 + nu_k t
          + min_{tau >= tau_k^min} lambda phi_k(tau) + nu_k tau.

For fixed D the best t is D max(c, (2 lambda A/mu)^(1/3)), so S = min 1/D + w D (clipped
D = 1/sqrt(w)); the upload minimum is a one-dimensional root of phi' = -nu/lambda (safeguarded
Newton steps in log tau, to float precision). Weak duality makes g <= Q* for *any* multipliers >= 0, so the bound
holds whatever the solver's accuracy (an inaccurate solve only weakens it). We use this rather
than primal x (1 - tolerance): a primal value of a point that violates a budget by the solver's
feasibility tolerance may lie below Q*, and how far depends on the budgets' prices, which only
the dual function accounts for. The last ~1e-15 relative is float round-off (the bound is
multiplied by 1 - 1e-12 to cover it).

Boxes and integers (used by the branch and bound of :mod:`.integer`): ``solve(M, N, box=(lo,
hi))`` bounds the batches by lo <= x <= hi (Parameters); ``integer=True`` evaluates the inner
minima over *integer* batches of the box (convex in the batch, so the floor or the ceiling of
the real minimiser), which bounds the integer problem of the box and is never weaker. If a
solve ends without an accurate certificate it is repeated with the other cvxpy backend
(``RETRY_GAP``; Clarabel can stall on boxes whose feasible part is thin).

Direct Clarabel (``solve(..., direct=True)``, used by branch and bound and by ``exact``'s
relaxed solves): the same scaled program written as Clarabel's conic program by hand
(:class:`_DirectProgram`, built once per cell; only the box rows change between solves), which
skips cvxpy's per-solve canonicalisation and result unpacking. Its bound is the same dual
function at Clarabel's multipliers; anything short of a tight certified bound falls back to
the cvxpy path.

``scipy`` backend: SLSQP on the same scaled program with the energies written out (no epigraph
variables), analytic gradients, started from the oracle's feasible point at unit batches. The
problem is convex, so SLSQP's KKT point is the global optimum; its KKT multipliers give the same
certified bound g.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import cached_property

import clarabel
import cvxpy as cp
import numpy as np
from scipy import sparse
from scipy.optimize import minimize

from edgeopt.models.two_stage import TwoStageModel
from edgeopt.models.two_stage.derived import (
    LN2,
    upload_energy,
    upload_energy_curvature,
    upload_energy_slope,
)

CVXPY_NAMES = {"clarabel": cp.CLARABEL, "ecos": cp.ECOS}
"""Backend -> cvxpy solver name (never ECOS_BB: the program is continuous)."""

SOLVER_SETTINGS: dict[str, dict[str, float]] = {
    "clarabel": {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10,
                 "tol_ktratio": 1e-8, "accept_unknown": True},
    "ecos": {"abstol": 1e-10, "reltol": 1e-10, "feastol": 1e-10, "max_iters": 200},
}
"""Interior-point tolerances on the O(1) scaled program. Tighter than the defaults (1e-8) so the
multipliers, hence the certified bound, agree with the primal value to ~1e-9 relative."""

DIRECT_SETTINGS = {"iterative_refinement_enable": False}
"""Extra Clarabel settings of the direct path (:meth:`CellPrograms.solve` with ``direct``): on
K = 20 branch-and-bound boxes, iterative refinement of the KKT solves took ~30% of the time
and changed neither the iteration count nor the status (a solve that ends without a tight
certified bound is repeated through cvxpy anyway)."""

ROUNDOFF = 1e-12
"""Relative margin taken off the dual function for float round-off."""

RETRY_GAP = 1e-7
"""A solve whose certified bound is further than this (relative) below its value, or that is
not ``optimal``, is repeated with the other cvxpy backend."""

UPLOAD_MEMO = 20000
"""Multiplier sets whose upload part :class:`CellData` keeps (K floats each)."""

FIXED_WIDTH = 1e-3
"""Half-width [sample] given to a batch that a box fixes (see :meth:`CellPrograms._set`)."""

SLSQP_OPTIONS = {"ftol": 1e-15, "maxiter": 1000}
"""SLSQP stops when the scaled objective (>= 1) moves less than ftol."""


@dataclass(frozen=True)
class RelaxedCell:
    """The relaxed optimum of one cell.

    ``value`` Q at the solver's point (D, B) [1/sample], ``bound`` the certified lower bound on
    Q* (-inf when no multipliers were returned), ``D`` (0 when M = 0), ``B`` (zeros when
    N = 0) the relaxed batches [sample], ``status`` the backend's status text, ``backend``,
    ``multipliers`` (lambda [1/(sample J)], mu [1/(sample s)], nu [1/(sample s)] per device),
    ``solve_s`` wall seconds.
    """

    M: int
    N: int
    value: float
    bound: float
    D: float
    B: np.ndarray
    status: str
    backend: str
    multipliers: dict = field(default_factory=dict)
    solve_s: float = 0.0

    @property
    def solved(self) -> bool:
        """A point and a finite certified bound are available."""
        return math.isfinite(self.value) and math.isfinite(self.bound)


class CellData:
    """Constants of a model shared by every cell (SI units, per device on the last axis)."""

    def __init__(self, model: TwoStageModel):
        d = model.derived
        self.model = model
        self.K = d.n_devices
        self.E = d.energy_budget_j
        self.T = d.delay_budget_s
        self.A_s = float(d.server_energy_time_constant(1.0))
        self.c_s = d.server_cycles / d.server_clock_hz
        self.D_max = float(d.server_max_batch)
        self.A = d.device_energy_time_constant(1.0)
        self.c = d.device_cycles / d.device_clock_hz
        self.B_max = d.device_max_batch.astype(float)
        self.alpha2 = d.weights**2
        self.tau_min = d.tau_min_s
        self.scale = d.noise_w_per_hz * d.bandwidth_hz / d.channel_gain
        self.bits = d.bits
        self.band = d.bandwidth_hz
        self.upload_c = LN2 * d.bits / d.bandwidth_hz
        self.e_inf = d.energy_inf_j
        self._upload_memo: dict[tuple, np.ndarray] = {}

    def q_caps(self, M: int, N: int) -> float:
        """Q at the batch caps (the least Q of the cell, before the budgets)."""
        return (M / self.D_max if M else 0.0) + (N * float(np.sum(self.alpha2 / self.B_max))
                                                  if N else 0.0)

    # ---- the dual function ----------------------------------------------------------------
    def dual_function(self, M: int, N: int, lam: float, mu: float, nu: np.ndarray,
                      box: tuple[np.ndarray, np.ndarray] | None = None,
                      integer: bool = False) -> float:
        """g(lambda, mu, nu) <= Q* of the cell for any lambda, mu, nu >= 0 (module docstring);
        with N > 0 the delay price used is sum nu (mu is ignored), with N = 0 mu itself.

        ``box`` = (lo, hi) restricts the batches (vectors over the used stages, D first as in
        :class:`~edgeopt.solvers.two_stage.integer.CellVector`); ``integer`` minimises over
        integer batches (a valid bound on the integer problem of the box, never weaker)."""
        lam = max(float(lam), 0.0)
        nu = np.maximum(np.asarray(nu, float), 0.0)
        if N > 0:
            mu = float(np.sum(nu))
        mu = max(float(mu), 0.0)
        total = -lam * self.E - mu * self.T
        lo, hi = self.box(M, N, box)
        if M > 0:
            total += M * float(_batch_part(1.0, self.A_s, self.c_s, lo[0], hi[0], lam, mu,
                                           integer))
        if N > 0:
            first = 1 if M > 0 else 0
            compute = _batch_part(self.alpha2, self.A, self.c, lo[first:], hi[first:], lam, nu,
                                  integer)
            total += N * float(np.sum(compute + self._upload_cached(lam, nu)))
        return total - ROUNDOFF * abs(total)

    def _upload_cached(self, lam: float, nu: np.ndarray) -> np.ndarray:
        """:meth:`upload_part`, memoised over the last ``UPLOAD_MEMO`` multiplier sets (branch
        and bound prices a node's box when it is solved and its children's boxes at the same
        multipliers when it is popped later; the upload part does not depend on the box)."""
        key = (lam, nu.tobytes())
        value = self._upload_memo.get(key)
        if value is None:
            if len(self._upload_memo) >= UPLOAD_MEMO:
                self._upload_memo.clear()
            value = self._upload_memo[key] = self.upload_part(lam, nu)
        return value

    def item_costs(self, M: int, N: int, lam: float, mu: float, nu: np.ndarray,
                   values: np.ndarray) -> np.ndarray:
        """The Lagrangian cost l_i(v) of every batch i at the given values [1/sample] (rows:
        the used stages' batches, D first; columns: ``values`` (n x W, NaN = unused)), the
        per-batch terms of :meth:`dual_function` with the batch fixed at v."""
        lam = max(float(lam), 0.0)
        nu = np.maximum(np.asarray(nu, float), 0.0)
        mu = float(np.sum(nu)) if N > 0 else max(float(mu), 0.0)
        values = np.asarray(values, float)
        out = np.empty_like(values)
        row = 0
        if M > 0:
            v = values[0]
            out[0] = M * _batch_part(1.0, self.A_s, self.c_s, v, v, lam, mu)
            row = 1
        if N > 0:
            v = values[row:]
            out[row:] = N * _batch_part(self.alpha2[:, None], self.A[:, None], self.c[:, None],
                                        v, v, lam, nu[:, None])
        return out

    def box(self, M: int, N: int, box) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) over the used stages' batches, D first (default: 1 to the model's caps)."""
        if box is not None:
            return np.asarray(box[0], float), np.asarray(box[1], float)
        caps = ([self.D_max] if M > 0 else []) + (list(self.B_max) if N > 0 else [])
        return np.ones(len(caps)), np.array(caps)

    def upload_part(self, lam: float, nu: np.ndarray) -> np.ndarray:
        """min over tau >= tau_min of lam phi(tau) + nu tau, per device [1/sample]."""
        out = nu * self.tau_min
        if lam <= 0:
            return out
        ratio = nu / lam  # stationarity: -phi'(tau) = ratio
        slope_min = -upload_energy_slope(self.tau_min, self.scale, self.bits, self.band)
        inner = ratio < slope_min  # the minimiser is above tau_min
        zero = inner & (ratio <= 0)  # no delay price: infimum lam e_inf (never attained)
        interior = inner & ~zero
        tau = self.tau_min.copy()
        if interior.any():
            tau[interior] = self._slope_root(ratio[interior], interior)
        value = lam * upload_energy(tau, self.scale, self.bits, self.band) + nu * tau
        value = np.where(zero, lam * self.e_inf, value)
        return np.where(inner, value, out + lam * upload_energy(self.tau_min, self.scale,
                                                                  self.bits, self.band))

    def _slope_root(self, ratio: np.ndarray, which: np.ndarray) -> np.ndarray:
        """tau > tau_min with -phi'(tau) = ratio, by safeguarded Newton steps on
        F(s) = ln(-phi'(e^s)) - ln(ratio) (decreasing in s = ln tau) inside a bracket."""
        scale, band = self.scale[which], self.band[which]
        bits, target = self.bits, np.log(ratio)

        def F(s):
            return np.log(-upload_energy_slope(np.exp(s), scale, bits, band)) - target

        lo = np.log(self.tau_min[which])
        hi = lo + 1.0
        for _ in range(2000):  # -phi' -> 0 as tau -> inf, so the bracket closes
            more = F(hi) > 0
            if not more.any():
                break
            lo, hi = np.where(more, hi, lo), np.where(more, 2 * hi - lo, hi)
        s = 0.5 * (lo + hi)
        for _ in range(100):
            value = F(s)
            lo, hi = np.where(value > 0, s, lo), np.where(value < 0, s, hi)
            tau = np.exp(s)
            slope = tau * upload_energy_curvature(tau, scale, bits, band) / upload_energy_slope(
                tau, scale, bits, band)
            step = s - value / slope
            new = np.where((step > lo) & (step < hi), step, 0.5 * (lo + hi))
            done = np.abs(new - s) <= 1e-15 * np.maximum(np.abs(s), 1.0)
            s = new
            if done.all():
                break
        return np.exp(s)


def _batch_part(weight, A, c, lo, hi, lam: float, price, integer: bool = False) -> np.ndarray:
    """min over x in [lo, hi] (integers if ``integer``), t >= c x of weight/x + lam A x^3/t^2
    + price t (vectorised). For fixed x the best t is rho x with rho = max(c, (2 lam A/price)
    ^(1/3)), leaving weight/x + w x (convex in x): its minimiser is clipped to the box, or for
    integers the better of the floor and the ceiling of the clipped real minimiser."""
    weight, A, c, lo, hi = (np.asarray(v, float) for v in (weight, A, c, lo, hi))
    price = np.broadcast_to(np.asarray(price, float), np.broadcast(A, c).shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        free = np.where(price > 0, np.cbrt(2.0 * lam * A / np.where(price > 0, price, 1.0)),
                        np.inf)
        rho = np.maximum(c, free)  # t = rho x
        per_x = np.where(np.isfinite(rho), lam * A / rho**2 + price * rho, 0.0)
        x = np.where(per_x > 0, np.sqrt(weight / np.where(per_x > 0, per_x, 1.0)), hi)
    x = np.clip(x, lo, hi)
    if not integer:
        return weight / x + per_x * x
    down, up = np.clip(np.floor(x), lo, hi), np.clip(np.ceil(x), lo, hi)
    return np.minimum(weight / down + per_x * down, weight / up + per_x * up)


def _si_multipliers(data: CellData, M: int, N: int, ref: float, lam_hat, mu_hat, nu_hat):
    """Multipliers of the scaled program (objective Q/ref, rows E/E_max <= 1, T/T_max <= 1,
    R (t_k + tau_k - u)/T_max <= 0) in SI: lambda = ref lam/E_max, mu = ref mu/T_max and the
    per-round price nu_k = ref R nu_k/(N T_max) (so that sum nu = mu at a KKT point)."""
    R = M + N
    lam = ref * float(lam_hat) / data.E
    mu = ref * float(mu_hat) / data.T
    nu = ref * R / (max(N, 1) * data.T) * np.asarray(nu_hat, float)
    return lam, mu, nu


# ---- cvxpy ----------------------------------------------------------------------------------


@dataclass
class _Program:
    """A compiled DPP program of one stage pattern and its handles."""

    problem: cp.Problem
    params: dict[str, cp.Parameter]
    d: cp.Variable | None
    b: cp.Variable | None
    energy: cp.Constraint
    delay: cp.Constraint
    rows: cp.Constraint | None
    cell: tuple[int, int] | None = None


class CellPrograms:
    """The §5.3 program of a model as one DPP cvxpy program per stage pattern (built lazily).

    ``solve(M, N)`` writes the cell's numbers into the Parameters and re-solves.
    """

    def __init__(self, model: TwoStageModel, backend: str = "clarabel", fallback: bool = True):
        if backend not in CVXPY_NAMES:
            raise ValueError(f"backend = {backend!r}: cvxpy backends are {', '.join(CVXPY_NAMES)}")
        self.data = CellData(model)
        self.backend = backend
        self._programs: dict[tuple[bool, bool], _Program] = {}
        self._fallback: CellPrograms | None = None
        self._fallback_allowed = fallback
        self._direct: _DirectProgram | None = None
        self._settings = None

    def _build(self, pre: bool, fine: bool) -> _Program:
        data, K = self.data, self.data.K
        p: dict[str, cp.Parameter] = {}
        objective, energy, delay, cons = 0, 0, 0, []
        d = b = rows = None
        if pre:
            p |= {name: cp.Parameter(nonneg=True, name=name)
                  for name in ("om", "m", "Gs", "ks", "dlo", "dhi")}
            d = cp.Variable(name="d")
            ts, es = cp.Variable(nonneg=True), cp.Variable(nonneg=True)
            objective += p["om"] * cp.inv_pos(d)
            energy += p["m"] * es
            delay += p["m"] * ts
            cons += [d >= p["dlo"], d <= p["dhi"], ts >= p["ks"] * d,
                     d <= p["Gs"] * cp.geo_mean(cp.hstack([es, ts]), [1, 2])]
        if fine:
            for name in ("on", "Gk", "kk", "taumin", "up", "blo", "bhi"):
                p[name] = cp.Parameter(K, nonneg=True, name=name)
            p["n"] = cp.Parameter(nonneg=True, name="n")
            b = cp.Variable(K, name="b")
            tk, ek = cp.Variable(K, nonneg=True), cp.Variable(K, nonneg=True)
            tau, w, u = cp.Variable(K), cp.Variable(K), cp.Variable()
            sigma = data.scale * data.T / data.E
            ell = np.log(data.E / (data.scale * data.T))
            objective += cp.sum(cp.multiply(p["on"], cp.inv_pos(b)))
            energy += p["n"] * cp.sum(ek + w - cp.multiply(sigma, tau))
            delay += p["n"] * u
            rows = tk + tau <= u
            cons += [b >= p["blo"], b <= p["bhi"], tk >= cp.multiply(p["kk"], b),
                     tau >= p["taumin"],
                     -cp.rel_entr(tau, w) >= p["up"] - cp.multiply(tau, ell), rows]
            cons += [b[k] <= p["Gk"][k] * cp.geo_mean(cp.hstack([ek[k], tk[k]]), [1, 2])
                     for k in range(K)]
        energy_row, delay_row = energy <= 1.0, delay <= 1.0
        problem = cp.Problem(cp.Minimize(objective), [energy_row, delay_row, *cons])
        return _Program(problem, p, d, b, energy_row, delay_row, rows)

    def program(self, M: int, N: int) -> _Program:
        key = (M > 0, N > 0)
        if key not in self._programs:
            self._programs[key] = self._build(*key)
        return self._programs[key]

    def _set(self, program: _Program, M: int, N: int, box) -> float:
        """Write the cell's numbers and batch box; return Q_caps (objective = Q / Q_caps).

        A batch fixed by the box (lo = hi) gets +-``FIXED_WIDTH`` in the program: an interior
        point method stalls on a variable with no interior. The program is then a relaxation
        of the box; the certified bound still uses the exact box."""
        data, p = self.data, program.params
        lo, hi = data.box(M, N, box)
        fixed = hi - lo < 2 * FIXED_WIDTH
        lo = np.where(fixed, np.maximum(lo - FIXED_WIDTH, 1.0), lo)
        hi = np.where(fixed, hi + FIXED_WIDTH, hi)
        R = M + N
        ref = data.q_caps(M, N)
        root = data.E ** (1 / 3) * data.T ** (2 / 3) / R  # E_r^(1/3) T_r^(2/3)
        same_cell = program.cell == (M, N)  # branch and bound: only the box changes
        program.cell = (M, N)
        if M > 0:
            if not same_cell:
                p["om"].value = M / data.D_max / ref
                p["m"].value = M / R
                p["Gs"].value = root / (data.A_s ** (1 / 3) * data.D_max)
                p["ks"].value = data.c_s * data.D_max * R / data.T
            p["dlo"].value, p["dhi"].value = lo[0] / data.D_max, hi[0] / data.D_max
        if N > 0:
            if not same_cell:
                p["on"].value = N * data.alpha2 / data.B_max / ref
                p["n"].value = N / R
                p["Gk"].value = root / (np.cbrt(data.A) * data.B_max)
                p["kk"].value = data.c * data.B_max * R / data.T
                p["taumin"].value = data.tau_min * R / data.T
                p["up"].value = data.upload_c * R / data.T
            first = 1 if M > 0 else 0
            p["blo"].value, p["bhi"].value = lo[first:] / data.B_max, hi[first:] / data.B_max
        return ref

    def solve(self, M: int, N: int, time_limit: float | None = None, box=None,
              integer: bool = False, direct: bool = False) -> RelaxedCell:
        """The relaxed optimum and certified bound of cell (M, N); ``box`` = (lo, hi) batch
        bounds over the used stages (D first), ``integer``: certify the bound for integer
        batches (see :meth:`CellData.dual_function`).

        If the backend does not return a solved program with a bound within ``RETRY_GAP`` of
        its value (Clarabel can stall on boxes whose feasible part is thin), the cell is solved
        again with the other cvxpy backend and the better certified bound is kept.

        ``direct`` (``clarabel`` backend only; for branch and bound, which re-solves one
        cell on many boxes): the cell is first solved by calling Clarabel directly
        (:class:`_DirectProgram`, the same program without cvxpy's per-solve
        canonicalisation, about 2-3x less time per solve); only if that does not end with a
        point and a certified bound within ``RETRY_GAP`` of its value does the cvxpy path
        above run. That program's power cones are less well conditioned than cvxpy's
        second-order-cone form of ``geo_mean``: Clarabel often ends it ``AlmostSolved``
        (``optimal_inaccurate``) and its point can be off by ~1e-6 relative where Q is flat.
        Both are accepted because the bound is the dual function at the returned multipliers,
        valid whatever their accuracy (the gap test checks that it is tight), and callers
        use the point only to guide branching and rounding (rounded points are re-checked by
        the oracle). Without ``direct`` the point is as accurate as cvxpy's."""
        if direct and self.backend == "clarabel" and self._fallback_allowed:
            return self._settle(M, N, time_limit, box, integer,
                                self._solve_direct(M, N, time_limit, box, integer))
        return self._solve_cvxpy(M, N, time_limit, box, integer)

    def solve_boxes(self, M: int, N: int, boxes: list, time_limit: float | None = None,
                    integer: bool = False) -> list[RelaxedCell]:
        """``solve(M, N, box=box, integer=integer, direct=True)`` for several boxes of one
        cell, the direct Clarabel solves on ``THREADS`` threads at once (Clarabel releases
        the GIL while it solves; the cvxpy fallback, which is not thread-safe, runs after
        them one at a time). Used by branch and bound for the two children of a node."""
        if len(boxes) < 2 or THREADS < 2 or not (self.backend == "clarabel"
                                                 and self._fallback_allowed):
            return [self.solve(M, N, time_limit, box, integer, direct=True) for box in boxes]
        self._prepare_direct(M, N, time_limit)
        firsts = list(_thread_pool().map(
            lambda box: self._solve_direct(M, N, time_limit, box, integer, prepared=True),
            boxes))
        return [self._settle(M, N, time_limit, box, integer, first)
                for box, first in zip(boxes, firsts)]

    def _settle(self, M: int, N: int, time_limit: float | None, box, integer: bool,
                direct: RelaxedCell) -> RelaxedCell:
        """A direct solve if it ended with a tight certified bound, else the cvxpy path."""
        if direct.status in ("optimal", "optimal_inaccurate") and (
                direct.value - direct.bound <= RETRY_GAP * abs(direct.value)):
            return direct
        result = self._solve_cvxpy(M, N, time_limit, box, integer)
        return replace(result, solve_s=result.solve_s + direct.solve_s)

    def _solve_cvxpy(self, M: int, N: int, time_limit: float | None, box,
                     integer: bool) -> RelaxedCell:
        """The cvxpy path of :meth:`solve` (with the other backend as fallback)."""
        first = self._solve_once(M, N, time_limit, box, integer)
        if first.status == "optimal" and first.value - first.bound <= RETRY_GAP * abs(first.value):
            return first
        if first.status.startswith("infeasible") and first.status != "infeasible_inaccurate":
            return first
        if self._fallback is None:
            other = "ecos" if self.backend == "clarabel" else "clarabel"
            self._fallback = CellPrograms(self.data.model, other, fallback=False)
            self._fallback.data = self.data
        if not self._fallback_allowed:
            return first
        second = self._fallback._solve_once(M, N, time_limit, box, integer)
        if second.status.startswith("infeasible") and second.status != "infeasible_inaccurate":
            return second
        better = second if second.bound > first.bound else first
        return replace(better, solve_s=first.solve_s + second.solve_s)

    def _prepare_direct(self, M: int, N: int, time_limit: float | None) -> None:
        """Build the cell's Clarabel program (once per cell) and set the settings."""
        if self._direct is None or (self._direct.M, self._direct.N) != (M, N):
            self._direct = _DirectProgram(self.data, M, N)
        if self._settings is None:
            self._settings = clarabel.DefaultSettings()
            self._settings.verbose = False
            for name, value in SOLVER_SETTINGS["clarabel"].items():
                if name != "accept_unknown":
                    setattr(self._settings, name, value)
            for name, value in DIRECT_SETTINGS.items():
                setattr(self._settings, name, value)
        self._settings.time_limit = math.inf if time_limit is None else max(time_limit, 1e-3)

    def _solve_direct(self, M: int, N: int, time_limit: float | None, box,
                      integer: bool, prepared: bool = False) -> RelaxedCell:
        """One solve by Clarabel without cvxpy (same scaled program, same certified bound);
        ``prepared``: :meth:`_prepare_direct` was called for this cell (threads call it so)."""
        started = time.perf_counter()
        data = self.data
        if not prepared:
            self._prepare_direct(M, N, time_limit)
        lo, hi = data.box(M, N, box)
        fixed = hi - lo < 2 * FIXED_WIDTH  # as in _set: no empty interior
        lo = np.where(fixed, np.maximum(lo - FIXED_WIDTH, 1.0), lo)
        hi = np.where(fixed, hi + FIXED_WIDTH, hi)
        status, x, duals = self._direct.solve(lo, hi, self._settings)
        D = float(x[0]) if M > 0 else 0.0
        B = np.asarray(x[1 if M > 0 else 0:], float) if N > 0 else np.zeros(data.K)
        have_point = status in ("optimal", "optimal_inaccurate") and bool(
            np.all(np.isfinite(x)) and np.all(x > 0))
        value = float(data.model.batch_term(M, N, D, B)) if have_point else math.inf
        bound, multipliers = -math.inf, {}
        if have_point:
            lam, mu, nu = _si_multipliers(data, M, N, self._direct.ref, duals["energy"],
                                          duals["delay"], duals["rounds"])
            bound = data.dual_function(M, N, lam, mu, nu, box, integer)
            multipliers = {"energy": lam, "delay": mu, "rounds": nu.tolist()}
        return RelaxedCell(M, N, value, bound, D, B, status, self.backend, multipliers,
                           time.perf_counter() - started)

    def _solve_once(self, M: int, N: int, time_limit: float | None, box,
                    integer: bool) -> RelaxedCell:
        started = time.perf_counter()
        program = self.program(M, N)
        ref = self._set(program, M, N, box)
        # warm_start=False: cvxpy's default (True) makes Clarabel update its previous solver
        # in place, which keeps the first cell's equilibration and can stall on the next.
        settings = dict(SOLVER_SETTINGS[self.backend], warm_start=False)
        if time_limit is not None and self.backend == "clarabel":
            settings["time_limit"] = max(time_limit, 1e-3)
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                program.problem.solve(solver=CVXPY_NAMES[self.backend], **settings)
            status = program.problem.status
        except cp.SolverError as error:
            status = f"solver_error: {error}"
        return self._read(program, M, N, ref, status, time.perf_counter() - started, box,
                          integer)

    def _read(self, program: _Program, M, N, ref, status, seconds, box, integer) -> RelaxedCell:
        data = self.data
        D = float(data.D_max * program.d.value) if M > 0 and program.d.value is not None else 0.0
        B = np.zeros(data.K)
        if N > 0 and program.b.value is not None:
            B = data.B_max * np.asarray(program.b.value, float)
        have_point = status in cp.settings.SOLUTION_PRESENT and (M == 0 or D > 0) and (
            N == 0 or np.all(B > 0))
        value = float(self.data.model.batch_term(M, N, D, B)) if have_point else math.inf
        bound, multipliers = -math.inf, {}
        lam_hat = program.energy.dual_value
        mu_hat = program.delay.dual_value
        if have_point and lam_hat is not None and mu_hat is not None:
            nu_hat = program.rows.dual_value if N > 0 else np.zeros(data.K)
            if nu_hat is not None:
                lam, mu, nu = _si_multipliers(data, M, N, ref, lam_hat, mu_hat, nu_hat)
                bound = data.dual_function(M, N, lam, mu, nu, box, integer)
                multipliers = {"energy": lam, "delay": mu, "rounds": nu.tolist()}
        return RelaxedCell(M, N, value, bound, D, B, str(status), self.backend, multipliers,
                           seconds)


# ---- Clarabel called directly -----------------------------------------------------------------

THREADS = min(2, os.cpu_count() or 1)
"""Threads for :meth:`CellPrograms.solve_boxes` (branch and bound expands this many nodes at
once and solves their children together)."""

_POOL: tuple[int, ThreadPoolExecutor] | None = None  # (process id, pool)


def _thread_pool() -> ThreadPoolExecutor:
    """The process's thread pool (created on first use, ``THREADS`` workers; a forked child
    process, which inherits the object but not its threads, gets a new one)."""
    global _POOL
    if _POOL is None or _POOL[0] != os.getpid():
        _POOL = (os.getpid(), ThreadPoolExecutor(THREADS, thread_name_prefix="edgeopt-clarabel"))
    return _POOL[1]


CLARABEL_STATUS = {"Solved": "optimal", "AlmostSolved": "optimal_inaccurate",
                   "PrimalInfeasible": "infeasible", "AlmostPrimalInfeasible":
                   "infeasible_inaccurate"}
"""Clarabel status -> the cvxpy status text used in :class:`RelaxedCell` (others: their name)."""


class _DirectProgram:
    """The scaled cvxpy program of one cell written as Clarabel's conic program (no cvxpy).

    Clarabel solves min q'x s.t. Ax + s = b, s in K. Variables: [d, t_s, e_s, z_s] (M > 0)
    then [b, t_k, e_k, tau, w, z_k] (K each) and u (N > 0). Rows (in cone order): the energy,
    delay and K round rows, the box rows of d and b, t >= k x, tau >= tau_min (nonnegative
    cone); z x >= 1 as (z + x, z - x, 2) in a second-order cone (z is the inv_pos epigraph);
    (G e, G t, x) in the power cone of exponent 1/3 (x <= G e^(1/3) t^(2/3), the geo_mean row);
    (up - ell tau, tau, w) in the exponential cone (tau log(w/tau) >= up - ell tau, the
    rel_entr row). Only the box rows change between solves of a cell (branch and bound), so
    the matrices are built once per cell and each solve only writes ``b``."""

    def __init__(self, data: CellData, M: int, N: int):
        K = data.K
        self.M, self.N, self.K = M, N, K
        R = M + N
        self.ref = ref = data.q_caps(M, N)
        root = data.E ** (1 / 3) * data.T ** (2 / 3) / R
        nd = 4 if M > 0 else 0
        nv = nd + (6 * K + 1 if N > 0 else 0)
        ix = {}
        if M > 0:
            ix |= {"d": 0, "ts": 1, "es": 2, "zs": 3}
        if N > 0:
            for j, name in enumerate(("b", "tk", "ek", "tau", "w", "zk")):
                ix[name] = nd + j * K + np.arange(K)
            ix["u"] = nd + 6 * K
        self.ix = ix
        rows, cols, vals, rhs = [], [], [], []
        count = [0]

        def row(entries, value=0.0):
            for col, val in entries:
                rows.append(count[0])
                cols.append(int(col))
                vals.append(float(val))
            rhs.append(float(value))
            count[0] += 1
            return count[0] - 1

        q = np.zeros(nv)
        m, n = M / R, N / R
        sigma = data.scale * data.T / data.E
        ell = np.log(data.E / (data.scale * data.T))
        energy = []
        if M > 0:
            q[ix["zs"]] = M / data.D_max / ref
            energy.append((ix["es"], m))
        if N > 0:
            q[ix["zk"]] = N * data.alpha2 / data.B_max / ref
            for k in range(K):
                energy += [(ix["ek"][k], n), (ix["w"][k], n), (ix["tau"][k], -n * sigma[k])]
        self.row_energy = row(energy, 1.0)
        delay = ([(ix["ts"], m)] if M > 0 else []) + ([(ix["u"], n)] if N > 0 else [])
        self.row_delay = row(delay, 1.0)
        if N > 0:
            self.row_rounds = np.array([row([(ix["tk"][k], 1), (ix["tau"][k], 1),
                                             (ix["u"], -1)]) for k in range(K)])
        # box rows: x <= hi, -x <= -lo, over the used batches (D first); values set per solve
        batch = ([ix["d"]] if M > 0 else []) + (list(ix["b"]) if N > 0 else [])
        self.row_hi = np.array([row([(i, 1)]) for i in batch])
        self.row_lo = np.array([row([(i, -1)]) for i in batch])
        if M > 0:
            row([(ix["d"], data.c_s * data.D_max * R / data.T), (ix["ts"], -1)])
        if N > 0:
            kk = data.c * data.B_max * R / data.T
            for k in range(K):
                row([(ix["b"][k], kk[k]), (ix["tk"][k], -1)])
            for k in range(K):
                row([(ix["tau"][k], -1)], -data.tau_min[k] * R / data.T)
        cones = [clarabel.NonnegativeConeT(count[0])]
        pairs = []  # (x, z, e, t, G)
        if M > 0:
            pairs.append((ix["d"], ix["zs"], ix["es"], ix["ts"],
                          root / (data.A_s ** (1 / 3) * data.D_max)))
        if N > 0:
            G = root / (np.cbrt(data.A) * data.B_max)
            pairs += [(ix["b"][k], ix["zk"][k], ix["ek"][k], ix["tk"][k], G[k])
                      for k in range(K)]
        for x, z, _, _, _ in pairs:
            row([(z, -1), (x, -1)])
            row([(z, -1), (x, 1)])
            row([], 2.0)
            cones.append(clarabel.SecondOrderConeT(3))
        for x, _, e, t, G in pairs:
            row([(e, -G)])
            row([(t, -G)])
            row([(x, -1)])
            cones.append(clarabel.PowerConeT(1 / 3))
        if N > 0:
            up = data.upload_c * R / data.T
            for k in range(K):
                row([(ix["tau"][k], ell[k])], up[k])
                row([(ix["tau"][k], -1)])
                row([(ix["w"][k], -1)])
                cones.append(clarabel.ExponentialConeT())
        self.A = sparse.csc_matrix((vals, (rows, cols)), shape=(count[0], nv))
        self.P = sparse.csc_matrix((nv, nv))
        self.q, self.b, self.cones = q, np.array(rhs), cones
        self.scale = np.array(([data.D_max] if M > 0 else []) + (list(data.B_max) if N > 0
                                                                   else []))

    def solve(self, lo: np.ndarray, hi: np.ndarray, settings) -> tuple[str, np.ndarray, dict]:
        """(status text, batches [sample], scaled multipliers) on the box lo <= x <= hi
        (already widened for fixed batches)."""
        b = self.b.copy()
        b[self.row_hi] = hi / self.scale
        b[self.row_lo] = -lo / self.scale
        solver = clarabel.DefaultSolver(self.P, self.q, self.A, b, self.cones, settings)
        solution = solver.solve()
        name = str(solution.status).rsplit(".", 1)[-1]
        status = CLARABEL_STATUS.get(name, name)
        x, z = np.asarray(solution.x), np.asarray(solution.z)
        batches = x[([self.ix["d"]] if self.M > 0 else [])
                    + (list(self.ix["b"]) if self.N > 0 else [])] * self.scale
        duals = {"energy": z[self.row_energy], "delay": z[self.row_delay],
                 "rounds": z[self.row_rounds] if self.N > 0 else np.zeros(self.K)}
        return status, batches, duals


# ---- SciPy SLSQP --------------------------------------------------------------------------


class SlsqpCell:
    """The same scaled program solved by SLSQP (backend ``scipy``), energies written out.

    Variables x = [d, t_s] (if M > 0) + [b, t_k, tau] (K each) + [u] (if N > 0), scaled as in
    the cvxpy program; inequality rows: energy, delay, u - t_k - tau_k, t_s - k_s d,
    t_k - k_k b (the multipliers of the first three give the certified bound).
    """

    def __init__(self, model: TwoStageModel):
        self.data = CellData(model)
        self.model = model

    @cached_property
    def _sigma(self) -> np.ndarray:
        return self.data.scale * self.data.T / self.data.E

    def solve(self, M: int, N: int, time_limit: float | None = None) -> RelaxedCell:
        started = time.perf_counter()
        data, K = self.data, self.data.K
        R = M + N
        m, n = M / R, N / R
        ref = data.q_caps(M, N)
        Er, Tr = data.E / R, data.T / R
        As = data.A_s * data.D_max**3 / (Tr**2 * Er)
        Ak = data.A * data.B_max**3 / (Tr**2 * Er)
        ks = data.c_s * data.D_max / Tr
        kk = data.c * data.B_max / Tr
        taumin = data.tau_min / Tr
        up = data.upload_c / Tr
        sigma = self._sigma
        nd = 2 if M > 0 else 0
        sl_b = slice(nd, nd + K)
        sl_t = slice(nd + K, nd + 2 * K)
        sl_tau = slice(nd + 2 * K, nd + 3 * K)
        iu = nd + 3 * K
        size = nd + (3 * K + 1 if N > 0 else 0)
        wD = M / data.D_max / ref
        wB = N * data.alpha2 / data.B_max / ref

        def parts(x):
            d, ts = (x[0], x[1]) if M > 0 else (1.0, 1.0)
            if N == 0:
                return d, ts, None, None, None
            return d, ts, x[sl_b], x[sl_t], np.maximum(x[sl_tau], taumin)

        def objective(x):
            d, _, b, _, _ = parts(x)
            return (wD / d if M > 0 else 0.0) + (float(np.sum(wB / b)) if N > 0 else 0.0)

        def objective_grad(x):
            d, _, b, _, _ = parts(x)
            g = np.zeros(size)
            if M > 0:
                g[0] = -wD / d**2
            if N > 0:
                g[sl_b] = -wB / b**2
            return g

        def rows(x):
            d, ts, b, tk, tau = parts(x)
            energy = m * As * d**3 / ts**2 if M > 0 else 0.0
            delay = m * ts if M > 0 else 0.0
            out = []
            if N > 0:
                energy += n * float(np.sum(Ak * b**3 / tk**2
                                           + sigma * tau * np.expm1(up / tau)))
                delay += n * x[iu]
            out = [1.0 - energy, 1.0 - delay]
            if N > 0:
                out += list(x[iu] - tk - tau)
                out += list(tk - kk * b)
            if M > 0:
                out.append(ts - ks * d)
            return np.array(out)

        def rows_jac(x):
            d, ts, b, tk, tau = parts(x)
            count = 2 + (2 * K if N > 0 else 0) + (1 if M > 0 else 0)
            J = np.zeros((count, size))
            if M > 0:
                J[0, 0] = -m * As * 3 * d**2 / ts**2
                J[0, 1] = m * As * 2 * d**3 / ts**3
                J[1, 1] = -m
                J[-1, 0], J[-1, 1] = -ks, 1.0
            if N > 0:
                y = up / tau
                dphi = sigma * (np.expm1(y) - y * np.exp(y))
                J[0, sl_b] = -n * Ak * 3 * b**2 / tk**2
                J[0, sl_t] = n * Ak * 2 * b**3 / tk**3
                J[0, sl_tau] = -n * dphi
                J[1, iu] = -n
                idx = np.arange(K)
                J[2 + idx, iu] = 1.0
                J[2 + idx, nd + K + idx] = -1.0
                J[2 + idx, nd + 2 * K + idx] = -1.0
                J[2 + K + idx, nd + K + idx] = 1.0
                J[2 + K + idx, nd + idx] = -kk
            return J

        x0, bounds = self._start(M, N, Tr)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=RuntimeWarning)
            res = minimize(objective, x0, jac=objective_grad, method="SLSQP", bounds=bounds,
                           constraints=[{"type": "ineq", "fun": rows, "jac": rows_jac}],
                           options=SLSQP_OPTIONS)
        x = res.x
        D = float(data.D_max * x[0]) if M > 0 else 0.0
        B = data.B_max * x[sl_b] if N > 0 else np.zeros(K)
        value = float(self.model.batch_term(M, N, D, B))
        bound, multipliers = -math.inf, {}
        mult = getattr(res, "multipliers", None)
        if mult is not None and len(mult) >= 2:
            nu_hat = mult[2:2 + K] if N > 0 else np.zeros(K)
            lam, mu, nu = _si_multipliers(data, M, N, ref, mult[0], mult[1], nu_hat)
            bound = data.dual_function(M, N, lam, mu, nu)
            multipliers = {"energy": lam, "delay": mu, "rounds": nu.tolist()}
        status = "optimal" if res.success else f"slsqp: {res.message}"
        return RelaxedCell(M, N, value, bound, D, B, status, "scipy", multipliers,
                           time.perf_counter() - started)

    def _start(self, M: int, N: int, Tr: float):
        """The oracle's feasible point at unit batches (scaled) and the variable bounds."""
        data, K = self.data, self.data.K
        cell = self.model.min_energy(M, N, 1.0, np.ones(K))
        x0, bounds = [], []
        if M > 0:
            x0 += [1.0 / data.D_max, cell.server_time_s / Tr]
            bounds += [(1.0 / data.D_max, 1.0), (1e-12, None)]
        if N > 0:
            x0 += list(1.0 / data.B_max) + list(cell.compute_s / Tr) + list(cell.upload_s / Tr)
            x0.append(cell.round_time_s / Tr)
            bounds += [(1.0 / cap, 1.0) for cap in data.B_max]
            bounds += [(1e-12, None)] * K
            bounds += [(t / Tr, None) for t in data.tau_min]
            bounds.append((0.0, None))
        return np.array(x0, float), bounds
