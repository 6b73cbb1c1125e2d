"""Derived quantities of TinyFEL per device k and option n = 1..L (spec §3.2), as arrays.

Column n - 1 of every (K, L) or (L,) array is the option "update the top n layers"
(first updated layer s = L - n + 1). This module is what solvers use; the evaluator
(:mod:`edgeopt.models.tinyfel.evaluator`) recomputes everything with its own loops.

Decisions the spec leaves open: availability is decided per option (n >= n_min, M_n <= M_k,
finite energy minimum bandwidth), so a non-monotone M_n (frozen_param_factor > 1 + kappa)
cannot admit an option above a failing one; ``n_max`` is the largest available n. The
``parameter_mass`` ratio of a network without parameters falls back to n/L. Memory is
compared with a relative slack of 1e-12.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeopt.models.testbed.measured import seconds_per_iteration
from edgeopt.models.tinyfel import radio
from edgeopt.models.tinyfel.schema import TinyFELInstance

MEMORY_SLACK = 1e-12
"""Relative slack when comparing a memory need with a device's memory (absorbs float error)."""


@dataclass(frozen=True)
class OptionTable:
    """Every (device, option) quantity of spec §3.2; rows are devices, columns n = 1..L.

    Units: FLOP (``flops``, per round), s (``compute_s``, ``downlink_s``), byte
    (``memory_bytes``), bit (``upload_bits``), Hz (``snr_hz``, ``energy_bandwidth_hz``,
    ``bandwidth_hz``), bit/s (``rate_cap_bps``), J (``compute_energy_j``); ``ratio``,
    ``weights``, ``grad_sq``, ``noise_coeff`` and ``noise_const`` are dimensionless (unit
    of G^2 for the last two). ``available`` marks options allowed by n_min, memory and the
    energy row; ``n_max`` is the largest available n per device (0 if none).
    """

    layers_updated: np.ndarray
    first_layer: np.ndarray
    flops: np.ndarray
    compute_s: np.ndarray
    memory_bytes: np.ndarray
    upload_bits: np.ndarray
    ratio: np.ndarray
    fits_memory: np.ndarray
    compute_energy_j: np.ndarray
    energy_bandwidth_hz: np.ndarray
    available: np.ndarray
    n_max: np.ndarray
    weights: np.ndarray
    snr_hz: np.ndarray
    rate_cap_bps: np.ndarray
    grad_sq: np.ndarray
    noise_coeff: np.ndarray
    noise_const: float
    downlink_s: float
    bandwidth_hz: float

    @property
    def latency_floor_s(self) -> np.ndarray:
        """Tcmp + Q ln2 / S [s], (K, L): the rate cap; an option meets latency T only if T
        exceeds it."""
        return self.compute_s + self.upload_bits[None, :] / self.rate_cap_bps[:, None]

    def min_bandwidth(self, latency_s: float) -> np.ndarray:
        """b-hat_k,n(T) [Hz], (K, L): the least bandwidth finishing by T (excluding T_dl),
        the energy minimum included; +inf where the option is unavailable or rate-capped."""
        slack = latency_s - self.compute_s
        bits = np.broadcast_to(self.upload_bits[None, :], slack.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            needed = np.where(slack > 0, bits / slack, np.inf)
        needed = np.where((bits == 0) & (slack >= 0), 0.0, needed)
        snr = np.broadcast_to(self.snr_hz[:, None], slack.shape)
        band = np.full(slack.shape, np.inf)
        finite = np.isfinite(needed)
        band[finite] = radio.min_bandwidth(needed[finite], snr[finite])
        band = np.maximum(band, self.energy_bandwidth_hz)
        return np.where(self.available, band, np.inf)


def build(instance: TinyFELInstance) -> OptionTable:
    """All derived quantities of spec §3.2 for ``instance``."""
    inst = instance
    layers, devices = inst.layers, inst.devices
    count = len(layers)
    fwd = np.array([layer.fwd_flops for layer in layers], dtype=float)
    bwd_w = np.array(
        [_or(layer.bwd_weight_flops, layer.fwd_flops) for layer in layers], dtype=float
    )
    bwd_a = np.array([_or(layer.bwd_act_flops, layer.fwd_flops) for layer in layers], dtype=float)
    weights_b = np.array([layer.param_bytes for layer in layers], dtype=float)
    inputs = np.array([layer.in_bytes for layer in layers], dtype=float)
    saved = np.array([layer.act_factor for layer in layers], dtype=float) * inputs
    grad_sq = np.array([layer.grad_sq_bound for layer in layers], dtype=float)

    n = np.arange(1, count + 1)
    first = count - n + 1
    beta, tau = inst.batch_size, inst.local_steps
    flops = tau * beta * (fwd.sum() + _top(bwd_w) + _top(bwd_a) - bwd_a[first - 1])
    trainable = _top(weights_b)
    memory = (
        inst.frozen_param_factor * (weights_b.sum() - trainable)
        + (1 + inst.optimizer_state_factor) * trainable
        + beta * _top(saved)
        + beta * inputs.max()
    )
    bits = 8.0 * trainable + inst.header_bits
    ratio = _ratio(inst.ratio_definition, grad_sq, weights_b, n, count)

    f = np.array([d.flops_per_s for d in devices], dtype=float)
    mem_avail = np.array([d.memory_bytes for d in devices], dtype=float)
    samples = np.array([d.samples for d in devices], dtype=float)
    p = samples / samples.sum()
    snr = np.array([d.power_w * d.channel_gain for d in devices]) / inst.noise_psd_w_per_hz

    compute_s = flops[None, :] / f[:, None]
    for k, device in enumerate(devices):
        if device.measured is not None:
            compute_s[k] = measured_step_s(device.measured, beta, first) * tau
    fits = memory[None, :] <= mem_avail[:, None] * (1 + MEMORY_SLACK)
    energy_j, energy_band = _energy(inst, flops, compute_s, bits, f, snr)
    available = fits & (n[None, :] >= inst.min_updated_layers) & np.isfinite(energy_band)
    n_max = np.where(available.any(axis=1), count - np.argmax(available[:, ::-1], axis=1), 0)

    learning = inst.learning
    if learning is None:
        noise_coeff, noise_const = np.zeros(len(devices)), 0.0
    else:
        scale = learning.learning_rate * learning.smoothness * learning.grad_variance / beta
        noise_coeff = scale * p**2
        noise_const = (
            learning.drift_coeff
            * learning.learning_rate**2
            * tau**2
            * learning.smoothness**2
            * grad_sq.sum()
        )
    downlink = (
        0.0 if inst.downlink_rate_bps is None else 8.0 * weights_b.sum() / inst.downlink_rate_bps
    )
    return OptionTable(
        layers_updated=n,
        first_layer=first,
        flops=flops,
        compute_s=compute_s,
        memory_bytes=memory,
        upload_bits=bits,
        ratio=ratio,
        fits_memory=fits,
        compute_energy_j=energy_j,
        energy_bandwidth_hz=energy_band,
        available=available,
        n_max=n_max,
        weights=p,
        snr_hz=snr,
        rate_cap_bps=radio.rate_cap(snr),
        grad_sq=grad_sq,
        noise_coeff=noise_coeff,
        noise_const=float(noise_const),
        downlink_s=downlink,
        bandwidth_hz=inst.bandwidth_hz,
    )


def measured_step_s(measured, batch_size: int, first: np.ndarray) -> np.ndarray:
    """Measured time [s] of one local step for each first updated layer s in ``first``:
    forward of every layer, weight gradient and update of s..L, input gradient above s."""
    forward = seconds_per_iteration(measured, ("fwd_ms",), batch_size)
    trained = seconds_per_iteration(measured, ("bwd_weight_ms", "update_ms"), batch_size)
    act = seconds_per_iteration(measured, ("bwd_act_ms",), batch_size)
    return forward.sum() + _top(trained) + _top(act) - act[first - 1]


def _top(values: np.ndarray) -> np.ndarray:
    """sum_{l >= s} values_l for n = 1..L (s = L - n + 1)."""
    return np.cumsum(values[::-1])


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _ratio(
    definition: str, grad_sq: np.ndarray, weights_b: np.ndarray, n: np.ndarray, count: int
) -> np.ndarray:
    """rho_n: share of G^2 (gradient_mass), of parameter bytes (parameter_mass) or n/L above s."""
    if definition == "layer_count":
        return n / count
    mass = grad_sq if definition == "gradient_mass" else weights_b
    total = mass.sum()
    if total == 0:  # parameter_mass of a parameter-free network: fall back to layer count
        return n / count
    return _top(mass) / total


def _energy(
    inst: TinyFELInstance,
    flops: np.ndarray,
    compute_s: np.ndarray,
    bits: np.ndarray,
    f: np.ndarray,
    snr: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(E^cmp [J], bmin^E [Hz]) per (k, n); devices without an energy budget get (0, 0).
    A device with measured times draws the power kappa_e (c_k f_k)^3 for its compute time."""
    shape = (len(inst.devices), len(flops))
    energy = np.zeros(shape)
    band = np.zeros(shape)
    for k, device in enumerate(inst.devices):
        if device.energy_budget_j is None:
            continue
        cycles = device.cycles_per_flop
        if device.measured is None:
            energy[k] = device.capacitance * cycles * flops * (cycles * f[k]) ** 2
        else:
            energy[k] = device.capacitance * (cycles * f[k]) ** 3 * compute_s[k]
        left = device.energy_budget_j - energy[k]
        with np.errstate(divide="ignore"):
            rate_needed = np.where(left > 0, device.power_w * bits / left, np.inf)
        finite = np.isfinite(rate_needed)
        band[k] = np.inf
        band[k, finite] = radio.min_bandwidth(rate_needed[finite], snr[k])
    return energy, band
