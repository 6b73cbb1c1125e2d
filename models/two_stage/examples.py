"""Small two-stage instances for the registry-generated cross-checks (see ``Model.examples``)."""

from __future__ import annotations

from edgeopt.models.base import Example


def examples() -> list[Example]:
    """Two devices with at most 20 rounds per stage, and the same with a delay budget below
    one round of either stage."""
    from edgeopt.models.two_stage import TwoStageModel

    small = TwoStageModel.preset("default", devices=2, seed=1, max_pretrain_rounds=20, max_finetune_rounds=20)
    return [
        Example("two-devices", small),
        Example("no-time", small.with_changes(delay_budget_s=1e-9), "delay"),
    ]
