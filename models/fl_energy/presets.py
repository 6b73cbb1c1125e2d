"""Preset ``fl_energy`` instances: a wireless cell of K devices (illustrative numbers in
the range of the FL energy-allocation literature).

    >>> instance = preset("default", devices=3, seed=1)
    >>> [d.name for d in instance.devices]
    ['ue-0', 'ue-1', 'ue-2']

``default`` is the seeded random family: ``devices`` = K (default 10), ``seed`` (default 0)
for ``numpy.random.default_rng``; the same (K, seed) always gives the same instance. The
band grows with the fleet (:data:`BANDWIDTH_PER_DEVICE_HZ` per device) and the draw ranges
keep every device able to meet the deadline on an equal share, so every member of the
family is feasible.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np

from edgeopt.models.fl_energy.schema import FLEnergyInstance
from edgeopt.models.validation import validate_document

PRESETS = ("default",)
"""Preset names; the first is the model card's example."""

NOISE_PSD_W_PER_HZ = 10 ** ((-174 - 30) / 10)
"""-174 dBm/Hz in W/Hz (3.981e-21)."""

BANDWIDTH_PER_DEVICE_HZ = 1e6
"""B = K * 1 MHz [Hz]."""

ROUND: dict[str, Any] = {"deadline_s": 0.5, "noise_psd_w_per_hz": NOISE_PSD_W_PER_HZ, "local_iterations": 10}
"""Top-level fields of every preset (each can be overridden)."""

CELL_RADIUS_M = (50.0, 500.0)
"""Devices are uniform over this annulus around the access point [m]."""

CYCLES_PER_SAMPLE = (1e4, 3e4)
"""Uniform range of c_k [cycle/sample]."""

SAMPLES = (200, 800)
"""Uniform integer range of D_k [sample]."""

MAX_FREQUENCY_HZ = (1e9, 2e9)
"""Uniform range of f_k^max [Hz]."""

POWER_W = (0.1, 0.2)
"""Uniform range of p_k [W]."""

CAPACITANCE = 1e-27
"""kappa_k [J/(cycle*Hz^2)] of every device."""

UPLOAD_BITS = 1e6
"""s_k [bit]: the same model update for every device (about 31k float32 parameters)."""


def preset_names() -> list[str]:
    """Names accepted by :func:`preset`."""
    return list(PRESETS)


def preset(name: str, devices: int = 10, seed: int = 0, **overrides: Any) -> FLEnergyInstance:
    """A validated preset instance: ``devices`` = K, ``seed`` of the draw, ``overrides``
    replace top-level fields (``deadline_s=0.2``, ``bandwidth_hz=1e7``, ...)."""
    if name not in PRESETS:
        raise ValueError(f"unknown fl_energy preset {name!r}; valid: {', '.join(PRESETS)}")
    if isinstance(devices, bool) or not isinstance(devices, Integral) or devices < 1:
        raise ValueError(f"devices = {devices!r}: must be an integer >= 1")
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise ValueError(f"seed = {seed!r}: must be an integer >= 0")
    allowed = set(FLEnergyInstance.model_fields) - {"model", "version", "devices"}
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise ValueError(f"preset got unknown override(s) {unknown}; allowed: {', '.join(sorted(allowed))}")
    document = {
        "model": "fl_energy",
        "version": 1,
        "devices": wireless_cell(int(devices), int(seed)),
        "bandwidth_hz": BANDWIDTH_PER_DEVICE_HZ * int(devices),
        **ROUND,
        **overrides,
    }
    return validate_document(FLEnergyInstance, document, f"fl_energy preset {name!r}")


def wireless_cell(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` devices drawn with ``numpy.random.default_rng(seed)`` in the order:
    distance, cycles per sample, samples, f^max, power. Path loss 128.1 + 37.6 log10(d / 1 km)
    dB, gain g = 10^(-PL/10)."""
    rng = np.random.default_rng(seed)
    distance = np.sqrt(rng.uniform(CELL_RADIUS_M[0] ** 2, CELL_RADIUS_M[1] ** 2, size=count))
    cycles = rng.uniform(*CYCLES_PER_SAMPLE, size=count)
    samples = rng.integers(SAMPLES[0], SAMPLES[1] + 1, size=count)
    frequency = rng.uniform(*MAX_FREQUENCY_HZ, size=count)
    power = rng.uniform(*POWER_W, size=count)
    loss_db = 128.1 + 37.6 * np.log10(distance / 1000.0)
    return [
        {
            "name": f"ue-{k}",
            "cycles_per_sample": float(cycles[k]),
            "samples": int(samples[k]),
            "max_frequency_hz": float(frequency[k]),
            "capacitance": CAPACITANCE,
            "power_w": float(power[k]),
            "channel_gain": float(10 ** (-loss_db[k] / 10)),
            "upload_bits": UPLOAD_BITS,
            "metadata": {"distance_m": float(distance[k])},
        }
        for k in range(count)
    ]
