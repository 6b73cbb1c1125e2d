"""Two-stage bad input: every field missing (required or defaulted), and the cross-field
rules of spec §3.1 (negative / NaN / inf / bool / wrong type: ``test_bad_input_matrix``).

The cases are generated from ``TwoStageModel.parameters()``, so a new field is covered as
soon as it is declared. The base document is T4 (two devices) with a channel schedule, so
every declared field is present.
"""

from __future__ import annotations

import copy
import math

import pytest
from field_matrix import TWO_STAGE, concrete

from edgeopt.models import InstanceError
from edgeopt.models.two_stage import TwoStageModel

CASE = TWO_STAGE
"""Base document (every declared field present) and parameter table: ``field_matrix``."""
BASE, TABLE, FIELDS, NUMERIC = CASE.base, CASE.table, CASE.fields, CASE.numeric
mutate, problems = CASE.mutate, CASE.problems
OPTIONAL = {
    "devices[].weight",
    "devices[].channel_gain_schedule",
    "learning.bound",
    "learning.grad_bound",
    "devices[].distance_m",
    "devices[].metadata",
    "name",
    "description",
    "metadata",
}
"""Fields with a default; every other field is required."""


def test_base_document_is_valid_and_every_field_is_exercised():
    TwoStageModel.from_dict(copy.deepcopy(BASE))
    assert OPTIONAL < set(FIELDS)
    assert {"server.max_batch", "learning.shift", "max_finetune_rounds"} <= set(NUMERIC)
    assert len(FIELDS) == 32


@pytest.mark.parametrize("path", FIELDS)
def test_missing_field_is_required_or_defaulted(path):
    document, shown = mutate(path, delete=True)
    if path not in OPTIONAL:
        issue = next(i for i in problems(document) if i.path == shown)
        assert issue.missing and "is required" in issue.message
    elif path == "devices[].weight":  # all present or all absent
        issue = next(i for i in problems(document) if i.path == shown)
        assert "all present or all absent" in issue.message
    else:
        written = TwoStageModel.from_dict(document).to_dict()
        for part in concrete(path)[:-1]:
            written = written[part]
        default = TABLE.set_index("field").loc[path, "default"]
        if isinstance(default, float) and math.isnan(default):  # pandas shows None as NaN
            default = None
        assert written.get(concrete(path)[-1]) == default


def test_absent_weights_read_as_one_over_k_and_are_written():
    document = copy.deepcopy(BASE)
    for device in document["devices"]:
        del device["weight"]
    snapshot = copy.deepcopy(document)
    written = TwoStageModel.from_dict(document).to_dict()
    assert [d["weight"] for d in written["devices"]] == [0.5, 0.5]
    assert document == snapshot


def test_integral_floats_are_accepted_and_written_back_as_integers():
    document = copy.deepcopy(BASE)
    document.update(max_pretrain_rounds=20.0, max_finetune_rounds=10.0)
    document["server"]["max_batch"] = 256.0
    written = TwoStageModel.from_dict(document).to_dict()
    assert written["max_pretrain_rounds"] == 20 and isinstance(written["max_pretrain_rounds"], int)
    assert isinstance(written["server"]["max_batch"], int)
    assert TwoStageModel.from_dict(written).to_dict() == written


def test_metadata_is_kept_and_unknown_fields_are_errors():
    document = copy.deepcopy(BASE)
    document["metadata"] = {"source": "lab"}
    document["devices"][0]["metadata"] = {"board": "x"}
    model = TwoStageModel.from_dict(document)
    assert model.to_dict() == document
    assert float(model.bound(20, 10, 226, [128, 96])) == pytest.approx(3.1356046, abs=5e-8)
    document["learning"]["comment"] = "x"
    [issue] = problems(document)
    assert issue.path == "learning.comment" and issue.unknown


def test_error_message_names_path_value_range_and_unit():
    document, _ = mutate("devices[].bandwidth_hz", -1)
    with pytest.raises(
        InstanceError, match=r"devices\[1\]\.bandwidth_hz = -1: must be a finite number > 0 \[Hz\]"
    ):
        TwoStageModel.from_dict(document)
    document, _ = mutate("server.max_batch", 0)
    with pytest.raises(InstanceError, match=r"server\.max_batch = 0: must be an integer >= 1 \[sample\]"):
        TwoStageModel.from_dict(document)


def test_every_problem_is_reported_at_once():
    document = copy.deepcopy(BASE)
    document["delay_budget_s"] = 0
    document["devices"][0]["max_power_w"] = 0
    document["server"]["capacitance"] = -3
    paths = {i.path for i in problems(document)}
    assert {"delay_budget_s", "devices[0].max_power_w", "server.capacitance"} <= paths


@pytest.mark.parametrize(
    ("change", "path", "text"),
    [
        (lambda d: d["devices"][1].update(name="d0"), "devices[1].name", "must be unique"),
        (lambda d: d.update(devices=[]), "devices", "at least 1 device"),
        (lambda d: d["devices"][1].update(weight=0.6), "devices", "sum to 1"),
        (lambda d: d.update(max_pretrain_rounds=0, max_finetune_rounds=0), "max_finetune_rounds", ">= 1"),
        (lambda d: d["learning"].update(learning_rate=0.2), "learning.learning_rate", "must be <= 1"),
        (
            lambda d: d["learning"].update(bound="linear_shift", grad_bound=None),
            "learning.grad_bound",
            "linear_shift",
        ),
        (lambda d: d["learning"].update(bound="cubic"), "learning.bound", "one of"),
        (lambda d: d.update(max_pretrain_rounds=2.5), "max_pretrain_rounds", "integer"),
        (
            lambda d: d["devices"][0].update(channel_gain_schedule=[1e-10] * 9),
            "devices[0].channel_gain_schedule",
            ">= max_finetune_rounds = 10",
        ),
        (
            lambda d: d["devices"][0].update(channel_gain_schedule=[1e-10] * 9 + [0.0]),
            "devices[0].channel_gain_schedule[9]",
            "gain > 0",
        ),
        (
            lambda d: d["devices"][0].update(channel_gain_schedule=[1e-10] * 9 + [math.nan]),
            "devices[0].channel_gain_schedule[9]",
            "must be",
        ),
        (lambda d: d.update(model="tinyfel"), "model", "one of"),
        (lambda d: d.update(version=2), "version", "one of"),
    ],
)
def test_structural_rules_name_the_field(change, path, text):
    document = copy.deepcopy(BASE)
    change(document)
    issue = next(i for i in problems(document) if i.path == path)
    assert text in issue.message


def test_step_size_at_one_over_smoothness_is_allowed_and_zero_constants_too():
    document = copy.deepcopy(BASE)
    document["learning"].update(learning_rate=0.1, grad_variance=0.0, initial_gap=0.0, shift=0.0)
    model = TwoStageModel.from_dict(document)
    assert (model.coefficients.a0, model.coefficients.a1, model.coefficients.a2) == (0.0, 0.0, 0.0)


def test_bad_input_changes_nothing():
    document = copy.deepcopy(BASE)
    document["energy_budget_j"] = -5
    for device in document["devices"]:
        del device["weight"]
    snapshot = copy.deepcopy(document)
    problems(document)
    assert document == snapshot
