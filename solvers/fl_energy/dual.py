"""Methods on the bandwidth price (see :mod:`~edgeopt.solvers.fl_energy.pricing`).

* ``dual_decomposition`` (exact): bisection on log(lambda) between the bracket of
  :func:`~edgeopt.solvers.fl_energy.pricing.price_bracket`. Each price gives a certified
  lower bound g(lambda) and, from its per-device minimisers with the budget spent exactly,
  a feasible point; it stops when the relative gap is at most ``gap`` (default 1e-9).
* ``lagrangian_bound`` (relaxation): g(lambda) on a geometric grid of ``prices`` prices
  (default 12) in the bracket; returns the best bound and the best point recovered on the
  grid. Cheaper and looser than the bisection.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from edgeopt.models.fl_energy import FLEnergyModel
from edgeopt.models.fl_energy.derived import cheapest_frequency
from edgeopt.solvers.common.deadline import Deadline
from edgeopt.solvers.common.termination import TIME_LIMIT_REACHED, Termination
from edgeopt.solvers.fl_energy.common import make_result
from edgeopt.solvers.fl_energy.pricing import at_price, device_energy, price_bracket, spend_budget
from edgeopt.solvers.result import Result, Status

DEFAULT_GAP = 1e-9
"""Relative gap at which ``dual_decomposition`` stops."""

DEFAULT_PRICES = 12
"""Grid size of ``lagrangian_bound``."""


class _Search:
    """Best bound, best point and the trace of the prices tried."""

    def __init__(self, model: FLEnergyModel):
        self.model = model
        self.bound = 0.0  # energy is never negative; the dual function can be, far from the optimal price
        self.energy = np.inf
        self.bandwidth: np.ndarray | None = None
        self.rows: list[dict[str, float]] = []

    def visit(self, price: float) -> float:
        """Price the budget at ``price``; return sum_k b_k(price) - B [Hz]."""
        priced = at_price(self.model, price)
        self.bound = max(self.bound, priced.dual)
        candidate = spend_budget(self.model, priced.bandwidth_hz)
        energy = float(device_energy(self.model.fleet, candidate).sum())
        if energy < self.energy:
            self.energy, self.bandwidth = energy, candidate
        excess = float(priced.bandwidth_hz.sum() - self.model.fleet.bandwidth_hz)
        self.rows.append({"price_j_per_hz": price, "dual_j": priced.dual, "best_bound_j": self.bound,
                          "best_energy_j": self.energy, "gap": self.gap, "excess_hz": excess})
        return excess

    @property
    def gap(self) -> float:
        return float((self.energy - self.bound) / abs(self.energy))

    def result(self, method: str, status: Status, deadline: Deadline,
               termination: Termination | str | None) -> Result:
        if self.bandwidth is None:
            raise RuntimeError("no price gave a finite energy: nothing to report")
        frequency = cheapest_frequency(self.bandwidth, self.model.fleet)
        return make_result(self.model, method, status, frequency, self.bandwidth, bound=self.bound,
                           solve_s=deadline.elapsed, termination=termination,
                           trace=pd.DataFrame(self.rows), extras={"prices_tried": len(self.rows)})


def solve_dual_decomposition(model: FLEnergyModel, *, backend=None, time_limit=None, seed=None,
                             gap: float = DEFAULT_GAP) -> Result:
    """Exact: bisection on the bandwidth price until the certified gap is <= ``gap``."""
    if not 0 < gap < 1:
        raise ValueError(f"gap = {gap!r}: must be a number in (0, 1)")
    deadline = Deadline(time_limit)
    search = _Search(model)
    low, high = price_bracket(model)
    for price in (high, low):
        search.visit(price)
    while search.gap > gap:
        if deadline.expired:
            return search.result("dual_decomposition", Status.TIME_LIMIT, deadline, TIME_LIMIT_REACHED)
        if high <= low * (1 + 1e-15):
            return search.result("dual_decomposition", Status.FEASIBLE, deadline, "price_resolution")
        middle = float(np.sqrt(low * high))
        if search.visit(middle) > 0:
            low = middle
        else:
            high = middle
    return search.result("dual_decomposition", Status.OPTIMAL, deadline, "optimal")


def solve_lagrangian_bound(model: FLEnergyModel, *, backend=None, time_limit=None, seed=None,
                           prices: int = DEFAULT_PRICES) -> Result:
    """Relaxation: the best dual bound and recovered point on a geometric price grid."""
    if isinstance(prices, bool) or not isinstance(prices, int) or prices < 2:
        raise ValueError(f"prices = {prices!r}: must be an integer >= 2")
    deadline = Deadline(time_limit)
    search = _Search(model)
    low, high = price_bracket(model)
    for price in np.geomspace(high, low, prices):
        search.visit(float(price))
        if deadline.expired:
            return search.result("lagrangian_bound", Status.TIME_LIMIT, deadline, TIME_LIMIT_REACHED)
    return search.result("lagrangian_bound", Status.FEASIBLE, deadline, "grid")
