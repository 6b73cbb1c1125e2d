"""Canonical JSON instance of TinyFEL, version 1 (spec §3.1), as pydantic models.

Every field is declared once here with its unit, range and meaning; validation errors,
``TinyFELModel.parameters()`` and the docs are all generated from these declarations.
An unknown field is an error naming its path and the nearest known field; free-form
content goes in the ``metadata`` objects (top level, each layer, each device), which are
kept on write and ignored by solvers; writers emit every
field, defaults included.

Decisions the spec leaves open (recorded here, listed in the package docstring):

* ``samples`` is a finite number > 0, not necessarily an integer: it only sets the
  aggregation weights p_k = D_k / sum_j D_j.
* Optional fields without a value are written as ``null`` and ``null`` reads as absent
  (``downlink_rate_bps``, ``learning``, ``energy_budget_j``, ``name``, ...).
* ``include_noise_in_budget = true`` needs ``learning`` (the noise term N(a) uses it).
* ``min_updated_layers`` must be <= L; layer and device names must be unique.
* eta * L_s > 1 is accepted with a ``UserWarning`` (the bound assumes eta <= 1/L_s).
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

from pydantic import Field, model_validator

from edgeopt.models.testbed.measured import Milliseconds, check_layer_names, check_lengths
from edgeopt.models.validation import (
    FieldProblem,
    Flag,
    Integer,
    Number,
    Record,
    field,
    metadata_field,
    require_unique_names,
)


def _label(description: str, default: object = ...) -> object:
    """A non-numeric field (name, switch) with no unit."""
    return Field(default, description=description, json_schema_extra={"unit": "-"})


class Layer(Record):
    """One layer (or block) in forward order; l = L is the output. All work and sizes per sample."""

    name: str = Field(
        min_length=1, description="unique layer name", json_schema_extra={"unit": "-"}
    )
    fwd_flops: Number = field(unit="FLOP", ge=0, description="forward work phiF_l")
    bwd_weight_flops: Number | None = field(
        unit="FLOP",
        ge=0,
        default=None,
        description="weight-gradient work phiBw_l (null: = fwd_flops)",
    )
    bwd_act_flops: Number | None = field(
        unit="FLOP",
        ge=0,
        default=None,
        description="input-gradient work phiBa_l (null: = fwd_flops)",
    )
    param_bytes: Number = field(unit="byte", ge=0, description="parameter storage w_l")
    in_bytes: Number = field(unit="byte", ge=0, description="input activation o_{l-1}")
    act_factor: Number = field(
        ge=0, description="saved-activation multiplier gamma_l (memory kept = gamma_l * o_{l-1})"
    )
    grad_sq_bound: Number = field(
        gt=0, description="layer bound G_l^2 on the squared gradient norm"
    )
    metadata: dict[str, Any] | None = metadata_field()


MEASURED_PHASES = ("fwd_ms", "bwd_weight_ms", "bwd_act_ms", "update_ms")
"""The phases of one local step a TinyFEL ``measured`` object times."""


class MeasuredTimes(Record):
    """Measured training times of one device per layer, per mini-batch (spec extension).

    Replaces ``flops_per_s`` x FLOPs for the device's compute time: a local step with first
    updated layer s takes sum_l fwd_ms + sum_{l>=s} (bwd_weight_ms + update_ms) +
    sum_{l>s} bwd_act_ms milliseconds, scaled linearly from ``batch_size`` to the instance's
    mini-batch; the energy row then uses kappa_e (c_k f_k)^3 x that time. The FLOP model
    stays the default where this object is absent.
    """

    layers: list[str] = Field(
        min_length=1,
        description="layer names, in the instance's layer order",
        json_schema_extra={"unit": "-"},
    )
    batch_size: Integer | None = field(
        unit="sample",
        ge=1,
        default=None,
        description="mini-batch size the times were measured with (null: the instance's batch_size)",
    )
    fwd_ms: list[Milliseconds] = field(unit="ms", description="forward time of each layer")
    bwd_weight_ms: list[Milliseconds] = field(
        unit="ms", description="weight-gradient time of each layer (layers s..L)"
    )
    bwd_act_ms: list[Milliseconds] = field(
        unit="ms", description="input-gradient time of each layer (layers above s)"
    )
    update_ms: list[Milliseconds] | None = field(
        unit="ms",
        default=None,
        description="weight-update time of each layer (null: none, as in the FLOP model)",
    )
    metadata: dict[str, Any] | None = metadata_field()

    @model_validator(mode="after")
    def _one_value_per_layer(self) -> MeasuredTimes:
        check_lengths(self, MEASURED_PHASES)
        return self


class Device(Record):
    """One edge device k."""

    name: str = Field(
        min_length=1, description="unique device name", json_schema_extra={"unit": "-"}
    )
    flops_per_s: Number = field(
        unit="FLOP/s", gt=0, description="effective training throughput f_k"
    )
    memory_bytes: Number = field(unit="byte", gt=0, description="memory available for training M_k")
    samples: Number = field(unit="sample", gt=0, description="local data size D_k (sets p_k)")
    power_w: Number = field(unit="W", gt=0, description="transmit power P_k")
    channel_gain: Number = field(gt=0, description="linear uplink power gain g_k")
    energy_budget_j: Number | None = field(
        unit="J",
        gt=0,
        default=None,
        description="energy budget per round E_k^max (null: no energy row)",
    )
    capacitance: Number | None = field(
        unit="J*s^2/cycle^3",
        gt=0,
        default=None,
        description="effective capacitance kappa_e (energy row)",
    )
    cycles_per_flop: Number | None = field(
        unit="cycle/FLOP", gt=0, default=None, description="CPU cycles per FLOP c_k (energy row)"
    )
    distance_m: Number | None = field(
        unit="m", gt=0, default=None, description="distance to the access point (informational)"
    )
    measured: MeasuredTimes | None = Field(
        None, description="measured per-layer times; replace flops_per_s x FLOPs for this device"
    )
    metadata: dict[str, Any] | None = metadata_field()

    @model_validator(mode="after")
    def _energy_fields(self) -> Device:
        if self.energy_budget_j is not None:
            for name in ("capacitance", "cycles_per_flop"):
                if getattr(self, name) is None:
                    raise FieldProblem((name,), None, "is required when energy_budget_j is set")
        return self


class Learning(Record):
    """Learning constants of the convergence bound (spec §4.3); all in the unit of F."""

    learning_rate: Number = field(
        gt=0, description="step size eta (the bound assumes eta <= 1/L_s)"
    )
    smoothness: Number = field(gt=0, description="smoothness constant L_s")
    grad_variance: Number = field(gt=0, description="per-sample gradient variance sigma^2")
    initial_gap: Number = field(gt=0, description="F(w^0) - F* (Delta)")
    target_stationarity: Number = field(gt=0, description="target average E||grad F||^2 (epsilon)")
    drift_coeff: Number = field(ge=0, default=0.0, description="client-drift coefficient of N(a)")

    @model_validator(mode="after")
    def _step_size(self) -> Learning:
        if self.learning_rate * self.smoothness > 1:
            warnings.warn(
                f"learning.learning_rate * learning.smoothness = "
                f"{self.learning_rate * self.smoothness:g} > 1: the convergence bound assumes "
                "eta <= 1/L_s",
                UserWarning,
                stacklevel=2,
            )
        return self


class TinyFELInstance(Record):
    """A complete TinyFEL instance (canonical JSON, version 1)."""

    model: Literal["tinyfel"] = _label("model id")
    version: Literal[1] = _label("format version")
    layers: list[Layer] = Field(description="layers in forward order (l = L is the output)")
    devices: list[Device] = Field(description="edge devices; order fixes the index k")
    bandwidth_hz: Number = field(unit="Hz", gt=0, description="total uplink bandwidth B (FDMA)")
    noise_psd_w_per_hz: Number = field(
        unit="W/Hz", gt=0, description="noise power spectral density N0"
    )
    batch_size: Integer = field(unit="sample", ge=1, description="mini-batch size beta")
    local_steps: Integer = field(ge=1, description="local iterations per round tau")
    optimizer_state_factor: Number = field(
        ge=0,
        description="optimizer copies per trainable parameter kappa (SGD 1, momentum 2, Adam 3)",
    )
    bias_budget: Number = field(ge=0, description="bias budget epsilon0 of P1 (unit of G^2)")
    min_selected: Integer = field(ge=0, description="minimum number of selected devices K_min")
    objective: Literal["round_latency", "total_latency"] = _label(
        "round_latency (P1: per-round latency under the bias budget) or total_latency (P2)"
    )
    learning: Learning | None = Field(
        None, description="learning constants (required for total_latency)"
    )
    header_bits: Number = field(
        unit="bit", ge=0, default=0.0, description="uplink overhead per upload"
    )
    downlink_rate_bps: Number | None = field(
        unit="bit/s",
        gt=0,
        default=None,
        description="model broadcast rate (null: no downlink term)",
    )
    min_updated_layers: Integer = field(
        ge=1, default=1, description="least updated top layers n_min"
    )
    frozen_param_factor: Number = field(
        ge=0, default=1.0, description="storage of a frozen weight relative to fp32 (0.25: int8)"
    )
    ratio_definition: Literal["gradient_mass", "parameter_mass", "layer_count"] = _label(
        "sparse-update ratio rho_n: G_l^2 mass, parameter mass or n/L", "gradient_mass"
    )
    aggregation: Literal["unnormalised", "normalised"] = _label(
        "layer aggregation: sum of p_k over updating devices, or divided by the coverage",
        "unnormalised",
    )
    bias_form: Literal["linear", "quadratic"] = _label(
        "bias measure: linear Phi or quadratic Phi_q", "linear"
    )
    include_noise_in_budget: Flag = _label("add the noise term N(a) to the bias budget row", False)
    name: str | None = _label("instance name", None)
    description: str | None = _label("free text", None)
    metadata: dict[str, Any] | None = metadata_field()

    @model_validator(mode="after")
    def _structure(self) -> TinyFELInstance:
        for kind, items in (("layers", self.layers), ("devices", self.devices)):
            if not items:
                raise FieldProblem((kind,), [], "must hold at least 1 entry (L >= 1, K >= 1)")
            require_unique_names(kind, items)
        names = [layer.name for layer in self.layers]
        for index, device in enumerate(self.devices):
            if device.measured is not None:
                check_layer_names(device.measured, names, ("devices", index, "measured"))
        if self.min_selected > len(self.devices):
            raise FieldProblem(
                ("min_selected",),
                self.min_selected,
                f"must be <= the number of devices ({len(self.devices)})",
            )
        if self.min_updated_layers > len(self.layers):
            raise FieldProblem(
                ("min_updated_layers",),
                self.min_updated_layers,
                f"must be <= the number of layers ({len(self.layers)})",
            )
        if self.learning is None and self.objective == "total_latency":
            raise FieldProblem(("learning",), None, "is required when objective is 'total_latency'")
        if self.learning is None and self.include_noise_in_budget:
            raise FieldProblem(
                ("learning",), None, "is required when include_noise_in_budget is true"
            )
        return self
