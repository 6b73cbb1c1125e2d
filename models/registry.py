"""Dispatch canonical instances to model classes by their ``model`` and ``version`` fields."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from edgeopt.models.errors import InstanceError, InstanceIssue

MODEL_IDS: dict[str, tuple[str, str, tuple[int, ...]]] = {
    "edgesplit": ("edgeopt.models.edgesplit", "EdgeSplitModel", (1,)),
    "fl_energy": ("edgeopt.models.fl_energy", "FLEnergyModel", (1,)),
    "tinyfel": ("edgeopt.models.tinyfel", "TinyFELModel", (1,)),
    "two_stage": ("edgeopt.models.two_stage", "TwoStageModel", (1,)),
}
"""model id -> (module, class name, supported format versions)."""


def model_class(model_id: str):
    """The model class registered under ``model_id`` (imported on first use)."""
    if model_id not in MODEL_IDS:
        raise InstanceError(
            InstanceIssue("model", model_id, f"must be one of {sorted(MODEL_IDS)}"), "instance"
        )
    module, name, _ = MODEL_IDS[model_id]
    return getattr(importlib.import_module(module), name)


def read_document(source: str | Path | dict[str, Any]) -> dict[str, Any]:
    """Parse a JSON file path, JSON text or dict; raise ``InstanceError`` on unreadable input."""
    if isinstance(source, dict):
        return source
    text = str(source)
    if isinstance(source, Path) or not text.lstrip().startswith("{"):
        path = Path(source)
        try:
            text = path.read_text()
        except OSError as error:
            raise InstanceError(
                InstanceIssue("(file)", str(path), f"cannot be read: {error.strerror}")
            ) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise InstanceError(
            InstanceIssue("(file)", f"line {error.lineno} column {error.colno}", f"is not valid JSON: {error.msg}")
        ) from None
    if not isinstance(document, dict):
        raise InstanceError(InstanceIssue("(root)", type(document).__name__, "must be a JSON object"))
    return document


def load_instance(source: str | Path | dict[str, Any]):
    """Build the right model from a canonical instance (path, JSON text or dict).

    The ``model`` field picks the model class; ``version`` must be one that class reads.
    """
    document = read_document(source)
    model_id = document.get("model")
    if model_id is None:
        raise InstanceError(
            InstanceIssue("model", None, f"is required: one of {sorted(MODEL_IDS)}", missing=True)
        )
    cls = model_class(model_id)
    versions = MODEL_IDS[model_id][2]
    version = document.get("version")
    if version is None:
        raise InstanceError(
            InstanceIssue("version", None, f"is required: one of {list(versions)}", missing=True)
        )
    if isinstance(version, bool) or version not in versions:
        raise InstanceError(
            InstanceIssue("version", version, f"must be one of {list(versions)} for model {model_id!r}")
        )
    return cls.from_dict(document)


def preset(model_id: str, name: str, **options: Any):
    """A preset instance of ``model_id`` as a model object (see each model's ``presets``)."""
    cls = model_class(model_id)
    return cls.preset(name, **options)
