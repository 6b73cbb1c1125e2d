"""The ``per_round`` policy of spec §3.3 for one cell (M, N): the fine-tuning batches, clocks and
powers of every round are free (the server stays stage-constant).

In the time variables of §5.3, round n of device k has a batch B_kn, a compute time t_kn
(clock C_k B_kn / t_kn) and an upload time tau_kn (power from the inverse rate with the round's
gain h_k(n)), and the round lasts u_n >= t_kn + tau_kn:

    min  M/D + sum_n sum_k alpha_k^2/B_kn
    s.t. M A_s D^3/t_s^2 + sum_n sum_k [A_k B_kn^3/t_kn^2 + phi_kn(tau_kn)] <= E_max
         M t_s + sum_n u_n <= T_max,   t_kn + tau_kn <= u_n
         t_s >= c_s D,  t_kn >= c_k B_kn,  tau_kn >= tau_kn^min,  1 <= D <= D^max, 1 <= B_kn <= B_k^max

with phi_kn(tau) = (N_0 b_k/h_k(n)) tau expm1(ln2 S/(b_k tau)) and tau_kn^min its time at P^max.
Every row is convex (identities I7, I8), so this is the relaxed per-round cell problem, solved
globally by Clarabel through cvxpy (power cones for the compute energies, relative-entropy
cones for the uploads; times in units of T_max/(M + N), energies in units of E_max/(M + N)).

When the policy matters (spec §3.3; tests show each case):

* static channels, relaxed batches: the stage-constant optimum is optimal here too (per-round
  energies are jointly convex, so averaging the rounds keeps the delay and, by Jensen, raises
  neither the energy nor Q);
* time-varying channels (``channel_gain_schedule``): the rounds' energy functions differ and
  per-round values can be strictly better (``tie_batches=True`` gives the best policy with one
  batch per device and free per-round times, a relaxation of the stage-constant policy);
* integer batches: alternating values (e.g. 5 and 6) can beat every constant integer batch.

:func:`minimum_energy` gives the least energy of fixed per-round batches (the per-round §5.5
oracle) and :func:`solution` the §3.4 decision fields with a ``per_round`` block at that
minimum-energy allocation, which the model's evaluator checks round by round.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from edgeopt.models.two_stage import TwoStageModel
from edgeopt.models.two_stage.derived import LN2, upload_energy

SETTINGS = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}
"""Clarabel tolerances on the O(1) scaled program."""

DELAY_MARGIN = 1e-7
""":func:`minimum_energy` plans within T_max (1 - 1e-7), so that the solver's feasibility
tolerance never makes the reported delay exceed the budget."""


@dataclass(frozen=True)
class PerRoundCell:
    """A per-round cell solve: ``value`` Q [1/sample] (or E* [J] for :func:`minimum_energy`;
    inf when not solved), ``D`` server batch (0 if M = 0), ``B`` (N x K) device batches,
    ``server_time_s`` t_s, ``device_time_s`` and ``upload_time_s`` (N x K) [s], ``status``;
    ``multipliers`` (batch-term solves) the solver's prices in SI: ``energy`` lambda
    [1/(sample J)], ``delay`` mu and ``rounds`` nu (N x K) [1/(sample s)]."""

    M: int
    N: int
    value: float
    D: float
    B: np.ndarray
    server_time_s: float
    device_time_s: np.ndarray
    upload_time_s: np.ndarray
    status: str
    multipliers: dict | None = None

    @property
    def solved(self) -> bool:
        return math.isfinite(self.value)


def round_gains(model: TwoStageModel, N: int) -> np.ndarray:
    """h_k(n) for the first N fine-tuning rounds (N x K; the static gain without a schedule)."""
    return model.derived.gains[:N]


def relaxed_cell(model: TwoStageModel, M: int, N: int, *, tie_batches: bool = False
                 ) -> PerRoundCell:
    """The relaxed per-round optimum of cell (M, N) (real batches; module docstring).
    ``tie_batches``: one batch per device for every round (times stay per round)."""
    return _solve_either(model, M, N, objective="batch_term", tie_batches=tie_batches)


def minimum_energy(model: TwoStageModel, M: int, N: int, pretrain_batch: float,
                   finetune_batches) -> PerRoundCell:
    """The least energy E* [J] (``value``) of fixed batches, D and the N x K rows B_kn, within
    T_max (1 - ``DELAY_MARGIN``), and its times; ``value`` inf if the delay cannot be met."""
    B = np.asarray(finetune_batches, float).reshape(N, model.n_devices) if N > 0 else None
    return _solve_either(model, M, N, objective="energy", fixed=(float(pretrain_batch), B))


def solution(model: TwoStageModel, M: int, N: int, pretrain_batch: int, finetune_batches,
             times: PerRoundCell | None = None) -> dict | None:
    """The §3.4 decision fields of integer per-round batches at their minimum-energy
    allocation, with ``per_round`` = {"finetune_batch", "device_clock_hz", "power_w"} (N x K;
    the top-level lists hold round 0); None if the delay budget cannot be met (or the
    minimum-energy solve fails). ``times``: use these per-round times instead (e.g. a relaxed
    cell's, which stay feasible for batches at or below its batches: same delay, less
    energy)."""
    d = model.derived
    cell = times if times is not None else minimum_energy(model, M, N, pretrain_batch,
                                                          finetune_batches)
    if not cell.solved:
        return None
    K = d.n_devices
    D = int(pretrain_batch) if M > 0 else 0
    out = {"pretrain_rounds": M, "finetune_rounds": N, "pretrain_batch": D,
           "server_clock_hz": (min(d.server_cycles * D / cell.server_time_s, d.server_clock_hz)
                               if M > 0 else 0.0)}
    if N == 0:
        return out | {"finetune_batch": [0] * K, "device_clock_hz": [0.0] * K,
                      "power_w": [0.0] * K}
    B = np.asarray(finetune_batches, int).reshape(N, K)
    clock = np.minimum(d.device_cycles * B / cell.device_time_s, d.device_clock_hz)
    gains = round_gains(model, N)
    scale = d.noise_w_per_hz * d.bandwidth_hz / gains
    power = np.minimum(scale * np.expm1(LN2 * d.bits / (d.bandwidth_hz * cell.upload_time_s)),
                       d.max_power_w)
    per_round = {"finetune_batch": B.tolist(), "device_clock_hz": clock.tolist(),
                 "power_w": power.tolist()}
    energy, delay = _totals(model, M, N, D, out["server_clock_hz"], B, clock, power)
    return out | {key: values[0] for key, values in per_round.items()} | {
        "per_round": per_round, "energy_j": energy, "delay_s": delay}


def _totals(model: TwoStageModel, M: int, N: int, D: int, f_s: float, B: np.ndarray,
            clock: np.ndarray, power: np.ndarray) -> tuple[float, float]:
    """Energy [J] and delay [s] of per-round clocks and powers (§3.2, round n at h_k(n))."""
    d = model.derived
    energy = M * d.server_capacitance * d.server_cycles * D * f_s**2 if M > 0 else 0.0
    delay = M * d.server_cycles * D / f_s if M > 0 else 0.0
    upload = d.bits / d.rate(power, round_gains(model, N))
    energy += float(np.sum(d.device_capacitance * d.device_cycles * B * clock**2
                           + power * upload))
    delay += float(np.sum(np.max(d.device_cycles * B / clock + upload, axis=1)))
    return float(energy), float(delay)


CONE_FORMS = ("power", "soc")
"""Two ways to write the compute-energy rows e >= A x^3/t^2 (:func:`_cube_root_mean`):
Clarabel fails on some per-round programs in one form and not in the other, so a solve that
ends without a point is repeated in the other form (the better ending is kept)."""


def _solve_either(model: TwoStageModel, M: int, N: int, **how) -> PerRoundCell:
    """:func:`_solve` in the first cone form, then the other if that gave no point."""
    first = _solve(model, M, N, form=CONE_FORMS[0], **how)
    if first.solved or first.status == "infeasible":
        return first
    second = _solve(model, M, N, form=CONE_FORMS[1], **how)
    rank = {"optimal": 0, "optimal_inaccurate": 1}
    return min((first, second), key=lambda cell: rank.get(cell.status, 2))


def _solve(model: TwoStageModel, M: int, N: int, *, objective: str, form: str,
           tie_batches: bool = False, fixed: tuple[float, np.ndarray | None] | None = None
           ) -> PerRoundCell:
    """Build and solve the scaled program (``objective``: ``batch_term`` or ``energy``;
    ``form``: one of ``CONE_FORMS``)."""
    if M < 0 or N < 0 or M + N < 1:
        raise ValueError(f"cell ({M}, {N}): rounds must be >= 0 with M + N >= 1")
    d = model.derived
    if N > d.max_finetune_rounds:
        raise ValueError(f"N = {N} > max_finetune_rounds = {d.max_finetune_rounds}")
    K, R = d.n_devices, M + N
    E, T = d.energy_budget_j, d.delay_budget_s * (1 - DELAY_MARGIN if fixed else 1)
    Tr, Er = T / R, E / R
    root = Er ** (1 / 3) * Tr ** (2 / 3)
    energy, delay, cons, q_terms = 0, 0, [], 0
    D = ts = None
    if M > 0:
        A_s = float(d.server_energy_time_constant(1.0))
        ts, es = cp.Variable(pos=True), cp.Variable(nonneg=True)
        if fixed is None:
            D = cp.Variable()
            cons += [D >= 1, D <= d.server_max_batch]
            q_terms += M * cp.inv_pos(D)
        else:
            D = cp.Constant(fixed[0])
        G_s = root / A_s ** (1 / 3)
        cons += [ts >= (d.server_cycles / d.server_clock_hz / Tr) * D,
                 *_cube_root_mean(D / G_s, es, ts, form)]
        energy += M * es
        delay += M * ts
    B = t = tau = round_rows = None
    if N > 0:
        gains = round_gains(model, N)
        scale = d.noise_w_per_hz * d.bandwidth_hz / gains  # N x K [W]
        tau_min = d.bits / d.rate(np.broadcast_to(d.max_power_w, (N, K)), gains)
        A = np.broadcast_to(d.device_energy_time_constant(1.0), (N, K))
        if fixed is not None:
            B = cp.Constant(fixed[1])
        elif tie_batches:
            B_k = cp.Variable(K)
            cons += [B_k >= 1, B_k <= d.device_max_batch]
            B = cp.vstack([B_k] * N) if N > 1 else cp.reshape(B_k, (1, K), order="C")
        else:
            B = cp.Variable((N, K))
            cons += [B >= 1, B <= np.broadcast_to(d.device_max_batch, (N, K))]
        if fixed is None:
            q_terms += cp.sum(cp.multiply(np.broadcast_to(d.weights**2, (N, K)),
                                          cp.inv_pos(B)))
        t, e = cp.Variable((N, K), pos=True), cp.Variable((N, K), nonneg=True)
        tau, w, u = cp.Variable((N, K), pos=True), cp.Variable((N, K)), cp.Variable(N)
        sigma = scale * T / E
        ell = np.log(E / (scale * T))
        up = np.broadcast_to(LN2 * d.bits / d.bandwidth_hz / Tr, (N, K))
        G = root / np.cbrt(A)
        cons += [t >= cp.multiply(np.broadcast_to(d.device_cycles / d.device_clock_hz / Tr,
                                                  (N, K)), B),
                 tau >= tau_min / Tr,
                 -cp.rel_entr(tau, w) >= up - cp.multiply(tau, ell),
                 *_cube_root_mean(cp.multiply(1 / G, B), e, t, form)]
        round_rows = t + tau <= cp.vstack([u] * K).T
        cons.append(round_rows)
        energy += cp.sum(e + w - cp.multiply(sigma, tau))
        delay += cp.sum(u)
    delay_row = delay <= R
    cons.append(delay_row)
    energy_row = None
    if objective == "energy":
        problem = cp.Problem(cp.Minimize(energy / R), cons)
    else:
        energy_row = energy <= R
        problem = cp.Problem(cp.Minimize(q_terms), [*cons, energy_row])
    try:
        with warnings.catch_warnings():  # the status says it (optimal_inaccurate)
            warnings.filterwarnings("ignore", message="Solution may be inaccurate")
            problem.solve(solver=cp.CLARABEL, **SETTINGS)
        status = problem.status
    except cp.SolverError as error:
        status = f"solver_error: {error}"
    if status not in ("optimal", "optimal_inaccurate"):
        return PerRoundCell(M, N, math.inf, 0.0, np.zeros((N, K)), 0.0, np.zeros((N, K)),
                            np.zeros((N, K)), str(status))
    D_value = float(D.value) if M > 0 else 0.0
    B_value = np.asarray(B.value, float).reshape(N, K) if N > 0 else np.zeros((0, K))
    ts_value = float(ts.value) * Tr if M > 0 else 0.0
    t_value = np.asarray(t.value, float) * Tr if N > 0 else np.zeros((0, K))
    tau_value = np.asarray(tau.value, float) * Tr if N > 0 else np.zeros((0, K))
    multipliers = None
    if objective == "energy":
        value = _energy(model, M, N, D_value, B_value, ts_value, t_value, tau_value)
    else:
        value = (M / D_value if M > 0 else 0.0) + float(np.sum(d.weights**2 / B_value))
        multipliers = _si_prices(energy_row, delay_row, round_rows, R, E, T, N, K)
    return PerRoundCell(M, N, value, D_value, B_value, ts_value, t_value, tau_value,
                        str(status), multipliers)


def _si_prices(energy_row, delay_row, round_rows, R: int, E: float, T: float, N: int,
               K: int) -> dict | None:
    """The rows' duals in SI: the rows are scaled by E_max/R and T_max/R (module docstring),
    so lambda = R lambda_hat/E_max, mu = R mu_hat/T_max, nu = R nu_hat/T_max."""
    duals = [energy_row.dual_value, delay_row.dual_value,
             round_rows.dual_value if round_rows is not None else np.zeros((N, K))]
    if any(value is None for value in duals):
        return None
    lam, mu, nu = duals
    return {"energy": R * float(lam) / E, "delay": R * float(mu) / T,
            "rounds": R * np.maximum(np.asarray(nu, float).reshape(N, K), 0.0) / T}


def _cube_root_mean(x, e, t, form: str) -> list[cp.Constraint]:
    """x <= e^(1/3) t^(2/3) elementwise (i.e. e >= x^3/t^2): a power cone (``power``), or
    (``soc``) two rotated second-order cones with an auxiliary s: x^2 <= s t and s^2 <= e x
    (then s >= x^2/t gives x^4/t^2 <= e x; conversely s = x^2/t works)."""
    if form == "power":
        return [cp.PowCone3D(e, t, x, 1 / 3)]
    shape = x.shape
    s = cp.Variable(shape, nonneg=True)
    flat = [cp.reshape(v, (int(np.prod(shape)) if shape else 1,), order="C")
            for v in (x, e, t, s)]
    x_, e_, t_, s_ = flat
    return [cp.SOC(s_ + t_, cp.vstack([2 * x_, s_ - t_]), axis=0),
            cp.SOC(e_ + x_, cp.vstack([2 * s_, e_ - x_]), axis=0)]


def _energy(model: TwoStageModel, M: int, N: int, D: float, B: np.ndarray, t_s: float,
            t: np.ndarray, tau: np.ndarray) -> float:
    """Total energy [J] of per-round batches and times (SI formulas of §3.2)."""
    d = model.derived
    total = M * float(d.server_energy_time_constant(D)) / t_s**2 if M > 0 else 0.0
    if N > 0:
        scale = d.noise_w_per_hz * d.bandwidth_hz / round_gains(model, N)
        total += float(np.sum(d.device_energy_time_constant(B) / t**2
                              + upload_energy(tau, scale, d.bits, d.bandwidth_hz)))
    return total
