"""Property suite of every model with a case in tests/properties.py (hypothesis; budgets from
the profile in conftest): mutated documents load or name the field; every method gives an
honest, verified answer on random, mutated-but-accepted and numerically extreme instances;
time limits are honoured on a hard instance. Model-specific regressions live in
tests/test_properties_<model>.py."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from properties import (
    CASES,
    backends,
    every_method,
    examples,
    load_or_name_the_field,
    time_limits_honoured,
)

from edgeopt.models import InstanceError

MODELS = sorted(CASES)
TIME_LIMIT_CASES = [
    pytest.param(model_id, spec, backend, id=f"{model_id}-{spec.method}-{backend}")
    for model_id in MODELS
    for spec, backend in backends(CASES[model_id])
]


@pytest.mark.parametrize("model_id", MODELS)
@examples(4.0)
@given(data=st.data())
def test_a_mutant_loads_or_its_error_names_the_field(model_id, data):
    load_or_name_the_field(data.draw(CASES[model_id].mutants()))


@pytest.mark.parametrize("model_id", MODELS)
@examples(0.3)
@given(data=st.data())
def test_an_accepted_mutant_gets_an_honest_answer_from_every_method(model_id, data):
    model = load_or_name_the_field(data.draw(CASES[model_id].mutants()))
    assume(model is not None)
    every_method(CASES[model_id], model)


@pytest.mark.parametrize("model_id", MODELS)
@examples(0.4)
@given(data=st.data())
def test_a_random_instance_gets_an_honest_answer_from_every_method(model_id, data):
    every_method(CASES[model_id], data.draw(CASES[model_id].instances()))


@pytest.mark.parametrize("model_id", MODELS)
@examples(0.4)
@given(data=st.data())
def test_numerically_extreme_values_get_a_verified_answer_or_an_honest_status(model_id, data):
    case = CASES[model_id]
    model, changes = data.draw(case.instances()), data.draw(case.extreme_changes())
    try:
        model = model.with_changes(changes)
    except InstanceError:
        assume(False)  # a rule between fields (memory, budgets) rejects the combination
    every_method(case, model)


@pytest.mark.parametrize(("model_id", "spec", "backend"), TIME_LIMIT_CASES)
def test_the_time_limit_is_honoured_on_a_hard_instance(model_id, spec, backend):
    time_limits_honoured(CASES[model_id], spec, backend)
