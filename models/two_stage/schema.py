"""Canonical JSON of the two-stage model, version 1 (spec §3.1 instance, §3.4 solution).

Every instance field is declared once here with its unit, range and meaning; validation
errors, ``TwoStageModel.parameters()`` and the docs are generated from these declarations.
An unknown field is an error naming its path and the nearest known field; free-form content
goes in the ``metadata`` objects (top level, each device), kept on write and ignored by
solvers. Writers emit every declared field, defaults included, except the optional
``metadata``, ``name``, ``description``, ``distance_m`` and ``channel_gain_schedule``,
which are written only when given.

Rules of spec §3.1 beyond single-field ranges:

* ``devices[k].weight``: all present or all absent (absent/null on every device reads as
  1/K, written back as numbers); weights > 0 with |sum - 1| <= 1e-9.
* Round caps and batch caps are integers; integral floats such as 4.0 are accepted and
  written back as integers (booleans are rejected).
* ``max_pretrain_rounds + max_finetune_rounds >= 1``; device names unique; K >= 1.
* Size limits (see :data:`MAX_ROUND_CAP`, :data:`MAX_GRID_CELLS`): each round cap <= 100,000
  and (M_max + 1)(N_max + 1) <= 250,000 grid cells.
* ``learning``: eta * L <= 1 is an error (the bound needs it, it is never clipped);
  ``bound = linear_shift`` needs ``grad_bound`` G > 0.
* ``devices[k].channel_gain_schedule`` (extension, §3.3): >= N_max positive gains h_k(n)
  for fine-tuning round n (0-based). Decision left open by the spec: a device without a
  schedule keeps its static ``channel_gain`` in every round, so schedules may be given for
  some devices only.

:func:`read_solution` validates a §3.4 solution document (status-dependent nulls, list
lengths, integer batches, unused-stage zeros, the ``optimal`` gap).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, Strict, model_serializer, model_validator

from edgeopt.models.validation import (
    FieldProblem,
    Number,
    OpenRecord,
    Record,
    field,
    metadata_field,
    require_unique_names,
    validate_document,
)

WEIGHT_SUM_TOLERANCE = 1e-9
"""|sum_k alpha_k - 1| allowed."""

OPTIMALITY_GAP = 1e-6
"""``optimal`` solutions need (objective - bound) <= 1e-6 objective (spec §3.4)."""

MAX_ROUND_CAP = 100_000
"""Size limit on ``max_pretrain_rounds`` and on ``max_finetune_rounds`` (each)."""

MAX_GRID_CELLS = 250_000
"""Size limit on the round grid, (max_pretrain_rounds + 1) * (max_finetune_rounds + 1) cells:
the grid heuristics and baselines prepare every cell before their first time-limit check (about
30 microseconds of CPU time per cell), so a larger grid would overrun any time limit; the §8
preset has 80,601 cells. An instance over a limit is rejected when it is read, before any work,
with an error naming the field and the limit."""


def _integral_float_to_int(value: Any) -> Any:
    """4.0 -> 4 (finite integral floats only); anything else is left for the strict check."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


WholeNumber = Annotated[int, BeforeValidator(_integral_float_to_int), Strict()]
"""An integer; integral floats (4.0) are accepted and stored as int; booleans are rejected."""


def _label(description: str, default: object = ...) -> Any:
    """A non-numeric field (name, switch) with no unit."""
    return Field(default, description=description, json_schema_extra={"unit": "-"})


class Server(Record):
    """The edge server that pre-trains on its stored general data."""

    max_clock_hz: Number = field(unit="cycle/s", gt=0, description="CPU clock cap f_s^max")
    capacitance: Number = field(
        unit="J*s^2/cycle^3", gt=0, description="effective switched capacitance kappa_s"
    )
    cycles_per_sample: Number = field(
        unit="cycle/sample", gt=0, description="CPU cycles per sample (forward + backward) C_s"
    )
    max_batch: WholeNumber = field(unit="sample", ge=1, description="batch cap D^max")


class Device(Record):
    """Edge device k (fine-tuning on its task data, FDMA uplink)."""

    name: str = Field(
        min_length=1, description="unique device name", json_schema_extra={"unit": "-"}
    )
    max_clock_hz: Number = field(unit="cycle/s", gt=0, description="CPU clock cap f_k^max")
    capacitance: Number = field(
        unit="J*s^2/cycle^3", gt=0, description="effective switched capacitance kappa_k"
    )
    cycles_per_sample: Number = field(
        unit="cycle/sample", gt=0, description="CPU cycles per sample (forward + backward) C_k"
    )
    max_power_w: Number = field(unit="W", gt=0, description="uplink transmit power cap P_k^max")
    channel_gain: Number = field(gt=0, description="linear uplink power gain h_k (not dB)")
    bandwidth_hz: Number = field(unit="Hz", gt=0, description="dedicated FDMA bandwidth b_k")
    weight: Number | None = field(
        gt=0, default=None, description="aggregation weight alpha_k (absent on all devices: 1/K)"
    )
    max_batch: WholeNumber = field(unit="sample", ge=1, description="batch cap B_k^max")
    channel_gain_schedule: list[Number] | None = Field(
        None,
        description="extension: gains h_k(n) per fine-tuning round n (>= N_max values > 0)",
        json_schema_extra={"unit": "-"},
    )

    distance_m: Number | None = Field(
        None, gt=0, description="distance to the access point (informational)",
        json_schema_extra={"unit": "m"}, exclude_if=lambda value: value is None,
    )
    metadata: dict[str, Any] | None = metadata_field()

    @model_serializer(mode="wrap")
    def _omit_absent_schedule(self, handler: Any) -> dict[str, Any]:
        """The extension field is written only when given (§3.1 lists the written fields)."""
        data = handler(self)
        if data.get("channel_gain_schedule") is None:
            data.pop("channel_gain_schedule", None)
        return data


class Learning(Record):
    """Constants of the convergence bound (spec §4); [F] is the unit of the loss, [w] of w."""

    learning_rate: Number = field(
        unit="[w]^2/[F]", gt=0, description="SGD step eta (both stages); eta * L <= 1"
    )
    smoothness: Number = field(unit="[F]/[w]^2", gt=0, description="smoothness constant L")
    grad_variance: Number = field(
        unit="[F]^2/[w]^2", ge=0, description="per-sample gradient variance bound sigma^2"
    )
    initial_gap: Number = field(unit="[F]", ge=0, description="F(w_0) - F* (Phi)")
    shift: Number = field(
        unit="[F]/[w]", ge=0, description="data-shift gradient gap delta = rho W_1(P_0, P_task)"
    )
    bound: Literal["squared_shift", "linear_shift"] = _label(
        "bound variant: squared_shift (a1 = delta^2) or linear_shift (§4.3)", "squared_shift"
    )
    grad_bound: Number | None = field(
        unit="[F]/[w]",
        gt=0,
        default=None,
        description="per-sample gradient norm bound G (required by linear_shift)",
    )

    @model_validator(mode="after")
    def _rules(self) -> Learning:
        product = self.learning_rate * self.smoothness
        if product > 1:
            raise FieldProblem(
                ("learning_rate",),
                self.learning_rate,
                f"learning_rate * smoothness = {product:g} must be <= 1 (the bound needs "
                f"eta <= 1/L = {1 / self.smoothness:g})",
            )
        if self.bound == "linear_shift" and self.grad_bound is None:
            raise FieldProblem(
                ("grad_bound",), None, "is required (a number > 0) when bound is 'linear_shift'"
            )
        return self


class TwoStageInstance(Record):
    """A complete two-stage instance (canonical JSON, version 1)."""

    model: Literal["two_stage"] = _label("model id")
    version: Literal[1] = _label("format version")
    server: Server = Field(description="edge server (pre-training)")
    devices: list[Device] = Field(description="edge devices; order fixes the index k")
    noise_psd_w_per_hz: Number = field(
        unit="W/Hz", gt=0, description="noise power spectral density N_0"
    )
    model_bits: Number = field(unit="bit", gt=0, description="size of one uploaded gradient S")
    energy_budget_j: Number = field(
        unit="J", gt=0, description="whole-job energy budget E_max (server + devices)"
    )
    delay_budget_s: Number = field(unit="s", gt=0, description="whole-job delay budget T_max")
    max_pretrain_rounds: WholeNumber = field(
        ge=0, le=MAX_ROUND_CAP, description="cap M_max on pre-training rounds (size limit)"
    )
    max_finetune_rounds: WholeNumber = field(
        ge=0, le=MAX_ROUND_CAP, description="cap N_max on fine-tuning rounds (size limit)"
    )
    learning: Learning = Field(description="constants of the convergence bound")
    name: str | None = Field(
        None, description="instance name", json_schema_extra={"unit": "-"},
        exclude_if=lambda value: value is None,
    )
    description: str | None = Field(
        None, description="free text", json_schema_extra={"unit": "-"},
        exclude_if=lambda value: value is None,
    )
    metadata: dict[str, Any] | None = metadata_field()

    @model_validator(mode="before")
    @classmethod
    def _default_weights(cls, data: Any) -> Any:
        """All weights absent (or null): fill 1/K on a copy (the input is never changed)."""
        if not isinstance(data, dict) or not isinstance(data.get("devices"), list):
            return data
        devices = data["devices"]
        if not devices or not all(isinstance(d, dict) for d in devices):
            return data
        if any(d.get("weight") is not None for d in devices):
            return data
        filled = [{**d, "weight": 1.0 / len(devices)} for d in devices]
        return {**data, "devices": filled}

    @model_validator(mode="after")
    def _structure(self) -> TwoStageInstance:
        if not self.devices:
            raise FieldProblem(("devices",), [], "must hold at least 1 device (K >= 1)")
        require_unique_names("devices", self.devices)
        for index, device in enumerate(self.devices):
            if device.weight is None:
                raise FieldProblem(
                    ("devices", index, "weight"),
                    None,
                    "is required when another device has a weight (all present or all absent)",
                )
        total = math.fsum(d.weight for d in self.devices)
        if abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
            raise FieldProblem(
                ("devices",), total, f"weights must sum to 1 (within 1e-9), got {total!r}"
            )
        if self.max_pretrain_rounds + self.max_finetune_rounds < 1:
            raise FieldProblem(
                ("max_finetune_rounds",),
                self.max_finetune_rounds,
                "max_pretrain_rounds + max_finetune_rounds must be >= 1",
            )
        cells = (self.max_pretrain_rounds + 1) * (self.max_finetune_rounds + 1)
        if cells > MAX_GRID_CELLS:
            raise FieldProblem(
                ("max_pretrain_rounds",),
                self.max_pretrain_rounds,
                f"the round grid (max_pretrain_rounds + 1) * (max_finetune_rounds + 1) = {cells} "
                f"cells exceeds the size limit of {MAX_GRID_CELLS} cells; lower "
                "max_pretrain_rounds or max_finetune_rounds (the delay budget usually allows "
                "far fewer rounds)",
            )
        for index, device in enumerate(self.devices):
            schedule = device.channel_gain_schedule
            if schedule is None:
                continue
            if len(schedule) < self.max_finetune_rounds:
                raise FieldProblem(
                    ("devices", index, "channel_gain_schedule"),
                    f"{len(schedule)} values",
                    f"needs >= max_finetune_rounds = {self.max_finetune_rounds} gains",
                )
            for n, gain in enumerate(schedule):
                if not gain > 0:
                    raise FieldProblem(
                        ("devices", index, "channel_gain_schedule", n), gain, "must be a gain > 0"
                    )
        return self


# ---- solution documents (spec §3.4) --------------------------------------------------------

STATUSES = ("optimal", "feasible", "infeasible", "time_limit", "error")
METHODS = (
    "exact",
    "relaxation",
    "relaxation_per_round",  # extension: the per-round policy (§3.3)
    "sca_grid",
    "coarse_to_fine",
    "baseline_finetune_only",
    "baseline_equal_rounds",
    "baseline_fixed_batch",
    "baseline_split_budget",
    "baseline_max_resource",
)
DECISION_KEYS = (
    "pretrain_rounds",
    "finetune_rounds",
    "pretrain_batch",
    "finetune_batch",
    "server_clock_hz",
    "device_clock_hz",
    "power_w",
)
"""The decision fields of a solution, in document order."""


class PerRound(OpenRecord):
    """Per-round fine-tuning decisions (``per_round`` policy): N x K lists."""

    finetune_batch: list[list[WholeNumber]] = Field(description="B_k(n), N x K")
    device_clock_hz: list[list[Number]] = Field(description="f_k(n) [Hz], N x K")
    power_w: list[list[Number]] = Field(description="p_k(n) [W], N x K")


class TwoStageSolution(OpenRecord):
    """A solution document (spec §3.4). Structural rules are checked by :func:`read_solution`."""

    model: Literal["two_stage"] = _label("model id")
    status: Literal["optimal", "feasible", "infeasible", "time_limit", "error"] = _label("status")
    objective: Number | None = field(ge=0, default=None, description="Psi at the point")
    bound: Number | None = field(default=None, description="proven lower bound or null")
    pretrain_rounds: WholeNumber | None = field(ge=0, default=None, description="M")
    finetune_rounds: WholeNumber | None = field(ge=0, default=None, description="N")
    pretrain_batch: WholeNumber | None = field(
        unit="sample", ge=0, default=None, description="D"
    )
    finetune_batch: list[WholeNumber] = Field(default_factory=list, description="B_k")
    server_clock_hz: Number | None = field(unit="Hz", ge=0, default=None, description="f_s")
    device_clock_hz: list[Number] = Field(default_factory=list, description="f_k [Hz]")
    power_w: list[Number] = Field(default_factory=list, description="p_k [W]")
    energy_j: Number | None = field(unit="J", ge=0, default=None, description="E")
    delay_s: Number | None = field(unit="s", ge=0, default=None, description="T")
    method: Literal[METHODS] = _label("method id")  # type: ignore[valid-type]
    solver: Literal["scip", "clarabel", "ecos", "scipy"] | None = _label("backend or null", None)
    wall_time_s: Number = field(unit="s", ge=0, default=0.0, description="wall time")
    message: str | None = _label("free text", None)
    infeasible_reason: Literal["delay", "energy"] | None = _label("why infeasible", None)
    min_delay_s: Number | None = field(unit="s", ge=0, default=None, description="§5.5")
    min_energy_j: Number | None = field(unit="J", ge=0, default=None, description="§5.5")
    per_round: PerRound | None = Field(None, description="per-round fine-tuning decisions")


def read_solution(document: Any, devices: int | None = None) -> TwoStageSolution:
    """Validate a §3.4 solution document; ``devices`` = K checks the list lengths.

    Raises ``InstanceError`` naming every field that breaks a rule. Feasibility and the
    reported numbers are the evaluator's job (:meth:`TwoStageModel.evaluate`).
    """
    solution = validate_document(TwoStageSolution, document, "two_stage solution")
    try:
        _solution_rules(solution, devices)
    except FieldProblem as problem:
        from edgeopt.models.errors import InstanceError, InstanceIssue
        from edgeopt.models.validation import path_to_string

        issue = InstanceIssue(path_to_string(problem.loc), problem.value, problem.message)
        raise InstanceError(issue, "two_stage solution") from None
    return solution


def _solution_rules(s: TwoStageSolution, devices: int | None) -> None:
    lists = ("finetune_batch", "device_clock_hz", "power_w")
    if s.status == "infeasible":
        for key in ("objective", "bound", *DECISION_KEYS[:3], "server_clock_hz", "energy_j"):
            if getattr(s, key) is not None:
                raise FieldProblem((key,), getattr(s, key), "must be null when infeasible")
        if s.delay_s is not None:
            raise FieldProblem(("delay_s",), s.delay_s, "must be null when infeasible")
        for key in lists:
            if getattr(s, key):
                raise FieldProblem((key,), getattr(s, key), "must be [] when infeasible")
        for key in ("message", "infeasible_reason"):
            if getattr(s, key) is None:
                raise FieldProblem((key,), None, "is required when infeasible")
        return
    if s.pretrain_rounds is None:
        if s.status in ("optimal", "feasible"):
            raise FieldProblem(("pretrain_rounds",), None, f"is required when {s.status}")
        return  # time_limit / error without a point
    for key in ("finetune_rounds", "pretrain_batch", "server_clock_hz", "objective"):
        if getattr(s, key) is None:
            raise FieldProblem((key,), None, "is required with a point")
    M, N = s.pretrain_rounds, s.finetune_rounds
    if M + N < 1:
        raise FieldProblem(("finetune_rounds",), N, "pretrain_rounds + finetune_rounds must be >= 1")
    count = devices if devices is not None else len(s.finetune_batch)
    for key in lists:
        if len(getattr(s, key)) != count:
            raise FieldProblem((key,), getattr(s, key), f"must hold one value per device ({count})")
    if M == 0 and (s.pretrain_batch != 0 or s.server_clock_hz != 0):
        raise FieldProblem(("pretrain_batch",), s.pretrain_batch, "M = 0: batch and clock must be 0")
    if N == 0:
        for key in lists:
            if any(v != 0 for v in getattr(s, key)):
                raise FieldProblem((key,), getattr(s, key), "N = 0: must be zeros")
    if s.per_round is not None:
        for key in lists:
            rows = getattr(s.per_round, key)
            if len(rows) != N or any(len(row) != count for row in rows):
                raise FieldProblem(("per_round", key), f"{len(rows)} rows", f"must be {N} x {count}")
            if N and list(rows[0]) != list(getattr(s, key)):
                raise FieldProblem((key,), getattr(s, key), "must equal per_round round 0")
    if s.status == "optimal":
        if s.bound is None:
            raise FieldProblem(("bound",), None, "is required when optimal")
        if s.objective - s.bound > OPTIMALITY_GAP * abs(s.objective):
            raise FieldProblem(
                ("bound",), s.bound, f"must be within 1e-6 of the objective {s.objective!r}"
            )
