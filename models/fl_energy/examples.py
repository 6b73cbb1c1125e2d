"""Small ``fl_energy`` instances for the registry-generated cross-checks (see ``Model.examples``)."""

from __future__ import annotations

from edgeopt.models.base import Example


def examples() -> list[Example]:
    """A 5-device cell, and the same cell with a deadline no device can meet."""
    from edgeopt.models.fl_energy import FLEnergyModel

    cell = FLEnergyModel.preset("default", devices=5, seed=1)
    return [
        Example("cell-5", cell),
        Example("deadline-missed", cell.with_changes(deadline_s=1e-6), "deadline"),
    ]
