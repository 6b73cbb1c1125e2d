"""``exact``: the global optimum of the stage-constant integer problem (P1-S), spec §6.1.

The grid of cells (M, N) in {0..M_max} x {0..N_max} minus (0, 0) is searched best first by a
valid lower bound on Psi, as a tree of rectangles ("blocks") split in halves along the longer
side down to single cells, so most of the grid is closed a block at a time and never touched
cell by cell. A block's bound is the larger of

* the §6.2 block bound (batch caps of its lower-left cell, :mod:`.bounds`), and
* Lagrangian cuts: every relaxed cell solve returns multipliers (lambda, mu, nu); by weak
  duality the dual function at *those* multipliers bounds Q of *every* cell, and it is affine
  in (M, N): Q >= M S + N H - (lambda E_max + mu T_max), with S, H the per-round minima of
  :meth:`CellData.dual_function` (batches in [1, cap], integers). Psi >= [a0 + a1 M + a2 (M S
  + N H - c0)]/(M + N) is linear-fractional, so each cut needs only a block's corners.

A cell is first checked with the oracle at unit batches (infeasible cells close at +inf; by
§5.2 they would close their whole upper-right quadrant, which the caps then also find). Then
its relaxed program (§5.3, batches in [1, floored caps]) gives a certified bound for integer
batches and, floored and filled (``floor_fill``), an incumbent; the cell closes if the bound
reaches the incumbent, else it goes back into the queue under that bound and, when it comes
out again, its integer problem is solved exactly (``integer``: ``bnb`` branch and bound on the
relaxation, ``scip`` convex MINLP, ``staircase`` for K <= 2), with the incumbent as cutoff.
Anything whose bound is >= incumbent (1 - 1e-9) is closed by that bound. With ``bnb`` the
cell's branch-and-bound tree goes back into the same queue under its least open bound and is
expanded a step at a time, so the trees of nearly tied cells are interleaved in one best-first
order over Psi: a cell stops as soon as another cell's incumbent beats everything left in it
(on the K = 20 benchmark this saved a quarter of the nodes against solving cells one by one).

``bound`` = min over everything closed of what closed it (block bounds, cell bounds, integer
bounds, +inf for infeasible parts), and on a time limit also over what is still open. With
``prune=False`` nothing is closed by a bound: every feasible cell's integer problem is solved
(with no cutoff), which the tests use to show that pruning changes nothing.

Cost growth: the block tree has O(log(M_max N_max)) levels above each cell that survives
the bounds, each block bound costs O(K) plus O(cuts) corner evaluations; each cell not
closed by a bound costs one conic solve of size O(K), and the few whose relaxation does not
reach the incumbent an integer search. The grid itself is never enumerated: with the
``default`` preset at 100 devices and 10,000 x 10,000 round caps (1e8 cells) one relaxed
solve and 601 block splits close it (0.7 s).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeopt.models.two_stage import TwoStageModel, convergence
from edgeopt.solvers.common.deadline import Deadline
from edgeopt.solvers.common.tolerances import OPTIMALITY_GAP
from edgeopt.solvers.result import Result, Status, Timings, infeasible_result
from edgeopt.solvers.two_stage.bounds import CellBounds, halves
from edgeopt.solvers.two_stage.cell import (
    CellData,
    CellPrograms,
    RelaxedCell,
    SlsqpCell,
    _batch_part,
)
from edgeopt.solvers.two_stage.grid_queue import GridQueue
from edgeopt.solvers.two_stage.integer import (
    CellTree,
    CellVector,
    IntegerSearch,
    fill,
    floor_point,
    lagrangian_prefix_bound,
    scip_cell,
    staircase,
)

METHOD = "exact"

INTEGER_METHODS = ("auto", "bnb", "scip", "staircase")
"""Exact integer cell solvers: ``bnb`` (branch and bound on the certified relaxation, any K),
``scip`` (convex MINLP, small K), ``staircase`` (pure Python, K <= 2); ``auto`` is ``scip`` when
the backend is ``scip``, else ``bnb``."""

PRUNE_RTOL = 1e-9
"""Anything whose bound is >= incumbent (1 - 1e-9) is closed (spec §6.1)."""

def unsupported(model: TwoStageModel) -> str | None:
    """Stage-constant (P1-S) with static channels only."""
    if model.derived.time_varying:
        return ("channel_gain_schedule makes the fine-tuning rounds differ: the stage-constant "
                "exact search does not apply (per_round policy: method "
                "'relaxation_per_round')")
    return None


class Cuts:
    """Lagrangian cuts Q(M, N) >= M S_j + N H_j - c0_j, valid for every cell (module docs)."""

    def __init__(self, data: CellData, coeffs, integer: bool):
        self.data, self.coeffs, self.integer = data, coeffs, integer
        self._rows: list[tuple[float, float, float]] = []
        self._array = np.zeros((0, 3))

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, cell: RelaxedCell) -> None:
        """The cut of a solved cell's multipliers (with mu = sum nu, or nu = mu/K when the
        cell has no fine-tuning, so that the round time drops out for every cell)."""
        mult = cell.multipliers
        if not mult:
            return
        data = self.data
        lam = max(float(mult["energy"]), 0.0)
        nu = np.maximum(np.asarray(mult["rounds"], float), 0.0)
        mu = float(np.sum(nu)) if cell.N > 0 else max(float(mult["delay"]), 0.0)
        if cell.N == 0:
            nu = np.full(data.K, mu / data.K)
        S = float(_batch_part(1.0, data.A_s, data.c_s, 1.0, data.D_max, lam, mu, self.integer))
        compute = _batch_part(data.alpha2, data.A, data.c, 1.0, data.B_max, lam, nu,
                              self.integer)
        H = float(np.sum(compute + data.upload_part(lam, nu)))
        self._rows.append((S, H, lam * data.E + mu * data.T))
        self._array = np.array(self._rows)

    def psi(self, M: np.ndarray, N: np.ndarray) -> float:
        """max over cuts of min over the given corners of the Psi bound (-inf: no cuts)."""
        if not self._rows:
            return -math.inf
        S, H, c0 = self._array[:, 0:1], self._array[:, 1:2], self._array[:, 2:3]
        q = M[None, :] * S + N[None, :] * H - c0
        q = q - 1e-12 * np.abs(q)
        a0, a1, a2 = self.coeffs.a0, self.coeffs.a1, self.coeffs.a2
        psi = (a0 + a1 * M[None, :] + a2 * q) / (M + N)[None, :]
        return float(np.max(np.min(psi, axis=1)))


@dataclass
class Incumbent:
    """Best point so far: Psi, cell and integer batches (D = 0 if M = 0, B zeros if N = 0)."""

    psi: float = math.inf
    M: int = 0
    N: int = 0
    D: int = 0
    B: tuple[int, ...] = ()


@dataclass
class Stats:
    """Where the grid's cells were closed (counts) and what was solved."""

    grid_cells: int = 0
    blocks_split: int = 0
    closed_by_block_bound: int = 0
    closed_by_block_infeasible: int = 0
    closed_by_cell_bound: int = 0
    infeasible_cells: int = 0
    relaxed_solves: int = 0
    closed_by_relaxation: int = 0
    integer_solves: int = 0
    integer_nodes: int = 0
    checks: int = 0
    integer_seconds: float = 0.0
    relaxed_seconds: float = 0.0
    solvers: set = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        unsolved = (self.closed_by_block_bound + self.closed_by_block_infeasible
                    + self.closed_by_cell_bound)
        return {
            "grid_cells": self.grid_cells,
            "closed_by_block_bound": self.closed_by_block_bound,
            "closed_by_block_infeasible": self.closed_by_block_infeasible,
            "closed_by_cell_bound": self.closed_by_cell_bound,
            "infeasible_cells": self.infeasible_cells,
            "relaxed_solves": self.relaxed_solves,
            "closed_by_relaxation": self.closed_by_relaxation,
            "integer_solves": self.integer_solves,
            "integer_nodes": self.integer_nodes,
            "checks": self.checks,
            "blocks_split": self.blocks_split,
            "pruning_rate": unsolved / self.grid_cells if self.grid_cells else 0.0,
            "relaxed_seconds": round(self.relaxed_seconds, 6),
            "integer_seconds": round(self.integer_seconds, 6),
        }


class GridSearch(GridQueue):
    """Best-first search over the (M, N) grid (module docstring).

    ``mode`` ``exact`` (integer cells solved) or ``relaxation`` (cells closed by their relaxed
    value; the best relaxed cell is floored, spec §6.3). ``backend``: convex solver of the
    relaxations (``clarabel``, ``ecos``; ``scipy`` in relaxation mode).
    """

    def __init__(self, model: TwoStageModel, mode: str, backend: str, integer: str = "bnb",
                 prune: bool = True, deadline: Deadline | None = None,
                 seed: int | None = None):
        super().__init__(deadline or Deadline(None))
        self.model, self.mode, self.integer, self.prune = model, mode, integer, prune
        self.seed = seed
        exact = mode == "exact"
        self.bounds = CellBounds(model, integer=exact)
        self.coeffs = model.coefficients
        self.programs = SlsqpCell(model) if backend == "scipy" else CellPrograms(model, backend)
        self.data = self.programs.data
        self.cuts = Cuts(self.data, self.coeffs, integer=exact)
        d = model.derived
        self.M_max, self.N_max = d.max_pretrain_rounds, d.max_finetune_rounds
        self.incumbent = Incumbent()
        self.relaxed_best: tuple[float, RelaxedCell] | None = None
        self.closed = math.inf
        self.stats = Stats(grid_cells=(self.M_max + 1) * (self.N_max + 1) - 1)
        self.trace: list[dict[str, Any]] = []

    # ---- bounds --------------------------------------------------------------------------
    def _threshold(self) -> float:
        """Items with a bound >= this are closed (the incumbent, 1e-9 relative)."""
        if not self.prune:
            return math.inf
        target = self.incumbent.psi if self.mode == "exact" else (
            self.relaxed_best[0] if self.relaxed_best else math.inf)
        return target - PRUNE_RTOL * abs(target) if math.isfinite(target) else math.inf

    def block_bound(self, M0: int, M1: int, N0: int, N1: int) -> float:
        """Lower bound on Psi over the block (inf if infeasible): caps and cuts."""
        if (M0, N0) == (0, 0):
            parts = [self.block_bound(1, M1, 0, N1)] if M1 >= 1 else []
            parts += [self.block_bound(0, 0, 1, N1)] if N1 >= 1 else []
            return min(parts, default=math.inf)
        caps = self.bounds.block(M0, M1, N0, N1)
        if not math.isfinite(caps):
            return caps
        M = np.array([M0, M1, M0, M1], float)
        N = np.array([N0, N0, N1, N1], float)
        return max(caps, self.cuts.psi(M, N))

    def _psi(self, M: int, N: int, q: float) -> float:
        return float(convergence.psi_from_q(M, N, q, self.coeffs))

    def _q_cutoff(self, M: int, N: int) -> float:
        """Q below which a point of cell (M, N) beats the incumbent."""
        if not self.prune:
            return math.inf
        return self._q_at(M, N, self.incumbent.psi)

    # ---- queue ---------------------------------------------------------------------------
    def _close(self, value: float) -> None:
        self.closed = min(self.closed, value)

    def run(self) -> None:
        root = (0, self.M_max, 0, self.N_max)
        bound = self.block_bound(*root)
        if math.isfinite(bound):
            self._push(bound, "block", root)
        self._drain()

    def _cut_count(self) -> int:
        return len(self.cuts)

    def _reprice(self, kind: str, payload) -> float | None:
        """Blocks and cells not yet solved are priced again by caps and cuts."""
        if kind == "block":
            return self.block_bound(*payload)
        if kind == "cell":
            M, N = payload
            return self.block_bound(M, M, N, N)
        return None

    def _visit(self, kind: str, payload, key: float) -> None:
        if kind == "block":
            self._split(payload)
        elif kind == "cell":
            self._relax(*payload, key)
        elif kind == "tree":
            self._expand(payload, key)
        else:
            self._solve_integer(payload, key)

    def _count_closed(self, kind: str, payload, key: float) -> None:
        """Close an item by its bound ``key`` and count its cells."""
        self._close(key)
        if kind == "block":
            M0, M1, N0, N1 = payload
            cells = (M1 - M0 + 1) * (N1 - N0 + 1) - (1 if (M0, N0) == (0, 0) else 0)
            self.stats.closed_by_block_bound += cells
        elif kind == "cell":
            self.stats.closed_by_cell_bound += 1
        elif kind == "tree":
            payload[2].close_open()
            self._finish_tree(payload)
        else:
            self.stats.closed_by_relaxation += 1

    def _split(self, block: tuple[int, int, int, int]) -> None:
        self.stats.blocks_split += 1
        for child in halves(block):
            cM0, cM1, cN0, cN1 = child
            size = (cM1 - cM0 + 1) * (cN1 - cN0 + 1) - (1 if (cM0, cN0) == (0, 0) else 0)
            if size == 0:
                continue
            bound = self.block_bound(*child)
            if not math.isfinite(bound):
                self.stats.closed_by_block_infeasible += size
                continue
            if bound >= self._threshold():
                self._count_closed("block", child, bound)
                continue
            if size == 1:
                cell = (cM0, cN0) if (cM0, cN0) != (0, 0) else (cM1, cN1)
                self._push(bound, "cell", cell)
            else:
                self._push(bound, "block", child)

    # ---- cells ---------------------------------------------------------------------------
    def _relax(self, M: int, N: int, key: float) -> None:
        """Pre-check, relaxed solve, cut, incumbent from the rounded relaxed point."""
        caps = self.bounds.caps(M, N)
        vector = CellVector(self.model, M, N, caps if self.mode == "exact" else None)
        if not vector.feasible(np.ones(vector.size, int)):
            self.stats.infeasible_cells += 1
            self.stats.checks += vector.calls + vector.quick
            return
        if self.coeffs.a2 == 0:  # Psi does not depend on the batches: unit batches (§4.3)
            psi = self._psi(M, N, 0.0)
            self._close(psi)
            self._offer(psi, M, N, np.ones(vector.size, int), vector)
            if self.mode == "relaxation" and (self.relaxed_best is None
                                              or psi < self.relaxed_best[0]):
                self.relaxed_best = (psi, _unit_cell(M, N, self.data.K))
            return
        box = None
        if self.mode == "exact":
            box = (np.ones(vector.size), vector.cap.astype(float))
        cell = self._solve_relaxed(M, N, box)
        self.stats.relaxed_solves += 1
        self.stats.relaxed_seconds += cell.solve_s
        if cell.status.startswith("infeasible") and cell.status != "infeasible_inaccurate":
            self.stats.infeasible_cells += 1
            return
        self.cuts.add(cell)
        bound = max(key, self._psi(M, N, cell.bound)) if cell.solved else key
        x = None
        if cell.solved:
            x = floor_point(vector, _relaxed_vector(cell))
            if x is not None:
                if self.mode == "exact":
                    x = fill(vector, x)
                self._offer(self._psi(M, N, vector.q(x)), M, N, x, vector)
        self.stats.checks += vector.calls + vector.quick
        if self.mode == "relaxation":
            self._close(bound)
            if cell.solved and (self.relaxed_best is None or bound < self.relaxed_best[0]):
                self.relaxed_best = (bound, cell)
            return
        if bound >= self._threshold():
            self._close(bound)
            self.stats.closed_by_relaxation += 1
            return
        self._push(bound, "relaxed", (M, N, cell, vector, x))

    def _solve_relaxed(self, M: int, N: int, box) -> RelaxedCell:
        remaining = self.deadline.remaining
        if isinstance(self.programs, SlsqpCell):
            return self.programs.solve(M, N, time_limit=remaining)
        # exact mode uses only the certified bound, the multipliers and the rounded point
        return self.programs.solve(M, N, time_limit=remaining, box=box, integer=box is not None,
                                   direct=self.mode == "exact")

    def _offer(self, psi: float, M: int, N: int, x, vector: CellVector) -> None:
        if psi < self.incumbent.psi:
            D, B = vector.split(x)
            self.incumbent = Incumbent(psi, M, N, D, B)
            self.trace.append({"wall_s": self.deadline.elapsed, "event": "incumbent", "M": M,
                               "N": N, "incumbent": psi, "open_bound": self._open_bound()})

    def _open_bound(self) -> float:
        return min(self.closed, min((item[0] for item in self.heap), default=math.inf))

    def _solve_integer(self, payload, key: float) -> None:
        M, N, cell, vector, start = payload
        if self.integer == "bnb":  # interleaved with the other cells' trees (see _expand)
            started = time.perf_counter()
            tree = CellTree(self.model, M, N, self.programs, caps=self.bounds.caps(M, N),
                            root=cell, vector=vector, start=start)
            self.stats.integer_solves += 1
            self.stats.integer_seconds += time.perf_counter() - started
            self._settle_tree((M, N, tree, vector), key)
            return
        started = time.perf_counter()
        cutoff = self._q_cutoff(M, N)
        result = self._integer_search(M, N, cell, cutoff)
        self.stats.integer_solves += 1
        self.stats.integer_nodes += result.nodes
        self.stats.checks += result.checks
        self.stats.integer_seconds += time.perf_counter() - started
        closer = max(key, self._psi(M, N, result.bound))  # both are valid for the cell
        if result.point is not None:
            p = result.point
            x = ([p.D] if M > 0 else []) + (list(p.B) if N > 0 else [])
            self._offer(self._psi(M, N, p.q), M, N, x, vector)
        self._close(closer)
        self.trace.append({"wall_s": self.deadline.elapsed, "event": "integer", "M": M, "N": N,
                           "incumbent": self.incumbent.psi, "open_bound": self._open_bound()})

    def _expand(self, payload, key: float) -> None:
        """One branch-and-bound step in the tree of a cell (the tree with the least bound in
        Psi of all open items), pruned at the grid's threshold."""
        M, N, tree, _ = payload
        started = time.perf_counter()
        tree.expand(self._q_at(M, N, self._threshold()))
        self.stats.integer_seconds += time.perf_counter() - started
        self._settle_tree(payload, key)

    def _settle_tree(self, payload, key: float) -> None:
        """Offer a tree's incumbent; queue it again under its least open bound, or finish."""
        M, N, tree, vector = payload
        point = tree.point()
        if point is not None:
            x = ([point.D] if M > 0 else []) + (list(point.B) if N > 0 else [])
            self._offer(self._psi(M, N, point.q), M, N, x, vector)
        if tree.heap:
            self._push(max(key, self._psi(M, N, tree.open_bound)), "tree", payload)
            return
        self._close(max(key, self._psi(M, N, tree.bound)) if tree.solved_root else key)
        self._finish_tree(payload)

    def _finish_tree(self, payload) -> None:
        M, N, tree, _ = payload
        self.stats.integer_nodes += tree.nodes
        self.stats.checks += tree.checks
        self.trace.append({"wall_s": self.deadline.elapsed, "event": "integer", "M": M, "N": N,
                           "incumbent": self.incumbent.psi, "open_bound": self._open_bound()})

    def _q_at(self, M: int, N: int, psi: float) -> float:
        """The batch term Q at which cell (M, N) reaches ``psi`` (inf for psi = inf)."""
        if not math.isfinite(psi):
            return math.inf
        a0, a1, a2 = self.coeffs.a0, self.coeffs.a1, self.coeffs.a2
        return (psi * (M + N) - a0 - a1 * M) / a2

    def _integer_search(self, M: int, N: int, cell: RelaxedCell, cutoff: float) -> IntegerSearch:
        """The whole integer problem of a cell by ``scip`` or ``staircase`` (``bnb`` runs as
        interleaved trees instead, see :meth:`_expand`)."""
        caps = self.bounds.caps(M, N)
        if self.integer == "scip":
            self.stats.solvers.add("scip")
            return scip_cell(self.model, M, N, cutoff=cutoff, caps=caps,
                             time_limit=self.deadline.remaining, seed=self.seed)
        lower = lagrangian_prefix_bound(self.data, M, N, cell, caps) if cell.solved else None
        point, done = staircase(self.model, M, N, cutoff=cutoff, caps=caps, lower=lower,
                                deadline=self.deadline)
        bound = point.q if point is not None else cutoff
        if not done:
            bound = cell.bound if cell.solved else -math.inf
        return IntegerSearch(point, bound, done, 0, point.checks if point else 0)

    def bound(self) -> float:
        """Lower bound on the (P1-S) optimum: what closed each part (and what is open)."""
        return self._open_bound()


def _relaxed_vector(cell: RelaxedCell) -> list[float]:
    return ([cell.D] if cell.M > 0 else []) + (list(cell.B) if cell.N > 0 else [])


def _unit_cell(M: int, N: int, K: int) -> RelaxedCell:
    """A stand-in relaxed cell at unit batches (used when Psi does not depend on them)."""
    return RelaxedCell(M, N, 0.0, 0.0, 1.0 if M > 0 else 0.0,
                       np.ones(K) if N > 0 else np.zeros(K), "optimal", "none")


def resolve_integer(integer: str, backend: str | None, model: TwoStageModel) -> str:
    """The integer method for ``integer`` and ``backend`` (raises on bad values)."""
    if integer not in INTEGER_METHODS:
        raise ValueError(f"integer = {integer!r}: must be one of {', '.join(INTEGER_METHODS)}")
    if integer == "auto":
        integer = "scip" if backend == "scip" else "bnb"
    if integer == "staircase" and model.n_devices > 2:
        raise ValueError(f"integer = 'staircase' is the exact search for K <= 2 devices (got "
                         f"K = {model.n_devices}); use 'bnb' or 'scip'")
    return integer


def convex_backend(backend: str | None, allowed: tuple[str, ...]) -> str:
    """The cvxpy/SciPy backend of the relaxations (``scip`` keeps Clarabel for them)."""
    if backend in (None, "scip"):
        return "clarabel"
    if backend not in allowed:
        raise ValueError(f"backend = {backend!r}: allowed {', '.join(allowed)}")
    return backend


def make_result(model: TwoStageModel, method: str, search: GridSearch, status: Status,
                solver: str | None, started: float, message: str | None = None,
                options: dict | None = None) -> Result:
    """The Result of a finished (or stopped) search: the incumbent with canonical resources."""
    incumbent = search.incumbent
    bound = search.bound()
    extras = {"pruning": search.stats.as_dict()}
    if math.isfinite(incumbent.psi):
        solution = model.solution(incumbent.M, incumbent.N, incumbent.D, list(incumbent.B))
        objective = float(model.bound(incumbent.M, incumbent.N, incumbent.D,
                                      np.array(incumbent.B, float)))
        bound = min(bound, objective)
    else:
        solution, objective = model.empty_solution(), None
    trace = None
    if search.trace:
        import pandas as pd

        trace = pd.DataFrame(search.trace)
    wall = time.perf_counter() - started
    return Result(
        model=model.model_id,
        method=method,
        status=status,
        objective=objective,
        bound=bound if math.isfinite(bound) else None,
        solution=solution,
        device_names=model.device_names,
        timings=Timings(solve_s=wall, wall_s=wall),
        solver=solver,
        trace=trace,
        termination="time_limit" if status is Status.TIME_LIMIT else None,
        message=message,
        options=options or {},
        extras=extras,
    )


def solve_exact(
    model: TwoStageModel,
    *,
    backend: str | None = None,
    time_limit: float | None = None,
    seed: int | None = None,
    integer: str = "auto",
    prune: bool = True,
) -> Result:
    """Global optimum of (P1-S) over all cells (module docstring).

    ``backend``: ``clarabel`` (default) or ``ecos`` for the relaxations and branch and bound;
    ``scip`` keeps Clarabel for the relaxations and makes ``integer='auto'`` use SCIP for the
    integer cells. ``integer``: ``auto`` | ``bnb`` | ``scip`` | ``staircase`` (K <= 2).
    ``prune``: False solves every feasible cell (for checks). ``time_limit`` [s]: status
    ``time_limit`` with the incumbent and the bound over what is still open. ``seed``: SCIP's.
    """
    started = time.perf_counter()
    reason = unsupported(model)
    if reason:
        raise ValueError(f"method 'exact' does not apply: {reason}")
    method = resolve_integer(integer, backend, model)
    convex = convex_backend(backend, ("clarabel", "ecos"))
    options = {"integer": method, "prune": prune}
    infeasible = model.infeasibility()
    if infeasible is not None:
        return _infeasible(model, METHOD, infeasible)
    deadline = Deadline(time_limit)
    search = GridSearch(model, "exact", convex, method, prune, deadline, seed)
    search.run()
    solver = "scip" if "scip" in search.stats.solvers else convex
    if not search.complete:
        status = Status.TIME_LIMIT
    elif not math.isfinite(search.incumbent.psi):
        return _infeasible(model, METHOD, model.infeasibility(), search)
    else:
        gap = search.incumbent.psi - search.bound()
        status = Status.OPTIMAL if gap <= OPTIMALITY_GAP * search.incumbent.psi else Status.FEASIBLE
    message = None
    if status is Status.FEASIBLE:
        message = "search complete but some cells were closed only by a weaker bound"
    return make_result(model, METHOD, search, status, solver, started, message, options)


def _infeasible(model: TwoStageModel, method: str, infeasible, search: GridSearch | None = None
                ) -> Result:
    """``infeasible`` with the model's reason (or, if the pre-checks passed but no cell had a
    feasible point, the search's finding)."""
    if infeasible is None:
        message = "no cell of the grid has a feasible point"
        return infeasible_result(model, method, model.empty_solution(), "energy", message,
                                 pruning=search.stats.as_dict() if search else None)
    details = infeasible.details
    return infeasible_result(
        model, method, model.empty_solution(), infeasible.reason, infeasible.message,
        min_delay_s=details.get("min_delay_s"), min_energy_j=details.get("min_energy_j"),
    )
