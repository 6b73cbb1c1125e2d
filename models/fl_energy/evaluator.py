"""The independent evaluator of ``fl_energy``: plain Python loops over the raw instance.

It shares no code with :mod:`edgeopt.models.fl_energy.derived` (which the solvers use):
for every device it recomputes the cycles, the Shannon rate, both times and both energies
with ``math`` from the instance fields, then every constraint of the model.
"""

from __future__ import annotations

import math
from typing import Any

from edgeopt.models.base import Evaluation, per_device_values
from edgeopt.models.fl_energy.schema import FLEnergyInstance

RELATIVE_TOLERANCE = 1e-9
"""Relative slack of the deadline, frequency-cap and bandwidth-budget checks."""


def evaluate(instance: FLEnergyInstance, decision: dict[str, Any]) -> Evaluation:
    """Total energy [J] and the violation of every constraint for ``decision``.

    ``decision`` holds ``frequency_hz`` and ``bandwidth_hz``, one number per device (other
    keys are ignored). Violations: ``frequency_cap`` max_k (f_k/f_k^max - 1)+ and
    ``deadline`` max_k (t_k/T - 1)+ (relative), ``bandwidth_budget`` (sum b / B - 1)+
    (relative), ``positivity`` the number of f_k or b_k that are not finite and > 0 (every
    device computes and uploads). The objective is ``None`` unless the point is feasible.
    """
    count = len(instance.devices)
    frequency = [float(f) for f in per_device_values(decision, "frequency_hz", count)]
    bandwidth = [float(b) for b in per_device_values(decision, "bandwidth_hz", count)]
    deadline = instance.deadline_s
    columns: dict[str, list[float]] = {
        key: []
        for key in ("compute_s", "upload_s", "per_device_time_s", "compute_energy_j",
                    "upload_energy_j", "per_device_energy_j")
    }
    not_positive = 0
    frequency_excess = 0.0
    lateness = 0.0
    for device, f, b in zip(instance.devices, frequency, bandwidth):
        if not (math.isfinite(f) and f > 0 and math.isfinite(b) and b > 0):
            not_positive += 1
            for column in columns.values():
                column.append(math.nan)
            continue
        iterations = instance.local_iterations if device.local_iterations is None else device.local_iterations
        cycles = iterations * device.cycles_per_sample * device.samples
        snr = device.channel_gain * device.power_w / (instance.noise_psd_w_per_hz * b)
        rate_bps = b * math.log2(1.0 + snr)
        compute_s = cycles / f
        upload_s = device.upload_bits / rate_bps
        compute_j = device.capacitance * cycles * f * f
        upload_j = device.power_w * upload_s
        total_s = compute_s + upload_s
        frequency_excess = max(frequency_excess, f / device.max_frequency_hz - 1.0)
        lateness = max(lateness, total_s / deadline - 1.0)
        for key, value in (("compute_s", compute_s), ("upload_s", upload_s), ("per_device_time_s", total_s),
                           ("compute_energy_j", compute_j), ("upload_energy_j", upload_j),
                           ("per_device_energy_j", compute_j + upload_j)):
            columns[key].append(value)
    finite_bandwidth = [b for b in bandwidth if math.isfinite(b)]
    violations = {
        "positivity": float(not_positive),
        "frequency_cap": max(0.0, frequency_excess),
        "deadline": max(0.0, lateness),
        "bandwidth_budget": max(0.0, math.fsum(finite_bandwidth) / instance.bandwidth_hz - 1.0),
    }
    tolerance = {"positivity": 0.0}
    messages = tuple(
        f"{name} violated by {value:.3g}"
        for name, value in violations.items()
        if value > tolerance.get(name, RELATIVE_TOLERANCE)
    )
    feasible = not messages
    objective = math.fsum(columns["per_device_energy_j"]) if feasible else None
    return Evaluation(objective=objective, feasible=feasible, violations=violations,
                      per_device=columns, messages=messages)
