"""TinyFEL bad input: every field missing (required or defaulted), and the cross-field rules
(negative / NaN / inf / bool / wrong type: ``test_bad_input_matrix``).

The cases are generated from ``TinyFELModel.parameters()``, so a new field is covered as
soon as it is declared.
"""

from __future__ import annotations

import copy

import pytest
from field_matrix import TINYFEL, concrete

from edgeopt.models import InstanceError
from edgeopt.models.tinyfel import TinyFELModel

CASE = TINYFEL
"""Base document (every declared field present) and parameter table: ``field_matrix``."""
BASE, TABLE, FIELDS = CASE.base, CASE.table, CASE.fields
mutate, problems = CASE.mutate, CASE.problems
REQUIRED = {
    "layers[].name",
    "layers[].fwd_flops",
    "layers[].param_bytes",
    "layers[].in_bytes",
    "layers[].act_factor",
    "layers[].grad_sq_bound",
    "devices[].name",
    "devices[].flops_per_s",
    "devices[].memory_bytes",
    "devices[].samples",
    "devices[].power_w",
    "devices[].channel_gain",
    "devices[].measured.layers",
    "devices[].measured.fwd_ms",
    "devices[].measured.bwd_weight_ms",
    "devices[].measured.bwd_act_ms",
    "bandwidth_hz",
    "noise_psd_w_per_hz",
    "batch_size",
    "local_steps",
    "optimizer_state_factor",
    "bias_budget",
    "min_selected",
    "objective",
    "learning.learning_rate",
    "learning.smoothness",
    "learning.grad_variance",
    "learning.initial_gap",
    "learning.target_stationarity",
}


def test_base_document_is_valid_and_every_field_is_exercised():
    TinyFELModel.from_dict(copy.deepcopy(BASE))
    assert set(REQUIRED) <= set(FIELDS)
    assert {
        "devices[].energy_budget_j",
        "learning.drift_coeff",
        "header_bits",
        "aggregation",
    } <= set(FIELDS)


@pytest.mark.parametrize("path", FIELDS)
def test_missing_field_is_required_or_defaulted(path):
    document, shown = mutate(path, delete=True)
    if path in REQUIRED:
        issue = next(i for i in problems(document) if i.path == shown)
        assert issue.missing and "is required" in issue.message
    else:
        written = TinyFELModel.from_dict(document).to_dict()
        for part in concrete(path)[:-1]:
            written = written[part]
        assert written.get(concrete(path)[-1]) == TABLE.set_index("field").loc[path, "default"]


def test_error_message_names_path_value_range_and_unit():
    document, _ = mutate("devices[].channel_gain", -1)
    with pytest.raises(
        InstanceError, match=r"devices\[1\]\.channel_gain = -1: must be a finite number > 0"
    ):
        TinyFELModel.from_dict(document)
    document, _ = mutate("noise_psd_w_per_hz", 0)
    with pytest.raises(
        InstanceError, match=r"noise_psd_w_per_hz = 0: must be a finite number > 0 \[W/Hz\]"
    ):
        TinyFELModel.from_dict(document)


def test_every_problem_is_reported_at_once():
    document = copy.deepcopy(BASE)
    document["bandwidth_hz"] = 0
    document["devices"][0]["samples"] = 0
    document["layers"][2]["grad_sq_bound"] = 0
    paths = {i.path for i in problems(document)}
    assert {"bandwidth_hz", "devices[0].samples", "layers[2].grad_sq_bound"} <= paths


@pytest.mark.parametrize(
    ("change", "path", "text"),
    [
        (lambda d: d["devices"][1].update(name="d1"), "devices[1].name", "must be unique"),
        (lambda d: d["layers"][2].update(name="l1"), "layers[2].name", "must be unique"),
        (lambda d: d.update(layers=[]), "layers", "at least 1 entry"),
        (lambda d: d.update(devices=[]), "devices", "at least 1 entry"),
        (lambda d: d.update(min_selected=3), "min_selected", "<= the number of devices (2)"),
        (
            lambda d: d.update(min_updated_layers=4),
            "min_updated_layers",
            "<= the number of layers (3)",
        ),
        (lambda d: d.update(objective="total_latency", learning=None), "learning", "total_latency"),
        (
            lambda d: d.update(include_noise_in_budget=True, learning=None),
            "learning",
            "include_noise",
        ),
        (
            lambda d: d["devices"][0].update(energy_budget_j=1.0),
            "devices[0].capacitance",
            "energy_budget_j",
        ),
        (lambda d: d.update(objective="fastest"), "objective", "one of"),
        (lambda d: d.update(ratio_definition="mass"), "ratio_definition", "one of"),
        (lambda d: d.update(batch_size=2.0), "batch_size", "integer"),
        (lambda d: d.update(model="edgesplit"), "model", "one of"),
        (lambda d: d.update(version=2), "version", "one of"),
    ],
)
def test_structural_rules_name_the_field(change, path, text):
    document = copy.deepcopy(BASE)
    change(document)
    issue = next(i for i in problems(document) if i.path == path)
    assert text in issue.message


def test_null_backward_flops_mean_forward_and_zero_sizes_are_allowed():
    document = copy.deepcopy(BASE)
    document["layers"][0].update(param_bytes=0, act_factor=0, in_bytes=0, fwd_flops=0)
    model = TinyFELModel.from_dict(document)
    assert model.to_dict()["layers"][1]["bwd_weight_flops"] is None


def test_step_size_above_one_over_smoothness_warns():
    document = copy.deepcopy(BASE)
    document["learning"]["learning_rate"] = 2.0
    with pytest.warns(UserWarning, match=r"learning_rate \* learning.smoothness = 2 > 1"):
        TinyFELModel.from_dict(document)


def test_bad_input_changes_nothing():
    document = copy.deepcopy(BASE)
    document["bandwidth_hz"] = -5
    snapshot = copy.deepcopy(document)
    problems(document)
    assert document == snapshot
