"""The model contract: declared parameters, variables, constraints, and an independent evaluator.

A concrete model (one per paper) subclasses :class:`Model`. It is built from a validated
instance (JSON document, file, keyword arguments or preset), declares what it optimises,
exposes its SymPy convergence terms, and re-checks any decision with :meth:`Model.evaluate`,
which uses the model's own NumPy code and knows nothing about any solver.
"""

from __future__ import annotations

import hashlib
import html
import importlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import BaseModel

from edgeopt.files import write_text
from edgeopt.models.paths import check_path, get_field, set_fields
from edgeopt.models.validation import describe_allowed, validate_document


@dataclass(frozen=True)
class VariableSpec:
    """A decision variable: ``domain`` is 'integer', 'binary' or 'continuous'."""

    name: str
    domain: str
    shape: str
    unit: str
    description: str


@dataclass(frozen=True)
class ConstraintSpec:
    """A constraint family; ``name`` is the key used in :attr:`Evaluation.violations`."""

    name: str
    statement: str
    unit: str


@dataclass(frozen=True)
class Infeasibility:
    """Why an instance has no feasible point: a reason code, a message and the numbers."""

    reason: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    solution_fields: dict[str, Any] = field(default_factory=dict)
    """Fields the model's solution format puts at the top level of an infeasible solution
    (two_stage §3.4: ``min_delay_s``, ``min_energy_j``)."""


@dataclass(frozen=True)
class SizeLimit:
    """A documented limit: ``what`` is limited (a field or a quantity of fields), ``limit``
    the largest accepted value, ``enforced`` where and how (rejected on reading, or a method
    that declines), ``why`` the cost the limit keeps in bounds."""

    what: str
    limit: str
    enforced: str
    why: str


@dataclass(frozen=True)
class Evaluation:
    """What :meth:`Model.evaluate` found for one decision.

    ``violations`` maps each constraint name to its violation (0 when satisfied; in the
    constraint's unit, relative for budgets); ``per_device`` holds per-device arrays;
    ``feasible`` is true when every violation is within the model's tolerance.
    """

    objective: float | None
    feasible: bool
    violations: dict[str, float]
    per_device: dict[str, list[float]]
    messages: tuple[str, ...] = ()

    def __repr__(self) -> str:
        state = "feasible" if self.feasible else "INFEASIBLE"
        worst = {k: v for k, v in self.violations.items() if v > 0}
        text = f"Evaluation({state}, objective={self.objective!r}"
        if worst:
            text += f", violations={worst}"
        return text + ")"


@dataclass(frozen=True)
class Example:
    """A small instance the registry-generated cross-checks solve with every method.

    ``infeasible_reason`` is the reason code :meth:`Model.infeasibility` must give when the
    example is built to have no feasible point (``None`` for a feasible example).
    """

    name: str
    model: Model
    infeasible_reason: str | None = None


def per_device_values(decision: dict[str, Any], key: str, count: int) -> list[Any]:
    """``decision[key]`` as a list of one value per device; ``ValueError`` naming the key if
    it is missing or has the wrong length."""
    values = decision.get(key)
    if values is None or len(values) != count:
        found = "missing" if values is None else f"length {len(values)}"
        raise ValueError(f"decision[{key!r}] is {found}: needs one value per device ({count})")
    return list(values)


class Model(ABC):
    """Base class of every edgeopt model.

    Subclasses set ``model_id``, ``version``, ``schema`` (a pydantic model of the canonical
    instance, with a ``devices`` list of named devices), ``presets_module`` (a module with
    ``preset(name, **options)`` returning a validated instance), ``variables``,
    ``constraints`` and ``objective``, and implement
    :meth:`evaluate`, :meth:`convergence_terms` and :meth:`infeasibility`.
    """

    model_id: ClassVar[str]
    version: ClassVar[int]
    schema: ClassVar[type[BaseModel]]
    variables: ClassVar[tuple[VariableSpec, ...]]
    constraints: ClassVar[tuple[ConstraintSpec, ...]]
    objective: ClassVar[str]
    presets_module: ClassVar[str]
    size_limits: ClassVar[tuple[SizeLimit, ...]] = ()
    """Limits on an instance's size or on what a method will take on (the model card lists
    them); ranges of single fields are in the parameter table as well."""

    def __init__(self, instance: BaseModel):
        if not isinstance(instance, self.schema):
            raise TypeError(f"{type(self).__name__} needs a {self.schema.__name__}")
        self.instance = instance

    # ---- construction ---------------------------------------------------------------
    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> Self:
        """Validate a canonical JSON document (already parsed) and build the model."""
        instance = validate_document(cls.schema, document, context=f"{cls.model_id} instance")
        return cls(instance)

    @classmethod
    def from_json(cls, text: str) -> Self:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_file(cls, path: str | Path) -> Self:
        return cls.from_json(Path(path).read_text())

    @classmethod
    def from_kwargs(cls, **fields: Any) -> Self:
        """Build from keyword arguments named as the canonical JSON fields."""
        document = {"model": cls.model_id, "version": cls.version, **fields}
        return cls.from_dict(document)

    @classmethod
    def preset(cls, name: str, **options: Any) -> Self:
        """A preset instance: see the model's ``presets.preset`` for names and options."""
        return cls(importlib.import_module(cls.presets_module).preset(name, **options))

    @classmethod
    def preset_names(cls) -> list[str]:
        """The names :meth:`preset` accepts."""
        return list(importlib.import_module(cls.presets_module).preset_names())

    def with_changes(self, changes: Mapping[str, Any] | None = None, /, **fields: Any) -> Self:
        """A new model with fields changed and validated again; this model never changes.

        ``changes`` maps field paths (see :mod:`edgeopt.models.paths`) to values, keywords
        name top-level fields::

            model.with_changes(bandwidth_hz=2e7, rounds=10)
            model.with_changes({"devices[*].memory_bytes": 2e9, "layers[3].param_bytes": 1e6})

        An unknown field raises ``InstanceError`` naming the path and the nearest known
        field (``bandwith_hz``: did you mean 'bandwidth_hz'?), before anything is applied.
        """
        document = set_fields(self.to_dict(), {**(changes or {}), **fields}, self.schema)
        return type(self).from_dict(document)

    def get_field(self, path: str) -> Any:
        """The value at field path ``path`` (a list for ``devices[*].x``); ``InstanceError``
        naming the nearest known field if the path names none."""
        check_path(self.schema, path)
        return get_field(self.to_dict(), path)

    # ---- devices --------------------------------------------------------------------
    @property
    def n_devices(self) -> int:
        return len(self.instance.devices)

    @property
    def device_names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.instance.devices)

    # ---- output ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The canonical JSON document: every field, defaults included, unknown fields kept."""
        return self.instance.model_dump(mode="json")

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_json` to ``path`` atomically (see :mod:`edgeopt.files`)."""
        write_text(path, self.to_json() + "\n")

    def content_hash(self) -> str:
        """SHA-256 (hex) of the canonical JSON with sorted keys and no whitespace: equal for
        equal instances, whatever the key order or layout of the file they came from."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    @classmethod
    def parameters(cls):
        """The declared parameters as a DataFrame: field, unit, allowed range, default, meaning."""
        import pandas as pd

        rows = []

        def visit(schema: type[BaseModel], prefix: str) -> None:
            for name, info in schema.model_fields.items():
                annotation = info.annotation
                args = getattr(annotation, "__args__", ())
                nested = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), None)
                if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                    nested = annotation
                path = f"{prefix}{name}"
                if nested is not None:
                    suffix = "[]" if getattr(annotation, "__origin__", None) is list else ""
                    visit(nested, f"{path}{suffix}.")
                    continue
                extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
                rows.append(
                    {
                        "field": path,
                        "unit": extra.get("unit", "-"),
                        "allowed": describe_allowed(info),
                        "default": None if info.is_required() else info.default,
                        "description": info.description or "",
                    }
                )

        visit(cls.schema, "")
        return pd.DataFrame(rows)

    @classmethod
    def examples(cls) -> tuple[Example, ...]:
        """Small instances (each solved by every method within seconds) for the cross-checks
        that tests/test_contract_generated.py runs on every registered model: at least one
        feasible example and one infeasible one with its reason code.

        The default calls ``examples()`` in the module ``examples_module`` names (default: the
        ``examples`` module of the model's package)."""
        package = cls.__module__.rpartition(".")[0]
        module = getattr(cls, "examples_module", f"{package}.examples")
        return tuple(importlib.import_module(module).examples())

    # ---- model-specific ---------------------------------------------------------------
    @abstractmethod
    def evaluate(self, decision: dict[str, Any]) -> Evaluation:
        """Objective and per-constraint violations of ``decision``, independent of solvers."""

    @abstractmethod
    def convergence_terms(self) -> dict[str, Any]:
        """The SymPy expressions of the model's convergence terms."""

    @abstractmethod
    def infeasibility(self) -> Infeasibility | None:
        """A structural reason the instance has no feasible point, or ``None``."""

    @property
    @abstractmethod
    def size(self) -> dict[str, int]:
        """Counts shown in ``repr`` (devices, layers, ...)."""

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in self.size.items())
        return f"<{type(self).__name__} {self.model_id} v{self.version}: {counts}>"

    def _repr_html_(self) -> str:
        """Notebook view: counts, objective, decision variables and constraint families."""
        counts = ", ".join(f"{k}={v}" for k, v in self.size.items())
        rows = [("model", f"{self.model_id} v{self.version} ({counts})"), ("objective", self.objective)]
        rows += [(f"variable {v.name}", f"{v.domain}, {v.shape}, [{v.unit}]: {v.description}") for v in self.variables]
        rows += [(f"constraint {c.name}", c.statement) for c in self.constraints]
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>"
            for k, v in rows
        )
        return f"<table>{body}</table>"
