"""Infeasibility of a two-stage instance (spec §5.5): the budgets against the cheapest cells.

Costs are non-negative and a smaller batch is always feasible where a larger one is, so the
feasible set of cell (M', N') is contained in that of (M, N) when M' >= M and N' >= N
(§5.2). Every allowed cell therefore contains (1, 0) (if M_max >= 1) or (0, 1) (if
N_max >= 1) at unit batches; the instance is feasible iff one of those two passes the
minimum-energy oracle:

* delay: one pre-training round needs C_s / f_s^max, one fine-tuning round
  max_k (C_k / f_k^max + tau_k^min) (round-0 gains with a schedule). If neither fits T_max
  the reason is ``delay``, with ``min_delay_s`` the smaller need.
* energy: (1, 0) needs kappa_s C_s^3 / T_max^2 (t_s = T_max), (0, 1) needs E* of the oracle
  at unit batches. If the delay-feasible ones all exceed E_max the reason is ``energy``,
  with ``min_energy_j`` the smallest need (always above the upload-energy infimum
  sum_k e_k^inf, which no finite upload time reaches).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgeopt.models.base import Infeasibility
from edgeopt.models.two_stage.oracle import DELAY_RTOL, min_energy

if TYPE_CHECKING:
    from edgeopt.models.two_stage.model import TwoStageModel


def cheapest_cells(model: TwoStageModel) -> dict[tuple[int, int], dict[str, float]]:
    """For the allowed cells among (1, 0) and (0, 1): ``min_delay_s`` and ``min_energy_j``
    (inf when the cell is not delay-feasible) at unit batches."""
    d = model.derived
    cells: dict[tuple[int, int], dict[str, float]] = {}
    T = d.delay_budget_s
    ones = np.ones(d.n_devices)
    if d.max_pretrain_rounds >= 1:
        delay = float(d.min_server_time(1.0))
        fits = delay <= T * (1 + DELAY_RTOL)
        energy = float(d.server_energy_time_constant(1.0)) / T**2 if fits else np.inf
        cells[(1, 0)] = {"min_delay_s": delay, "min_energy_j": energy}
    if d.max_finetune_rounds >= 1:
        result = min_energy(d, 0, 1, 0.0, ones, gains=d.gains[0])
        cells[(0, 1)] = {"min_delay_s": result.min_delay_s, "min_energy_j": result.energy_j}
    return cells


def diagnose(model: TwoStageModel) -> Infeasibility | None:
    """The binding budget and how much is missing, or ``None`` when a cell is feasible."""
    d = model.derived
    cells = cheapest_cells(model)
    label = {(1, 0): "one pre-training round", (0, 1): "one fine-tuning round"}
    T, E = d.delay_budget_s, d.energy_budget_j
    min_delay = min(c["min_delay_s"] for c in cells.values())
    energies = [c["min_energy_j"] for c in cells.values() if np.isfinite(c["min_energy_j"])]
    min_energy_j = min(energies) if energies else None
    details = {"min_delay_s": min_delay, "min_energy_j": min_energy_j,
               "cells": {f"M={m},N={n}": values for (m, n), values in cells.items()}}
    fields = {"min_delay_s": min_delay, "min_energy_j": min_energy_j}
    if min_energy_j is None:
        needs = " or ".join(f"{c['min_delay_s']:.6g} s needed for {label[cell]}" for cell, c in
                            cells.items())
        slowest = ""
        if (0, 1) in cells:
            k = int(np.argmax(d.device_cycles / d.device_clock_hz
                              + d.bits / d.rate(d.max_power_w, d.gains[0])))
            slowest = f" (slowest device {model.device_names[k]!r})"
        return Infeasibility(
            "delay",
            f"delay budget {T:.6g} s < {needs}{slowest}: missing {min_delay - T:.6g} s",
            {**details, "constraint": "delay_budget_s", "missing_s": min_delay - T},
            fields,
        )
    if min_energy_j > E:
        cell = min((c for c in cells if np.isfinite(cells[c]["min_energy_j"])),
                   key=lambda c: cells[c]["min_energy_j"])
        return Infeasibility(
            "energy",
            f"energy budget {E:.6g} J < {min_energy_j:.6g} J needed for {label[cell]} at batch "
            f"1 using the whole delay budget: missing {min_energy_j - E:.6g} J",
            {**details, "constraint": "energy_budget_j", "missing_j": min_energy_j - E,
             "cell": list(cell)},
            fields,
        )
    return None
