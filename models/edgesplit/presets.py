"""Preset EdgeSplit instances (spec §7.2-7.3): a network profile, a device fleet and a workload.

Illustrative [recon] numbers: device throughputs are effective training rates, far below
peak; real studies should use measured per-layer times.

    >>> instance = preset("vgg16-cifar10-hetero8")
    >>> [d.name for d in instance.devices][:3]
    ['pi-0', 'pi-1', 'nano-2']
    >>> len(preset("resnet18-cifar10-hetero8", devices=3, seed=1).devices)
    3
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from typing import Any

import numpy as np

from edgeopt.models.edgesplit.architectures import layer_profile
from edgeopt.models.edgesplit.schema import EdgeSplitInstance
from edgeopt.models.validation import validate_document


@dataclass(frozen=True)
class DeviceClass:
    """An edge device class: effective training throughput [FLOP/s] and training memory [byte]."""

    flops_per_s: float
    memory_bytes: float


DEVICE_CLASSES: dict[str, DeviceClass] = {
    "pi": DeviceClass(4e9, 1.0e9),  # Raspberry-Pi-4-class CPU
    "nano": DeviceClass(2e10, 2.0e9),  # Jetson-Nano-class
    "tx2": DeviceClass(5e10, 4.0e9),  # Jetson-TX2-class
    "laptop": DeviceClass(2e11, 8.0e9),  # laptop CPU / small GPU
}
"""Device classes of spec §7.2."""

SERVER_FLOPS_PER_S = 1e13
"""Effective edge-server throughput F [FLOP/s] (workstation GPU class)."""

BANDWIDTH_HZ = 2e7
"""Total bandwidth B of the presets [Hz]."""

HETERO8_CLASSES = ("pi", "pi", "nano", "nano", "tx2", "tx2", "laptop", "laptop")
"""Device classes of the 8-device fleet, cycled for other fleet sizes."""

HETERO8_EFFICIENCY = (1.5, 4.5)
"""Spectral efficiency [bit/s/Hz] alternating cell edge / near the access point, cycled."""

FLOPS_JITTER = (0.8, 1.25)
"""Range of the uniform factor applied to a class's FLOP/s in seeded random fleets [-]."""

EFFICIENCY_RANGE = (1.0, 5.0)
"""Range of the uniform spectral efficiency in seeded random fleets [bit/s/Hz]."""


@dataclass(frozen=True)
class Workload:
    """What a preset trains: a network (see ``architectures``), local samples per device,
    mini-batch size [sample] and number of rounds."""

    architecture: str
    samples: int
    batch_size: int
    rounds: int


PRESETS: dict[str, Workload] = {
    "vgg16-cifar10-hetero8": Workload("vgg16-cifar10", samples=6250, batch_size=32, rounds=50),
    "resnet18-cifar10-hetero8": Workload(
        "resnet18-cifar10", samples=6250, batch_size=32, rounds=50
    ),
    "vgg16-imagenet-hetero8": Workload("vgg16-imagenet", samples=640, batch_size=16, rounds=20),
}
"""The presets of spec §7.3."""

OVERRIDABLE = tuple(
    name
    for name in EdgeSplitInstance.model_fields
    if name not in ("model", "version", "layers", "devices")
)
"""Top-level instance fields that :func:`preset` accepts as keyword overrides."""


def preset_names() -> list[str]:
    """Names accepted by :func:`preset`."""
    return list(PRESETS)


def preset(
    name: str, devices: int | None = None, seed: int | None = None, **overrides: Any
) -> EdgeSplitInstance:
    """A validated preset instance.

    ``devices``: fleet size N (default 8). Without ``seed`` the 8-device class and spectral
    efficiency pattern is cycled; with ``seed`` a random heterogeneous fleet is drawn with
    ``numpy.random.default_rng(seed)`` (same seed, same instance). ``overrides`` replace
    top-level fields (``bandwidth_hz=5e7``, ``server_mode="shared"``, ...); bad values raise
    ``InstanceError``.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown edgesplit preset {name!r}; valid: {', '.join(PRESETS)}")
    count = len(HETERO8_CLASSES) if devices is None else devices
    if isinstance(count, bool) or not isinstance(count, Integral) or count < 1:
        raise ValueError(f"devices = {devices!r}: must be an integer >= 1")
    unknown = sorted(set(overrides) - set(OVERRIDABLE))
    if unknown:
        raise ValueError(
            f"preset got unknown override(s) {unknown}; allowed: {', '.join(OVERRIDABLE)}"
        )

    workload = PRESETS[name]
    fleet = cycled_fleet(count) if seed is None else random_fleet(count, seed)
    document = {
        "model": "edgesplit",
        "version": 1,
        "layers": layer_profile(workload.architecture),
        "devices": [dict(device, samples=workload.samples) for device in fleet],
        "server_flops_per_s": SERVER_FLOPS_PER_S,
        "bandwidth_hz": BANDWIDTH_HZ,
        "batch_size": workload.batch_size,
        "rounds": workload.rounds,
        "optimizer_state_factor": 2.0,
        "server_mode": "dedicated",
        "allow_full_local": False,
        "include_sync": True,
    }
    document.update(overrides)
    return validate_document(EdgeSplitInstance, document, f"edgesplit preset {name!r}")


def cycled_fleet(count: int) -> list[dict[str, Any]]:
    """``count`` devices following the 8-device pattern: classes and efficiencies cycled."""
    fleet = []
    for index in range(count):
        kind = HETERO8_CLASSES[index % len(HETERO8_CLASSES)]
        efficiency = HETERO8_EFFICIENCY[index % len(HETERO8_EFFICIENCY)]
        fleet.append(_device(kind, index, DEVICE_CLASSES[kind].flops_per_s, efficiency))
    return fleet


def random_fleet(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` random devices: class uniform over :data:`DEVICE_CLASSES`, its FLOP/s times a
    factor uniform in :data:`FLOPS_JITTER`, spectral efficiency uniform in :data:`EFFICIENCY_RANGE`,
    the class's memory."""
    rng = np.random.default_rng(seed)
    names = list(DEVICE_CLASSES)
    classes = rng.integers(len(names), size=count)
    jitter = rng.uniform(*FLOPS_JITTER, size=count)
    efficiency = rng.uniform(*EFFICIENCY_RANGE, size=count)
    return [
        _device(
            names[k],
            i,
            DEVICE_CLASSES[names[k]].flops_per_s * float(jitter[i]),
            float(efficiency[i]),
        )
        for i, k in enumerate(classes)
    ]


def _device(kind: str, index: int, flops_per_s: float, efficiency: float) -> dict[str, Any]:
    """A device dict named ``<class>-<index>`` (``samples`` is added by :func:`preset`)."""
    return {
        "name": f"{kind}-{index}",
        "flops_per_s": flops_per_s,
        "memory_bytes": DEVICE_CLASSES[kind].memory_bytes,
        "spectral_efficiency": efficiency,
    }
