"""Canonical JSON instance of EdgeSplit, version 1 (spec §3.1), as pydantic models.

Every field is declared once here with its unit, range and meaning; validation errors,
``EdgeSplitModel.parameters()`` and the docs are all generated from these declarations.
An unknown field is an error naming its path and the nearest known field; free-form
content goes in the ``metadata`` objects (top level, each layer, each device), which are
kept on write and ignored by solvers.
"""

from __future__ import annotations

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


class Layer(Record):
    """One layer (or block) of the network, in execution order; all sizes per sample."""

    name: str = Field(min_length=1, description="unique layer name", json_schema_extra={"unit": "-"})
    fwd_flops: Number = field(unit="FLOP", ge=0, description="forward work per sample")
    bwd_flops: Number | None = field(
        unit="FLOP", ge=0, default=None, description="backward work per sample (null: 2 x forward)"
    )
    param_bytes: Number = field(unit="byte", ge=0, description="parameter storage")
    out_bytes: Number = field(unit="byte", ge=0, description="output activation per sample")
    saved_act_bytes: Number | None = field(
        unit="byte", ge=0, default=None, description="activations kept for backward (null: out_bytes)"
    )
    metadata: dict[str, Any] | None = metadata_field()


MEASURED_PHASES = ("fwd_ms", "bwd_ms", "update_ms")
"""The phases of one training iteration an EdgeSplit ``measured`` object times."""


class MeasuredTimes(Record):
    """Measured training times of one machine per layer, per mini-batch (spec extension).

    Replaces ``flops_per_s`` x FLOPs for that machine: an iteration trains layer l in
    fwd_ms + bwd_ms (+ update_ms) milliseconds, scaled linearly from ``batch_size`` to the
    instance's mini-batch. The FLOP model stays the default where this object is absent.
    """

    layers: list[str] = Field(
        min_length=1, description="layer names, in the instance's layer order", json_schema_extra={"unit": "-"}
    )
    batch_size: Integer | None = field(
        unit="sample", ge=1, default=None,
        description="mini-batch size the times were measured with (null: the instance's batch_size)",
    )
    fwd_ms: list[Milliseconds] = field(unit="ms", description="forward time of each layer per mini-batch")
    bwd_ms: list[Milliseconds] = field(unit="ms", description="backward time of each layer per mini-batch")
    update_ms: list[Milliseconds] | None = field(
        unit="ms", default=None,
        description="weight-update time of each layer per mini-batch (null: none, as in the FLOP model)",
    )
    metadata: dict[str, Any] | None = metadata_field()

    @model_validator(mode="after")
    def _one_value_per_layer(self) -> MeasuredTimes:
        check_lengths(self, MEASURED_PHASES)
        return self


class Device(Record):
    """One edge device."""

    name: str = Field(min_length=1, description="unique device name", json_schema_extra={"unit": "-"})
    flops_per_s: Number = field(unit="FLOP/s", gt=0, description="effective training throughput")
    memory_bytes: Number = field(unit="byte", ge=0, description="memory available for training")
    spectral_efficiency: Number = field(unit="bit/s/Hz", gt=0, description="link rate per Hz")
    samples: Integer = field(unit="sample", ge=1, description="local training samples")
    measured: MeasuredTimes | None = Field(
        None, description="measured per-layer times; replace flops_per_s x FLOPs for this device"
    )
    metadata: dict[str, Any] | None = metadata_field()


class Convergence(Record):
    """Optional target accuracy that replaces ``rounds`` by R(epsilon) (spec §4.3)."""

    epsilon: Number = field(gt=0, description="target min_r E||grad f||^2")
    smoothness: Number = field(gt=0, description="smoothness constant L_f")
    variance: Number = field(ge=0, description="aggregated per-round gradient noise sigma^2")
    initial_gap: Number = field(gt=0, description="f(x_0) - inf f (Delta)")
    learning_rate: Number | None = field(
        gt=0, default=None, description="step size gamma <= 1/L_f (null: optimal gamma*)"
    )

    @model_validator(mode="after")
    def _step_within_smoothness(self) -> Convergence:
        if self.learning_rate is not None and self.learning_rate > 1.0 / self.smoothness * (1 + 1e-12):
            raise FieldProblem(
                ("learning_rate",),
                self.learning_rate,
                f"must be <= 1/smoothness = {1.0 / self.smoothness:g}",
            )
        return self


class EdgeSplitInstance(Record):
    """A complete EdgeSplit instance (canonical JSON, version 1)."""

    model: Literal["edgesplit"] = Field(description="model id", json_schema_extra={"unit": "-"})
    version: Literal[1] = Field(description="format version", json_schema_extra={"unit": "-"})
    layers: list[Layer] = Field(min_length=1, description="network layers in execution order")
    devices: list[Device] = Field(min_length=1, description="edge devices; order fixes the index i")
    server_flops_per_s: Number = field(unit="FLOP/s", gt=0, description="effective server throughput F")
    bandwidth_hz: Number = field(unit="Hz", gt=0, description="total bandwidth B (uplink + downlink)")
    batch_size: Integer = field(unit="sample", ge=1, description="mini-batch size beta")
    rounds: Integer = field(ge=1, description="training rounds R (replaced by R(epsilon) with convergence)")
    optimizer_state_factor: Number = field(
        ge=0, default=2.0, description="weight-sized buffers besides the weights (1 SGD, 2 momentum, 3 Adam)"
    )
    server_mode: Literal["dedicated", "shared"] = Field(
        "dedicated", description="server throughput per device: full (dedicated) or split (shared)",
        json_schema_extra={"unit": "-"},
    )
    allow_full_local: Flag = Field(False, description="allow cut c = L", json_schema_extra={"unit": "-"})
    include_sync: Flag = Field(
        True, description="count per-round upload + download of device-side weights", json_schema_extra={"unit": "-"}
    )
    convergence: Convergence | None = Field(None, description="optional target accuracy (spec §4.3)")
    server_measured: MeasuredTimes | None = Field(
        None,
        description="measured per-layer server times at the full F; replace server_flops_per_s x FLOPs",
    )
    metadata: dict[str, Any] | None = metadata_field()

    @model_validator(mode="after")
    def _structure(self) -> EdgeSplitInstance:
        minimum = 1 if self.allow_full_local else 2
        if len(self.layers) < minimum:
            raise FieldProblem(
                ("layers",),
                f"{len(self.layers)} layer(s)",
                f"needs >= {minimum} layers ({'with' if self.allow_full_local else 'without'} allow_full_local)",
            )
        for kind, items in (("layers", self.layers), ("devices", self.devices)):
            require_unique_names(kind, items)
        names = [layer.name for layer in self.layers]
        for index, device in enumerate(self.devices):
            if device.measured is not None:
                check_layer_names(device.measured, names, ("devices", index, "measured"))
        if self.server_measured is not None:
            check_layer_names(self.server_measured, names, ("server_measured",))
        return self
