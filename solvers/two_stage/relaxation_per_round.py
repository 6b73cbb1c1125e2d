"""``relaxation_per_round``: a valid lower bound on the per-round problem (P1) over all cells,
for static and time-varying channels, and the floor-rounded best per-round relaxed cell.

Per cell (M, N) the relaxed per-round program of :mod:`.per_round` is solved globally (convex).
The grid is searched best first by bounds that need no per-round solve, taken from the
*optimistic static* instance: every device gets its best gain over the first N_max rounds,
max_n h_k(n), in every round. Any per-round decision of the real instance is feasible there
(upload time and energy fall with the gain) and a static instance loses nothing to the
stage-constant policy with relaxed batches (spec §3.3), so for every cell

    real per-round relaxed optimum  >=  optimistic stage-constant relaxed optimum
                                    >=  its §6.2 caps bound (cells and whole blocks).

Blocks are split in halves and closed by the caps bound; a cell's optimistic relaxed value
(the certified bound of :mod:`.cell`) is the next bound; only cells still below the incumbent
get the per-round solve. Its prices give a Lagrangian cut (:class:`RoundCuts`) that bounds
every cell by weak duality: the solved cell is closed at its own cut's bound (valid whatever
the solver's accuracy, within ~1e-9 of its value when the solve is accurate), and blocks and
cells still open are priced again by the cuts when they come out of the queue.

The reported point is the per-round relaxed optimum of the best cell with every batch
floored, at its minimum-energy per-round allocation (``per_round`` block, verified round by
round by the model's evaluator); if that conic solve fails, at the relaxed cell's own times
(feasible for the floored batches; ``extras["resources"]`` says which).

With static channels the relaxed per-round optimum of every cell is the stage-constant one
(spec §3.3; a test compares the two programs cell by cell), so the method returns
``relaxation``'s result (``extras["static_channels"]``): its certified cell bounds and
Lagrangian cuts are faster and more robust than per-round programs with N x K rounds.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import numpy as np

from edgeopt.models.two_stage import TwoStageModel, convergence
from edgeopt.models.two_stage.derived import LN2
from edgeopt.solvers.common.deadline import Deadline
from edgeopt.solvers.common.tolerances import OPTIMALITY_GAP
from edgeopt.solvers.result import Result, Status, Timings
from edgeopt.solvers.two_stage import per_round
from edgeopt.solvers.two_stage.bounds import CellBounds, halves
from edgeopt.solvers.two_stage.cell import CellData, CellPrograms, _batch_part
from edgeopt.solvers.two_stage.exact import PRUNE_RTOL, _infeasible
from edgeopt.solvers.two_stage.grid_queue import GridQueue
from edgeopt.solvers.two_stage.integer import FLOOR_MARGIN
from edgeopt.solvers.two_stage.relaxation import solve_relaxation

METHOD = "relaxation_per_round"

def unsupported(model: TwoStageModel) -> str | None:
    """Every instance (static or time-varying channels)."""
    return None


def optimistic_static(model: TwoStageModel) -> TwoStageModel:
    """The instance with every device's best gain over the first N_max rounds, static."""
    document = model.to_dict()
    gains = model.derived.gains[:model.derived.max_finetune_rounds]
    for k, device in enumerate(document["devices"]):
        device.pop("channel_gain_schedule", None)
        if gains.shape[0] > 0:  # N_max = 0: no fine-tuning round, the static gain stays
            device["channel_gain"] = float(np.max(gains[:, k]))
    return TwoStageModel.from_dict(document)


def solve_relaxation_per_round(
    model: TwoStageModel,
    *,
    backend: str | None = None,
    time_limit: float | None = None,
    seed: int | None = None,
) -> Result:
    """Per-round relaxation bound over all cells and the floor-rounded best per-round cell.

    ``backend``: ``clarabel`` (the only one). ``time_limit`` [s]: status ``time_limit`` with
    the bound over what is still open. ``seed`` is unused (deterministic).
    """
    if backend not in (None, "clarabel"):
        raise ValueError(f"backend = {backend!r}: allowed clarabel")
    if not model.derived.time_varying:  # static channels: the stage-constant relaxation is it
        result = solve_relaxation(model, backend=backend, time_limit=time_limit, seed=seed)
        return result.replace(method=METHOD, extras={**result.extras, "static_channels": True})
    return search_per_round(model, time_limit=time_limit)


def search_per_round(model: TwoStageModel, *, time_limit: float | None = None) -> Result:
    """The per-round search of the module docstring, for any instance (``solve_relaxation_
    per_round`` uses it for time-varying channels; the tests also run it on static ones,
    where it must reproduce ``relaxation``'s bound)."""
    started = time.perf_counter()
    infeasible = model.infeasibility()
    if infeasible is not None:
        return _infeasible(model, METHOD, infeasible)
    search = _Search(model, Deadline(time_limit))
    search.run()
    if search.best is None:
        if search.complete:
            return _infeasible(model, METHOD, None)
        return _result(model, search, Status.TIME_LIMIT, None, None, started)
    _, cell = search.best
    point = _floor(model, cell)
    if point is None:  # the relaxed solve's own times missed the budgets (its tolerance)
        return _result(model, search, Status.ERROR, None, None, started,
                       "the rounded per-round point did not fit the budgets")
    solution, psi, resources = point
    bound = min(search.bound(), psi)
    if not search.complete:
        status = Status.TIME_LIMIT
    else:
        status = Status.OPTIMAL if psi - bound <= OPTIMALITY_GAP * psi else Status.FEASIBLE
    result = _result(model, search, status, solution, psi, started)
    return result.replace(extras={**result.extras, "resources": resources})


class RoundCuts:
    """Lagrangian cuts of the per-round problem from the prices of per-round solves.

    For prices lambda >= 0, nu_kn >= 0 and mu >= sum_k nu_kn in every round, weak duality on
    the per-round program of any cell (M, N) gives

        Q*(M, N) >= M S(lambda, mu) + P_N - lambda E_max - mu T_max,   P_N = sum_{n<N} h_n,

    with S the server's term of :meth:`CellData.dual_function` and h_n = sum_k H_nk >= 0 the
    devices' terms at round n's prices and gains (batch and compute part as in the static
    case, the upload part with tau_kn^min and N_0 b_k/h_k(n)); the round times u_n >= 0 drop
    out because mu >= sum_k nu_kn. A solve's lambda and nu_kn are used as they are in its
    rounds (so the cut is tight at the solved cell), their mean over its rounds beyond them,
    and mu = the largest round sum (they are equal at an exact optimum). Over a block, P_N >= P_N0 + (N - N0) min_{N0 <= n < N1} h_n, so the Psi bound of a
    cut is linear-fractional in (M, N) and its minimum over the block is at a corner."""

    def __init__(self, model: TwoStageModel):
        d = model.derived
        self.data = CellData(model)
        self.coeffs = model.coefficients
        n_max = d.max_finetune_rounds
        gains = d.gains[:n_max]
        rounds = copy.copy(self.data)  # the upload part, one row per round
        rounds.scale = d.noise_w_per_hz * d.bandwidth_hz / gains
        rounds.tau_min = d.bits / d.rate(np.broadcast_to(d.max_power_w, gains.shape), gains)
        rounds.e_inf = d.noise_w_per_hz * d.bits * LN2 / gains
        rounds.band = np.broadcast_to(d.bandwidth_hz, gains.shape).copy()
        rounds._upload_memo = {}
        self.rounds = rounds
        self._cuts: list[tuple[float, float, np.ndarray, np.ndarray]] = []  # S, c0, P, h

    def __len__(self) -> int:
        return len(self._cuts)

    def add(self, cell: per_round.PerRoundCell) -> None:
        prices = cell.multipliers
        if not prices or cell.N == 0:
            return
        data = self.data
        lam = max(prices["energy"], 0.0)
        solved = np.asarray(prices["rounds"], float)
        nu = np.tile(np.mean(solved, axis=0), (self.rounds.scale.shape[0], 1))
        nu[: solved.shape[0]] = solved  # the solve's own prices in its rounds
        mu = float(np.max(np.sum(nu, axis=1)))  # u_n >= 0 drops out when sum_k nu_nk <= mu
        S = float(_batch_part(1.0, data.A_s, data.c_s, 1.0, data.D_max, lam, mu))
        rows = nu.shape
        compute = _batch_part(*(np.broadcast_to(v, rows) for v in (data.alpha2, data.A, data.c)),
                              1.0, np.broadcast_to(data.B_max, rows), lam, nu)
        upload = self.rounds.upload_part(lam, nu)
        h = np.sum(compute + upload, axis=1)
        P = np.concatenate([[0.0], np.cumsum(h)])
        self._cuts.append((S, lam * data.E + mu * data.T, P, h))

    def psi(self, M0: int, M1: int, N0: int, N1: int) -> float:
        """Lower bound on the per-round Psi over the block (-inf without cuts)."""
        a0, a1, a2 = self.coeffs.a0, self.coeffs.a1, self.coeffs.a2
        best = -math.inf
        corners = [(M, N) for M in (M0, M1) for N in (N0, N1) if M + N >= 1]
        for S, c0, P, h in self._cuts:
            slope = float(np.min(h[N0:N1])) if N1 > N0 else 0.0
            values = []
            for M, N in corners:
                q = M * S + P[N0] + (N - N0) * slope - c0
                q -= 1e-12 * abs(q)
                values.append((a0 + a1 * M + a2 * q) / (M + N))
            best = max(best, min(values))
        return best


class _Search(GridQueue):
    """Best-first search over blocks and cells (module docstring)."""

    def __init__(self, model: TwoStageModel, deadline: Deadline):
        super().__init__(deadline)
        self.model = model
        self.optimistic = optimistic_static(model)
        self.bounds = CellBounds(self.optimistic, integer=False)
        self.programs = CellPrograms(self.optimistic)
        self.coeffs = model.coefficients
        d = model.derived
        self.M_max, self.N_max = d.max_pretrain_rounds, d.max_finetune_rounds
        self.best: tuple[float, per_round.PerRoundCell] | None = None
        self.closed = math.inf
        self.cuts = RoundCuts(model)
        self.stats = {"blocks_split": 0, "optimistic_solves": 0, "per_round_solves": 0,
                      "cuts": 0}

    def _block_key(self, M0: int, M1: int, N0: int, N1: int) -> float:
        """The optimistic caps bound and the cuts' bound of a block (inf: infeasible)."""
        key = self.bounds.block(M0, M1, N0, N1)
        return max(key, self.cuts.psi(M0, M1, N0, N1)) if math.isfinite(key) else key

    def _threshold(self) -> float:
        if self.best is None:
            return math.inf
        return self.best[0] * (1 - PRUNE_RTOL)

    def bound(self) -> float:
        """Least bound over what was closed and what is still open."""
        return min(self.closed, min((item[0] for item in self.heap), default=math.inf))

    def run(self) -> None:
        self._offer_block((0, self.M_max, 0, self.N_max))
        self._drain()

    def _cut_count(self) -> int:
        return len(self.cuts)

    def _reprice(self, kind: str, payload) -> float:
        """Every item is priced again by the cuts (a cell's items over its own cell)."""
        M0, M1, N0, N1 = payload if kind == "block" else (payload[0], payload[0],
                                                            payload[1], payload[1])
        return self.cuts.psi(M0, M1, N0, N1)

    def _count_closed(self, kind: str, payload, key: float) -> None:
        self.closed = min(self.closed, key)

    def _visit(self, kind: str, payload, key: float) -> None:
        if kind == "block":
            self._split(payload)
        elif kind == "cell":
            self._optimistic(payload, key)
        else:
            self._per_round(payload, key)

    def _offer_block(self, block: tuple[int, int, int, int]) -> None:
        M0, M1, N0, N1 = block
        if (M0, N0) == (0, 0):  # the origin is no cell: its row and column apart
            if M1 >= 1:
                self._offer_block((1, M1, 0, N1))
            if N1 >= 1:
                self._offer_block((0, 0, 1, N1))
            return
        key = self._block_key(M0, M1, N0, N1)
        if not math.isfinite(key):
            return  # no feasible point anywhere in the block
        if key >= self._threshold():
            self.closed = min(self.closed, key)
        elif (M0, N0) == (M1, N1):
            self._push(key, "cell", (M0, N0))
        else:
            self._push(key, "block", block)

    def _split(self, block: tuple[int, int, int, int]) -> None:
        self.stats["blocks_split"] += 1
        for half in halves(block):
            self._offer_block(half)

    def _psi(self, M: int, N: int, q: float) -> float:
        return float(convergence.psi_from_q(M, N, q, self.coeffs))

    def _optimistic(self, cell: tuple[int, int], key: float) -> None:
        """The optimistic instance's certified relaxed bound of the cell."""
        M, N = cell
        relaxed = self.programs.solve(M, N, time_limit=self.deadline.remaining)
        self.stats["optimistic_solves"] += 1
        if relaxed.status.startswith("infeasible") and relaxed.status != "infeasible_inaccurate":
            return
        bound = max(key, self._psi(M, N, relaxed.bound)) if relaxed.solved else key
        if bound >= self._threshold():
            self.closed = min(self.closed, bound)
        else:
            self._push(bound, "per_round", cell)

    def _per_round(self, cell: tuple[int, int], key: float) -> None:
        """The per-round solve adds a cut and closes the cell at its own cut's bound (weak
        duality at the solver's prices, valid however accurate they are; ``key`` if that is
        lower or the solve gave no prices); its point is a candidate."""
        M, N = cell
        solved = per_round.relaxed_cell(self.model, M, N)
        self.stats["per_round_solves"] += 1
        if solved.status == "infeasible":
            return
        if solved.multipliers is not None and solved.solved:
            self.cuts.add(solved)
            self.stats["cuts"] = len(self.cuts)
        self.closed = min(self.closed, max(key, self.cuts.psi(M, M, N, N)))
        if not solved.solved:
            return
        psi = self._psi(M, N, solved.value)
        if self.best is None or psi < self.best[0]:
            self.best = (psi, solved)


def _floor(model: TwoStageModel, cell: per_round.PerRoundCell
           ) -> tuple[dict, float, str] | None:
    """The floored per-round point of a relaxed cell, its Psi and where its resources come
    from: ``minimum_energy`` (the per-round minimum-energy allocation, canonical), or
    ``relaxed_times`` when that solve fails or misses E_max (Clarabel can stall on large
    fixed-batch programs): the relaxed cell's own times, which stay feasible for the floored
    batches (same delay, less energy). None if neither fits the budgets."""
    d = model.derived
    M, N = cell.M, cell.N
    D = min(max(math.floor(cell.D * (1 + FLOOR_MARGIN)), 1), d.server_max_batch) if M else 0
    B = np.clip(np.floor(cell.B * (1 + FLOOR_MARGIN)), 1, d.device_max_batch[None, :])
    B = B.astype(int)
    psi = convergence.psi_per_round([D] * M, B, d.weights, model.coefficients)
    least = per_round.minimum_energy(model, M, N, D, B)
    if least.solved and least.value <= d.energy_budget_j:
        return per_round.solution(model, M, N, D, B, times=least), psi, "minimum_energy"
    point = per_round.solution(model, M, N, D, B, times=cell)
    if point is not None and model.evaluate(point).feasible:
        return point, psi, "relaxed_times"
    return None


def _result(model: TwoStageModel, search: _Search, status: Status, solution: dict | None,
            psi: float | None, started: float, message: str | None = None) -> Result:
    bound = search.bound()
    extras: dict[str, Any] = {"search": dict(search.stats)}
    if search.best is not None:
        cell = search.best[1]
        extras["relaxed_cell"] = {"M": cell.M, "N": cell.N, "relaxed_psi": search.best[0]}
    wall = time.perf_counter() - started
    return Result(
        model=model.model_id,
        method=METHOD,
        status=status,
        objective=psi,
        bound=bound if math.isfinite(bound) else None,
        solution=solution if solution is not None else model.empty_solution(),
        device_names=model.device_names,
        timings=Timings(solve_s=wall, wall_s=wall),
        solver="clarabel",
        termination="time_limit" if status is Status.TIME_LIMIT else None,
        message=message,
        extras=extras,
    )
