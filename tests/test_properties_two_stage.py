"""Checks of the two_stage model beside the generic property suite (tests/test_properties.py):
regressions the suite found and the model's own limits."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
from properties import (
    BASES,
    CASES,
    every_method,
)

from edgeopt.models import InstanceError, load_instance
from edgeopt.models.two_stage import TwoStageModel
from edgeopt.models.two_stage.schema import MAX_GRID_CELLS, MAX_ROUND_CAP
from edgeopt.solvers import Status

CASE = CASES["two_stage"]
DATA = Path(__file__).parent / "data"


# ---- size guards (issue: max_pretrain_rounds = 4e12 made the heuristic allocate without bound)


def t1(**changes) -> dict:
    document = json.loads((DATA / "two_stage_t1.json").read_text())
    document.update(changes)
    return document


def rejection(document: dict) -> str:
    with pytest.raises(InstanceError) as raised:
        load_instance(document)
    (issue,) = raised.value.issues
    return f"{issue.path}: {issue.message}"


def test_round_caps_past_the_size_limit_are_rejected_when_read_naming_field_and_limit():
    assert rejection(t1(max_pretrain_rounds=4 * 10**12)) == (
        f"max_pretrain_rounds: must be an integer >= 0 and <= {MAX_ROUND_CAP}")
    assert rejection(t1(max_finetune_rounds=MAX_ROUND_CAP + 1)).startswith(
        f"max_finetune_rounds: must be an integer >= 0 and <= {MAX_ROUND_CAP}")
    load_instance(t1(max_pretrain_rounds=MAX_ROUND_CAP, max_finetune_rounds=1))  # at the limit


def test_a_round_grid_past_the_cell_limit_is_rejected_naming_both_caps_and_the_limit():
    side = math.isqrt(MAX_GRID_CELLS) - 1  # (side + 1)^2 cells: exactly the limit
    load_instance(t1(max_pretrain_rounds=side, max_finetune_rounds=side))
    message = rejection(t1(max_pretrain_rounds=side + 1, max_finetune_rounds=side))
    assert message.startswith("max_pretrain_rounds: the round grid")
    assert f"= {(side + 2) * (side + 1)} cells exceeds the size limit of {MAX_GRID_CELLS}" in message
    assert "max_finetune_rounds" in message


def test_an_edit_cannot_grow_the_grid_past_the_limit_and_changes_nothing():
    model = load_instance(t1())
    with pytest.raises(InstanceError, match="size limit"):
        model.with_changes(max_pretrain_rounds=10**4, max_finetune_rounds=10**4)
    assert model.to_dict() == load_instance(t1()).to_dict()


def test_the_limits_are_declared_for_the_model_card():
    limited = " ".join(limit.what for limit in TwoStageModel.size_limits)
    assert "max_pretrain_rounds" in limited and "max_finetune_rounds" in limited
    assert any(f"{MAX_GRID_CELLS:,}" in limit.limit for limit in TwoStageModel.size_limits)


# ---- numerically extreme (issue: a tiny SNR made the evaluator reject correct points) -------


@pytest.mark.parametrize("name", ["t1", "t2", "t3", "t4"])
def test_a_tiny_snr_gets_verified_answers_from_every_method(name):
    document = json.loads((DATA / f"two_stage_{name}.json").read_text())
    document["noise_psd_w_per_hz"] = 1e-11  # SNR ~1e-12: log2(1 + snr) keeps ~4 digits
    results = every_method(CASE, load_instance(document))
    assert [r.method for r in results if r.status is Status.ERROR] == []


def test_a_server_clock_of_1e21_hz_gets_an_answer_from_every_method():
    """The oracle divided by a pre-training round time rounded to 0 (M ts_min below the last
    digit of T) and every grid method raised ZeroDivisionError (found by the mutants)."""
    document = copy.deepcopy(BASES["two_stage"])
    document["server"]["max_clock_hz"] = 5e21
    results = every_method(CASE, load_instance(document))
    assert [r.method for r in results if r.status is Status.ERROR] == []
    assert {r.method for r in results} >= {"sca_grid", "coarse_to_fine", "baseline_equal_rounds"}
