"""Bad input every model shares: each numeric field negative, NaN or infinite, or a bool,
and each field of the wrong type gets an error naming that field (and, for a negative
value, the allowed range). Generated from each model's parameter table (``field_matrix``),
so a new field is covered as soon as it is declared; model-specific rules (required fields,
cross-field checks) are in ``test_<model>_validation``."""

from __future__ import annotations

import math

import pytest
from field_matrix import CASES

NUMERIC = [pytest.param(case, path, id=f"{case.name}:{path}")
           for case in CASES for path in case.numeric]
FIELDS = [pytest.param(case, path, id=f"{case.name}:{path}")
          for case in CASES for path in case.fields]


def test_every_base_document_is_valid():
    for case in CASES:
        case.read(case.base)


@pytest.mark.parametrize(("case", "path"), NUMERIC)
def test_negative_value_is_rejected_with_its_path_and_range(case, path):
    document, shown = case.mutate(path, -1)
    issue = next(i for i in case.problems(document) if i.path == shown)
    assert issue.value == -1
    assert ">" in issue.message or "<=" in issue.message


@pytest.mark.parametrize(("case", "path"), NUMERIC)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_rejected(case, path, bad):
    document, shown = case.mutate(path, bad)
    assert any(i.path == shown for i in case.problems(document))


@pytest.mark.parametrize(("case", "path"), NUMERIC)
def test_booleans_are_not_numbers(case, path):
    document, shown = case.mutate(path, True)
    assert any(i.path == shown for i in case.problems(document))


@pytest.mark.parametrize(("case", "path"), FIELDS)
def test_wrong_type_is_rejected(case, path):
    allowed = case.table.set_index("field").loc[path, "allowed"]
    bad = 12345 if "string" in allowed else "abc"
    document, shown = case.mutate(path, bad)
    issue = next(i for i in case.problems(document) if i.path == shown)
    assert issue.message.startswith("must be")
