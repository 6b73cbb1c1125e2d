"""Dispatch canonical instances to model classes by their ``model`` and ``version`` fields.

Models are found through the ``edgeopt.models`` entry-point group (see
:mod:`edgeopt.models.plugins`): the three built-in models register through it exactly as a
researcher's own package does, and :func:`register_model` adds one for the running process.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from edgeopt.models import plugins
from edgeopt.models.errors import InstanceError, InstanceIssue

GROUP = "edgeopt.models"


class _RegisteredModels(Mapping[str, str]):
    """A live, read-only view: model id -> ``"module:Class"`` of every registered model."""

    def __getitem__(self, model_id: str) -> str:
        return plugins.plugins(GROUP)[model_id].target

    def __iter__(self) -> Iterator[str]:
        return iter(plugins.plugins(GROUP))

    def __len__(self) -> int:
        return len(plugins.plugins(GROUP))

    def __repr__(self) -> str:
        return f"MODEL_IDS({dict(self)!r})"


MODEL_IDS: Mapping[str, str] = _RegisteredModels()
"""model id -> ``"module:Class"``, read from the entry points on every access."""


def register_model(model_id: str, target: str) -> None:
    """Make ``target`` (``"module:Class"``, a :class:`~edgeopt.models.base.Model` subclass)
    loadable as ``model_id`` in this process, without packaging it."""
    plugins.register(GROUP, model_id, target)


def unregister_model(model_id: str) -> None:
    """Undo :func:`register_model` (installed models stay)."""
    plugins.unregister(GROUP, model_id)


def model_class(model_id: str):
    """The model class registered under ``model_id`` (imported on first use)."""
    registered = plugins.plugins(GROUP)
    if model_id not in registered:
        close = difflib.get_close_matches(str(model_id), list(registered), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InstanceError(
            InstanceIssue("model", model_id, f"must be one of {sorted(registered)}{hint}"), "instance"
        )
    return registered[model_id].load()


def supported_versions(cls: Any) -> tuple[int, ...]:
    """The format versions a model class reads: ``supported_versions``, else its ``version``."""
    return tuple(getattr(cls, "supported_versions", (cls.version,)))


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
    versions = supported_versions(cls)
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
