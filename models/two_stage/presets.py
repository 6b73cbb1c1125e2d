"""Preset two-stage instances: the wireless cell of spec §8 and the tiny instances of §7.

    >>> instance = preset("default")
    >>> [round(d.distance_m, 1) for d in instance.devices][:3]
    [50.0, 66.7, 83.3]
    >>> [d.name for d in preset("default", devices=3, seed=7).devices]
    ['ue-0', 'ue-1', 'ue-2']

``default`` (illustrative [recon] numbers of §8): K devices (default 10) sharing 1 MHz by
FDMA (b_k = 1 MHz / K), path loss 128.1 + 37.6 log10(d/1 km) dB, N_0 = -174 dBm/Hz.
Decisions the spec leaves open: without ``seed`` the devices sit on the §8 line
d_k = 50 + 150 (k - 1)/(K - 1) m (K = 1: 50 m); with ``seed`` they are placed uniformly over
the area of the annulus [min_radius_m, max_radius_m] = [50, 200] m of the cell
(``numpy.random.default_rng(seed)``); device names ``ue-<k>``; ``distance_m`` is written as
an extra (informational) device field; weights 1/K; ``grad_bound`` G = 5 is written even for
``squared_shift`` (which ignores it). Top-level fields can be overridden by keyword, and
``learning={...}`` updates single learning constants.

``t1`` .. ``t4``: the known-answer instances of §7 (fixed fleets; T1 at delta = 0).
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np

from edgeopt.models.two_stage.schema import TwoStageInstance
from edgeopt.models.validation import validate_document

NOISE_PSD_W_PER_HZ = 10 ** ((-174 - 30) / 10)
"""-174 dBm/Hz in W/Hz (3.981e-21)."""

CELL_BANDWIDTH_HZ = 1e6
"""Uplink band shared by FDMA: b_k = 1 MHz / K."""

DEFAULT: dict[str, Any] = {
    "server": {"max_clock_hz": 5e9, "capacitance": 1e-28, "cycles_per_sample": 1e6, "max_batch": 256},
    "noise_psd_w_per_hz": NOISE_PSD_W_PER_HZ,
    "model_bits": 7e5,
    "energy_budget_j": 30.0,
    "delay_budget_s": 100.0,
    "max_pretrain_rounds": 400,
    "max_finetune_rounds": 200,
    "learning": {
        "learning_rate": 0.05,
        "smoothness": 10.0,
        "grad_variance": 4.0,
        "initial_gap": 2.3,
        "shift": 0.3,
        "bound": "squared_shift",
        "grad_bound": 5.0,
    },
}
"""Top-level fields of ``default`` (spec §8); each can be overridden."""

DEVICE: dict[str, Any] = {
    "max_clock_hz": 1e9,
    "capacitance": 1e-28,
    "cycles_per_sample": 1e6,
    "max_power_w": 0.1,
    "max_batch": 128,
}
"""Device fields shared by every ``default`` device (spec §8)."""


def _tiny(server, devices, noise, bits, energy, delay, rounds, learning) -> dict[str, Any]:
    """A §7 instance: kappa = 1e-28, b = 1e5 Hz, P^max = 0.1 W everywhere."""
    fleet = [
        {"name": f"d{k}", "max_clock_hz": f, "capacitance": 1e-28, "cycles_per_sample": c,
         "max_power_w": 0.1, "channel_gain": h, "bandwidth_hz": 1e5, "weight": w,
         "max_batch": cap}
        for k, (f, c, h, cap, w) in enumerate(devices)
    ]
    eta, L, s2, phi, delta = learning
    return {
        "server": {"max_clock_hz": server[0], "capacitance": 1e-28, "cycles_per_sample": server[1],
                   "max_batch": server[2]},
        "devices": fleet,
        "noise_psd_w_per_hz": noise,
        "model_bits": bits,
        "energy_budget_j": energy,
        "delay_budget_s": delay,
        "max_pretrain_rounds": rounds[0],
        "max_finetune_rounds": rounds[1],
        "learning": {"learning_rate": eta, "smoothness": L, "grad_variance": s2,
                     "initial_gap": phi, "shift": delta, "bound": "squared_shift",
                     "grad_bound": None},
    }


TINY: dict[str, dict[str, Any]] = {
    "t1": _tiny((1e9, 1e6, 8), [(1e9, 1e6, 1e-9, 4, 1.0)], 1e-20, 1e5, 100.0, 100.0, (10, 10),
                (0.1, 1.0, 1.0, 0.1, 0.0)),
    "t2": _tiny((4e9, 1e7, 128), [(1e9, 1e7, 1.023e-11, 64, 1.0)], 1e-20, 1e5, 1000.0, 3.905,
                (4, 6), (0.1, 1.0, 10.0, 0.1, 0.2)),
    "t3": _tiny((1e9, 1e6, 64), [(1e9, 1e6, 1e-9, 4, 1.0)], 1e-20, 1e5, 0.01, 1.0, (100, 0),
                (0.1, 1.0, 10.0, 0.1, 0.2)),
    "t4": _tiny((5e9, 1e6, 256),
                [(1e9, 1e6, 8.912509381337441e-10, 128, 0.5),
                 (1e9, 1e6, 6.578505108925862e-11, 128, 0.5)],
                3.981071705534986e-21, 7e5, 3.0, 8.0, (20, 10), (0.05, 10.0, 4.0, 2.3, 0.3)),
}
"""The §7 known-answer instances (T1 with delta = 0; the spec varies it)."""


def preset_names() -> list[str]:
    """Names accepted by :func:`preset`."""
    return ["default", *TINY]


def preset(
    name: str,
    devices: int | None = None,
    seed: int | None = None,
    cell: dict[str, Any] | None = None,
    learning: dict[str, Any] | None = None,
    **overrides: Any,
) -> TwoStageInstance:
    """A validated preset: ``devices`` = K and ``seed`` (``default`` only), ``cell`` =
    keyword arguments of :func:`wireless_cell`, ``learning`` = learning constants to change,
    ``overrides`` = other top-level fields."""
    if name not in preset_names():
        raise ValueError(f"unknown two_stage preset {name!r}; valid: {', '.join(preset_names())}")
    allowed = set(TwoStageInstance.model_fields) - {"model", "version", "devices", "learning"}
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise ValueError(
            f"preset got unknown override(s) {unknown}; allowed: {', '.join(sorted(allowed))}"
        )
    if name == "default":
        count = 10 if devices is None else devices
        if isinstance(count, bool) or not isinstance(count, Integral) or count < 1:
            raise ValueError(f"devices = {devices!r}: must be an integer >= 1")
        base = {**DEFAULT, "devices": wireless_cell(int(count), seed, **(cell or {}))}
    else:
        if devices is not None or seed is not None or cell is not None:
            raise ValueError(f"preset {name!r} has a fixed fleet: devices, seed and cell do not apply")
        base = TINY[name]
    document = {
        "model": "two_stage",
        "version": 1,
        "name": name,
        **base,
        **overrides,
        "learning": {**base["learning"], **(learning or {})},
    }
    return validate_document(TwoStageInstance, document, f"two_stage preset {name!r}")


def wireless_cell(
    count: int,
    seed: int | None = None,
    *,
    min_radius_m: float = 50.0,
    max_radius_m: float = 200.0,
    bandwidth_hz: float = CELL_BANDWIDTH_HZ,
) -> list[dict[str, Any]]:
    """``count`` devices of spec §8 at distances from the server's access point: on the line
    min..max radius evenly (``seed`` None) or uniformly over the annulus area (``seed``).

    Path loss 128.1 + 37.6 log10(d / 1 km) dB, gain h = 10^(-PL/10) [-]; b_k = bandwidth/K.
    """
    if seed is None:
        steps = np.arange(count) / max(count - 1, 1)
        distance = min_radius_m + (max_radius_m - min_radius_m) * steps
    else:
        rng = np.random.default_rng(seed)
        distance = np.sqrt(rng.uniform(min_radius_m**2, max_radius_m**2, size=count))
    loss_db = 128.1 + 37.6 * np.log10(distance / 1000.0)
    return [
        {
            "name": f"ue-{k}",
            **DEVICE,
            "channel_gain": float(10 ** (-loss_db[k] / 10)),
            "bandwidth_hz": bandwidth_hz / count,
            "weight": 1.0 / count,
            "distance_m": float(distance[k]),
        }
        for k in range(count)
    ]
