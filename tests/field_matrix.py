"""The bad-input matrices: each model's base document and parameter table (one
:class:`ModelCase` per model), and helpers that turn a parameter-table field
('devices[].samples') into a concrete path in a document and change or delete the value
there. ``test_bad_input_matrix`` runs the checks every model shares; each model's
validation file adds its own rules."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd
import pytest

from edgeopt.models import InstanceError, load_instance
from edgeopt.models.edgesplit import EdgeSplitModel
from edgeopt.models.tinyfel import TinyFELModel
from edgeopt.models.two_stage import TwoStageModel

DATA = Path(__file__).parent / "data"


def concrete(path: str) -> list[str | int]:
    """'devices[].flops_per_s' -> ['devices', 1, 'flops_per_s'] (the second device)."""
    parts: list[str | int] = []
    for piece in path.split("."):
        if piece.endswith("[]"):
            parts += [piece[:-2], 1]
        else:
            parts.append(piece)
    return parts


def display(parts: list[str | int]) -> str:
    """['devices', 1, 'samples'] -> 'devices[1].samples' (how errors name the field)."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else ("." if text else "") + part
    return text


def mutate_document(base: dict, path: str, value=None, delete: bool = False) -> tuple[dict, str]:
    """A deep copy of ``base`` with the field set to ``value`` (or deleted), and its shown path."""
    document = copy.deepcopy(base)
    parts = concrete(path)
    holder = document
    for part in parts[:-1]:
        holder = holder[part]
    if delete:
        del holder[parts[-1]]
    else:
        holder[parts[-1]] = value
    return document, display(parts)


@dataclass(frozen=True)
class ModelCase:
    """A model's bad-input matrix: a valid ``base`` document with every declared field, the
    reader that raises :class:`InstanceError`, and the model's parameter table."""

    name: str
    base: dict
    read: Callable[[dict], object]
    table: pd.DataFrame

    @cached_property
    def fields(self) -> list[str]:
        return [f for f in self.table["field"] if f not in ("model", "version")]

    @cached_property
    def numeric(self) -> list[str]:
        return [f for f, allowed in zip(self.table["field"], self.table["allowed"])
                if "number" in allowed or "integer" in allowed]

    def mutate(self, path: str, value=None, delete: bool = False) -> tuple[dict, str]:
        return mutate_document(self.base, path, value, delete)

    def problems(self, document: dict) -> list:
        """The issues the reader reports (it must reject the document)."""
        with pytest.raises(InstanceError) as caught:
            self.read(document)
        return caught.value.issues


def with_metadata(document: dict) -> dict:
    """``document`` with a free-form ``metadata`` object at the top, on every device and
    every layer (the optional fields written only when given)."""
    document = {**document, "metadata": {"source": "field matrix"}}
    for kind in ("devices", "layers"):
        if kind in document:
            document[kind] = [{**item, "metadata": {"index": i}} for i, item in enumerate(document[kind])]
    return document


def with_measured(document: dict, phases: tuple[str, ...], server: bool = False) -> dict:
    """``document`` with measured per-layer times (every phase, a batch size, metadata) on
    every device, and with ``server`` also as ``server_measured``."""
    names = [layer["name"] for layer in document["layers"]]
    times = {"layers": names, "batch_size": 2, "metadata": {"source": "field matrix"},
             **{phase: [1.0 + i for i in range(len(names))] for phase in phases}}
    document = {**document, "devices": [{**d, "measured": dict(times)} for d in document["devices"]]}
    return {**document, "server_measured": dict(times)} if server else document


def _edgesplit_base() -> dict:
    base = json.loads((DATA / "edgesplit_t1.json").read_text())
    base["convergence"] = {"epsilon": 0.1, "smoothness": 1.0, "variance": 1.0,
                           "initial_gap": 10.0, "learning_rate": 0.05}
    return with_measured(with_metadata(base), ("fwd_ms", "bwd_ms", "update_ms"), server=True)


def _two_stage_base() -> dict:
    """T4 as written, with channel schedules, G, distances, name and description: every
    declared field present."""
    t4 = with_metadata(json.loads((DATA / "two_stage_t4.json").read_text()))
    for index, device in enumerate(t4["devices"]):
        device["channel_gain_schedule"] = [device["channel_gain"]] * 10
        device["distance_m"] = 50.0 + index
    t4["learning"]["grad_bound"] = 5.0
    t4.update(name="t4", description="known-answer instance T4")
    return TwoStageModel.from_dict(t4).to_dict()


EDGESPLIT = ModelCase("edgesplit", _edgesplit_base(), load_instance, EdgeSplitModel.parameters())
TINYFEL = ModelCase(
    "tinyfel",
    TinyFELModel.from_dict(with_measured(
        with_metadata(json.loads((DATA / "tinyfel_a.json").read_text())),
        ("fwd_ms", "bwd_weight_ms", "bwd_act_ms", "update_ms"))).to_dict(),
    TinyFELModel.from_dict, TinyFELModel.parameters())
TWO_STAGE = ModelCase("two_stage", _two_stage_base(), TwoStageModel.from_dict,
                      TwoStageModel.parameters())
CASES = (EDGESPLIT, TINYFEL, TWO_STAGE)
