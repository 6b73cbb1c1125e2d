"""Integer batches of one cell (spec §5.4): rounding, and three exact searches.

All functions work on one cell (M, N) of a :class:`TwoStageModel`. (D, B) is feasible iff its
least energy within the delay budget is <= E_max (§5.5). :meth:`CellVector.feasible` decides
that quickly from bounds on the least energy (a convex function of the round time u, see
:meth:`CellVector.decide`) and asks the model's oracle (``model.min_energy``) only when the
budget lies within 1e-9 of it. The feasible integer set is a down-set (§5.2): lowering a batch
keeps a point feasible, so floor rounding of a relaxed point is feasible (up to the solver's
tolerance, which :func:`floor_point` absorbs).

A cell's batches are handled as one vector x = (D, B_1, .., B_K), restricted to the stages that
are used (no D when M = 0, no B when N = 0); its objective is the batch term Q = sum_i c_i/x_i
with c_D = M and c_k = N alpha_k^2.

* ``floor`` / ``floor_fill`` (:func:`round_relaxed`): the heuristics' rounding rules.
* :class:`CellTree` / :func:`branch_and_bound` (any K): best-first branch and bound on the
  certified relaxation of :mod:`.cell` (the method ``exact`` uses by default, interleaving the
  trees of its open cells).
* :func:`scip_cell`: the convex MINLP solved by SCIP (small K; at K = 20 its dual bound stayed
  below the convex relaxation after 60 s).
* :func:`staircase`: the pure-Python search of the spec (K <= 2).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgeopt.models.two_stage import TwoStageModel
from edgeopt.models.two_stage.derived import (
    upload_energy,
    upload_energy_curvature,
    upload_energy_slope,
)
from edgeopt.solvers.two_stage.cell import THREADS, CellData, CellPrograms, RelaxedCell

ROUNDING = ("floor", "floor_fill")
"""Rounding rules of the heuristics (spec §1 options table)."""

FLOOR_MARGIN = 1e-7
"""Relaxed batches are floored after x (1 + 1e-7): a solver's 127.99999999 at a cap of 128
is 128 (the oracle re-checks feasibility and lowers the point if needed)."""


@dataclass(frozen=True)
class IntegerPoint:
    """Integer batches of a cell: ``D`` (0 if M = 0), ``B`` (zeros if N = 0) and their batch
    term ``q`` [1/sample]; ``checks`` counts the feasibility decisions made so far."""

    D: int
    B: tuple[int, ...]
    q: float
    checks: int = 0


class CellVector:
    """The batch vector of a cell: weights c_i, caps, and the oracle as a feasibility test."""

    def __init__(self, model: TwoStageModel, M: int, N: int, caps=None):
        d = model.derived
        self.model, self.M, self.N, self.K = model, M, N, d.n_devices
        weights, limits = [], []
        if M > 0:
            weights.append(float(M))
            limits.append(int(d.server_max_batch))
        if N > 0:
            weights += list(N * d.weights**2)
            limits += [int(b) for b in d.device_max_batch]
        if caps is not None:
            tighter = ([int(caps.D)] if M > 0 else []) + ([int(b) for b in caps.B] if N > 0
                                                            else [])
            limits = [min(a, b) for a, b in zip(limits, tighter)]
        self.c = np.array(weights, float)
        self.cap = np.array(limits, int)
        self.calls = 0
        self.quick = 0
        self._u_ref: float | None = None
        self._t_ref: np.ndarray | None = None  # device compute times of the last decision
        self._memo: dict[tuple[int, ...], bool] = {}

    @property
    def size(self) -> int:
        return int(self.c.size)

    def split(self, x) -> tuple[int, tuple[int, ...]]:
        """(D, B) of a vector (D = 0 when M = 0, B zeros when N = 0)."""
        x = [int(v) for v in x]
        D = x.pop(0) if self.M > 0 else 0
        B = tuple(x) if self.N > 0 else (0,) * self.K
        return D, B

    def feasible(self, x) -> bool:
        """E*(D, B) <= E_max within the delay budget. Decided by :meth:`decide` when the
        budget is clearly above or below E* (margins 1e-12 and 1e-9 relative), else by one
        oracle call (``model.min_energy``). Answers are memoised."""
        key = tuple(int(v) for v in x)
        if key in self._memo:
            return self._memo[key]
        D, B = self.split(key)
        answer = self.decide(D, np.array(B, float))
        if answer is None:
            self.calls += 1
            answer = bool(self.model.min_energy(self.M, self.N, D, np.array(B, float)).feasible)
        else:
            self.quick += 1
        self._memo[key] = answer
        return answer

    def decide(self, D: int, B: np.ndarray) -> bool | None:
        """True / False when E*(D, B) is clearly below / above E_max, None when undecided.

        Once the delay row is tight the round time u of a fine-tuning round is the one free
        variable (oracle docstring); G(u) is convex with G'(u) = 2 N A_s D^3/t_s^3 + N sum_k
        min(-2 A_k/t_k^3, phi_k'(u - t_k)) at the best splits. Any u gives G(u) >= E* (True if
        <= E_max (1 - 1e-12)); once a bracket a < b with G'(a) < 0 < G'(b) is known, the
        tangents at a and b meet below the minimum (False if that is > E_max (1 + 1e-9)).
        The search starts at the round time of the last decided point of the cell, and is
        skipped when the energy there at the last point's compute times already fits
        (:meth:`_energy_at_last_split`: any split is an upper bound)."""
        d = self.model.derived
        M, N, T, E = self.M, self.N, d.delay_budget_s, d.energy_budget_j
        if N == 0:
            t_s = T / M
            if not t_s >= d.server_cycles * D / d.server_clock_hz:
                return False
            value = M * float(d.server_energy_time_constant(D)) / t_s**2
            return True if value <= E * (1 - 1e-12) else (False if value > E * (1 + 1e-9)
                                                            else None)
        lo_u = float(np.max(d.device_cycles * B / d.device_clock_hz + d.tau_min_s))
        hi_u = T / N if M == 0 else (T - M * d.server_cycles * D / d.server_clock_hz) / N
        if hi_u < lo_u:
            return False if hi_u < lo_u * (1 - 1e-12) else None
        if M == 0 or hi_u == lo_u:
            value, _ = self._energy_at(D, B, hi_u)
            return True if value <= E * (1 - 1e-12) else (False if value > E * (1 + 1e-9)
                                                            else None)
        u = min(max(self._u_ref or 0.5 * (lo_u + hi_u), lo_u), hi_u)
        if self._energy_at_last_split(D, B, u) <= E * (1 - 1e-12):
            return True
        g, slope = self._energy_at(D, B, u)
        a = b = None  # bracket ends (u, G, G')
        step = 1e-3 * (hi_u - lo_u)
        for _ in range(60):
            if g <= E * (1 - 1e-12):
                self._u_ref = u
                return True
            if slope < 0:
                a = (u, g, slope)
            else:
                b = (u, g, slope)
            if a is not None and b is not None:
                (ua, ga, sa), (ub, gb, sb) = a, b
                meet = (gb - ga - sb * ub + sa * ua) / (sa - sb)
                if ga + sa * (meet - ua) > E * (1 + 1e-9):
                    return False
                if ub - ua <= 1e-13 * ub:
                    return None
                u = meet if ua < meet < ub else 0.5 * (ua + ub)
            elif a is None:  # minimum at or below u
                if u <= lo_u:
                    return False if g > E * (1 + 1e-9) else None
                u, step = max(u - step, lo_u), 4 * step
            else:
                if u >= hi_u:
                    return False if g > E * (1 + 1e-9) else None
                u, step = min(u + step, hi_u), 4 * step
            g, slope = self._energy_at(D, B, u)
        return None

    def _energy_at_last_split(self, D: int, B: np.ndarray, u: float) -> float:
        """The energy [J] at round time u (within the point's round-time range, as
        :meth:`decide` picks it) with the device compute times of the last decided point
        (clipped to this point's limits): no search, and >= the least energy at u, so a value
        within the budget proves feasibility (inf when there is no last split)."""
        if self._t_ref is None:
            return math.inf
        d = self.model.derived
        M, N, T = self.M, self.N, d.delay_budget_s
        lo = d.device_cycles * B / d.device_clock_hz
        t = np.clip(self._t_ref, lo, np.maximum(u - d.tau_min_s, lo))
        tau = u - t
        if np.any(tau < d.tau_min_s):
            return math.inf
        scale = d.noise_w_per_hz * d.bandwidth_hz / d.channel_gain
        energy = N * float(np.sum(d.device_energy_time_constant(B) / t**2
                                  + upload_energy(tau, scale, d.bits, d.bandwidth_hz)))
        if M > 0:
            energy += M * float(d.server_energy_time_constant(D)) / ((T - N * u) / M) ** 2
        return energy

    def _energy_at(self, D: int, B: np.ndarray, u: float) -> tuple[float, float]:
        """G(u) [J] (at near-optimal splits, so >= the true minimum at u) and G'(u) [J/s]."""
        d = self.model.derived
        M, N, T = self.M, self.N, d.delay_budget_s
        energy = slope = 0.0
        if M > 0:
            t_s = (T - N * u) / M
            A_s = float(d.server_energy_time_constant(D))
            energy += M * A_s / t_s**2
            slope += 2 * N * A_s / t_s**3
        lo = d.device_cycles * B / d.device_clock_hz
        hi = np.maximum(u - d.tau_min_s, lo)
        A = d.device_energy_time_constant(B)
        scale = d.noise_w_per_hz * d.bandwidth_hz / d.channel_gain
        t = _split_upper(A, lo, hi, u, scale, d.bits, d.bandwidth_hz, start=self._t_ref)
        self._t_ref = t
        tau = np.maximum(u - t, d.tau_min_s)
        energy += N * float(np.sum(A / t**2 + upload_energy(tau, scale, d.bits, d.bandwidth_hz)))
        slope += N * float(np.sum(np.minimum(-2 * A / t**3, upload_energy_slope(
            tau, scale, d.bits, d.bandwidth_hz))))
        return energy, slope

    def q(self, x) -> float:
        return math.fsum(self.c / np.asarray(x, float))

    def point(self, x) -> IntegerPoint:
        D, B = self.split(x)
        return IntegerPoint(D, B, self.q(x), self.calls + self.quick)


def _split_upper(A, lo, hi, u, scale, bits, band, steps: int = 60,
                 start: np.ndarray | None = None) -> np.ndarray:
    """The compute time t in [lo, hi] minimising A/t^2 + phi(u - t): Newton steps on the
    increasing derivative, kept in the shrinking bracket by bisection, until they stall (a
    Newton correction <= 1e-15 t counts as converged even when it would leave the bracket:
    the root then sits at the bracket end, where bisection alone needs ~40 halvings).
    ``start``: a first guess (e.g. the split of a nearby point; the middle by default)."""
    grad_lo = -2 * A / lo**3 - upload_energy_slope(np.maximum(u - lo, 1e-300), scale, bits, band)
    grad_hi = -2 * A / hi**3 - upload_energy_slope(np.maximum(u - hi, 1e-300), scale, bits, band)
    inner = 0.5 * (lo + hi) if start is None else np.clip(start, lo, hi)
    t = np.where(grad_lo >= 0, lo, np.where(grad_hi <= 0, hi, inner))
    active = (grad_lo < 0) & (grad_hi > 0)
    for _ in range(steps):
        if not active.any():
            break
        tau = np.maximum(u - t, 1e-300)
        grad = -2 * A / t**3 - upload_energy_slope(tau, scale, bits, band)
        lo, hi = np.where(active & (grad < 0), t, lo), np.where(active & (grad > 0), t, hi)
        curv = 6 * A / t**4 + upload_energy_curvature(tau, scale, bits, band)
        step = t - grad / curv
        new = np.where((step > lo) & (step < hi), step, 0.5 * (lo + hi))
        active &= (np.abs(new - t) > 1e-15 * t) & (np.abs(step - t) > 1e-15 * t)
        t = np.where(active, new, t)
    return t


def floor_point(vector: CellVector, relaxed) -> np.ndarray | None:
    """Floor of a relaxed vector (clipped to [1, cap]); if the solver's tolerance put it just
    outside the feasible set, lower the batches with the smallest fractional margin first
    (down-set). ``None`` when even unit batches are infeasible."""
    x = np.clip(np.floor(np.asarray(relaxed, float) * (1 + FLOOR_MARGIN)), 1, vector.cap)
    x = x.astype(int)
    while not vector.feasible(x):
        if np.all(x <= 1):
            return None
        x = np.maximum(x - 1, 1)
    return x


def fill(vector: CellVector, x: np.ndarray, cap: np.ndarray | None = None) -> np.ndarray:
    """``floor_fill`` step: +1 on the batch with the largest objective gain c/x - c/(x+1)
    while the point stays feasible; a batch whose +1 fails is blocked for good (every later
    point is larger, down-set)."""
    x = x.copy()
    cap = vector.cap if cap is None else cap
    open_ = x < cap
    while open_.any():
        gain = np.where(open_, vector.c / x - vector.c / (x + 1), -np.inf)
        i = int(np.argmax(gain))
        trial = x.copy()
        trial[i] += 1
        if vector.feasible(trial):
            x = trial
            open_[i] = x[i] < cap[i]
        else:
            open_[i] = False
    return x


def round_relaxed(model: TwoStageModel, M: int, N: int, D: float, B, rule: str = "floor",
                  caps=None) -> IntegerPoint | None:
    """``floor`` or ``floor_fill`` rounding of relaxed batches (D, B) of cell (M, N)."""
    if rule not in ROUNDING:
        raise ValueError(f"rounding = {rule!r}: must be one of {', '.join(ROUNDING)}")
    vector = CellVector(model, M, N, caps)
    relaxed = ([D] if M > 0 else []) + (list(np.asarray(B, float)) if N > 0 else [])
    x = floor_point(vector, relaxed)
    if x is None:
        return None
    if rule == "floor_fill":
        x = fill(vector, x)
    return vector.point(x)


# ---- staircase ----------------------------------------------------------------------------


def staircase(model: TwoStageModel, M: int, N: int, *, cutoff: float = math.inf, caps=None,
              lower: Callable[[list[int]], float] | None = None,
              deadline: Callable[[], bool] | None = None) -> tuple[IntegerPoint | None, bool]:
    """The exact integer optimum of the cell by the staircase search of spec §5.4.

    Order x = (x_1, .., x_n). Every prefix value of x_1..x_{n-2} is tried from its cap down
    (stopping once the prefix with the rest at their caps cannot beat the incumbent, since
    lowering a batch only raises Q); for a prefix, x_{n-1} walks down from its cap while x_n is
    kept at its largest feasible value, raised by +1 steps (it can only grow as x_{n-1}
    falls). Every maximal feasible point is visited or dominated by the cut, so the best point
    found is optimal among the points with Q < ``cutoff``. ``lower(prefix)``, if given, is a
    valid lower bound on Q over the completions of a prefix (e.g. the Lagrangian bound of
    :func:`lagrangian_prefix_bound`): prefixes it cuts are skipped. Returns (point or None when
    no point beats ``cutoff``, completed); ``completed`` is False if ``deadline()`` became true.
    """
    vector = CellVector(model, M, N, caps)
    n = vector.size
    best: list = [cutoff, None]
    c, cap = vector.c, vector.cap
    tail_at_caps = np.concatenate([np.cumsum((c / cap)[::-1])[::-1], [0.0]])  # sum_{j>=i}

    def cut(prefix: list[int]) -> bool:
        return lower is not None and lower(prefix) >= best[0]

    def walk(prefix: list[int], partial: float) -> bool:
        """Search the batches after ``prefix``; False on a deadline."""
        i = len(prefix)
        if n - i == 1:
            top = _largest(vector, prefix, cap[i])
            if top >= 1 and partial + c[i] / top < best[0]:
                best[:] = [partial + c[i] / top, [*prefix, top]]
            return True
        if n - i == 2:
            return _two(vector, prefix, partial, best, cut, deadline)
        for v in range(int(cap[i]), 0, -1):
            if deadline is not None and deadline():
                return False
            head = partial + c[i] / v
            if head + tail_at_caps[i + 1] >= best[0]:
                break
            if cut([*prefix, v]) or not vector.feasible([*prefix, v] + [1] * (n - i - 1)):
                continue
            if not walk([*prefix, v], head):
                return False
        return True

    done = walk([], 0.0)
    if best[1] is None:
        return None, done
    return vector.point(best[1]), done


def _largest(vector: CellVector, prefix: list[int], cap: int, start: int = 0) -> int:
    """The largest feasible last batch after ``prefix`` (0 if none), raised from ``start``
    (which must be feasible or 0)."""
    v = start
    while v < cap and vector.feasible([*prefix, v + 1]):
        v += 1
    return v


def _two(vector: CellVector, prefix: list[int], partial: float, best: list, cut, deadline) -> bool:
    """The two-batch staircase after ``prefix`` (see :func:`staircase`)."""
    i = len(prefix)
    c_a, c_b = vector.c[i], vector.c[i + 1]
    cap_a, cap_b = int(vector.cap[i]), int(vector.cap[i + 1])
    last = 0  # largest feasible x_b for the last a tried (stays feasible for smaller a)
    for a in range(cap_a, 0, -1):
        if deadline is not None and deadline():
            return False
        if partial + c_a / a + c_b / cap_b >= best[0]:
            break
        if cut([*prefix, a]):
            continue
        last = _largest(vector, [*prefix, a], cap_b, last)
        if last >= 1 and partial + c_a / a + c_b / last < best[0]:
            best[:] = [partial + c_a / a + c_b / last, [*prefix, a, last]]
        if last >= cap_b:
            break  # lowering a further only loses
    return True


def lagrangian_prefix_bound(data: CellData, M: int, N: int, relaxed: RelaxedCell,
                            caps) -> Callable[[list[int]], float]:
    """``lower(prefix)`` for :func:`staircase`: the dual function of the cell at the relaxed
    solve's multipliers with the prefix batches fixed and the others in [1, cap], minimised
    over integers (weak duality: valid for any multipliers)."""
    vector_caps = ([caps.D] if M > 0 else []) + (list(caps.B) if N > 0 else [])
    hi0 = np.array(vector_caps, float)
    mult = relaxed.multipliers
    lam, mu, nu = mult["energy"], mult["delay"], np.asarray(mult["rounds"], float)

    def lower(prefix: list[int]) -> float:
        lo, hi = np.ones_like(hi0), hi0.copy()
        lo[: len(prefix)] = prefix
        hi[: len(prefix)] = prefix
        return data.dual_function(M, N, lam, mu, nu, (lo, hi), integer=True)

    return lower


# ---- branch and bound on the convex relaxation ----------------------------------------------


@dataclass(frozen=True)
class IntegerSearch:
    """Outcome of an exact integer cell search: ``point`` (the best integer point with Q <
    cutoff, or None), ``bound`` a valid lower bound on Q over the cell's integer points (>=
    the point's Q up to 1e-10 relative when ``complete``; >= about the cutoff when no point
    beats it), ``complete`` False on a deadline, ``nodes`` relaxations solved (branch and
    bound) and ``checks`` feasibility decisions."""

    point: IntegerPoint | None
    bound: float
    complete: bool
    nodes: int = 0
    checks: int = 0


PRUNE_RTOL = 1e-10
"""A node is closed when its bound >= incumbent Q (1 - 1e-10)."""

INTEGRAL_TOL = 1e-7
"""A relaxed batch within 1e-7 of an integer counts as integral."""


class CellTree:
    """Best-first branch and bound on the certified relaxation of one cell, one node at a time.

    Each node is a box lo <= x <= hi of integer batches; its bound is the dual function of
    the relaxed program of the box at the solver's multipliers, minimised over *integer*
    batches (:meth:`CellData.dual_function`), so it is valid whatever the solver's accuracy
    and never weaker than the relaxed value. A child is first priced at its parent's
    multipliers (no solve): if that already reaches the threshold it is closed. Branching
    (:func:`_branch_variable`) makes two children x_i <= floor, x_i >= ceil. A child whose
    least batches are infeasible is empty (down-set). Incumbents: ``floor_fill`` of the root,
    then the floor of every node's relaxed point.

    The tree is resumable so that ``exact`` can interleave the trees of several cells in one
    best-first order over Psi (a cell whose optimum is beaten by another cell's then stops as
    soon as that incumbent is known): :meth:`expand` works on the node with the least bound,
    given ``threshold``, the Q at or above which nothing matters to the caller (it includes
    the caller's pruning tolerance and every incumbent the caller knows, this tree's too).
    ``root``: the relaxed solve of the box [1, caps] with ``integer=True`` if already done;
    ``vector``: the cell's :class:`CellVector` (with ``caps``) if the caller has one;
    ``start``: a feasible integer point of the cell (default: ``floor_fill`` of the root).
    """

    def __init__(self, model: TwoStageModel, M: int, N: int, programs: CellPrograms, *,
                 caps=None, root: RelaxedCell | None = None, vector: CellVector | None = None,
                 start=None):
        self.M, self.N, self.programs = M, N, programs
        self.vector = vector if vector is not None else CellVector(model, M, N, caps)
        self._checks_before = self.vector.calls + self.vector.quick
        self.data = programs.data
        self.best_q, self.best_x = math.inf, None
        self.closed = math.inf  # least bound among nodes closed by bound
        self.heap: list = []
        self._count = 0
        lo0, hi0 = np.ones(self.vector.size), self.vector.cap.astype(float)
        if root is None:
            root = programs.solve(M, N, box=(lo0, hi0), integer=True, direct=True)
        self.nodes = 1
        self.solved_root = root.solved
        if not root.solved:
            return
        if start is None:
            start = floor_point(self.vector, self._relaxed_x(root))
            start = fill(self.vector, start) if start is not None else None
        if start is not None:
            self._consider(np.asarray(start, int))
        self._push(root.bound, lo0, hi0, self._relaxed_x(root), root.multipliers)

    # ---- state ---------------------------------------------------------------------------
    @property
    def open_bound(self) -> float:
        """The least bound of an open node (inf when none is open)."""
        return self.heap[0][0] if self.heap else math.inf

    @property
    def bound(self) -> float:
        """A valid lower bound on Q over the cell's integer points below every threshold
        used so far: the best point found, the nodes closed by bound and the open ones."""
        return min(self.best_q, self.closed, self.open_bound)

    @property
    def checks(self) -> int:
        """Feasibility decisions made by this tree."""
        return self.vector.calls + self.vector.quick - self._checks_before

    def point(self) -> IntegerPoint | None:
        return self.vector.point(self.best_x) if self.best_x is not None else None

    def close_open(self) -> None:
        """Close every open node by its bound (the caller proved them useless)."""
        self.closed = min(self.closed, self.open_bound)
        self.heap.clear()

    # ---- search --------------------------------------------------------------------------
    def expand(self, threshold: float = math.inf) -> None:
        """Branch the open nodes with the least bounds: up to ``THREADS`` of them, whose
        children's relaxations are then solved at once (nodes reaching ``threshold`` or this
        tree's own incumbent are closed instead)."""
        children = []  # (box, price at the parent's multipliers, parent's point, multipliers)
        for _ in range(THREADS):
            if not self.heap:
                break
            children += self._branch(heapq.heappop(self.heap), threshold)
        if not children:
            return
        cells = self.programs.solve_boxes(self.M, self.N, [child[0] for child in children],
                                          integer=True)
        for (box, priced, x, mult), cell in zip(children, cells):
            self._settle_child(*box, priced, cell, x, mult, threshold)

    def _branch(self, node, threshold: float) -> list:
        """The children of ``node`` that its parent's multipliers do not close."""
        bound, _, lo, hi, x, mult = node
        if bound >= min(threshold, self.best_q):
            self.closed = min(self.closed, bound)
            self.close_open()
            return []
        vector, M, N = self.vector, self.M, self.N
        if np.all(lo == hi):  # a single point: its own value if feasible
            self._consider(lo)
            self.closed = min(self.closed, vector.q(lo) if vector.feasible(lo) else math.inf)
            return []
        x = np.clip(x, lo, hi)  # fixed batches get a small width in the program
        frac = x - np.floor(x)
        score = np.where((frac > INTEGRAL_TOL) & (frac < 1 - INTEGRAL_TOL),
                         vector.c * np.minimum(frac, 1 - frac) / x**2, -1.0)
        if score.max() < 0:  # the relaxed point is integral: the box is solved
            self._consider(np.clip(np.round(x), lo, hi))
            self.closed = min(self.closed, bound)
            return []
        i = _branch_variable(self.data, M, N, mult, lo, hi, x, score)
        split = math.floor(x[i])
        children = []
        for child_lo, child_hi in ((lo, _with(hi, i, split)), (_with(lo, i, split + 1), hi)):
            if child_lo[i] > child_hi[i] or not vector.feasible(child_lo):
                continue  # empty, or even the box's least batches are infeasible (down-set)
            priced = self.data.dual_function(M, N, mult["energy"], mult["delay"],
                                             np.asarray(mult["rounds"], float),
                                             (child_lo, child_hi), integer=True)
            if priced >= min(threshold, self.best_q):
                self.closed = min(self.closed, priced)
            else:
                children.append(((child_lo, child_hi), priced, x, mult))
        return children

    def _settle_child(self, lo, hi, priced: float, cell: RelaxedCell, parent_x, mult,
                      threshold: float) -> None:
        """Queue a solved child box under its bound, or close it."""
        self.nodes += 1
        if cell.status.startswith("infeasible") and cell.status != "infeasible_inaccurate":
            return  # no real point in the box, so no integer one
        if cell.solved:
            xc = self._relaxed_x(cell)
            self._consider(np.clip(np.floor(xc * (1 + FLOOR_MARGIN)), lo, hi), threshold)
        else:  # unresolved: branch on the parent's point
            xc = np.clip(parent_x, lo, hi)
        # the multipliers that price this box higher are kept for its children
        child_mult = cell.multipliers if cell.solved and cell.bound >= priced else mult
        key = max(cell.bound, priced)
        if key >= min(threshold, self.best_q):
            self.closed = min(self.closed, key)
            return
        self._push(key, lo, hi, xc, child_mult)

    def _push(self, key: float, lo, hi, x, mult) -> None:
        self._count += 1
        heapq.heappush(self.heap, (key, self._count, lo, hi, x, mult))

    def _relaxed_x(self, cell: RelaxedCell) -> np.ndarray:
        return np.array(([cell.D] if self.M > 0 else []) + (list(cell.B) if self.N > 0 else []),
                        float)

    def _consider(self, x, limit: float = math.inf) -> None:
        """Make x the incumbent if it is feasible and better (checked only below ``limit``)."""
        q = self.vector.q(x)
        if q < min(self.best_q, limit) and self.vector.feasible(x):
            self.best_q, self.best_x = q, np.asarray(x, int)


def branch_and_bound(model: TwoStageModel, M: int, N: int, programs: CellPrograms, *,
                     cutoff: float = math.inf, caps=None, root: RelaxedCell | None = None,
                     deadline: Callable[[], bool] | None = None) -> IntegerSearch:
    """The exact integer optimum of cell (M, N): a :class:`CellTree` run to the end (nodes
    are closed at the incumbent's Q (1 - 1e-10)). ``cutoff``: only points with Q < cutoff
    matter."""
    tree = CellTree(model, M, N, programs, caps=caps, root=root)
    if not tree.solved_root:
        return IntegerSearch(None, -math.inf, False, tree.nodes, tree.checks)
    while tree.heap:
        if deadline is not None and deadline():
            break
        incumbent = min(cutoff, tree.best_q)
        tree.expand(incumbent - PRUNE_RTOL * abs(incumbent) if math.isfinite(incumbent)
                    else math.inf)
    point = tree.point()
    if point is not None and point.q >= cutoff:
        point = None
    return IntegerSearch(point, tree.bound, not tree.heap, tree.nodes, tree.checks)


def _branch_variable(data: CellData, M: int, N: int, mult: dict, lo, hi, x, score) -> int:
    """The fractional batch whose weaker child gains most at the node's multipliers: with l_i
    the Lagrangian cost of batch i (:meth:`CellData.item_costs`), the children x_i <= floor
    and x_i >= ceil raise the priced bound by at least l_i(floor) - min l_i and l_i(ceil) -
    min l_i; the batch with the largest smaller raise is chosen (if none raises it: the
    largest ``score`` = c_i min(frac, 1 - frac)/x_i^2). On the K = 20 benchmark cell this
    needed the same number of nodes as the ``score`` rule but fewer feasibility checks."""
    fractional = score >= 0
    down, up = np.floor(x), np.floor(x) + 1
    width = int(np.max(hi - lo)) + 1
    values = lo[:, None] + np.arange(width)[None, :]
    values = np.where(values <= hi[:, None], values, np.nan)
    lam, mu, nu = mult["energy"], mult["delay"], np.asarray(mult["rounds"], float)
    costs = data.item_costs(M, N, lam, mu, nu, values)
    best = np.nanmin(costs, axis=1)
    pair = data.item_costs(M, N, lam, mu, nu, np.stack([np.clip(down, lo, hi),
                                                         np.clip(up, lo, hi)], axis=1))
    gain = np.minimum(pair[:, 0], pair[:, 1]) - best
    gain = np.where(fractional, gain, -np.inf)
    if not np.any(gain > 0):
        return int(np.argmax(score))
    return int(np.argmax(gain + 1e-12 * score))


def _with(values: np.ndarray, i: int, value: float) -> np.ndarray:
    out = values.copy()
    out[i] = value
    return out


# ---- SCIP ---------------------------------------------------------------------------------

SCIP_FEASTOL = 1e-8
"""SCIP's ``numerics/feastol`` on the O(1) scaled rows. 1e-9 is below what SCIP's LP can
enforce without GMP, and then its dual bound became invalid on T4 (a wrong "optimal"); 1e-8
is the tightest value that held in our cross-checks against ``staircase``."""


def scip_cell(model: TwoStageModel, M: int, N: int, *, cutoff: float = math.inf, caps=None,
              time_limit: float | None = None, seed: int | None = None) -> IntegerSearch:
    """The integer cell problem as a convex MINLP solved by SCIP (pyscipopt, silent), spec §5.4.

    Scaled as the relaxed program (times in T_max/R, energies in E_max/R, R = M + N): integer
    D, B_k in [1, cap], times t_s >= c_s D, t_k >= c_k B_k, tau_k >= tau_k^min, round time u
    >= t_k + tau_k, and the rows written directly, m A_s D^3/t_s^2 + n sum_k [A_k B_k^3/t_k^2
    + sigma_k tau_k (exp(c_k/tau_k) - 1)] <= 1 and m t_s + n u <= 1; the objective
    (M/D + N sum alpha^2/B)/Q_caps sits in an epigraph variable; ``limits/gap`` 1e-9 and the
    cutoff as SCIP's objective limit. SCIP's point is re-checked with the oracle (lowered to
    feasibility if SCIP's tolerance let it through) and its dual bound is the cell's bound.
    Practical for small K only: on K = 20 cells SCIP's dual bound stayed below the convex
    relaxation after 60 s.
    """
    import pyscipopt as ps

    data = CellData(model)
    vector = CellVector(model, M, N, caps)
    R = M + N
    Er, Tr = data.E / R, data.T / R
    ref = data.q_caps(M, N)
    scip = ps.Model()
    scip.hideOutput()
    scip.setParam("limits/gap", 1e-9)
    scip.setParam("numerics/feastol", SCIP_FEASTOL)
    if time_limit is not None:
        scip.setParam("limits/time", max(time_limit, 0.01))
    if seed is not None:
        scip.setParam("randomization/randomseedshift", int(seed))
    objective = scip.addVar("q", lb=0)
    terms, energy, delay, batches = [], [], [], []
    if M > 0:
        D = scip.addVar("D", vtype="I", lb=1, ub=int(vector.cap[0]))
        ts = scip.addVar("ts", lb=data.c_s / Tr, ub=R / M)
        scip.addCons(ts >= (data.c_s / Tr) * D)
        terms.append((M / ref) * D**-1)
        energy.append((M / R) * data.A_s / (Tr**2 * Er) * D**3 * ts**-2)
        delay.append((M / R) * ts)
        batches.append(D)
    if N > 0:
        u = scip.addVar("u", lb=0, ub=R / N)
        sigma = data.scale * data.T / data.E
        up = data.upload_c / Tr
        first = 1 if M > 0 else 0
        for k in range(data.K):
            B = scip.addVar(f"B{k}", vtype="I", lb=1, ub=int(vector.cap[first + k]))
            tk = scip.addVar(f"t{k}", lb=data.c[k] / Tr, ub=R / N)
            tau = scip.addVar(f"tau{k}", lb=data.tau_min[k] / Tr, ub=R / N)
            scip.addCons(tk >= (data.c[k] / Tr) * B)
            scip.addCons(u >= tk + tau)
            terms.append((N * data.alpha2[k] / ref) * B**-1)
            energy.append((N / R) * (data.A[k] / (Tr**2 * Er) * B**3 * tk**-2
                                     + sigma[k] * tau * (ps.exp(up[k] * tau**-1) - 1)))
            batches.append(B)
        delay.append((N / R) * u)
    scip.addCons(ps.quicksum(energy) <= 1)
    scip.addCons(ps.quicksum(delay) <= 1)
    scip.addCons(objective >= ps.quicksum(terms))
    scip.setObjective(objective)
    if math.isfinite(cutoff):
        scip.setObjlimit(cutoff / ref)
    scip.optimize()
    status = scip.getStatus()
    complete = status in ("optimal", "infeasible")
    bound = scip.getDualbound() * ref if status != "infeasible" else cutoff
    point = None
    if scip.getNSols() > 0:
        solution = scip.getBestSol()
        x = np.array([round(scip.getSolVal(solution, b)) for b in batches], int)
        while not vector.feasible(x) and np.any(x > 1):
            x = np.maximum(x - 1, 1)  # SCIP's tolerance let an infeasible point through
        if vector.feasible(x) and vector.q(x) < cutoff:
            point = vector.point(x)
    if point is not None:
        bound = min(bound, point.q)
    return IntegerSearch(point, bound, complete, 0, vector.calls + vector.quick)
