"""Measured plan versus FLOP plan: what the per-layer measurement changes.

:func:`fitted_flop_model` turns an instance with measured times into the FLOP model of the
same machines: each measured device gets the throughput that makes its whole-network
training step take as long as measured (FLOPs of a full step / measured time of a full
step), and loses its per-layer times. Both models then agree on the total work and differ
only in how the time is spread over the layers. :func:`plan_gap` solves both and evaluates
the FLOP model's plan on the measured testbed, which is what deploying it would cost.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

PLAN_KEYS = {"edgesplit": ("cuts",), "tinyfel": ("selected", "updated_layers")}
"""The discrete part of a plan in each model's solution."""

DECISION_KEYS = {"edgesplit": ("cuts", "bandwidth_hz", "server_share_flops_per_s"),
                 "tinyfel": ("selected", "updated_layers", "bandwidth_hz")}
"""What the evaluator needs to price a plan (a claimed latency is left out on purpose)."""


def fitted_flop_model(model: Any) -> Any:
    """``model`` under the FLOP model, throughputs fitted to its measured times (see the
    module docstring); devices without measured times are unchanged."""
    from edgeopt.models.testbed.measured import seconds_per_iteration

    inst = model.instance
    changes: dict[str, Any] = {}
    if model.model_id == "edgesplit":
        from edgeopt.models.edgesplit.schema import MEASURED_PHASES

        work = sum(layer.fwd_flops + (2 * layer.fwd_flops if layer.bwd_flops is None else layer.bwd_flops)
                   for layer in inst.layers) * inst.batch_size  # FLOP per iteration, c = L
        for index, device in enumerate(inst.devices):
            if device.measured is not None:
                seconds = seconds_per_iteration(device.measured, MEASURED_PHASES, inst.batch_size).sum()
                changes[f"devices[{index}].flops_per_s"] = work / seconds
                changes[f"devices[{index}].measured"] = None
        if inst.server_measured is not None:
            seconds = seconds_per_iteration(inst.server_measured, MEASURED_PHASES, inst.batch_size).sum()
            changes["server_flops_per_s"] = work / seconds
            changes["server_measured"] = None
    elif model.model_id == "tinyfel":
        table = model.options
        for index, device in enumerate(inst.devices):
            if device.measured is not None:  # option n = L trains every layer
                changes[f"devices[{index}].flops_per_s"] = table.flops[-1] / table.compute_s[index, -1]
                changes[f"devices[{index}].measured"] = None
    else:
        raise ValueError(f"model {model.model_id!r} has no measured times")
    return model.with_changes(changes)


def plan_gap(model: Any, method: str = "exact", flop_model: Any | None = None) -> dict[str, Any]:
    """Solve ``model`` (measured times) and its :func:`fitted_flop_model` with ``method``.

    Returns ``measured_plan`` and ``flop_plan`` (the discrete decisions), ``measured_s`` (the
    measured optimum J [s]), ``flop_predicted_s`` (what the FLOP model expects of its plan),
    ``flop_on_testbed_s`` (that plan, resources included, evaluated with the measured
    times; ``None`` if infeasible there) and ``regret_pct`` (its excess over the measured
    optimum, %)."""
    from edgeopt.solvers import solve

    flop_model = fitted_flop_model(model) if flop_model is None else flop_model
    measured, flop = solve(model, method), solve(flop_model, method)
    keys = PLAN_KEYS[model.model_id]
    row: dict[str, Any] = {
        "measured_plan": _plan(measured.solution, keys),
        "flop_plan": _plan(flop.solution, keys),
        "measured_s": measured.objective,
        "flop_predicted_s": flop.objective,
        "flop_on_testbed_s": None,
        "regret_pct": None,
    }
    if flop.objective is not None:
        decision = {key: flop.solution.get(key) for key in DECISION_KEYS[model.model_id]}
        deployed = model.evaluate(decision)
        row["flop_on_testbed_s"] = deployed.objective
        if deployed.objective is not None and measured.objective:
            row["regret_pct"] = 100.0 * (deployed.objective / measured.objective - 1.0)
    return row


def plan_gap_sweep(model: Any, path: str, values: Iterable[Any], method: str = "exact") -> pd.DataFrame:
    """:func:`plan_gap` for each value of the field ``path`` (e.g. ``bandwidth_hz``): one row
    per value, with a ``differs`` column (the two plans are not the same)."""
    rows = []
    for value in values:
        changed = model.with_changes({path: value})
        row = {path: value, **plan_gap(changed, method)}
        row["differs"] = row["measured_plan"] != row["flop_plan"]
        rows.append(row)
    return pd.DataFrame(rows)


def _plan(solution: dict[str, Any], keys: tuple[str, ...]) -> tuple | None:
    values = [solution.get(key) for key in keys]
    if any(not value for value in values):
        return None
    return tuple(values[0]) if len(keys) == 1 else tuple(zip(*values))
