"""The independent evaluator of TinyFEL (spec §3.3, §4): plain loops over the raw instance.

It deliberately shares no code with :mod:`edgeopt.models.tinyfel.options` (which solvers
use) except the ceiling of R(a, n); the tests check that both agree.

A decision has ``selected`` (booleans, 0/1 accepted), ``updated_layers`` (n_k, 0 when not
selected) and ``bandwidth_hz`` (b_k, 0 when not selected), one entry per device. An optional
``round_latency_s`` is a claimed T_round (a solution's value): then the latency epigraph C1
and the rate cap are checked against it. Other keys are ignored, so a §3.3 solution
document can be evaluated as it is.

Violations (0 when satisfied): ``domain``, ``min_selected``, ``unselected_bandwidth`` and
``finite_latency`` [count or relative]; ``memory`` [byte]; ``bias_budget`` (P1 only) and
``target`` (P2, positive whenever epsilon <= Phi + N) [unit of G^2]; ``bandwidth_budget``
and ``nonnegativity`` [relative to B]; ``latency`` [relative to the claim]; ``rate_cap`` [s];
``energy`` [J].

Decisions the spec leaves open: with no device selected T = 0 (T_round = T_dl); the bias
measure is Phi_q for ``bias_form = quadratic`` and the worst case of spec §9 for
``aggregation = normalised`` (whatever ``bias_form`` says), and R(a, n) uses that same
measure; N(a) is the same for both aggregation rules; the rate cap is checked only against a
claimed ``round_latency_s`` (for a given b > 0, r(b) is always below the cap); a selected
device with n_k outside {n_min..L} counts as a domain violation and is then treated as not
selected. A device with ``measured`` per-layer times computes for tau x (forward of every
layer + weight gradient and update of s..L + input gradient above s) of those times, and its
energy row charges the power kappa_e (c_k f_k)^3 for that time.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from numbers import Real
from typing import Any

from edgeopt.models.base import Evaluation, per_device_values
from edgeopt.models.testbed.measured import seconds_per_iteration_loop
from edgeopt.models.tinyfel.convergence import rounds_needed
from edgeopt.models.tinyfel.schema import TinyFELInstance

RELATIVE_TOLERANCE = 1e-9
"""Tolerance on ``bandwidth_budget`` (sum b <= B (1 + 1e-9)) and on ``latency``."""

MEMORY_SLACK = 1e-12
"""Relative slack on the memory row (absorbs float error in the byte sums)."""


@dataclass(frozen=True, repr=False)
class TinyFELEvaluation(Evaluation):
    """An :class:`Evaluation` with the quantities a §3.3 solution reports.

    ``round_latency_s`` = T + T_dl [s]; ``rounds`` = R(a, n) or ``None``; ``bias`` = the
    bias measure of the instance (Phi, Phi_q or the normalised bound) and ``noise`` = N(a)
    [unit of G^2]; ``coverage`` = u_l per layer; ``bandwidth_used_hz`` = sum_k b_k [Hz].
    """

    round_latency_s: float | None = None
    rounds: int | None = None
    bias: float | None = None
    noise: float | None = None
    coverage: tuple[float, ...] = ()
    bandwidth_used_hz: float = 0.0


def evaluate(inst: TinyFELInstance, decision: dict[str, Any]) -> TinyFELEvaluation:
    """Objective, per-constraint violations and per-device breakdown of ``decision``."""
    devices, layers = inst.devices, inst.layers
    K, L = len(devices), len(layers)
    selected_raw = per_device_values(decision, "selected", K)
    layers_raw = per_device_values(decision, "updated_layers", K)
    bandwidth = [float(b) for b in per_device_values(decision, "bandwidth_hz", K)]
    claim = decision.get("round_latency_s")

    total_samples = math.fsum(d.samples for d in devices)
    weights = [d.samples / total_samples for d in devices]
    grad_sq = [layer.grad_sq_bound for layer in layers]
    grad_total = math.fsum(grad_sq)
    param_total = math.fsum(layer.param_bytes for layer in layers)
    downlink_s = (
        0.0 if inst.downlink_rate_bps is None else 8.0 * param_total / inst.downlink_rate_bps
    )

    bad = 0
    selected, updated = [], []
    for a, n in zip(selected_raw, layers_raw):
        on = a is True or (not isinstance(a, bool) and a == 1)
        if not (isinstance(a, bool) or a in (0, 1)):
            bad += 1
        whole = not isinstance(n, bool) and isinstance(n, Real) and float(n).is_integer()
        if on and not (whole and inst.min_updated_layers <= n <= L):
            bad += 1
            on = False
        elif not on and not (whole and n == 0):
            bad += 1
        selected.append(on)
        updated.append(int(n) if on else 0)

    columns: dict[str, list[float]] = {
        key: []
        for key in (
            "compute_s",
            "upload_s",
            "finish_s",
            "latency_floor_s",
            "memory_bytes",
            "upload_bits",
            "rate_bps",
            "ratio",
            "energy_j",
        )
    }
    memory_excess = energy_excess = 0.0
    unbounded = 0
    for k, device in enumerate(devices):
        if not selected[k]:
            for key in columns:
                columns[key].append(0.0)
            continue
        s = L - updated[k] + 1  # first updated layer, 1-based
        flops = _round_flops(inst, s)
        memory = _memory(inst, s)
        bits = 8.0 * math.fsum(layer.param_bytes for layer in layers[s - 1 :]) + inst.header_bits
        snr = device.power_w * device.channel_gain / inst.noise_psd_w_per_hz
        b = bandwidth[k]
        # log1p: log2(1 + x) loses the digits of a small x = snr / b (1 + 1e-15 rounds)
        speed = b * math.log1p(snr / b) / math.log(2.0) if b > 0 else 0.0
        if bits == 0:
            upload = 0.0
        elif speed > 0:
            upload = bits / speed
        else:
            upload = math.inf
            unbounded += 1
        if device.measured is None:
            compute = flops / device.flops_per_s
        else:
            compute = _measured_round_s(inst, device.measured, s)
        memory_excess = max(memory_excess, memory - device.memory_bytes * (1 + MEMORY_SLACK), 0.0)
        energy = 0.0
        if device.energy_budget_j is not None:
            cycles = device.cycles_per_flop
            if device.measured is None:
                energy = device.capacitance * cycles * flops * (cycles * device.flops_per_s) ** 2
            else:  # the dynamic power kappa_e (c f)^3 drawn for the measured compute time
                energy = device.capacitance * (cycles * device.flops_per_s) ** 3 * compute
            energy += device.power_w * upload if bits > 0 else 0.0
            energy_excess = max(energy_excess, energy - device.energy_budget_j)
        for key, value in (
            ("compute_s", compute),
            ("upload_s", upload),
            ("finish_s", compute + upload),
            ("latency_floor_s", compute + bits * math.log(2.0) / snr),
            ("memory_bytes", memory),
            ("upload_bits", bits),
            ("rate_bps", speed),
            ("ratio", _layer_ratio(inst, s)),
            ("energy_j", energy),
        ):
            columns[key].append(value)

    chosen = [k for k in range(K) if selected[k]]
    round_latency = max((columns["finish_s"][k] for k in chosen), default=0.0) + downlink_s
    cover = [math.fsum(weights[k] for k in chosen if j + 1 >= L - updated[k] + 1) for j in range(L)]
    bias = _bias(inst, weights, chosen, columns["ratio"], grad_sq, grad_total, cover)
    noise = _noise(inst, weights, chosen, grad_total)
    budget_value = bias + (noise if inst.include_noise_in_budget else 0.0)
    learning = inst.learning
    rounds = None
    if learning is not None:
        rounds = rounds_needed(
            learning.initial_gap, learning.learning_rate, learning.target_stationarity, bias, noise
        )

    budget = inst.bandwidth_hz
    used = math.fsum(bandwidth)
    p2 = inst.objective == "total_latency"
    violations = {
        "domain": float(bad),
        "min_selected": float(max(0, inst.min_selected - len(chosen))),
        "memory": memory_excess,
        "bias_budget": 0.0 if p2 else max(0.0, budget_value - inst.bias_budget),
        "target": _target_violation(inst, rounds, bias + noise) if p2 else 0.0,
        "bandwidth_budget": max(0.0, used / budget - 1.0),
        "nonnegativity": max([0.0] + [-b / budget for b in bandwidth]),
        "unselected_bandwidth": max(
            [0.0] + [b / budget for k, b in enumerate(bandwidth) if not selected[k]]
        ),
        "finite_latency": float(unbounded),
        "latency": 0.0,
        "rate_cap": 0.0,
        "energy": energy_excess,
    }
    if claim is not None:
        claim = float(claim)
        violations["latency"] = (
            max(0.0, round_latency / claim - 1.0) if claim > 0 else float(round_latency > 0)
        )
        floors = [columns["latency_floor_s"][k] + downlink_s for k in chosen]
        violations["rate_cap"] = max([0.0] + [floor - claim for floor in floors])
    tolerances = {"bandwidth_budget": RELATIVE_TOLERANCE, "latency": RELATIVE_TOLERANCE}
    failed = [name for name, value in violations.items() if value > tolerances.get(name, 0.0)]
    objective = None
    if not failed:
        objective = rounds * round_latency if p2 else round_latency
    return TinyFELEvaluation(
        objective=objective,
        feasible=not failed,
        violations=violations,
        per_device=columns,
        messages=tuple(f"{name} violated by {violations[name]:.6g}" for name in failed),
        round_latency_s=round_latency if math.isfinite(round_latency) else None,
        rounds=rounds,
        bias=bias,
        noise=noise,
        coverage=tuple(cover),
        bandwidth_used_hz=used,
    )


def _round_flops(inst: TinyFELInstance, s: int) -> float:
    """FLOP_n = tau beta [sum_l phiF_l + sum_{l>=s} phiBw_l + sum_{l>s} phiBa_l]."""
    total = 0.0
    for index, layer in enumerate(inst.layers, start=1):
        total += layer.fwd_flops
        if index >= s:
            total += layer.fwd_flops if layer.bwd_weight_flops is None else layer.bwd_weight_flops
        if index > s:
            total += layer.fwd_flops if layer.bwd_act_flops is None else layer.bwd_act_flops
    return inst.local_steps * inst.batch_size * total


def _measured_round_s(inst: TinyFELInstance, measured: Any, s: int) -> float:
    """tau x one measured local step [s]: forward of every layer, weight gradient and update
    of layers s..L, input gradient of layers above s."""
    beta = inst.batch_size
    forward = seconds_per_iteration_loop(measured, ("fwd_ms",), beta)
    trained = seconds_per_iteration_loop(measured, ("bwd_weight_ms", "update_ms"), beta)
    act = seconds_per_iteration_loop(measured, ("bwd_act_ms",), beta)
    step = math.fsum(forward) + math.fsum(trained[s - 1 :]) + math.fsum(act[s:])
    return inst.local_steps * step


def _memory(inst: TinyFELInstance, s: int) -> float:
    """M_n: frozen weights, trainable weights with gradient and optimizer state, saved
    activations of the trained layers and the forward buffer [byte]."""
    total = 0.0
    for index, layer in enumerate(inst.layers, start=1):
        if index < s:
            total += inst.frozen_param_factor * layer.param_bytes
        else:
            total += (1 + inst.optimizer_state_factor) * layer.param_bytes
            total += inst.batch_size * layer.act_factor * layer.in_bytes
    return total + inst.batch_size * max(layer.in_bytes for layer in inst.layers)


def _layer_ratio(inst: TinyFELInstance, s: int) -> float:
    """rho_n of the instance's ratio definition."""
    L = len(inst.layers)
    if inst.ratio_definition == "layer_count":
        return (L - s + 1) / L
    if inst.ratio_definition == "gradient_mass":
        mass = [layer.grad_sq_bound for layer in inst.layers]
    else:
        mass = [layer.param_bytes for layer in inst.layers]
    total = math.fsum(mass)
    return math.fsum(mass[s - 1 :]) / total if total > 0 else (L - s + 1) / L


def _bias(inst, weights, chosen, ratios, grad_sq, grad_total, cover) -> float:
    """The bias measure: normalised bound, or Phi (linear) / Phi_q (quadratic) [unit of G^2]."""
    if inst.aggregation == "normalised":
        return math.fsum(
            g * (4.0 * (1.0 - u) ** 2 if u > 0 else 1.0) for g, u in zip(grad_sq, cover)
        )
    if inst.bias_form == "quadratic":
        return math.fsum(g * (1.0 - u) ** 2 for g, u in zip(grad_sq, cover))
    return grad_total * (1.0 - math.fsum(weights[k] * ratios[k] for k in chosen))


def _noise(
    inst: TinyFELInstance, weights: list[float], chosen: list[int], grad_total: float
) -> float:
    """N(a) [unit of G^2]; 0 without ``learning``."""
    learning = inst.learning
    if learning is None:
        return 0.0
    eta, smooth = learning.learning_rate, learning.smoothness
    spread = math.fsum(weights[k] ** 2 for k in chosen)
    drift = learning.drift_coeff * eta**2 * inst.local_steps**2 * smooth**2 * grad_total
    return eta * smooth * learning.grad_variance / inst.batch_size * spread + drift


def _target_violation(inst: TinyFELInstance, rounds: int | None, floor: float) -> float:
    """Phi + N - epsilon when the target is unreachable (at least the smallest positive float)."""
    if rounds is not None:
        return 0.0
    return max(floor - inst.learning.target_stationarity, sys.float_info.min)
