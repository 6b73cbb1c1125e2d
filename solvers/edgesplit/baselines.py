"""The spec's reference policies (§5.5), each on the same model and server mode.

* ``baseline_equal_resources``: b_i = B/N (shared: s_i = F/N), each device its best cut.
* ``baseline_common_cut``: one cut for all (the best one), resources optimised.
* ``baseline_fedavg``: every device trains the whole model (c = L), bandwidth optimised.
* ``baseline_sequential_sl``: vanilla split learning, one device at a time with all of B
  and F, a common cut; a round lasts the sum of the device times.
"""

from __future__ import annotations

import time

import numpy as np

from edgeopt.models.edgesplit import EdgeSplitModel
from edgeopt.solvers.edgesplit.alternating import best_cuts
from edgeopt.solvers.edgesplit.common import infeasible_result, make_result
from edgeopt.solvers.edgesplit.resources import allocate_for_cuts
from edgeopt.solvers.result import Result, Status


def solve_equal_resources(model: EdgeSplitModel, *, backend=None, time_limit=None, seed=None) -> Result:
    """Equal bandwidth (and server share); cut optimisation only."""
    started = time.perf_counter()
    inst, n = model.instance, model.n_devices
    bandwidth = np.full(n, inst.bandwidth_hz / n)
    shares = np.full(n, inst.server_flops_per_s / n) if model.shared else None
    cuts = best_cuts(model, None, bandwidth, shares)
    return make_result(model, "baseline_equal_resources", Status.FEASIBLE, cuts, bandwidth, shares,
                       solve_s=time.perf_counter() - started)


def _common_cuts(model: EdgeSplitModel) -> np.ndarray:
    table = model.options
    return table.cuts[np.all(table.feasible, axis=0)]


def solve_common_cut(model: EdgeSplitModel, *, backend=None, time_limit=None, seed=None) -> Result:
    """The best single cut for every device, resources optimised (bandwidth optimisation only)."""
    started = time.perf_counter()
    common = _common_cuts(model)
    if len(common) == 0:
        return infeasible_result(
            model, "baseline_common_cut", "common_cut",
            "no cut fits the memory of every device; the smallest device memory rules out every common cut",
        )
    candidates = []
    for cut in common:
        cuts = np.full(model.n_devices, cut)
        _, makespan, bandwidth, shares = allocate_for_cuts(model, cuts)
        candidates.append((makespan, cuts, bandwidth, shares))
    _, cuts, bandwidth, shares = min(candidates, key=lambda candidate: candidate[0])  # first best
    return make_result(model, "baseline_common_cut", Status.FEASIBLE, cuts, bandwidth, shares,
                       solve_s=time.perf_counter() - started)


def solve_fedavg(model: EdgeSplitModel, *, backend=None, time_limit=None, seed=None) -> Result:
    """Full local training (c = L) whatever ``allow_full_local`` says; sync traffic only.

    The point is reported with ``full_local: true`` so the evaluator admits c = L.
    """
    started = time.perf_counter()
    full = model.with_changes(allow_full_local=True)
    fits = full.options.feasible[:, -1]
    if not fits.all():
        need = float(full.options.memory_bytes[-1])
        short = [d for d, ok in zip(model.instance.devices, fits) if not ok]
        names = ", ".join(f"{d.name!r} (has {d.memory_bytes:.0f})" for d in short)
        return infeasible_result(
            model, "baseline_fedavg", "memory",
            f"full local training needs {need:.0f} bytes per device; too little memory on {names}",
            devices=[d.name for d in short],
        )
    cuts = np.full(model.n_devices, len(model.instance.layers))
    _, _, bandwidth, shares = allocate_for_cuts(full, cuts)
    result = make_result(full, "baseline_fedavg", Status.FEASIBLE, cuts, bandwidth, shares,
                         solve_s=time.perf_counter() - started, full_local=True)
    return result.replace(extras={**result.extras, "full_local_allowed": model.instance.allow_full_local})


def solve_sequential_sl(model: EdgeSplitModel, *, backend=None, time_limit=None, seed=None) -> Result:
    """Devices one after another with all of B and F and a common cut; best common cut."""
    started = time.perf_counter()
    common = _common_cuts(model)
    if len(common) == 0:
        return infeasible_result(
            model, "baseline_sequential_sl", "common_cut", "no cut fits the memory of every device",
        )
    table = model.options
    columns = table.index_of(common)
    per_device = table.dedicated_s[:, columns] + table.bandwidth_seconds[:, columns] / model.instance.bandwidth_hz
    best = int(np.argmin(per_device.sum(axis=0)))
    n = model.n_devices
    inst = model.instance
    shares = np.full(n, inst.server_flops_per_s) if model.shared else None
    return make_result(
        model, "baseline_sequential_sl", Status.FEASIBLE, np.full(n, common[best]),
        np.full(n, inst.bandwidth_hz), shares, schedule="sequential",
        solve_s=time.perf_counter() - started,
        message="devices train one after another, each with the whole band and server",
    )
