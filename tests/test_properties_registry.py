"""Every registered model has a property suite, and the suites' own machinery is sound."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from properties import BASES, CASES, LIST_MUTATIONS, VALUE_MUTATIONS, leaves, mutate, related

from edgeopt.models import load_instance
from edgeopt.models.registry import MODEL_IDS

TESTS = Path(__file__).parent


def test_every_registered_model_has_a_property_case():
    """tests/test_properties.py runs the generic suite on every case of CASES."""
    for model_id in MODEL_IDS:
        assert model_id in CASES, (
            f"model {model_id!r} is registered without a property suite: add its PropertyCase "
            f"to CASES in tests/properties.py")


@pytest.mark.parametrize("model_id", sorted(CASES))
def test_a_case_builds_valid_instances_and_its_base_covers_every_list(model_id):
    case = CASES[model_id]
    for seed in range(3):
        assert case.instance(np.random.default_rng(seed)).model_id == model_id
    assert load_instance(case.base).model_id == model_id
    kinds = {type(value).__name__ for _, value in leaves(case.base)}
    assert {"list", "float"} <= kinds
    assert case.hard().model_id == model_id
    for path in case.extremes:  # each extreme range's ends are valid on their own
        lo, hi = case.extremes[path]
        assert lo < hi


def test_mutations_change_the_copy_and_name_their_path():
    base = BASES["edgesplit"]
    mutant = mutate(base, ("devices", 1, "flops_per_s"), "x1e12")
    assert mutant.shown == "devices[1].flops_per_s"
    assert mutant.document["devices"][1]["flops_per_s"] == base["devices"][1]["flops_per_s"] * 1e12
    assert "layers" not in mutate(base, ("layers",), "deleted").document
    assert len(mutate(base, ("devices",), "duplicated").document["devices"]) == len(base["devices"]) + 1
    assert set(VALUE_MUTATIONS) >= {"deleted", "negative", "zero", "nan", "inf", "x1e12", "x1e-12",
                                    "string", "null"}
    assert set(LIST_MUTATIONS) == {"emptied", "duplicated", "shortened"}


def test_an_error_about_an_unrelated_field_does_not_count_as_naming_the_field():
    mutant = mutate(BASES["two_stage"], ("devices", 0, "max_clock_hz"), "negative")
    assert related("devices[0].max_clock_hz", mutant, "")
    assert related("devices[0].weight", mutant, "")  # a rule within the same record
    assert not related("energy_budget_j", mutant, "energy_budget_j: must be > 0")
    assert not related("learning.shift", mutant, "learning.shift: must be >= 0")
