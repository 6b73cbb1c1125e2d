"""``relaxation_lagrangian`` and ``lagrangian_rounding``: the LP relaxation of the spec §5.1
knapsack bisected on T through its Lagrangian dual, and the point it rounds to (P1).

Both bisect T on the dual proof of :mod:`~edgeopt.solvers.tinyfel.lagrangian` (at T_lo the
dual shows that no choice fits, at T_hi it does not), so ``bound`` = T_lo + T_dl is a proven
lower bound on T_round*: the relaxation's latency within the bisection tolerance. This is
the exponential-cone relaxation of spec §5.4 (for fixed y the perspective of the rate is
exact) with one restriction that no integer choice can notice: an option needing more than
B at T is dropped, where the conic program may still use a fraction of it. The bound is
therefore at least as tight (instance B: 1.8 s against the conic 1.71 s), and it is found
without a conic solver.
Then, from T_hi up in growing steps (a relative 1e-7, then fourfold), the first latency at
which the dual's minimisers or a beam search over the devices that reduced-cost fixing
leaves free give a choice that fits; its bandwidths are equalised (spec §4.1), which gives
the reported ``objective`` (status ``feasible``).

The two differ in the bisection tolerance only: ``relaxation_lagrangian`` bisects to a
relative :data:`RELAXATION_TOLERANCE` (the bound is what it is for), ``lagrangian_rounding``
to :data:`ROUNDING_TOLERANCE` (a heuristic: the point is what it is for; its latency is at
most T_hi times the steps taken above it). Cost: O(K L log(1 / tolerance)) numpy work for
the dual bisection plus a few beam searches; no MILP.
"""

from __future__ import annotations

import time

from edgeopt.models.tinyfel import TinyFELModel
from edgeopt.solvers.result import Result, Status
from edgeopt.solvers.tinyfel.bisection_mckp import (
    checker,
    first_fit,
    relaxed_bracket,
    unreachable,
)
from edgeopt.solvers.tinyfel.common import equalise, make_result

RELAXATION_TOLERANCE = 1e-7
"""Relative bisection tolerance of ``relaxation_lagrangian``."""

ROUNDING_TOLERANCE = 1e-2
"""Relative bisection tolerance of ``lagrangian_rounding``."""


def solve_relaxation_lagrangian(
    model: TinyFELModel, *, backend: str | None = None, time_limit: float | None = None,
    seed: int | None = None,
) -> Result:
    """The relaxation bound and its rounded point (module docstring); ``backend``,
    ``time_limit`` and ``seed`` are unused (pure numpy, deterministic, a few seconds at
    1000 devices)."""
    return _solve(model, "relaxation_lagrangian", RELAXATION_TOLERANCE)


def solve_lagrangian_rounding(
    model: TinyFELModel, *, backend: str | None = None, time_limit: float | None = None,
    seed: int | None = None,
) -> Result:
    """The heuristic point of a coarse relaxation bisection (module docstring), with its
    bound; ``backend``, ``time_limit`` and ``seed`` are unused."""
    return _solve(model, "lagrangian_rounding", ROUNDING_TOLERANCE)


def _solve(model: TinyFELModel, method: str, tolerance: float) -> Result:
    started = time.perf_counter()
    table = model.options
    if checker(model)(float("inf")) is None:
        return unreachable(model, method)
    lower, upper = relaxed_bracket(model, tolerance)
    found = first_fit(checker(model, exact=False), lower, upper, proves=False)
    selected, layers = found.accepted
    bandwidth = equalise(model, selected, layers, start_s=found.upper)
    if bandwidth is None:
        raise RuntimeError("the options accepted at T_hi do not fit the bandwidth budget")
    return make_result(
        model, method, Status.FEASIBLE, selected, layers, bandwidth,
        bound_round_s=found.lower + table.downlink_s, solver=None,
        solve_s=time.perf_counter() - started, termination="converged",
    )
