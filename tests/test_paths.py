"""Field paths into canonical instance JSON."""

from __future__ import annotations

import pytest
from conftest import known_answer_path

from edgeopt.analysis.paths import FieldPathError, get_field, parse_path, set_field, with_fields
from edgeopt.models import InstanceError, load_instance


def test_parse_path():
    assert parse_path("devices[2].flops_per_s") == ["devices", 2, "flops_per_s"]
    assert parse_path("learning.shift") == ["learning", "shift"]
    for bad in ("", "[1]", "a..b", "a[x]", "a[1", ".a", "a.[1]"):
        with pytest.raises(FieldPathError):
            parse_path(bad)


def test_missing_fields_are_named():
    document = load_instance(known_answer_path("t1")).to_dict()
    with pytest.raises(FieldPathError, match=r"devices\[5\] does not exist \(the list has 2 entries\)"):
        get_field(document, "devices[5].flops_per_s")
    with pytest.raises(FieldPathError, match="no field 'bandwith_hz'"):
        set_field(document, "bandwith_hz", 1.0)


def test_with_fields_revalidates_and_leaves_the_original():
    model = load_instance(known_answer_path("t1"))
    changed = with_fields(model, {"devices[1].flops_per_s": 3e9, "bandwidth_hz": 2e7})
    assert changed.instance.devices[1].flops_per_s == 3e9 and changed.instance.bandwidth_hz == 2e7
    assert model.instance.devices[1].flops_per_s == 1.5e9
    with pytest.raises(InstanceError, match=r"devices\[1\]\.flops_per_s = -1"):
        with_fields(model, {"devices[1].flops_per_s": -1})
