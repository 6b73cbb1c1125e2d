"""Fast re-solves of ``relaxation_perspective`` (:mod:`edgeopt.solvers.edgesplit.relaxation`).

:class:`ParametricRelaxation` builds the program once with a, 2 sqrt(g) and 2 sqrt(h) as
cvxpy Parameters (DPP), so a model with the same option structure (devices, memory-feasible
options, options with traffic / server work) is re-solved by changing those numbers in place,
skipping cvxpy's canonicalisation (see :mod:`edgeopt.solvers.parametric`). Re-solves go
through a certified active set: a much smaller parametric program over a few options per
device, priced over all options with the dual function q (its class docstring has the
certificate), so the backend solves faster too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeopt.models.edgesplit import EdgeSplitModel
from edgeopt.solvers.common.deadline import Deadline
from edgeopt.solvers.edgesplit.relaxation import (
    Clock,
    Program,
    ScaledOptions,
    assemble_result,
    build_program,
    dual_bound,
    has_solution,
    multipliers,
    option_prices,
    relaxed_point,
    set_numbers,
)
from edgeopt.solvers.result import Result

SUPPORT = 1e-7
"""Relaxed x above SUPPORT puts an option in the support kept for the next model."""

ENTER = 1e-7
"""An option outside a restricted program enters it when its price is at most (1 + ENTER)
times its device's best price inside: a negative reduced cost, or a near tie (so that a
tied optimum is solved with all its options, as the full program solves it)."""

CERTIFY = 1e-7
"""A restricted optimum is certified when q over all options >= its value (1 - CERTIFY).
With no option entering, q over all options is the restricted program's own dual value, so
this only asks the restricted solve to be as accurate as a full one: Clarabel's gap between
primal value and q reaches ~1e-8 on 100 shared devices, for the full program as well."""

MIN_SLOTS = 2
"""Options per device in a restricted program, at least: the support, then the best-priced."""


def slot_count(needed: int) -> int:
    """Options per device of the restricted program that holds ``needed``: a power of two
    (>= MIN_SLOTS), so that few restricted programs are ever built."""
    return max(MIN_SLOTS, 1 << max(needed - 1, 0).bit_length())

ROUNDS = 3
"""Restricted solves (pricing rounds) per model before falling back to the full program."""


def pick_slots(data: ScaledOptions, keep: np.ndarray, score: np.ndarray, slots: int) -> np.ndarray:
    """``slots`` option indices per device, device-major: its ``keep`` options first, then
    those of lowest ``score``; a device with fewer options repeats them (copies add up)."""
    order = np.lexsort((score, ~keep, data.device))
    counts = np.bincount(data.device, minlength=data.n_devices)
    starts = np.cumsum(counts) - counts
    rank = np.arange(slots)[None, :] % counts[:, None]
    return order[starts[:, None] + rank].ravel()


def entering(data: ScaledOptions, price: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Mask of the options outside ``index`` whose ``price`` (:func:`option_prices`) is at
    most (1 + ENTER) times the best price of their device over ``index``."""
    inside = np.zeros(data.device.size, dtype=bool)
    inside[index] = True
    best = data.take(index).per_device_min(price[index])
    return ~inside & (price <= best[data.device] * (1.0 + ENTER))


@dataclass(frozen=True)
class Warm:
    """What a solve leaves for the next model: its multipliers and its support (x > SUPPORT)."""

    mu: np.ndarray
    lam: float
    nu: float
    support: np.ndarray

    @classmethod
    def read(cls, program: Program, data: ScaledOptions, index: np.ndarray | None = None) -> Warm:
        """From a program solved over the options ``index`` of ``data`` (None: all)."""
        mu, lam, nu = multipliers(program)
        x, _ = relaxed_point(program, data, index)
        return cls(mu, lam, nu, x > SUPPORT)


class ParametricRelaxation:
    """``relaxation_perspective`` built once as DPP programs and re-solved with new numbers.

    The factory of :data:`edgeopt.solvers.parametric.RESOLVERS` for this method. ``matches``
    says whether a model has this program's structure (see :attr:`ScaledOptions.structure`).

    Certified active set (column generation). The first model is solved with the full
    parametric program P. Each later model is solved with a restricted program P_S over a
    few options S per device (the last support, plus the options best priced by the last
    multipliers; one DPP program per number of slots, cached) and priced: with P_S's
    multipliers (mu, lam, nu), options outside S whose price (:func:`option_prices`) is
    within ENTER of their device's best price enter S, and P_S is solved again (at most
    ROUNDS times, then P). Certification: P_S's point, padded with zeros, is feasible for
    P, so v <= v_S (v, v_S the optimal values), and weak duality gives q(mu, lam, nu) <= v
    for q taken over all options; hence q >= v_S (1 - CERTIFY) proves v_S optimal for P
    within CERTIFY (v_S - v <= v_S - q), and no option entering means every option outside S
    has a positive reduced cost, so (complementary slackness, exact multipliers) it is 0 in
    every optimum of P and rounding sees the same point as a full solve. The reported bound is always q
    over all options, valid for any multipliers, and the point is rounded and re-allocated
    as in :func:`solve_relaxation_perspective`.

    ``active_set=False`` solves every model with P (the plain in-place re-solve).
    Counters: ``full_solves`` (solves of P), ``restricted_solves`` (of some P_S),
    ``certified`` (models answered by a certified P_S) and ``fallbacks`` (models that went
    back to P after trying P_S). Results equal those of :func:`solve_relaxation_perspective`
    within solver tolerance.
    """

    def __init__(
        self, model: EdgeSplitModel, backend: str | None = None, active_set: bool = True
    ):
        self.backend = backend or "clarabel"
        self.active_set = active_set
        data = ScaledOptions.from_model(model)
        self.structure = data.structure
        self.program = build_program(data, parametric=True)
        if not self.program.problem.is_dpp():
            raise RuntimeError("the parametric perspective relaxation is not DPP")
        self.restricted: dict[int, Program] = {}
        self.warm: Warm | None = None
        self.full_solves = self.restricted_solves = self.certified = self.fallbacks = 0

    def matches(self, model: EdgeSplitModel) -> bool:
        """Whether ``model`` can be solved by changing this program's numbers."""
        return ScaledOptions.from_model(model).structure == self.structure

    def solve(self, model: EdgeSplitModel, time_limit: float | None = None) -> Result:
        """The (unverified) Result of the relaxation of ``model``; ``time_limit`` in seconds."""
        deadline, clock = Deadline(time_limit), Clock()
        data = ScaledOptions.from_model(model)
        if self.active_set and self.warm is not None:
            result = self._solve_restricted(model, data, deadline, clock)
            if result is not None:
                return result
            self.fallbacks += 1
        self.full_solves += 1
        set_numbers(self.program, data)
        status_text, error = clock.run(self.program, self.backend, deadline, warm_start=True)
        solved = has_solution(self.program, status_text)
        self.warm = Warm.read(self.program, data) if solved else None
        return assemble_result(model, data, self.program, self.backend, clock, status_text, error, deadline)

    def _solve_restricted(
        self, model: EdgeSplitModel, data: ScaledOptions, deadline: Deadline, clock: Clock
    ) -> Result | None:
        """Column generation from the last solve (see the class docstring): the Result once
        certified or out of time, None to fall back to the full program."""
        warm = self.warm
        if warm is None:
            return None
        keep, score = warm.support, option_prices(data, warm.mu, warm.lam, warm.nu)
        if score is None:
            return None
        for _ in range(ROUNDS):
            slots = slot_count(int(np.bincount(data.device[keep]).max(initial=0)))
            index = pick_slots(data, keep, score, slots)
            program = self._restricted_program(data, slots)
            set_numbers(program, data.take(index))
            self.restricted_solves += 1
            status_text, error = clock.run(program, self.backend, deadline, warm_start=True)
            if not has_solution(program, status_text):
                return None
            price = option_prices(data, *multipliers(program))
            if price is None:
                return None
            enter = entering(data, price, index)
            value = float(program.problem.value)
            bound = dual_bound(data, *multipliers(program))
            certified = not enter.any() and bound >= value - CERTIFY * abs(value)
            if certified or deadline.expired:
                self.certified += certified
                self.warm = Warm.read(program, data, index)
                return assemble_result(
                    model, data, program, self.backend, clock, status_text, error, deadline,
                    index, certified,
                )
            if not enter.any():
                return None
            keep, score = Warm.read(program, data, index).support | enter, price
        return None

    def _restricted_program(self, data: ScaledOptions, slots: int) -> Program:
        """The parametric program with ``slots`` options per device (built once per size)."""
        if slots not in self.restricted:
            self.restricted[slots] = build_program(data.slot_template(slots), parametric=True)
        return self.restricted[slots]
