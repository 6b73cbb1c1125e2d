"""The EdgeSplit model object: derived quantities (spec §3.2) and the independent evaluator.

Parallel split learning: device i trains layers 1..c_i and the server the rest; devices
share one band of B Hz (and, in ``shared`` mode, the server's F FLOP/s). Minimise the total
training time J = R * max_i T_i.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from edgeopt.models.base import (
    ConstraintSpec,
    Evaluation,
    Infeasibility,
    Model,
    SizeLimit,
    VariableSpec,
    per_device_values,
)
from edgeopt.models.edgesplit import convergence
from edgeopt.models.edgesplit.schema import MEASURED_PHASES, EdgeSplitInstance
from edgeopt.models.testbed.measured import seconds_per_iteration, seconds_per_iteration_loop

MEMORY_SLACK = 1e-12
"""Relative slack when comparing memory needs with device memory (absorbs float error)."""

BUDGET_TOLERANCE = 1e-9
"""Relative tolerance of the evaluator on the bandwidth and server budgets."""


@dataclass(frozen=True)
class OptionTable:
    """Every (device, candidate cut) option as arrays of shape (N, C); C = len(cuts).

    Units: seconds for ``device_s``, ``server_s`` and ``dedicated_s``; FLOP for
    ``server_flops``; bit for ``link_bits``; Hz*s for ``bandwidth_seconds``; byte for
    ``memory_bytes`` (shape (C,), the same for every device in v1).
    """

    cuts: np.ndarray
    iterations: np.ndarray
    device_s: np.ndarray
    server_flops: np.ndarray
    server_s: np.ndarray
    link_bits: np.ndarray
    bandwidth_seconds: np.ndarray
    memory_bytes: np.ndarray
    feasible: np.ndarray

    @property
    def dedicated_s(self) -> np.ndarray:
        """A' = A + S/F: the fixed part of T_i in dedicated mode [s]."""
        return self.device_s + self.server_s

    def index_of(self, cuts: np.ndarray) -> np.ndarray:
        """Column index of each 1-based cut value."""
        return np.asarray(cuts, dtype=int) - int(self.cuts[0])


class EdgeSplitModel(Model):
    """Parallel split learning on heterogeneous devices (spec ``edgesplit.md``).

    >>> from edgeopt.models.edgesplit import EdgeSplitModel
    >>> model = EdgeSplitModel.preset("vgg16-cifar10-hetero8")
    >>> model.size
    {'devices': 8, 'layers': 14, 'candidate_cuts': 13}
    """

    model_id = "edgesplit"
    version = 1
    schema = EdgeSplitInstance
    variables = (
        VariableSpec("cuts", "integer", "per device", "-", "device i trains layers 1..c_i (1-based)"),
        VariableSpec("bandwidth_hz", "continuous", "per device", "Hz", "bandwidth b_i >= 0"),
        VariableSpec(
            "server_share_flops_per_s", "continuous", "per device", "FLOP/s",
            "server throughput s_i >= 0 (shared mode only)",
        ),
    )
    constraints = (
        ConstraintSpec("cut_domain", "c_i in {1..L-1} (or {1..L} with allow_full_local)", "count"),
        ConstraintSpec("memory", "m_{c_i} <= M_i", "byte"),
        ConstraintSpec("bandwidth_budget", "sum_i b_i <= B", "relative"),
        ConstraintSpec("server_budget", "sum_i s_i <= F (shared)", "relative"),
        ConstraintSpec("nonnegativity", "b_i >= 0, s_i >= 0", "relative"),
        ConstraintSpec("finite_time", "b_i > 0 where traffic is needed; s_i > 0 where server work is", "count"),
    )
    objective = "J = R * max_i T_i  [s]"
    presets_module = "edgeopt.models.edgesplit.presets"
    size_limits = (
        SizeLimit("brute_force, enum_two_resource: prod_i (memory-feasible cuts of device i)",
                  "2,000,000 cut vectors", "the methods decline",
                  "they enumerate every cut vector"),
    )

    instance: EdgeSplitInstance

    # ---- basic facts -----------------------------------------------------------------
    @property
    def size(self) -> dict[str, int]:
        return {
            "devices": len(self.instance.devices),
            "layers": len(self.instance.layers),
            "candidate_cuts": len(self.candidate_cuts),
        }

    @property
    def shared(self) -> bool:
        """True in ``shared`` server mode (devices split the server's FLOP/s)."""
        return self.instance.server_mode == "shared"

    @property
    def candidate_cuts(self) -> list[int]:
        """The cut set: 1..L-1, plus L with ``allow_full_local``."""
        n_layers = len(self.instance.layers)
        last = n_layers if self.instance.allow_full_local else n_layers - 1
        return list(range(1, last + 1))

    @cached_property
    def rounds_used(self) -> int | None:
        """R, or R(epsilon) with a ``convergence`` target; ``None`` if the target is unreachable."""
        target = self.instance.convergence
        if target is None:
            return self.instance.rounds
        return convergence.rounds_needed(
            target.epsilon, target.smoothness, target.variance, target.initial_gap, target.learning_rate
        )

    # ---- derived quantities (vectorised, used by solvers) ------------------------------
    @cached_property
    def options(self) -> OptionTable:
        """All derived per-option quantities of spec §3.2 as arrays.

        A device with ``measured`` times trains cut c in A = K_i * sum_{l<=c} (fwd + bwd +
        update) seconds per iteration instead of K_i * beta * Phi_c / f_i; with
        ``server_measured`` the server work is S = F x (K_i * measured server seconds of
        layers c+1..L), so that S/F and, in shared mode, S/s_i stay the server's time."""
        inst = self.instance
        layers, devices = inst.layers, inst.devices
        fwd = np.array([layer.fwd_flops for layer in layers])
        bwd = np.array([2 * layer.fwd_flops if layer.bwd_flops is None else layer.bwd_flops for layer in layers])
        weights = np.array([layer.param_bytes for layer in layers])
        out = np.array([layer.out_bytes for layer in layers])
        saved = np.array(
            [layer.out_bytes if layer.saved_act_bytes is None else layer.saved_act_bytes for layer in layers]
        )
        cuts = np.array(self.candidate_cuts)
        col = cuts - 1
        work = np.cumsum(fwd + bwd)  # Phi_c
        weight_bytes = np.cumsum(weights)  # W_c
        saved_bytes = np.cumsum(saved)  # A-bar_c
        beta = inst.batch_size
        kappa = inst.optimizer_state_factor
        n_layers = len(layers)

        samples = np.array([d.samples for d in devices])
        iterations = -(-samples // beta)  # ceil
        per_round_samples = (iterations * beta)[:, None].astype(float)
        flops = np.array([d.flops_per_s for d in devices])[:, None]
        efficiency = np.array([d.spectral_efficiency for d in devices])[:, None]
        memory_avail = np.array([d.memory_bytes for d in devices])[:, None]

        device_s = per_round_samples * work[col][None, :] / flops
        for i, device in enumerate(devices):
            if device.measured is not None:
                per_layer = seconds_per_iteration(device.measured, MEASURED_PHASES, beta)
                device_s[i] = iterations[i] * np.cumsum(per_layer)[col]
        server_flops = per_round_samples * (work[-1] - work[col])[None, :]
        if inst.server_measured is not None:
            per_layer = seconds_per_iteration(inst.server_measured, MEASURED_PHASES, beta)
            after_cut = np.append(np.cumsum(per_layer[::-1])[::-1][1:], 0.0)  # sum over l > c
            server_flops = iterations[:, None] * after_cut[col][None, :] * inst.server_flops_per_s
        smashed = np.where(cuts < n_layers, out[col], 0.0)
        link_bits = 16.0 * per_round_samples * smashed[None, :]
        if inst.include_sync:
            link_bits = link_bits + 16.0 * weight_bytes[col][None, :]
        memory = (1 + kappa) * weight_bytes[col] + beta * saved_bytes[col] + beta * out[col]
        feasible = memory[None, :] <= memory_avail * (1 + MEMORY_SLACK)
        return OptionTable(
            cuts=cuts,
            iterations=iterations,
            device_s=device_s,
            server_flops=server_flops,
            server_s=server_flops / inst.server_flops_per_s,
            link_bits=link_bits,
            bandwidth_seconds=link_bits / efficiency,
            memory_bytes=memory,
            feasible=feasible,
        )

    # ---- feasibility ----------------------------------------------------------------
    def infeasibility(self) -> Infeasibility | None:
        """``memory`` if a device fits no cut (naming it and the memory it would need), or
        ``target_unreachable`` if the convergence target lies below the noise floor."""
        table = self.options
        for index, device in enumerate(self.instance.devices):
            if not table.feasible[index].any():
                best = int(np.argmin(table.memory_bytes))
                need = float(table.memory_bytes[best])
                return Infeasibility(
                    "memory",
                    f"device {device.name!r}: no memory-feasible cut; needs >= {need:.0f} bytes "
                    f"(cut {int(table.cuts[best])}), has {device.memory_bytes:.0f}",
                    {"device": device.name, "device_index": index, "needed_bytes": need,
                     "available_bytes": device.memory_bytes, "cut": int(table.cuts[best])},
                )
        if self.rounds_used is None:
            target = self.instance.convergence
            gamma = target.learning_rate
            floor = target.smoothness * gamma * target.variance
            return Infeasibility(
                "target_unreachable",
                f"convergence.epsilon = {target.epsilon:g} is at or below the noise floor "
                f"L_f*gamma*sigma^2 = {floor:g} of learning_rate {gamma:g}; raise epsilon or lower the step",
                {"epsilon": target.epsilon, "noise_floor": floor},
            )
        return None

    # ---- SymPy terms -----------------------------------------------------------------
    def convergence_terms(self) -> dict[str, Any]:
        """SymPy expressions of §4.3: ``bound``, ``rounds``, ``optimal_step``, ``rounds_optimal``."""
        terms = convergence.derivation()
        return {k: terms[k] for k in ("bound", "rounds", "optimal_step", "rounds_optimal")}

    # ---- independent evaluator -------------------------------------------------------
    def evaluate(self, decision: dict[str, Any]) -> Evaluation:
        """Recompute T_i, J and every constraint from the raw instance for ``decision``.

        ``decision`` has ``cuts`` (1-based ints), ``bandwidth_hz`` and, in shared mode,
        ``server_share_flops_per_s`` (lists of length N). Two optional keys describe the
        protocols of two baselines: ``schedule`` = 'sequential' (devices take turns, each
        may use the whole B and F, a round lasts the sum of the T_i) and ``full_local`` =
        true (c = L admitted whatever ``allow_full_local`` says). Other keys are ignored.
        Measured times (``devices[i].measured``, ``server_measured``) replace FLOPs / speed
        as in :attr:`options`. This code deliberately does not use :attr:`options`, which
        the solvers use.
        """
        inst = self.instance
        n = len(inst.devices)
        schedule = decision.get("schedule", "parallel")
        if schedule not in ("parallel", "sequential"):
            raise ValueError(f"decision['schedule'] = {schedule!r}: must be 'parallel' or 'sequential'")
        cuts = per_device_values(decision, "cuts", n)
        bandwidth = [float(b) for b in per_device_values(decision, "bandwidth_hz", n)]
        if self.shared:
            shares = [float(s) for s in per_device_values(decision, "server_share_flops_per_s", n)]
        else:
            shares = [inst.server_flops_per_s] * n

        layers = inst.layers
        n_layers = len(layers)
        allowed = set(self.candidate_cuts) | ({n_layers} if decision.get("full_local") else set())
        work_per_layer = [
            layer.fwd_flops + (2 * layer.fwd_flops if layer.bwd_flops is None else layer.bwd_flops)
            for layer in layers
        ]
        total_work = math.fsum(work_per_layer)
        beta, kappa = inst.batch_size, inst.optimizer_state_factor
        server_layer_s = (
            None if inst.server_measured is None
            else seconds_per_iteration_loop(inst.server_measured, MEASURED_PHASES, beta)
        )

        bad_cuts = 0
        memory_excess = 0.0
        unbounded = 0
        device_s, server_s, comm_s, times, memory_used = [], [], [], [], []
        for i, device in enumerate(inst.devices):
            cut = cuts[i]
            if isinstance(cut, bool) or not float(cut).is_integer() or int(cut) not in allowed:
                bad_cuts += 1
                for column in (device_s, server_s, comm_s, times, memory_used):
                    column.append(math.nan)
                continue
            c = int(cut)
            front = layers[:c]
            work = math.fsum(work_per_layer[:c])
            weights = math.fsum(layer.param_bytes for layer in front)
            saved = math.fsum(
                layer.out_bytes if layer.saved_act_bytes is None else layer.saved_act_bytes for layer in front
            )
            out = layers[c - 1].out_bytes
            memory = (1 + kappa) * weights + beta * saved + beta * out
            memory_used.append(memory)
            if memory > device.memory_bytes * (1 + MEMORY_SLACK):
                memory_excess = max(memory_excess, memory - device.memory_bytes)

            iterations = math.ceil(device.samples / beta)
            samples_per_round = iterations * beta
            if device.measured is None:
                compute = samples_per_round * work / device.flops_per_s
            else:
                layer_s = seconds_per_iteration_loop(device.measured, MEASURED_PHASES, beta)
                compute = iterations * math.fsum(layer_s[:c])
            if server_layer_s is None:
                server_work = samples_per_round * (total_work - work)
            else:  # FLOP at the full server throughput F, so that S/s_i is the server time
                server_work = iterations * math.fsum(server_layer_s[c:]) * inst.server_flops_per_s
            bits = (16.0 * samples_per_round * out if c < n_layers else 0.0) + (
                16.0 * weights if inst.include_sync else 0.0
            )
            server_time = _ratio(server_work, shares[i])
            comm_time = _ratio(bits, device.spectral_efficiency * bandwidth[i])
            if math.isinf(server_time) or math.isinf(comm_time):
                unbounded += 1
            device_s.append(compute)
            server_s.append(server_time)
            comm_s.append(comm_time)
            times.append(compute + server_time + comm_time)

        budget = inst.bandwidth_hz
        # In turns, each device may hold the whole budget; in parallel they share it.
        combine = max if schedule == "sequential" else math.fsum
        violations = {
            "cut_domain": float(bad_cuts),
            "memory": memory_excess,
            "bandwidth_budget": max(0.0, combine(bandwidth) / budget - 1.0),
            "server_budget": max(0.0, combine(shares) / inst.server_flops_per_s - 1.0) if self.shared else 0.0,
            "nonnegativity": max(
                [0.0]
                + [-b / budget for b in bandwidth]
                + ([-s / inst.server_flops_per_s for s in shares] if self.shared else [])
            ),
            "finite_time": float(unbounded),
        }
        tolerances = {"bandwidth_budget": BUDGET_TOLERANCE, "server_budget": BUDGET_TOLERANCE}
        feasible = all(v <= tolerances.get(k, 0.0) for k, v in violations.items())
        messages = tuple(
            f"{name} violated by {value:.3g}"
            for name, value in violations.items()
            if value > tolerances.get(name, 0.0)
        )
        rounds = self.rounds_used
        objective = None
        if feasible and rounds is not None:
            objective = rounds * (math.fsum(times) if schedule == "sequential" else max(times))
        return Evaluation(
            objective=objective,
            feasible=feasible,
            violations=violations,
            per_device={
                "per_device_time_s": times,
                "device_s": device_s,
                "server_s": server_s,
                "comm_s": comm_s,
                "memory_bytes": memory_used,
            },
            messages=messages,
        )


def _ratio(numerator: float, denominator: float) -> float:
    """numerator/denominator with 0/0 = 0 and x/0 = +inf (x > 0); negative denominators -> inf."""
    if numerator == 0:
        return 0.0
    if denominator <= 0:
        return math.inf
    return numerator / denominator
