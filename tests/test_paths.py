"""The field-path language (edgeopt.models.paths) and the strict edits built on it."""

from __future__ import annotations

import json

import pytest
from conftest import known_answer_path

from edgeopt.models import InstanceError, load_instance
from edgeopt.models.paths import (
    EVERY,
    FieldPathError,
    check_path,
    expand,
    field_label,
    get_field,
    parse_path,
    set_field,
)


def t1():
    return load_instance(known_answer_path("t1"))


def test_parse_path():
    assert parse_path("devices[2].flops_per_s") == ("devices", 2, "flops_per_s")
    assert parse_path("devices[*].memory_bytes") == ("devices", EVERY, "memory_bytes")
    assert parse_path("learning.shift") == ("learning", "shift")
    for bad in ("", "[1]", "a..b", "a[x]", "a[1", ".a", "a.[1]", "a[-1]", "a[**]"):
        with pytest.raises(FieldPathError, match="is not a field path"):
            parse_path(bad)


def test_missing_fields_are_named_with_the_nearest_known_one():
    document = t1().to_dict()
    with pytest.raises(FieldPathError, match=r"devices\[5\] does not exist \(the list has 2 entries\)"):
        get_field(document, "devices[5].flops_per_s")
    with pytest.raises(FieldPathError, match="bandwith_hz: unknown field; did you mean 'bandwidth_hz'"):
        set_field(document, "bandwith_hz", 1.0)


def test_wildcards_read_and_write_every_entry():
    document = t1().to_dict()
    assert get_field(document, "devices[*].flops_per_s") == [3e9, 1.5e9]
    assert expand(document, "devices[*].samples") == ["devices[0].samples", "devices[1].samples"]
    changed = set_field(document, "devices[*].memory_bytes", 2e9)
    assert [d["memory_bytes"] for d in changed["devices"]] == [2e9, 2e9]
    assert [d["memory_bytes"] for d in document["devices"]] == [1e9, 1e9]


def test_schema_checks_name_the_path_and_suggest():
    schema = t1().schema
    with pytest.raises(FieldPathError, match=r"devices\[0\]\.flops_per_sec: unknown field; did you mean 'flops_per_s'"):
        check_path(schema, "devices[0].flops_per_sec")
    with pytest.raises(FieldPathError, match=r"layers\[\*\]\.parm_bytes: .*did you mean 'param_bytes'"):
        check_path(schema, "layers[*].parm_bytes")
    with pytest.raises(FieldPathError, match="bandwidth_hz is not a list"):
        check_path(schema, "bandwidth_hz[0]")
    assert check_path(schema, "metadata.anything.below") is None  # free-form
    assert field_label(schema, "bandwidth_hz") == "bandwidth_hz [Hz]"
    assert field_label(schema, "devices[*].memory_bytes") == "devices[*].memory_bytes [byte]"


def test_with_changes_takes_paths_and_keywords_and_leaves_the_original():
    model = t1()
    changed = model.with_changes({"devices[1].flops_per_s": 3e9, "devices[*].memory_bytes": 2e9},
                                 bandwidth_hz=2e7)
    assert changed.instance.devices[1].flops_per_s == 3e9 and changed.instance.bandwidth_hz == 2e7
    assert [d.memory_bytes for d in changed.instance.devices] == [2e9, 2e9]
    assert model.instance.devices[1].flops_per_s == 1.5e9 and model.instance.bandwidth_hz == 1.8e7
    assert changed.get_field("layers[2].param_bytes") == 1e6
    with pytest.raises(InstanceError, match=r"devices\[1\]\.flops_per_s = -1"):
        model.with_changes({"devices[1].flops_per_s": -1})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"bandwith_hz": 1e7}, "bandwith_hz: unknown field; did you mean 'bandwidth_hz'"),
        ({"devices[0].flops_per_sec": 1e9}, r"devices\[0\]\.flops_per_sec: .*'flops_per_s'"),
        ({"devices[*].memory": 1e9}, r"devices\[\*\]\.memory: .*'memory_bytes'"),
        ({"layers[7].param_bytes": 1.0}, r"layers\[7\] does not exist \(the list has 3 entries\)"),
        ({"convergence.epsilon": 0.1}, "convergence is null, not an object: set it whole"),
    ],
)
def test_failed_edits_raise_and_change_nothing(changes, message):
    model = t1()
    before = model.to_dict()
    with pytest.raises(InstanceError, match=message):
        model.with_changes({"bandwidth_hz": 2e7, **changes})  # the good change is not applied either
    assert model.to_dict() == before


def test_keyword_typos_are_errors_too():
    with pytest.raises(InstanceError, match="did you mean 'bandwidth_hz'"):
        t1().with_changes(bandwith_hz=1e7)


def test_metadata_is_the_one_free_form_field_and_round_trips():
    model = t1().with_changes({"metadata": {"testbed": "lab", "runs": [1, 2]},
                               "devices[0].metadata": {"board": "jetson"}})
    written = model.to_dict()
    assert written["metadata"] == {"testbed": "lab", "runs": [1, 2]}
    assert written["devices"][0]["metadata"] == {"board": "jetson"}
    assert "metadata" not in written["devices"][1]  # written only when given
    assert load_instance(written).to_dict() == written
    assert model.with_changes({"metadata.testbed": "home"}).get_field("metadata.testbed") == "home"


@pytest.mark.parametrize(
    ("name", "edit", "path", "hint"),
    [
        ("edgesplit_t1.json", ("bandwith_hz",), "bandwith_hz", "did you mean 'bandwidth_hz'"),
        ("edgesplit_t1.json", ("devices", 0, "flops_per_sec"), "devices[0].flops_per_sec",
         "did you mean 'flops_per_s'"),
        ("tinyfel_a.json", ("learning", "learning_rat"), "learning.learning_rat",
         "did you mean 'learning_rate'"),
        ("two_stage_t1.json", ("server", "max_clock"), "server.max_clock",
         "did you mean 'max_clock_hz'"),
        ("tinyfel_a.json", ("note",), "note", "free-form data belongs under 'metadata'"),
    ],
)
def test_unknown_fields_in_documents_are_errors(name, edit, path, hint):
    document = json.loads((known_answer_path("t1").parent / name).read_text())
    holder = document
    for key in edit[:-1]:
        holder = holder[key]
    holder[edit[-1]] = 1.0
    with pytest.raises(InstanceError) as caught:
        load_instance(document)
    [issue] = caught.value.issues
    assert issue.path == path and issue.unknown and hint in issue.message
