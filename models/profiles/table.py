"""The layer table of a profiled network, and its canonical EdgeSplit and TinyFEL layer lists.

Pure Python (no torch): a :class:`LayerProfile` can be saved, loaded and turned into
instance layers on a machine without PyTorch. All sizes and work are **per sample**, fp32
as profiled; times are for one mini-batch of ``batch_size`` samples.

Two saved-activation columns, because the two formats sum them in opposite directions
(a tensor saved by two units, e.g. a block output kept by its own ReLU and by the next
convolution, is counted once in each column):

* ``saved_act_bytes`` counts a tensor in the *first* unit that saves it and leaves out the
  network input: its prefix sums sum_{l <= c} are exactly what a device training units 1..c
  keeps (EdgeSplit's a_l; spec: "input batch not counted").
* ``saved_suffix_bytes`` counts it in the *last* unit that saves it, network input included:
  its suffix sums sum_{l >= s} are exactly what training units s..L keeps (TinyFEL's
  gamma_l * o_{l-1}, so ``act_factor`` = saved_suffix_bytes / in_bytes).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from edgeopt.files import write_text

PROFILE_FORMAT = 1
"""Version of the JSON document written by :meth:`LayerProfile.to_dict`."""


@dataclass(frozen=True)
class UnitProfile:
    """One cut unit of a network (per sample; FLOP, byte; times in s per mini-batch).

    ``bwd_flops`` is the backward work of real training with a fixed input (weight
    gradients, plus input gradients wherever a lower layer needs them);
    ``bwd_weight_flops`` / ``bwd_act_flops`` split the backward work of the unit into
    weight-gradient and input-gradient work (every input gradient of the unit, its own input
    included). ``param_names`` are the qualified names of the parameters the unit uses.
    """

    name: str
    fwd_flops: float
    bwd_flops: float
    bwd_weight_flops: float
    bwd_act_flops: float
    param_bytes: float
    in_bytes: float
    out_bytes: float
    saved_act_bytes: float
    saved_suffix_bytes: float
    param_names: tuple[str, ...] = ()
    fwd_time_s: float | None = None
    bwd_time_s: float | None = None

    @property
    def act_factor(self) -> float:
        """TinyFEL gamma_l: saved activations (suffix convention) per input byte [-]."""
        return self.saved_suffix_bytes / self.in_bytes if self.in_bytes > 0 else 0.0


@dataclass(frozen=True)
class LayerProfile:
    """A network cut into units, in execution order.

    ``batch_size``: samples of the profiled mini-batch (times are for one such batch);
    ``input_bytes``: network input per sample [byte]; ``repeats``: timed runs behind each
    median time (0 when not measured); ``source``: free text (e.g. ``module:factory``).
    """

    units: tuple[UnitProfile, ...]
    batch_size: int
    input_bytes: float
    repeats: int = 0
    source: str | None = None
    torch_version: str | None = None
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.units:
            raise ValueError("a layer profile needs at least one unit")
        names = [unit.name for unit in self.units]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"unit names must be unique; repeated: {duplicates}")

    @property
    def names(self) -> list[str]:
        """Unit names in execution order."""
        return [unit.name for unit in self.units]

    @property
    def measured(self) -> bool:
        """True when every unit has measured forward and backward times."""
        return all(u.fwd_time_s is not None and u.bwd_time_s is not None for u in self.units)

    def effective_flops_per_s(self) -> float:
        """Training throughput of the profiled machine [FLOP/s]: counted forward + backward
        work of one mini-batch over its measured forward + backward time (a device's
        ``flops_per_s``)."""
        if not self.measured:
            raise ValueError("no measured times: profile with measure=True")
        work = self.batch_size * sum(u.fwd_flops + u.bwd_flops for u in self.units)
        seconds = sum(u.fwd_time_s + u.bwd_time_s for u in self.units
                      if u.fwd_time_s is not None and u.bwd_time_s is not None)
        return work / seconds

    def edgesplit_layers(self) -> list[dict[str, Any]]:
        """The canonical EdgeSplit ``layers`` list (spec §3.1): measured backward work and
        saved activations instead of the null defaults (2 x forward, out_bytes)."""
        return [
            {
                "name": u.name,
                "fwd_flops": float(u.fwd_flops),
                "bwd_flops": float(u.bwd_flops),
                "param_bytes": float(u.param_bytes),
                "out_bytes": float(u.out_bytes),
                "saved_act_bytes": float(u.saved_act_bytes),
            }
            for u in self.units
        ]

    def tinyfel_layers(self, grad_sq_bound: list[float] | None = None) -> list[dict[str, Any]]:
        """The canonical TinyFEL ``layers`` list (spec §3.1).

        ``grad_sq_bound``: G_l^2 per unit (> 0); by default the presets' proxy, each unit's
        share of the parameters (G^2 = 1), which needs every unit to have parameters.
        """
        total = sum(u.param_bytes for u in self.units)
        if grad_sq_bound is None:
            empty = [u.name for u in self.units if u.param_bytes <= 0]
            if empty:
                raise ValueError(
                    f"unit(s) {empty} have no parameters, so the default grad_sq_bound "
                    "(parameter share) would be 0 but TinyFEL needs G_l^2 > 0: pass "
                    "grad_sq_bound, or choose blocks that merge them with a neighbour"
                )
            grad_sq_bound = [u.param_bytes / total for u in self.units]
        if len(grad_sq_bound) != len(self.units):
            raise ValueError(
                f"grad_sq_bound has {len(grad_sq_bound)} values; the profile has "
                f"{len(self.units)} units"
            )
        return [
            {
                "name": u.name,
                "fwd_flops": float(u.fwd_flops),
                "bwd_weight_flops": float(u.bwd_weight_flops),
                "bwd_act_flops": float(u.bwd_act_flops),
                "param_bytes": float(u.param_bytes),
                "in_bytes": float(u.in_bytes),
                "act_factor": float(u.act_factor),
                "grad_sq_bound": float(bound),
            }
            for u, bound in zip(self.units, grad_sq_bound, strict=True)
        ]

    def to_frame(self):
        """One row per unit, every column of :class:`UnitProfile` plus ``act_factor``."""
        import pandas as pd

        rows = []
        for unit in self.units:
            row = asdict(unit)
            row["param_names"] = len(unit.param_names)
            row["act_factor"] = unit.act_factor
            rows.append(row)
        return pd.DataFrame(rows).rename(columns={"param_names": "param_tensors"})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document; :meth:`from_dict` reads it back exactly."""
        document = asdict(self)
        document["format"] = PROFILE_FORMAT
        for unit in document["units"]:
            unit["param_names"] = list(unit["param_names"])
        document["notes"] = list(self.notes)
        return document

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> LayerProfile:
        """Read a document written by :meth:`to_dict`."""
        if document.get("format") != PROFILE_FORMAT:
            raise ValueError(
                f"format = {document.get('format')!r}: expected a layer profile of format "
                f"{PROFILE_FORMAT}"
            )
        known = {f.name for f in fields(UnitProfile)}
        units = tuple(
            UnitProfile(
                **{
                    **{k: v for k, v in unit.items() if k in known},
                    "param_names": tuple(unit.get("param_names", ())),
                }
            )
            for unit in document["units"]
        )
        top = {f.name for f in fields(cls)} - {"units", "notes"}
        return cls(
            units=units,
            notes=tuple(document.get("notes", ())),
            **{k: document[k] for k in top if k in document},
        )

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_dict` as JSON, atomically (see :mod:`edgeopt.files`)."""
        write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> LayerProfile:
        """Read a file written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text()))

    def with_times(
        self, fwd_s: list[float], bwd_s: list[float], repeats: int
    ) -> LayerProfile:
        """A copy with measured per-unit times [s per mini-batch]."""
        units = tuple(
            replace(unit, fwd_time_s=float(f), bwd_time_s=float(b))
            for unit, f, b in zip(self.units, fwd_s, bwd_s, strict=True)
        )
        return replace(self, units=units, repeats=repeats)
