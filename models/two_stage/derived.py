"""Derived quantities of spec §3.2 as NumPy arrays and vectorised formulas (for solvers).

:class:`Derived` holds the instance as arrays (per device, shape (K,)) plus the caps
tau_k^min, e_k^inf and the per-round gains; the module functions broadcast over any shapes
(per device along the last axis). SI units throughout: s, J, Hz (cycle/s), W, bit.

    server round:   t_s = C_s D / f_s,        e_s = kappa_s C_s D f_s^2 = A_s / t_s^2
    device compute: t_k = C_k B_k / f_k,      e_k^cmp = kappa_k C_k B_k f_k^2 = A_k / t_k^2
    uplink:         r_k = b_k log2(1 + p_k h_k/(N_0 b_k)),  tau_k = S / r_k,  e_k^com = p_k tau_k
    inverse:        p_k(tau) = (N_0 b_k/h_k) expm1(ln2 S/(b_k tau)),  phi_k(tau) = tau p_k(tau)
    caps:           tau_k^min = S / r_k(P_k^max),  e_k^inf = N_0 S ln2 / h_k
    totals:         E = M e_s + N sum_k (e_k^cmp + e_k^com),  T = M t_s + N max_k (t_k + tau_k)

with A_s = kappa_s C_s^3 D^3 and A_k = kappa_k C_k^3 B_k^3 ("energy-time constants", J s^2).
A stage with zero rounds contributes nothing (its batch and clock may be 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgeopt.models.two_stage.schema import TwoStageInstance

LN2 = math.log(2.0)


@dataclass(frozen=True)
class Derived:
    """The instance as arrays. Per-device arrays have shape (K,); ``gains`` is (N_max, K):
    h_k(n) per fine-tuning round (the static gain repeated when a device has no schedule).

    Units: ``*_clock_hz`` cycle/s; ``*capacitance`` J s^2/cycle^3; ``*cycles`` cycle/sample;
    ``max_power_w`` W; ``bandwidth_hz`` Hz; ``noise_w_per_hz`` W/Hz; ``bits`` bit;
    ``tau_min_s`` s; ``energy_inf_j`` J; ``rate_max_bps`` bit/s; budgets J and s.
    """

    server_clock_hz: float
    server_capacitance: float
    server_cycles: float
    server_max_batch: int
    device_clock_hz: np.ndarray
    device_capacitance: np.ndarray
    device_cycles: np.ndarray
    max_power_w: np.ndarray
    channel_gain: np.ndarray
    bandwidth_hz: np.ndarray
    weights: np.ndarray
    device_max_batch: np.ndarray
    gains: np.ndarray
    noise_w_per_hz: float
    bits: float
    energy_budget_j: float
    delay_budget_s: float
    max_pretrain_rounds: int
    max_finetune_rounds: int
    rate_max_bps: np.ndarray
    tau_min_s: np.ndarray
    energy_inf_j: np.ndarray

    @property
    def n_devices(self) -> int:
        return int(self.device_clock_hz.size)

    @property
    def time_varying(self) -> bool:
        """True when some device has a ``channel_gain_schedule`` that differs from h_k."""
        return bool(np.any(self.gains != self.channel_gain[None, :]))

    # ---- per-round costs ---------------------------------------------------------------
    def server_time(self, batch, clock_hz) -> np.ndarray:
        """t_s = C_s D / f_s [s]."""
        return self.server_cycles * np.asarray(batch, float) / np.asarray(clock_hz, float)

    def server_energy(self, batch, clock_hz) -> np.ndarray:
        """e_s = kappa_s C_s D f_s^2 [J] per round."""
        f = np.asarray(clock_hz, float)
        return self.server_capacitance * self.server_cycles * np.asarray(batch, float) * f * f

    def server_energy_time_constant(self, batch) -> np.ndarray:
        """A_s = kappa_s C_s^3 D^3 [J s^2]: e_s = A_s / t_s^2."""
        return self.server_capacitance * (self.server_cycles * np.asarray(batch, float)) ** 3

    def device_time(self, batch, clock_hz) -> np.ndarray:
        """t_k = C_k B_k / f_k [s] (last axis = devices)."""
        return self.device_cycles * np.asarray(batch, float) / np.asarray(clock_hz, float)

    def device_energy(self, batch, clock_hz) -> np.ndarray:
        """e_k^cmp = kappa_k C_k B_k f_k^2 [J] per round."""
        f = np.asarray(clock_hz, float)
        return self.device_capacitance * self.device_cycles * np.asarray(batch, float) * f * f

    def device_energy_time_constant(self, batch) -> np.ndarray:
        """A_k = kappa_k C_k^3 B_k^3 [J s^2]: e_k^cmp = A_k / t_k^2."""
        return self.device_capacitance * (self.device_cycles * np.asarray(batch, float)) ** 3

    def rate(self, power_w, gain=None) -> np.ndarray:
        """r_k = b_k log2(1 + p_k h_k/(N_0 b_k)) [bit/s]; ``gain`` defaults to h_k."""
        h = self.channel_gain if gain is None else np.asarray(gain, float)
        snr = np.asarray(power_w, float) * h / (self.noise_w_per_hz * self.bandwidth_hz)
        return self.bandwidth_hz * np.log1p(snr) / LN2

    def upload_time(self, power_w, gain=None) -> np.ndarray:
        """tau_k = S / r_k [s]."""
        return self.bits / self.rate(power_w, gain)

    def power_for_time(self, tau_s, gain=None) -> np.ndarray:
        """p_k(tau) = (N_0 b_k/h_k) expm1(ln2 S/(b_k tau)) [W], clipped to P_k^max (the
        inverse can exceed it by an ulp at tau = tau_k^min). Never call below tau_k^min."""
        h = self.channel_gain if gain is None else np.asarray(gain, float)
        scale = self.noise_w_per_hz * self.bandwidth_hz / h
        power = scale * np.expm1(LN2 * self.bits / (self.bandwidth_hz * np.asarray(tau_s, float)))
        return np.minimum(power, self.max_power_w)

    def upload_energy(self, tau_s, gain=None) -> np.ndarray:
        """phi_k(tau) = tau p_k(tau) [J] (convex, decreasing, -> e_k^inf as tau -> inf)."""
        return upload_energy(
            np.asarray(tau_s, float), self._scale(gain), self.bits, self.bandwidth_hz
        )

    def _scale(self, gain=None) -> np.ndarray:
        h = self.channel_gain if gain is None else np.asarray(gain, float)
        return self.noise_w_per_hz * self.bandwidth_hz / h

    # ---- whole-job totals (stage-constant policy, static channels) -----------------------
    def totals(self, M, N, D, f_s, B, f, p) -> tuple[np.ndarray, np.ndarray]:
        """(E [J], T [s]) of a stage-constant decision with static channels, vectorised:
        M, N, D, f_s broadcast together; B, f, p carry devices on the last axis. A stage with
        zero rounds contributes 0 whatever its batch and clock (0 allowed there)."""
        M, N = np.asarray(M, float), np.asarray(N, float)
        with np.errstate(divide="ignore", invalid="ignore"):
            t_s = np.where(M > 0, self.server_time(D, f_s), 0.0)
            e_s = np.where(M > 0, self.server_energy(D, f_s), 0.0)
            busy = N[..., None] > 0
            t_k = np.where(busy, self.device_time(B, f), 0.0)
            tau = np.where(busy, self.upload_time(p), 0.0)
            e_k = np.where(busy, self.device_energy(B, f) + np.asarray(p, float) * tau, 0.0)
        energy = M * e_s + N * e_k.sum(axis=-1)
        delay = M * t_s + N * (t_k + tau).max(axis=-1)
        return energy, delay

    # ---- feasibility floors ------------------------------------------------------------
    def min_server_time(self, batch) -> np.ndarray:
        """C_s D / f_s^max [s]: the fastest pre-training round."""
        return self.server_cycles * np.asarray(batch, float) / self.server_clock_hz

    def min_round_time(self, batch, gain=None) -> np.ndarray:
        """u^min = max_k (C_k B_k / f_k^max + tau_k^min) [s]: the fastest fine-tuning round
        (``gain``: h_k of that round, default static)."""
        tau = self.tau_min_s if gain is None else self.upload_time(self.max_power_w, gain)
        t = self.device_cycles * np.asarray(batch, float) / self.device_clock_hz
        return (t + tau).max(axis=-1)


def upload_energy(tau_s: np.ndarray, scale: np.ndarray, bits: float, bandwidth_hz) -> np.ndarray:
    """phi(tau) = scale * tau * expm1(ln2 S / (b tau)) [J] with scale = N_0 b / h [W]."""
    return scale * tau_s * np.expm1(LN2 * bits / (bandwidth_hz * tau_s))


def upload_energy_slope(tau_s: np.ndarray, scale: np.ndarray, bits: float, bandwidth_hz):
    """phi'(tau) = scale [expm1(y) - y e^y], y = ln2 S/(b tau) [J/s] (< 0). For y < 1e-2 the
    series -sum_{n>=2} (n-1) y^n / n! avoids the cancellation."""
    y = LN2 * bits / (bandwidth_hz * tau_s)
    small = y < 1e-2
    ys = np.where(small, y, 0.0)
    series = -(ys**2) * (0.5 + ys * (1 / 3 + ys * (1 / 8 + ys * (1 / 30 + ys / 144))))
    yl = np.where(small, 1.0, y)
    direct = np.expm1(yl) - yl * np.exp(yl)
    return scale * np.where(small, series, direct)


def upload_energy_curvature(tau_s: np.ndarray, scale: np.ndarray, bits: float, bandwidth_hz):
    """phi''(tau) = scale y^2 e^y / tau [J/s^2] (> 0: phi is convex, identity I8)."""
    y = LN2 * bits / (bandwidth_hz * tau_s)
    return scale * y * y * np.exp(y) / tau_s


def build(inst: TwoStageInstance) -> Derived:
    """All arrays of :class:`Derived` from a validated instance."""
    devices = inst.devices
    K, n_max = len(devices), inst.max_finetune_rounds

    def column(name: str) -> np.ndarray:
        return np.array([float(getattr(d, name)) for d in devices])

    gain = column("channel_gain")
    gains = np.empty((n_max, K))
    for k, d in enumerate(devices):
        schedule = d.channel_gain_schedule
        gains[:, k] = gain[k] if schedule is None else np.asarray(schedule[:n_max], float)
    noise, bits = inst.noise_psd_w_per_hz, inst.model_bits
    band, power = column("bandwidth_hz"), column("max_power_w")
    rate_max = band * np.log1p(power * gain / (noise * band)) / LN2
    server = inst.server
    return Derived(
        server_clock_hz=server.max_clock_hz,
        server_capacitance=server.capacitance,
        server_cycles=server.cycles_per_sample,
        server_max_batch=server.max_batch,
        device_clock_hz=column("max_clock_hz"),
        device_capacitance=column("capacitance"),
        device_cycles=column("cycles_per_sample"),
        max_power_w=power,
        channel_gain=gain,
        bandwidth_hz=band,
        weights=column("weight"),
        device_max_batch=np.array([d.max_batch for d in devices], dtype=int),
        gains=gains,
        noise_w_per_hz=noise,
        bits=bits,
        energy_budget_j=inst.energy_budget_j,
        delay_budget_s=inst.delay_budget_s,
        max_pretrain_rounds=inst.max_pretrain_rounds,
        max_finetune_rounds=n_max,
        rate_max_bps=rate_max,
        tau_min_s=bits / rate_max,
        energy_inf_j=noise * bits * LN2 / gain,
    )
