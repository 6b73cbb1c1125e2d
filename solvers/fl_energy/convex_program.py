"""Exact ``convex_program``: the whole problem in cvxpy (DCP), solved by a conic backend.

Scaled variables beta_k = b_k/B and phi_k = f_k/f_k^max keep the cone data near 1. The
rate is r_k = (B/ln 2) rho_k with the concave rho_k = -rel_entr(beta_k, beta_k + a_k/B)
(= beta_k ln(1 + a_k/(B beta_k))), so upload time and energy are positive multiples of
inv_pos(rho_k) and compute time of inv_pos(phi_k):

    min  sum_k kappa_k A_k (f^max_k)^2 phi_k^2 + p_k s_k ln2/B inv_pos(rho_k)
    s.t. (A_k/f^max_k) inv_pos(phi_k) + (s_k ln2/B) inv_pos(rho_k) <= T,  phi_k <= 1,
         sum_k beta_k <= 1.

The backend's point is made exactly feasible (bandwidths raised to b^min, the budget spent
exactly, the cheapest frequency for each bandwidth) and the bound is the dual function at
the backend's price of the budget row, evaluated by the certified per-device solve of
:mod:`~edgeopt.solvers.fl_energy.pricing` (so it does not rest on the backend's tolerances).
"""

from __future__ import annotations

import importlib.metadata
import math
import warnings

import numpy as np

from edgeopt.models.fl_energy import FLEnergyModel
from edgeopt.models.fl_energy.derived import cheapest_frequency
from edgeopt.solvers.common.deadline import Deadline
from edgeopt.solvers.common.termination import TIME_LIMIT_REACHED, Termination
from edgeopt.solvers.fl_energy.common import equal_share, make_result
from edgeopt.solvers.fl_energy.pricing import at_price, device_energy, price_bracket, spend_budget
from edgeopt.solvers.result import Result, Status

BACKENDS = {"clarabel": ("CLARABEL", "clarabel"), "ecos": ("ECOS", "ecos"), "scs": ("SCS", "scs")}
"""backend -> (cvxpy solver name, distribution whose version is recorded)."""

TIME_LIMIT_OPTION = {"clarabel": "time_limit", "scs": "time_limit_secs"}
"""The backend option that takes a time limit in seconds (ECOS has none)."""

METHOD = "convex_program"

OPTIMALITY_GAP = 1e-6
"""Certified relative gap below which the backend's answer is reported ``optimal``."""


def solve_convex_program(model: FLEnergyModel, *, backend=None, time_limit=None, seed=None) -> Result:
    """Solve the DCP form with ``backend`` (clarabel, ecos or scs)."""
    import cvxpy as cp

    backend = backend or "clarabel"
    solver_name, distribution = BACKENDS[backend]
    version = importlib.metadata.version(distribution)
    deadline = Deadline(time_limit)
    fleet = model.fleet
    count, total = fleet.size, fleet.bandwidth_hz
    reference = float(device_energy(model.fleet, equal_share(model)).sum())

    beta = cp.Variable(count, nonneg=True)
    phi = cp.Variable(count, pos=True)
    rho = -cp.rel_entr(beta, beta + fleet.snr_hz / total)
    upload_scale = fleet.upload_bits * math.log(2.0) / total
    compute_energy = fleet.capacitance * fleet.cycles * fleet.max_frequency_hz**2
    energy = cp.sum(cp.multiply(compute_energy, cp.square(phi))
                    + cp.multiply(fleet.power_w * upload_scale, cp.inv_pos(rho)))
    round_time = (cp.multiply(fleet.fastest_compute_s, cp.inv_pos(phi))
                  + cp.multiply(upload_scale, cp.inv_pos(rho)))
    budget = cp.sum(beta) <= 1
    problem = cp.Problem(cp.Minimize(energy / reference),
                         [round_time / fleet.deadline_s <= 1, phi <= 1, budget])
    build_s = deadline.elapsed
    options = {}
    if deadline.seconds is not None and backend in TIME_LIMIT_OPTION:
        options[TIME_LIMIT_OPTION[backend]] = max(deadline.remaining or 0.0, 1e-3)
    if deadline.expired:
        return _incumbent(model, deadline, backend, version, build_s, "stopped before the backend ran")
    try:
        with warnings.catch_warnings():  # an inaccurate answer is judged by its certified gap below
            warnings.simplefilter("ignore", UserWarning)
            problem.solve(solver=solver_name, **options)
    except cp.error.SolverError as error:
        if deadline.expired:
            return _incumbent(model, deadline, backend, version, build_s, f"{solver_name}: {error}")
        return _incumbent(model, deadline, backend, version, build_s, f"{solver_name} failed: {error}",
                          status=Status.ERROR, termination="error")
    reported = getattr(problem.solver_stats, "solve_time", None)
    if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or beta.value is None:
        limited = deadline.expired
        return _incumbent(model, deadline, backend, version, build_s,
                          f"{solver_name} returned status {problem.status!r}",
                          status=Status.TIME_LIMIT if limited else Status.ERROR,
                          termination=TIME_LIMIT_REACHED if limited else str(problem.status))
    bandwidth = spend_budget(model, np.maximum(np.asarray(beta.value) * total, model.min_bandwidth_hz))
    price = max(float(budget.dual_value or 0.0), 0.0) * reference / total
    bound = at_price(model, price).dual if price > 0 else at_price(model, price_bracket(model)[0]).dual
    result = make_result(
        model, METHOD, Status.OPTIMAL, cheapest_frequency(bandwidth, fleet), bandwidth, bound=bound,
        build_s=build_s, solve_s=deadline.elapsed - build_s, solver=backend, solver_version=version,
        solver_reported_s=reported, termination="optimal",
        extras={"bandwidth_price_j_per_hz": price, "backend_objective_j": float(problem.value) * reference,
                "backend_status": str(problem.status)},
    )
    if result.gap is not None and result.gap <= OPTIMALITY_GAP:
        return result
    return result.replace(status=Status.FEASIBLE, termination=str(problem.status),
                          message=f"{solver_name} stopped at {problem.status!r}: certified gap {result.gap:.3g}")


def _incumbent(model: FLEnergyModel, deadline: Deadline, backend: str, version: str, build_s: float,
               message: str, status: Status = Status.TIME_LIMIT, termination: Termination | str = TIME_LIMIT_REACHED) -> Result:
    """The equal-share point with the dual bound at the bracket's high price (cheap, valid)."""
    bandwidth = equal_share(model)
    bound = max(at_price(model, price_bracket(model)[1]).dual, 0.0)  # energy is never negative
    return make_result(model, METHOD, status, cheapest_frequency(bandwidth, model.fleet), bandwidth,
                       bound=bound, build_s=build_s, solve_s=deadline.elapsed - build_s, solver=backend,
                       solver_version=version, termination=termination, message=message)
