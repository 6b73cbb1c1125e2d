"""Canonical JSON instance of ``fl_energy``, version 1, as pydantic models.

Every field is declared once here with its unit, range and meaning; validation errors,
``FLEnergyModel.parameters()`` and the docs are generated from these declarations. An
unknown field is an error naming its path and the nearest known field; free-form content
goes in the ``metadata`` objects (top level and each device), which solvers ignore. The
format is described in ``FORMAT.md`` next to this module.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from edgeopt.models.validation import (
    Integer,
    Number,
    Record,
    field,
    metadata_field,
    require_unique_names,
)


class Device(Record):
    """One device k of the federated-learning round."""

    name: str = Field(min_length=1, description="unique device name", json_schema_extra={"unit": "-"})
    cycles_per_sample: Number = field(
        unit="cycle/sample", gt=0, description="CPU cycles c_k to process one sample once"
    )
    samples: Integer = field(unit="sample", ge=1, description="local training samples D_k")
    local_iterations: Integer | None = field(
        ge=1, default=None, description="local passes I_k over the data per round (null: the top-level value)"
    )
    max_frequency_hz: Number = field(unit="Hz", gt=0, description="highest CPU frequency f_k^max")
    capacitance: Number = field(
        unit="J/(cycle*Hz^2)", gt=0,
        description="effective switched capacitance kappa_k: one cycle at f costs kappa_k f^2 J",
    )
    power_w: Number = field(unit="W", gt=0, description="transmit power p_k")
    channel_gain: Number = field(gt=0, description="uplink channel power gain g_k (path loss, linear)")
    upload_bits: Number = field(unit="bit", gt=0, description="size s_k of the local update sent per round")
    metadata: dict[str, Any] | None = metadata_field()


class FLEnergyInstance(Record):
    """A complete ``fl_energy`` instance (canonical JSON, version 1)."""

    model: Literal["fl_energy"] = Field(description="model id", json_schema_extra={"unit": "-"})
    version: Literal[1] = Field(description="format version", json_schema_extra={"unit": "-"})
    devices: list[Device] = Field(min_length=1, description="devices; the order fixes the index k")
    deadline_s: Number = field(unit="s", gt=0, description="round deadline T: compute + upload of every device")
    bandwidth_hz: Number = field(unit="Hz", gt=0, description="total uplink bandwidth B shared by the devices")
    noise_psd_w_per_hz: Number = field(unit="W/Hz", gt=0, description="noise power spectral density N0")
    local_iterations: Integer = field(ge=1, description="local passes I over the data per round (every device)")
    metadata: dict[str, Any] | None = metadata_field()

    @model_validator(mode="after")
    def _unique_names(self) -> FLEnergyInstance:
        require_unique_names("devices", self.devices)
        return self
