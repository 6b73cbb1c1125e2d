"""Plug-in discovery: the models and solver sets installed under the ``edgeopt.*`` entry-point groups.

A distribution (edgeopt itself, or a researcher's own package) declares in its
``pyproject.toml``::

    [project.entry-points."edgeopt.models"]
    my_model = "my_package.model:MyModel"            # a subclass of edgeopt.models.base.Model

    [project.entry-points."edgeopt.solvers"]
    my_model = "my_package.solvers:MY_MODEL_SOLVERS"  # an edgeopt.solvers.registry.ModelSolvers

The name of the entry point is the model id (the ``model`` field of its instances). For a
formulation that is not packaged yet (a notebook, a script), :func:`register` adds one at run
time. Nothing is imported until it is used: listing the ids reads package metadata only.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass
from typing import Any

GROUPS = ("edgeopt.models", "edgeopt.solvers")
"""The entry-point groups edgeopt reads."""


@dataclass(frozen=True)
class Plugin:
    """One registered object: its id, ``"module:attribute"`` target and who provided it."""

    name: str
    target: str
    provider: str

    def load(self) -> Any:
        """Import the module and return the attribute."""
        module, _, attribute = self.target.partition(":")
        value: Any = importlib.import_module(module)
        for part in attribute.split(".") if attribute else ():
            value = getattr(value, part)
        return value


_DISCOVERED: dict[str, dict[str, Plugin]] = {}
_REGISTERED: dict[str, dict[str, Plugin]] = {group: {} for group in GROUPS}


def _check_group(group: str) -> None:
    if group not in GROUPS:
        raise ValueError(f"unknown entry-point group {group!r}: one of {', '.join(GROUPS)}")


def _discover(group: str) -> dict[str, Plugin]:
    """The installed entry points of ``group``; two distributions claiming one id is an error."""
    if group not in _DISCOVERED:
        found: dict[str, Plugin] = {}
        for point in importlib.metadata.entry_points(group=group):
            provider = point.dist.name if point.dist is not None else "(unknown distribution)"
            plugin = Plugin(point.name, point.value, provider)
            previous = found.get(point.name)
            if previous is not None and previous.target != plugin.target:
                raise RuntimeError(
                    f"entry point {group}:{point.name} is declared twice: {previous.target} "
                    f"({previous.provider}) and {plugin.target} ({plugin.provider}); uninstall one"
                )
            found[point.name] = plugin
        _DISCOVERED[group] = found
    return _DISCOVERED[group]


def plugins(group: str) -> dict[str, Plugin]:
    """Every plug-in of ``group`` by id (sorted): installed entry points, then run-time ones."""
    _check_group(group)
    merged = {**_discover(group), **_REGISTERED[group]}
    return {name: merged[name] for name in sorted(merged)}


def register(group: str, name: str, target: str) -> None:
    """Register ``target`` ("module:attribute") under ``name`` in ``group`` for this process.

    For formulations not packaged yet; an installed id cannot be replaced (a typo would
    silently shadow a model), so choose a new one.
    """
    _check_group(group)
    if ":" not in target:
        raise ValueError(f"target {target!r} must be 'module:attribute'")
    if name in _discover(group):
        raise ValueError(f"{group} id {name!r} is already installed by {_discover(group)[name].provider}")
    _REGISTERED[group][name] = Plugin(name, target, "(registered at run time)")


def refresh() -> None:
    """Read the installed entry points again (after ``pip install`` of a plug-in in a running
    notebook); run-time registrations are kept."""
    _DISCOVERED.clear()


def unregister(group: str, name: str) -> None:
    """Remove a run-time registration (installed entry points stay)."""
    _check_group(group)
    _REGISTERED[group].pop(name, None)
