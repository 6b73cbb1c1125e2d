"""Small TinyFEL instances for the registry-generated cross-checks (see ``Model.examples``)."""

from __future__ import annotations

from edgeopt.models.base import Example


def examples() -> list[Example]:
    """A 4-device cell, and the same cell with a bias budget no selection can meet."""
    from edgeopt.models.tinyfel import TinyFELModel

    cell = TinyFELModel.preset("resnet18-cifar10-cell", devices=4, seed=1)
    return [
        Example("cell-4", cell),
        Example("bias-unreachable", cell.with_changes(bias_budget=0.0), "bias_budget"),
    ]
