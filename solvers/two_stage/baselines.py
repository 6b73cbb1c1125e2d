"""The reference policies of spec §6.5. Each is a restriction of (P1-S), so its value is >= the
exact optimum; each reports a feasible point with the canonical minimum-energy resources of
its (M, N, D, B) (spec §3.4), or ``infeasible`` with the budget that the restriction's
cheapest cell misses and by how much.

* ``baseline_finetune_only``: M = 0. Per cell the SCA of :mod:`.sca` with ``floor_fill``
  rounding: a heuristic within the restriction (the relaxed cell optimum is global, the
  rounding is not exact).
* ``baseline_equal_rounds``: M/N = ``ratio`` exactly (default 1: M = N). A float ratio is read
  as the fraction p/q with the smallest denominator <= 1e6 within float precision (0.5 ->
  1/2, 0.3 -> 3/10); the cells are (p t, q t), t = 1, 2, ..; per cell SCA + ``floor_fill``.
* ``baseline_fixed_batch``: D = min(``batch``, D^max), B_k = min(``batch``, B_k^max)
  (default 32); (M, N) by the oracle: cells in increasing Psi, the first one the §5.5
  oracle accepts is optimal within the restriction (exact).
* ``baseline_split_budget``: pre-training gets ``share`` (theta, default 0.5) of E_max and
  T_max, fine-tuning the rest. Pre-training alone is a one-variable problem: for each M the
  largest D the oracle accepts within its share is optimal (exact). Fine-tuning: SCA cell
  (0, N) within its share + ``floor_fill`` (heuristic). (M, N) are searched over the grid (a
  stage with 0 rounds wastes its share); the point is reported with the canonical resources
  of the whole budgets, which it meets since each stage meets its share.
* ``baseline_max_resource``: f = f^max and p = P^max in every round, so the costs are linear
  in the batches: E = M e_D D + N sum_k (e_k B_k + P_k^max tau_k^min),
  T = M t_D D + N max_k (t_k B_k + tau_k^min). Per cell, a 1-D search on D (from its largest
  feasible value down, stopped when M/D + N sum_k alpha_k^2/B_k^max cannot beat the best)
  with the devices' best response: the max over devices becomes per-device caps, and
  min sum_k alpha_k^2/B_k s.t. sum_k e_k B_k <= budget is a separable convex allocation.
  When the per-sample energies e_k are equal (equal kappa, C, f^max; every preset) taking
  the largest marginal gains alpha_k^2/(b(b+1)) first is exact (marginal analysis for
  separable convex objectives under one unit-weight resource), so the baseline is exact
  within its restriction (``extras['exact_within_restriction']``); otherwise the same
  greedy runs on gain per joule (a heuristic). The reported resources are the canonical
  ones (§3.4; at most the max-resource energy); ``extras`` keeps the max-resource totals.

Options are validated with errors naming the option and its range; ``seed`` is only recorded
(every baseline is deterministic).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from fractions import Fraction
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd

from edgeopt.models.two_stage import TwoStageModel
from edgeopt.solvers.common.deadline import Deadline
from edgeopt.solvers.result import Result, infeasible_result
from edgeopt.solvers.two_stage.cell import CellPrograms
from edgeopt.solvers.two_stage.sca import (
    Budgets,
    Candidate,
    CellSCA,
    check_seed,
    grid_cells,
    instance_infeasible,
    lower_bounds,
    sca_evaluator,
    search_result,
    trace_frame,
    visit_cells,
)
from edgeopt.solvers.two_stage.sca import unsupported as sca_unsupported

ROUNDING = "floor_fill"
"""Rounding of the SCA-based baselines (the best of the two heuristics' roundings)."""

FLOOR_RTOL = 1e-12
"""Relative slack of the floors of the linear caps (the oracle's delay tolerance)."""


def unsupported(model: TwoStageModel) -> str | None:
    """As ``sca_grid``: static channels only (the oracle and the costs use h_k)."""
    return sca_unsupported(model)


# ---- infeasible restrictions ---------------------------------------------------------------


@dataclass(frozen=True)
class Need:
    """What the cheapest cell ``label`` of a restriction needs [s, J] within ``budgets``."""

    label: str
    delay_s: float
    energy_j: float
    budgets: Budgets


def oracle_need(model: TwoStageModel, label: str, M: int, N: int, D: float, B,
                budgets: Budgets | None = None) -> Need:
    """The least delay and energy of (M, N, D, B) by the §5.5 oracle (inf energy when the
    delay does not fit)."""
    budgets = budgets or Budgets.of(model)
    cell = model.min_energy(M, N, D, B, **budgets.oracle())
    return Need(label, cell.min_delay_s, cell.energy_j, budgets)


def restriction_infeasible(model: TwoStageModel, method: str, restriction: str,
                           needs: list[Need]) -> Result:
    """Status ``infeasible``: the delay budget if no cheapest cell meets it, else the energy
    budget, with the smallest shortfall."""
    fits = [n for n in needs if n.delay_s <= n.budgets.delay_s * (1 + 1e-12)]
    if not fits:
        need = min(needs, key=lambda n: n.delay_s - n.budgets.delay_s)
        missing = need.delay_s - need.budgets.delay_s
        return infeasible_result(
            model, method, model.empty_solution(), "delay",
            f"{restriction}: {need.label} needs {need.delay_s:.6g} s > delay budget "
            f"{need.budgets.delay_s:.6g} s: missing {missing:.6g} s",
            min_delay_s=need.delay_s, missing_s=missing,
        )
    need = min(fits, key=lambda n: n.energy_j - n.budgets.energy_j)
    missing = need.energy_j - need.budgets.energy_j
    return infeasible_result(
        model, method, model.empty_solution(), "energy",
        f"{restriction}: {need.label} needs {need.energy_j:.6g} J > energy budget "
        f"{need.budgets.energy_j:.6g} J: missing {missing:.6g} J",
        min_delay_s=min(n.delay_s for n in needs), min_energy_j=need.energy_j, missing_j=missing,
    )


def _sca_restricted(model: TwoStageModel, method: str, cells: list[tuple[int, int]],
                    backend: str | None, time_limit: float | None, restriction: str,
                    cheapest: tuple[int, int], extras: dict[str, Any] | None = None) -> Result:
    """SCA + floor_fill over ``cells`` by increasing valid bound; ``cheapest`` explains an
    infeasible restriction (its unit-batch need)."""
    sca = CellSCA(model, backend)
    started = time.perf_counter()
    infeasible = instance_infeasible(model, method)
    if infeasible is not None:
        return infeasible.replace(solver=sca.backend)
    deadline = Deadline(time_limit)
    rows: list[dict[str, Any]] = []
    evaluate = sca_evaluator(model, sca, ROUNDING, rows, deadline,
                             relaxations=CellPrograms(model, sca.backend))
    best, termination = visit_cells(cells, lower_bounds(model, cells), evaluate, deadline=deadline)
    result = search_result(model, method, best, termination, started, trace=trace_frame(rows),
                           solver=sca.backend, solver_version=sca.solver_version,
                           extras={**(extras or {}), "subproblems": sca.subproblems})
    if result is not None:
        return result
    M, N = cheapest
    label = f"cell (M, N) = ({M}, {N}) at unit batches"
    return restriction_infeasible(model, method, restriction, [
        oracle_need(model, label, M, N, 1.0, np.ones(model.n_devices))])


# ---- finetune_only and equal_rounds ---------------------------------------------------------


def solve_finetune_only(model: TwoStageModel, *, backend: str | None = None,
                        time_limit: float | None = None, seed: int | None = None) -> Result:
    """No pre-training (M = 0); N and the device batches by SCA + floor_fill."""
    check_seed(seed)
    n_max = model.derived.max_finetune_rounds
    if n_max < 1:
        raise ValueError("baseline_finetune_only needs max_finetune_rounds >= 1 "
                         "(the instance allows 0 fine-tuning rounds)")
    cells = [(0, N) for N in range(1, n_max + 1)]
    return _sca_restricted(model, "baseline_finetune_only", cells, backend, time_limit,
                           "fine-tuning only (M = 0)", (0, 1))


def ratio_cells(model: TwoStageModel, ratio: Any) -> tuple[Fraction, list[tuple[int, int]]]:
    """The fraction p/q read from ``ratio`` > 0 and the cells (p t, q t) within the caps."""
    if isinstance(ratio, bool) or not isinstance(ratio, Real) or not math.isfinite(ratio) \
            or ratio <= 0:
        raise ValueError(f"ratio = {ratio!r}: must be a finite number > 0 (M/N; "
                         "use baseline_finetune_only for M = 0)")
    fraction = Fraction(ratio).limit_denominator(10**6)
    p, q = fraction.numerator, fraction.denominator
    d = model.derived
    count = min(d.max_pretrain_rounds // p, d.max_finetune_rounds // q)
    if count < 1:
        raise ValueError(
            f"ratio = {ratio!r} (M/N = {p}/{q}) admits no cell with M <= "
            f"max_pretrain_rounds = {d.max_pretrain_rounds} and N <= max_finetune_rounds = "
            f"{d.max_finetune_rounds}")
    return fraction, [(p * t, q * t) for t in range(1, count + 1)]


def solve_equal_rounds(model: TwoStageModel, *, backend: str | None = None,
                       time_limit: float | None = None, seed: int | None = None,
                       ratio: float = 1.0) -> Result:
    """M/N = ``ratio`` (default M = N); the batches by SCA + floor_fill per cell."""
    check_seed(seed)
    fraction, cells = ratio_cells(model, ratio)
    return _sca_restricted(model, "baseline_equal_rounds", cells, backend, time_limit,
                           f"M/N = {fraction}", cells[0], extras={"ratio": str(fraction)})


# ---- fixed_batch ------------------------------------------------------------------------------


def check_batch(batch: Any) -> int:
    if isinstance(batch, bool) or not isinstance(batch, Integral) or batch < 1:
        raise ValueError(f"batch = {batch!r}: must be an integer >= 1 (samples)")
    return int(batch)


def solve_fixed_batch(model: TwoStageModel, *, backend: str | None = None,
                      time_limit: float | None = None, seed: int | None = None,
                      batch: int = 32) -> Result:
    """D = min(batch, D^max), B_k = min(batch, B_k^max); the best (M, N) the oracle accepts
    (exact within the restriction)."""
    method = "baseline_fixed_batch"
    batch = check_batch(batch)
    check_seed(seed)
    started = time.perf_counter()
    infeasible = instance_infeasible(model, method)
    if infeasible is not None:
        return infeasible
    d = model.derived
    D = min(batch, d.server_max_batch)
    B = np.minimum(batch, d.device_max_batch)
    cells = grid_cells(model)
    values = model.bound(np.array([c[0] for c in cells]), np.array([c[1] for c in cells]), D,
                         np.broadcast_to(B, (len(cells), B.size)))
    rows: list[dict[str, Any]] = []

    def evaluate(M: int, N: int, cutoff: float = math.inf) -> Candidate | None:
        cell = model.min_energy(M, N, D, B)
        value = float(model.bound(M, N, D, B))
        rows.append({"M": M, "N": N, "psi": value, "feasible": cell.feasible,
                     "min_delay_s": cell.min_delay_s, "energy_j": cell.energy_j})
        return Candidate(value, (M, N), (D, B)) if cell.feasible else None

    best, termination = visit_cells(cells, values, evaluate, deadline=Deadline(time_limit))
    result = search_result(model, method, best, termination, started, trace=pd.DataFrame(rows),
                           extras={"batch": batch})
    if result is not None:
        return result
    needs = []
    if d.max_pretrain_rounds:
        needs.append(oracle_need(model, f"one pre-training round at D = {D}", 1, 0, D, B))
    if d.max_finetune_rounds:
        needs.append(oracle_need(model, f"one fine-tuning round at B = {B.tolist()}", 0, 1, D, B))
    return restriction_infeasible(model, method, f"fixed batches {batch}", needs)


# ---- split_budget ------------------------------------------------------------------------------


def check_share(share: Any) -> float:
    if isinstance(share, bool) or not isinstance(share, Real) or not 0 < share < 1:
        raise ValueError(f"share = {share!r}: must be a number in (0, 1) (pre-training's "
                         "fraction of both budgets)")
    return float(share)


def largest_pretrain_batch(model: TwoStageModel, M: int, budgets: Budgets) -> int | None:
    """The largest D the oracle accepts for M pre-training rounds alone within ``budgets``
    (None if D = 1 fails): start at the floored closed form (t_s = T/M, clock and energy
    caps) and correct by +-1 steps with the oracle."""
    d = model.derived
    t_s = budgets.delay_s / M
    cap = min(d.server_max_batch, d.server_clock_hz * t_s / d.server_cycles,
              (budgets.energy_j * t_s**2 / (M * d.server_capacitance * d.server_cycles**3))
              ** (1 / 3))
    D = max(1, min(d.server_max_batch, math.floor(cap * (1 + 1e-9))))

    def fits(D: int) -> bool:
        return model.min_energy(M, 0, D, np.ones(d.n_devices), **budgets.oracle()).feasible

    while D >= 1 and not fits(D):
        D -= 1
    if D < 1:
        return None
    while D < d.server_max_batch and fits(D + 1):
        D += 1
    return D


def solve_split_budget(model: TwoStageModel, *, backend: str | None = None,
                       time_limit: float | None = None, seed: int | None = None,
                       share: float = 0.5) -> Result:
    """Pre-training within ``share`` of E_max and T_max (exact largest D per M), fine-tuning
    within the rest (SCA + floor_fill per N); (M, N) searched by increasing valid bound."""
    method = "baseline_split_budget"
    share = check_share(share)
    check_seed(seed)
    sca = CellSCA(model, backend)
    started = time.perf_counter()
    infeasible = instance_infeasible(model, method)
    if infeasible is not None:
        return infeasible.replace(solver=sca.backend)
    d = model.derived
    K = d.n_devices
    pre, fine = Budgets.of(model, share), Budgets.of(model, 1 - share)
    pre_batch: dict[int, int] = {0: 0}
    for M in range(1, d.max_pretrain_rounds + 1):
        D = largest_pretrain_batch(model, M, pre)
        if D is None:
            break  # more rounds need more of the same share
        pre_batch[M] = D
    Ns = np.arange(d.max_finetune_rounds + 1)
    fine_caps = fine.caps(model)
    stage_caps = [fine_caps.caps(0, int(N)) if N else None for N in Ns]
    B_hat = np.array([d.device_max_batch if c is None else c.B for c in stage_caps], dtype=float)
    possible = np.array([c is None or c.feasible for c in stage_caps])
    beta_hat = np.where(possible, model.beta(np.maximum(B_hat, 1)), np.inf)
    cells, bounds = [], []
    for M, D in pre_batch.items():
        for N in Ns:
            if M + N and np.isfinite(beta_hat[N]):
                cells.append((M, int(N)))
                bounds.append(float(model.bound(M, N, max(D, 1), np.maximum(B_hat[N], 1))))
    deadline = Deadline(time_limit)
    rows: list[dict[str, Any]] = []
    fine_cell = sca_evaluator(model, sca, ROUNDING, rows, deadline, fine)
    fine_cache: dict[int, Candidate | None] = {0: Candidate(0.0, (0, 0), (0, np.zeros(K, int)))}

    def evaluate(M: int, N: int, cutoff: float = math.inf) -> Candidate | None:
        if N not in fine_cache:
            fine_cache[N] = fine_cell(0, N)  # no cutoff: the stage value serves every M
        stage = fine_cache[N]
        if stage is None:
            return None
        B = stage.data[1]
        return Candidate(float(model.bound(M, N, pre_batch[M], B)), (M, N), (pre_batch[M], B))

    best, termination = visit_cells(cells, np.array(bounds), evaluate, deadline=deadline)
    result = search_result(model, method, best, termination, started, trace=trace_frame(rows),
                           solver=sca.backend, solver_version=sca.solver_version,
                           extras={"share": share, "subproblems": sca.subproblems})
    if result is not None:
        return result
    ones = np.ones(K)
    needs = []
    if d.max_pretrain_rounds:
        needs.append(oracle_need(model, "one pre-training round at D = 1 (its share)", 1, 0, 1,
                                 ones, pre))
    if d.max_finetune_rounds:
        needs.append(oracle_need(model, "one fine-tuning round at B = 1 (its share)", 0, 1, 1,
                                 ones, fine))
    return restriction_infeasible(model, method, f"split budgets (share {share:g})", needs)


# ---- max_resource --------------------------------------------------------------------------------


class LinearCosts:
    """Per-round costs at f = f^max, p = P^max: server e_D [J/sample], t_D [s/sample]; devices
    e_k [J/sample], t_k [s/sample], upload energy P_k^max tau_k^min [J] and time tau_k^min [s]."""

    def __init__(self, model: TwoStageModel):
        d = model.derived
        self.model = model
        self.e_D = d.server_capacitance * d.server_cycles * d.server_clock_hz**2
        self.t_D = d.server_cycles / d.server_clock_hz
        self.e_k = d.device_capacitance * d.device_cycles * d.device_clock_hz**2
        self.t_k = d.device_cycles / d.device_clock_hz
        self.up_e = d.max_power_w * d.tau_min_s
        self.up_t = d.tau_min_s
        self.alpha2 = d.weights**2
        self.b_max = d.device_max_batch
        self.equal_costs = bool(np.all(np.abs(self.e_k - self.e_k[0]) <= 1e-12 * self.e_k[0]))

    def totals(self, M: int, N: int, D: float, B) -> tuple[float, float]:
        """(E [J], T [s]) at maximum clocks and powers."""
        B = np.asarray(B, float)
        energy = M * self.e_D * D + (N * float(np.sum(self.e_k * B + self.up_e)) if N else 0.0)
        delay = M * self.t_D * D + (N * float(np.max(self.t_k * B + self.up_t)) if N else 0.0)
        return energy, delay

    def device_caps(self, N: int, delay_left: float) -> np.ndarray:
        """Largest B_k with N (t_k B_k + tau_k^min) <= delay_left, capped at B_k^max."""
        caps = np.floor((delay_left / N - self.up_t) / self.t_k * (1 + FLOOR_RTOL))
        return np.minimum(caps, self.b_max)

    def server_cap(self, M: int, N: int) -> int:
        """Largest D with devices at B = 1 (0 if none)."""
        d = self.model.derived
        E, T = d.energy_budget_j, d.delay_budget_s
        if N:
            T -= N * float(np.max(self.t_k + self.up_t))
            E -= N * float(np.sum(self.e_k + self.up_e))
        cap = min(d.server_max_batch, T / (M * self.t_D), E / (M * self.e_D))
        return max(0, math.floor(cap * (1 + FLOOR_RTOL)))


def device_response(alpha2: np.ndarray, costs: np.ndarray, caps: np.ndarray, budget: float,
                    ) -> np.ndarray | None:
    """min sum_k alpha_k^2/B_k s.t. sum_k costs_k B_k <= budget, 1 <= B_k <= caps (integers):
    the marginal gains alpha_k^2/(b(b+1)) per unit cost, largest first, while they fit (exact
    when the costs are equal). None when unit batches do not fit."""
    if np.any(caps < 1) or float(np.sum(costs)) > budget:
        return None
    caps = caps.astype(int)
    left = budget - float(np.sum(costs))
    steps = [np.arange(1, c) for c in caps]
    device = np.concatenate([np.full(s.size, k) for k, s in enumerate(steps)]).astype(int)
    b = np.concatenate(steps).astype(float)
    if b.size == 0:
        return np.ones(caps.size, int)
    ratio = alpha2[device] / (b * (b + 1)) / costs[device]
    order = np.argsort(-ratio, kind="stable")
    spend = np.cumsum(costs[device[order]])
    count = int(np.searchsorted(spend, left, side="right"))
    taken = list(order[:count])
    left -= float(spend[count - 1]) if count else 0.0
    if not np.allclose(costs, costs[0], rtol=1e-12, atol=0):
        for i in order[count:]:  # unequal costs: smaller steps may still fit
            if costs[device[i]] <= left:
                taken.append(i)
                left -= float(costs[device[i]])
    return 1 + np.bincount(device[taken], minlength=caps.size)


def max_resource_cell(lin: LinearCosts, M: int, N: int) -> tuple[int, np.ndarray] | None:
    """Best integer (D, B) of cell (M, N) under the linear costs (1-D search on D, devices'
    best response), or None when infeasible."""
    d = lin.model.derived
    E, T = d.energy_budget_j, d.delay_budget_s
    K = d.n_devices
    if N == 0:
        D = lin.server_cap(M, 0)
        return (D, np.zeros(K, int)) if D >= 1 else None

    def response(D: int) -> np.ndarray | None:
        delay_left = T - M * lin.t_D * D
        energy_left = E - M * lin.e_D * D - N * float(np.sum(lin.up_e))
        if delay_left <= 0 or energy_left <= 0:
            return None
        return device_response(lin.alpha2, lin.e_k, lin.device_caps(N, delay_left), energy_left / N)

    if M == 0:
        B = response(0)
        return None if B is None else (0, B)
    beta_floor = float(np.sum(lin.alpha2 / lin.b_max))
    best: tuple[float, int, np.ndarray] | None = None
    for D in range(lin.server_cap(M, N), 0, -1):
        if best is not None and M / D + N * beta_floor >= best[0]:
            break  # smaller D cannot do better
        B = response(D)
        if B is None:
            continue
        q = M / D + N * float(np.sum(lin.alpha2 / B))
        if best is None or q < best[0]:
            best = (q, D, B)
    return None if best is None else (best[1], best[2])


def solve_max_resource(model: TwoStageModel, *, backend: str | None = None,
                       time_limit: float | None = None, seed: int | None = None) -> Result:
    """f = f^max, p = P^max; batches and (M, N) optimised under the linear costs."""
    method = "baseline_max_resource"
    check_seed(seed)
    started = time.perf_counter()
    infeasible = instance_infeasible(model, method)
    if infeasible is not None:
        return infeasible
    lin = LinearCosts(model)
    d = model.derived
    cells = grid_cells(model)
    bounds = []
    for M, N in cells:
        D_cap = lin.server_cap(M, N) if M else d.server_max_batch
        slot = d.delay_budget_s - M * lin.t_D
        caps = lin.device_caps(N, slot) if N else lin.b_max
        ok = D_cap >= 1 and np.all(caps >= 1) and (M == 0 or slot > 0)
        bounds.append(float(model.bound(M, N, D_cap, caps)) if ok else np.inf)
    rows: list[dict[str, Any]] = []

    def evaluate(M: int, N: int, cutoff: float = math.inf) -> Candidate | None:
        found = max_resource_cell(lin, M, N)
        if found is None:
            rows.append({"M": M, "N": N, "psi": math.nan, "feasible": False})
            return None
        D, B = found
        value = float(model.bound(M, N, D, B))
        energy, delay = lin.totals(M, N, D, B)
        rows.append({"M": M, "N": N, "psi": value, "feasible": True, "pretrain_batch": D,
                     "finetune_batch": [int(b) for b in B], "max_resource_energy_j": energy,
                     "max_resource_delay_s": delay})
        return Candidate(value, (M, N), (D, B))

    best, termination = visit_cells(cells, np.array(bounds), evaluate, deadline=Deadline(time_limit))
    extras: dict[str, Any] = {"exact_within_restriction": lin.equal_costs}
    if best:
        M, N = best[0].cell
        energy, delay = lin.totals(M, N, *best[0].data)
        extras.update(max_resource_energy_j=energy, max_resource_delay_s=delay)
    result = search_result(model, method, best, termination, started, trace=pd.DataFrame(rows),
                           extras=extras)
    if result is not None:
        return result
    needs = []
    budgets = Budgets.of(model)
    if d.max_pretrain_rounds:
        energy, delay = lin.totals(1, 0, 1, np.ones(d.n_devices))
        needs.append(Need("one pre-training round at D = 1 and f_s^max", delay, energy, budgets))
    if d.max_finetune_rounds:
        energy, delay = lin.totals(0, 1, 0, np.ones(d.n_devices))
        needs.append(Need("one fine-tuning round at B = 1, f^max and P^max", delay, energy, budgets))
    return restriction_infeasible(model, method, "maximum clocks and powers", needs)

