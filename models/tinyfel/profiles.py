"""TinyFEL layer profiles of the preset networks and the memory reference table (spec §7).

The per-unit work, parameters and output sizes are EdgeSplit's analytic profiles
(:mod:`edgeopt.models.edgesplit.architectures`); this module only adds what TinyFEL needs:

* ``in_bytes`` o_{l-1}: the previous unit's output (the network input for the first unit);
* ``act_factor`` gamma_l: 1 for the final unit (pool + FC), 7 for a ResNet BasicBlock
  (units named ``layer<s>.<b>``), 3 for every other (conv + BN + ReLU) unit;
* ``grad_sq_bound`` G_l^2 = params_l / sum params (a proxy: the gradient-mass ratio then
  equals the parameter-mass ratio, and G^2 = 1);
* backward FLOP counts ``null`` (= forward).
"""

from __future__ import annotations

from math import prod

import pandas as pd

from edgeopt.models.edgesplit.architectures import BYTES_PER_VALUE, layer_profile

INPUT_SHAPES: dict[str, tuple[int, ...]] = {
    "resnet18-cifar10": (3, 32, 32),
    "vgg16-cifar10": (3, 32, 32),
}
"""Per-sample input tensor of each supported network (channels, height, width)."""

MIB = 2**20
"""Bytes per MiB."""


def act_factor(unit: str, last: bool) -> float:
    """gamma_l of a unit: 1 for the final unit, 7 for a BasicBlock, 3 otherwise [-]."""
    if last:
        return 1.0
    return 7.0 if unit.startswith("layer") else 3.0


def tinyfel_layers(architecture: str) -> list[dict[str, object]]:
    """The canonical TinyFEL ``layers`` list of ``architecture`` (per sample, fp32)."""
    if architecture not in INPUT_SHAPES:
        raise ValueError(f"unknown architecture {architecture!r}; valid: {', '.join(INPUT_SHAPES)}")
    units = layer_profile(architecture)
    total = sum(float(unit["param_bytes"]) for unit in units)
    previous = float(BYTES_PER_VALUE * prod(INPUT_SHAPES[architecture]))
    layers = []
    for index, unit in enumerate(units):
        layers.append(
            {
                "name": unit["name"],
                "fwd_flops": unit["fwd_flops"],
                "bwd_weight_flops": None,
                "bwd_act_flops": None,
                "param_bytes": unit["param_bytes"],
                "in_bytes": previous,
                "act_factor": act_factor(str(unit["name"]), index == len(units) - 1),
                "grad_sq_bound": float(unit["param_bytes"]) / total,
            }
        )
        previous = float(unit["out_bytes"])
    return layers


def memory_table(
    architecture: str,
    batch_size: int = 32,
    optimizer_state_factor: float = 2.0,
    frozen_param_factor: float = 1.0,
) -> pd.DataFrame:
    """The memory reference table of spec §7, computed by the model's own option table.

    One row per unit ``idx`` (1-based); option n = L - idx + 1 updates units idx..L.
    Columns: ``uplink_mib`` = Q_n/8 [MiB], ``memory_mib`` = M_n [MiB], ``memory_pct`` =
    100 M_n/M_L [%], ``gflop_per_iter`` = FLOP_n/tau [GFLOP] (one local iteration).
    """
    from edgeopt.models.tinyfel.model import TinyFELModel

    layers = tinyfel_layers(architecture)
    model = TinyFELModel.from_dict(
        {
            "model": "tinyfel",
            "version": 1,
            "layers": layers,
            "devices": [
                {
                    "name": "probe",
                    "flops_per_s": 1.0,
                    "memory_bytes": 1.0,
                    "samples": 1,
                    "power_w": 1.0,
                    "channel_gain": 1.0,
                }
            ],
            "bandwidth_hz": 1.0,
            "noise_psd_w_per_hz": 1.0,
            "batch_size": batch_size,
            "local_steps": 1,
            "optimizer_state_factor": optimizer_state_factor,
            "bias_budget": 1.0,
            "min_selected": 0,
            "objective": "round_latency",
            "frozen_param_factor": frozen_param_factor,
        }
    )
    table = model.options
    count = len(layers)
    rows = []
    for idx, layer in enumerate(layers, start=1):
        n = count - idx + 1
        rows.append(
            {
                "idx": idx,
                "unit": layer["name"],
                "fwd_flops": layer["fwd_flops"],
                "params": float(layer["param_bytes"]) / BYTES_PER_VALUE,
                "in_bytes": layer["in_bytes"],
                "act_factor": layer["act_factor"],
                "n": n,
                "uplink_mib": table.upload_bits[n - 1] / 8 / MIB,
                "memory_mib": table.memory_bytes[n - 1] / MIB,
                "memory_pct": 100 * table.memory_bytes[n - 1] / table.memory_bytes[-1],
                "gflop_per_iter": table.flops[n - 1] / 1e9,
            }
        )
    return pd.DataFrame(rows)
