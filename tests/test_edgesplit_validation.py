"""EdgeSplit bad input: every field missing (required or defaulted) and the cross-field rules
get an error naming the field (negative / NaN / inf / bool / wrong type:
``test_bad_input_matrix``).

The cases are generated from the model's own parameter table, so a new field is covered
as soon as it is declared.
"""

from __future__ import annotations

import copy

import pytest
from field_matrix import EDGESPLIT, concrete

from edgeopt.models import InstanceError, load_instance

CASE = EDGESPLIT
"""Base document (every declared field present) and parameter table: ``field_matrix``."""
BASE, TABLE, FIELDS = CASE.base, CASE.table, CASE.fields
mutate, problems = CASE.mutate, CASE.problems


def test_base_document_is_valid():
    assert load_instance(copy.deepcopy(BASE)).rounds_used == 8000


@pytest.mark.parametrize("path", FIELDS)
def test_missing_field_is_required_or_defaulted(path):
    document, shown = mutate(path, delete=True)
    default = TABLE.set_index("field").loc[path, "default"]
    required = path in {
        "layers[].name", "layers[].fwd_flops", "layers[].param_bytes", "layers[].out_bytes",
        "devices[].name", "devices[].flops_per_s", "devices[].memory_bytes",
        "devices[].spectral_efficiency", "devices[].samples", "server_flops_per_s",
        "bandwidth_hz", "batch_size", "rounds", "convergence.epsilon", "convergence.smoothness",
        "convergence.variance", "convergence.initial_gap",
        "devices[].measured.layers", "devices[].measured.fwd_ms", "devices[].measured.bwd_ms",
        "server_measured.layers", "server_measured.fwd_ms", "server_measured.bwd_ms",
    }
    if required:
        issue = next(i for i in problems(document) if i.path == shown)
        assert issue.missing and "is required" in issue.message
    else:
        written = load_instance(document).to_dict()
        for part in concrete(path)[:-1]:
            written = written[part]
        assert written.get(concrete(path)[-1]) == default


def test_error_message_reads_like_the_spec():
    document, _ = mutate("devices[].flops_per_s", -1)
    with pytest.raises(InstanceError, match=r"devices\[1\]\.flops_per_s = -1: must be a finite number > 0 \[FLOP/s\]"):
        load_instance(document)


def test_every_problem_is_reported_at_once():
    document = copy.deepcopy(BASE)
    document["bandwidth_hz"] = 0
    document["devices"][0]["samples"] = 0
    document["layers"][2]["out_bytes"] = "big"
    paths = {i.path for i in problems(document)}
    assert {"bandwidth_hz", "devices[0].samples", "layers[2].out_bytes"} <= paths


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda d: d["devices"][1].update(name="fast"), "devices[1].name"),
        (lambda d: d["layers"][2].update(name="l1"), "layers[2].name"),
        (lambda d: d.update(layers=d["layers"][:1]), "layers"),
        (lambda d: d.update(devices=[]), "devices"),
        (lambda d: d["convergence"].update(learning_rate=2.0), "convergence.learning_rate"),
        (lambda d: d.update(server_mode="fast"), "server_mode"),
        (lambda d: d.update(batch_size=2.0), "batch_size"),
    ],
)
def test_structural_rules_name_the_field(change, path):
    document = copy.deepcopy(BASE)
    change(document)
    assert any(i.path == path for i in problems(document))


def test_a_device_that_fits_no_cut_is_reported_with_the_memory_it_needs():
    document = copy.deepcopy(BASE)
    document["devices"][1]["memory_bytes"] = 1e6
    model = load_instance(document)
    problem = model.infeasibility()
    assert problem.reason == "memory"
    assert problem.message == "device 'slow': no memory-feasible cut; needs >= 5000000 bytes (cut 1), has 1000000"
    from edgeopt.solvers import solve

    result = solve(model, "exact")
    assert result.status.value == "infeasible" and result.infeasible_reason == "memory"
    assert result.solution["cuts"] == [] and result.objective is None


def test_bad_input_changes_nothing():
    document = copy.deepcopy(BASE)
    document["bandwidth_hz"] = -5
    snapshot = copy.deepcopy(document)
    problems(document)
    assert document == snapshot
