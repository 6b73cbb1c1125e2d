"""Preset TinyFEL instances (spec §7): a wireless cell of K devices training ResNet18 or VGG16
on CIFAR-10 (illustrative [recon] numbers).

    >>> instance = preset("resnet18-cifar10-cell", devices=3, seed=1)
    >>> [d.name for d in instance.devices]
    ['ue-0', 'ue-1', 'ue-2']

Decisions the spec leaves open: preset names ``<network>-cell``; ``seed`` defaults to 0 and
``devices`` to 20; device names ``ue-<k>``; ``distance_m`` is written (informational);
the cell options (radii, shadowing, ...) are keyword arguments of :func:`wireless_cell`,
passed to :func:`preset` as ``cell={...}``; the objective is ``round_latency``.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np

from edgeopt.models.tinyfel.profiles import MIB, tinyfel_layers
from edgeopt.models.tinyfel.schema import TinyFELInstance
from edgeopt.models.validation import validate_document

PRESETS: dict[str, str] = {
    "resnet18-cifar10-cell": "resnet18-cifar10",
    "vgg16-cifar10-cell": "vgg16-cifar10",
}
"""Preset name -> network of :mod:`edgeopt.models.tinyfel.profiles`."""

NOISE_PSD_W_PER_HZ = 10 ** ((-174 - 30) / 10)
"""-174 dBm/Hz in W/Hz (3.981e-21)."""

TRAINING: dict[str, Any] = {
    "bandwidth_hz": 1e7,
    "noise_psd_w_per_hz": NOISE_PSD_W_PER_HZ,
    "batch_size": 32,
    "local_steps": 5,
    "optimizer_state_factor": 2.0,
    "bias_budget": 0.3,
    "min_selected": 1,
    "objective": "round_latency",
    "learning": {
        "learning_rate": 0.05,
        "smoothness": 10.0,
        "grad_variance": 4.0,
        "initial_gap": 2.3,
        "target_stationarity": 0.5,
    },
}
"""Top-level fields of every preset (spec §7); each can be overridden."""

TOTAL_SAMPLES = 50_000
"""CIFAR-10 training set, split evenly: D_k = 50000 // K."""


def preset_names() -> list[str]:
    """Names accepted by :func:`preset`."""
    return list(PRESETS)


def preset(
    name: str,
    devices: int = 20,
    seed: int = 0,
    cell: dict[str, Any] | None = None,
    **overrides: Any,
) -> TinyFELInstance:
    """A validated preset instance: ``devices`` = K, ``seed`` for the cell draw, ``cell`` =
    keyword arguments of :func:`wireless_cell`, ``overrides`` = top-level fields."""
    if name not in PRESETS:
        raise ValueError(f"unknown tinyfel preset {name!r}; valid: {', '.join(PRESETS)}")
    if isinstance(devices, bool) or not isinstance(devices, Integral) or devices < 1:
        raise ValueError(f"devices = {devices!r}: must be an integer >= 1")
    allowed = set(TinyFELInstance.model_fields) - {"model", "version", "layers", "devices"}
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise ValueError(
            f"preset got unknown override(s) {unknown}; allowed: {', '.join(sorted(allowed))}"
        )
    document = {
        "model": "tinyfel",
        "version": 1,
        "name": name,
        "layers": tinyfel_layers(PRESETS[name]),
        "devices": wireless_cell(int(devices), seed, **(cell or {})),
        **TRAINING,
        **overrides,
    }
    return validate_document(TinyFELInstance, document, f"tinyfel preset {name!r}")


def wireless_cell(
    count: int,
    seed: int,
    *,
    min_radius_m: float = 50.0,
    max_radius_m: float = 250.0,
    shadowing_db: float = 0.0,
    power_w: tuple[float, float] = (0.1, 0.2),
    flops_per_s: tuple[float, float] = (1e10, 5e11),
    memory_mib: tuple[int, ...] = (128, 256, 512, 1024),
) -> list[dict[str, Any]]:
    """``count`` devices uniform over the annulus [min_radius_m, max_radius_m] around the
    access point, drawn with ``numpy.random.default_rng(seed)`` in the order: distances,
    shadowing (only if ``shadowing_db`` > 0), power, throughput (log-uniform), memory.

    Path loss 128.1 + 37.6 log10(d / 1 km) dB, gain g = 10^(-PL/10) [-].
    """
    rng = np.random.default_rng(seed)
    distance = np.sqrt(rng.uniform(min_radius_m**2, max_radius_m**2, size=count))
    loss_db = 128.1 + 37.6 * np.log10(distance / 1000.0)
    if shadowing_db > 0:
        loss_db = loss_db + rng.normal(0.0, shadowing_db, size=count)
    power = rng.uniform(*power_w, size=count)
    flops = np.exp(rng.uniform(np.log(flops_per_s[0]), np.log(flops_per_s[1]), size=count))
    memory = rng.choice(np.asarray(memory_mib), size=count)
    return [
        {
            "name": f"ue-{k}",
            "flops_per_s": float(flops[k]),
            "memory_bytes": float(memory[k] * MIB),
            "samples": TOTAL_SAMPLES // count,
            "power_w": float(power[k]),
            "channel_gain": float(10 ** (-loss_db[k] / 10)),
            "distance_m": float(distance[k]),
        }
        for k in range(count)
    ]
