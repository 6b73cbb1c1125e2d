"""The ``fl_energy`` model object: declaration, SymPy terms, diagnosis and evaluator.

Classic federated-learning round: K devices train locally and upload their update within
a deadline T on a shared uplink band of B Hz. Choose CPU frequencies f_k and bandwidths
b_k to minimise the devices' total energy; the problem is convex.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np

from edgeopt.models.base import ConstraintSpec, Evaluation, Infeasibility, Model, VariableSpec
from edgeopt.models.fl_energy import derived, evaluator, symbolic
from edgeopt.models.fl_energy.derived import Fleet
from edgeopt.models.fl_energy.schema import FLEnergyInstance


class FLEnergyModel(Model):
    """Joint bandwidth and CPU-frequency allocation for one federated-learning round.

    >>> from edgeopt.models.fl_energy import FLEnergyModel
    >>> model = FLEnergyModel.preset("default", devices=4, seed=1)
    >>> model.size
    {'devices': 4}
    """

    model_id = "fl_energy"
    version = 1
    schema = FLEnergyInstance
    variables = (
        VariableSpec("frequency_hz", "continuous", "per device", "Hz", "CPU frequency f_k in (0, f_k^max]"),
        VariableSpec("bandwidth_hz", "continuous", "per device", "Hz", "uplink bandwidth b_k > 0"),
    )
    constraints = (
        ConstraintSpec("positivity", "f_k > 0, b_k > 0 (finite)", "count"),
        ConstraintSpec("frequency_cap", "f_k <= f_k^max", "relative"),
        ConstraintSpec("deadline", "I_k c_k D_k / f_k + s_k / r_k(b_k) <= T", "relative"),
        ConstraintSpec("bandwidth_budget", "sum_k b_k <= B", "relative"),
    )
    objective = "E = sum_k [kappa_k I_k c_k D_k f_k^2 + p_k s_k / r_k(b_k)]  [J]"
    presets_module = "edgeopt.models.fl_energy.presets"

    instance: FLEnergyInstance

    @property
    def size(self) -> dict[str, int]:
        return {"devices": len(self.instance.devices)}

    @cached_property
    def fleet(self) -> Fleet:
        """The instance as NumPy arrays (for solvers; see :mod:`~edgeopt.models.fl_energy.derived`)."""
        return derived.fleet(self.instance)

    @cached_property
    def min_bandwidth_hz(self) -> np.ndarray:
        """b_k^min: the least bandwidth on which device k meets the deadline at f_k^max [Hz]."""
        return derived.min_bandwidth(self.fleet)

    def convergence_terms(self) -> dict[str, Any]:
        """The per-device energy and time terms (SymPy); this model has no learning term."""
        return symbolic.terms()

    def infeasibility(self) -> Infeasibility | None:
        """``deadline`` if a device misses T even at f_k^max with the whole band B (naming it
        and the missing seconds), else ``bandwidth`` if the least bandwidths that meet the
        deadline at f^max add up to more than B (naming the shortfall in Hz), else ``None``."""
        fleet, names = self.fleet, self.device_names
        compute = fleet.fastest_compute_s
        upload = derived.upload_time(np.full(fleet.size, fleet.bandwidth_hz), fleet)
        late = compute + upload - fleet.deadline_s
        worst = int(np.argmax(late))
        if late[worst] > 0:
            device = self.instance.devices[worst]
            return Infeasibility(
                "deadline",
                f"device {names[worst]!r} misses the deadline T = {fleet.deadline_s:.6g} s by "
                f"{late[worst]:.6g} s even at f_max = {device.max_frequency_hz:.6g} Hz with the whole "
                f"band B = {fleet.bandwidth_hz:.6g} Hz (compute {compute[worst]:.6g} s + upload "
                f"{upload[worst]:.6g} s)",
                {"device": names[worst], "device_index": worst, "missing_s": float(late[worst]),
                 "deadline_s": fleet.deadline_s, "compute_s": float(compute[worst]),
                 "upload_s": float(upload[worst]),
                 "late_devices": [names[k] for k in np.flatnonzero(late > 0)]},
            )
        needed = self.min_bandwidth_hz
        total = float(needed.sum())
        if total > fleet.bandwidth_hz:
            return Infeasibility(
                "bandwidth",
                f"bandwidth budget: meeting the deadline at f_max needs {total:.6g} Hz in total "
                f"> B = {fleet.bandwidth_hz:.6g} Hz (short by {total - fleet.bandwidth_hz:.6g} Hz)",
                {"constraint": "bandwidth_budget", "needed_hz": total, "bandwidth_hz": fleet.bandwidth_hz,
                 "missing_hz": total - fleet.bandwidth_hz,
                 "min_bandwidth_hz": dict(zip(names, (float(b) for b in needed)))},
            )
        return None

    def evaluate(self, decision: dict[str, Any]) -> Evaluation:
        """Total energy and constraint violations of ``decision`` (``frequency_hz`` and
        ``bandwidth_hz`` lists), recomputed from the raw instance (see
        :mod:`edgeopt.models.fl_energy.evaluator`); independent of :attr:`fleet`."""
        return evaluator.evaluate(self.instance, decision)
