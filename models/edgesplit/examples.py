"""Small EdgeSplit instances for the registry-generated cross-checks (see ``Model.examples``)."""

from __future__ import annotations

from edgeopt.models.base import Example


def examples() -> list[Example]:
    """A dedicated and a shared-server fleet of 4 devices, and one whose devices fit no cut."""
    from edgeopt.models.edgesplit import EdgeSplitModel

    dedicated = EdgeSplitModel.preset("vgg16-cifar10-hetero8", devices=4, seed=1)
    shared = EdgeSplitModel.preset("vgg16-cifar10-hetero8", devices=4, seed=2, server_mode="shared")
    return [
        Example("dedicated-4", dedicated),
        Example("shared-4", shared),
        Example("no-memory", dedicated.with_changes({"devices[*].memory_bytes": 1e3}), "memory"),
    ]
